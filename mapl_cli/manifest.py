"""manifest.json: what every stage writes beside its output.

A manifest records the stage, the mapl version, the resolved options, the seed, the inputs with content
hashes, row counts (kept and skipped, with reasons) and wall time, so any artifact can be traced back to
the command and data that made it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from mapl_cli import __version__


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (a directory: of its files' names and bytes, in sorted order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    return digest.hexdigest()


def input_record(path: str | Path) -> dict[str, Any]:
    """A manifest entry for one input: its path and, for local files, size and sha256."""
    text = str(path)
    if text.startswith("hf://") or not Path(text).exists():
        return {"path": text}
    p = Path(text)
    size = p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return {"path": str(p.resolve()), "bytes": size, "sha256": file_sha256(p)}


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def build_manifest(
    stage: str,
    options: dict[str, Any],
    inputs: list[str | Path],
    counts: dict[str, Any],
    started: float,
    seed: int | None = None,
    outputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest dict; `started` is a `time.time()` taken when the stage began."""
    return {
        "stage": stage,
        "mapl_version": __version__,
        "created_unix": round(time.time(), 3),
        "wall_seconds": round(time.time() - started, 3),
        "seed": seed,
        "options": options,
        "inputs": [input_record(p) for p in inputs],
        "outputs": outputs or {},
        "counts": counts,
        "command": sys.argv,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
