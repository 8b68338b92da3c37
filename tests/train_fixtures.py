"""A tiny pairs table with all three kinds (standard, intra, inter) for the training tests.

    from tests.train_fixtures import write_pairs
    path = write_pairs(tmp_path / "pairs.parquet", n_sources=4)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mapl_cli.pairs import PAIRS_SCHEMA

QUESTIONS = [
    "Describe a sunrise over the sea.",
    "Explain why the sky is blue.",
    "Give advice for a first job interview.",
    "Write a note thanking a neighbour.",
    "Summarise the water cycle.",
    "Suggest a name for a bakery.",
    "What makes a good password?",
    "Describe your favourite season.",
]
GOOD = "Here is a careful answer, in two short sentences. Any questions?"
BAD = "no idea, sorry, really, no idea at all, ask someone else"
INSTRUCTION = {"id": "startend:end_checker", "kwargs": json.dumps({"end_phrase": "Any questions?"}),
               "text": "Finish your response with this exact phrase: Any questions?"}
OTHER = {"id": "startend:end_checker", "kwargs": json.dumps({"end_phrase": "Is there anything else?"}),
         "text": "Finish your response with this exact phrase: Is there anything else?"}


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _row(kind, source, pc, pr, rc, rr, base, ic=(), ir=(), vc=(), vr=(), condition="", anchor="") -> dict:
    row = {"kind": kind, "source_id": source, "prompt_chosen": pc, "prompt_rejected": pr,
           "response_chosen": rc, "response_rejected": rr, "base_prompt": base,
           "instructions_chosen": list(ic), "instructions_rejected": list(ir),
           "verdicts_chosen": list(vc), "verdicts_rejected": list(vr), "condition": condition, "anchor": anchor}
    row["pair_id"] = hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()[:16]
    return row


def make_rows(n_sources: int = 4) -> list[dict]:
    """For each source question: one standard, one intra and one inter row (3 * n_sources rows)."""
    rows = []
    for i in range(n_sources):
        q = QUESTIONS[i % len(QUESTIONS)] + ("" if i < len(QUESTIONS) else f" (variant {i})")
        base = _user(q)
        good, bad = f"{GOOD} ({i})", f"{BAD} {i}"
        with_instr = _user(f"{q}\n{INSTRUCTION['text']}")
        with_other = _user(f"{q}\n{OTHER['text']}")
        rows.append(_row("standard", f"s{i}", base, base, good, bad, base))
        rows.append(_row("intra", f"s{i}", with_instr, with_other, good, good, base, [INSTRUCTION], [OTHER],
                         [True], [False], "all_vs_notall", "chosen"))
        rows.append(_row("inter", f"s{i}", with_instr, with_instr, good, bad, base, [INSTRUCTION], [INSTRUCTION],
                         [True], [False]))
    return rows


def write_pairs(path: Path, n_sources: int = 4, extra_columns: dict | None = None) -> Path:
    rows = make_rows(n_sources)
    table = pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA)
    for name, values in (extra_columns or {}).items():
        table = table.append_column(name, pa.array(values(rows) if callable(values) else values))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path
