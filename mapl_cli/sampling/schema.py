"""The two tables `mapl sample` writes: every sample with its labels, and the preference rows it gives.

prefs.parquet is in `mapl synthesize`'s input format (prompt as chat messages, chosen, rejected, id).
Synthesize also reads its `instructions` column: the instructions the prompt already carries, which new
ones must not repeat or contradict (docs/sampling.md, "MAPL on sampled data"); the other columns (key,
verdicts_chosen, verdicts_rejected) are for people reading the file.
"""

from __future__ import annotations

import pyarrow as pa

from mapl_cli.pairs import INSTRUCTIONS, MESSAGES

SAMPLES_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("sample_index", pa.int32()),
        ("prompt", MESSAGES),
        ("base_prompt", MESSAGES),
        ("instructions", INSTRUCTIONS),
        ("response", pa.string()),
        ("verdicts", pa.list_(pa.bool_())),
        ("n_satisfied", pa.int32()),
        ("n_instructions", pa.int32()),
        ("finish_reason", pa.string()),
    ]
)

PREFS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", MESSAGES),
        ("chosen", pa.string()),
        ("rejected", pa.string()),
        ("key", pa.string()),
        ("instructions", INSTRUCTIONS),
        ("verdicts_chosen", pa.list_(pa.bool_())),
        ("verdicts_rejected", pa.list_(pa.bool_())),
    ]
)
