"""IFBench's `format:*` instruction types, check-only (see mapl_cli/instructions/ifbench/__init__.py)."""

from __future__ import annotations

TYPES: list = []
