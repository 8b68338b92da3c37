"""A pairs table in another library's format, for `mapl export`.

    mapl export out/pairs --format trl --output out/trl/prefs.jsonl

`trl`: TRL's preference format with explicit prompts, conversational: one row per pair whose two sides share
one prompt, {"prompt": [messages], "chosen": [one assistant message], "rejected": [one assistant message]}.
Standard and inter rows have that shape. An intra row compares one response under two prompts, which TRL's
format cannot say; those rows are left out and counted. The file is .jsonl or .parquet, chosen by its
suffix, written atomically, with FILE.manifest.json beside it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from mapl_cli.errors import MaplError

FORMATS = ("trl",)
SUFFIXES = (".jsonl", ".parquet")


def manifest_path(output: Path) -> Path:
    """Where the manifest of an exported file goes: FILE.manifest.json (a folder may hold several exports,
    and other stages' manifest.json)."""
    return output.with_name(output.name + ".manifest.json")


def trl_rows(table) -> tuple[list[dict[str, Any]], Counter, Counter]:
    """TRL preference rows for the pairs that share one prompt on both sides (standard and inter rows), and
    the rows written and left out, counted by kind."""
    columns = ("kind", "prompt_chosen", "prompt_rejected", "response_chosen", "response_rejected")
    rows, written, left_out = [], Counter(), Counter()
    for row in table.select(list(columns)).to_pylist():
        if row["prompt_chosen"] != row["prompt_rejected"]:  # intra: one response, two prompts
            left_out[row["kind"]] += 1
            continue
        written[row["kind"]] += 1
        rows.append({
            "prompt": [{"role": m["role"], "content": m["content"]} for m in row["prompt_chosen"]],
            "chosen": [{"role": "assistant", "content": row["response_chosen"]}],
            "rejected": [{"role": "assistant", "content": row["response_rejected"]}],
        })
    return rows, written, left_out


def _by_kind(counts: Counter) -> dict[str, int]:
    from mapl_cli.pairs import KINDS

    return {kind: counts[kind] for kind in KINDS if counts[kind]}


def _write(rows: list[dict[str, Any]], output: Path) -> None:
    """The rows as JSON lines or Parquet (by the suffix), renamed into place whole."""
    from mapl_cli.manifest import atomic_path

    with atomic_path(output) as tmp:
        if output.suffix.lower() == ".jsonl":
            with open(tmp, "w", encoding="utf-8") as handle:
                for row in rows:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            from mapl_cli.pairs import MESSAGES

            schema = pa.schema([("prompt", MESSAGES), ("chosen", MESSAGES), ("rejected", MESSAGES)])
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)


def check_output(output: Path, force: bool) -> None:
    """A .jsonl or .parquet file that does not exist yet (or --force), in a folder that can hold it."""
    if output.suffix.lower() not in SUFFIXES:
        raise MaplError(f"--output {output}: name a .jsonl or .parquet file (the suffix chooses the format)")
    if output.is_dir():
        raise MaplError(f"--output {output}: is a folder; name the file to write")
    if output.exists() and not force:
        raise MaplError(f"--output {output}: exists; pass --force to replace it")
    if output.parent.exists() and not output.parent.is_dir():
        raise MaplError(f"--output {output}: {output.parent} is not a folder")


def export(pairs: str | Path, output: Path, fmt: str = "trl", force: bool = False) -> dict[str, Any]:
    """Write the pairs table `pairs` (a file or a folder holding pairs.parquet) to `output` in format `fmt`;
    returns the manifest (its counts: rows written by kind, rows left out by kind)."""
    from mapl_cli.manifest import build_manifest, write_json_atomic
    from mapl_cli.pairs import read_pairs

    started = time.time()
    if fmt not in FORMATS:
        raise MaplError(f"--format {fmt}: unknown format (choose from {', '.join(FORMATS)})")
    check_output(output, force)
    table = read_pairs(pairs)
    rows, written, left_out = trl_rows(table)
    if not rows:
        raise MaplError(f"{pairs}: no row shares one prompt on both sides ({left_out.total()} intra rows); nothing to write")
    output.parent.mkdir(parents=True, exist_ok=True)
    _write(rows, output)
    pairs_file = Path(pairs) / "pairs.parquet" if Path(pairs).is_dir() else Path(pairs)
    manifest = build_manifest(
        "export", {"format": fmt, "output": str(output), "force": force}, [pairs_file],
        {"rows": len(rows), "written": _by_kind(written), "left_out": _by_kind(left_out)}, started,
        outputs={"file": str(output)},
    )
    write_json_atomic(manifest_path(output), manifest)
    return manifest
