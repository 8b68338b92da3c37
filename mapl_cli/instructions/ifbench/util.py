"""Text analysis shared by the IFBench types (IFBench's `instructions_util`, offline)."""

from __future__ import annotations
