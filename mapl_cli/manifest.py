"""manifest.json: what every stage writes beside its output.

A manifest records the stage, the mapl version, the resolved options, the seed, the inputs with content
hashes, row counts (kept and skipped, with reasons), wall time and the versions of the libraries that did
the work, so any artifact can be traced back to the command, data and code that made it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mapl_cli import __version__
from mapl_cli.errors import naming


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


_TEMPORARY = re.compile(r"^\..+\.tmp-(\d+)(\.[A-Za-z0-9]+)?$")


def temporary_path(path: str | Path) -> Path:
    """A hidden name beside `path` that says which process writes it (the suffix is kept, so writers
    that go by it, such as matplotlib's, still can): out/.summary.tmp-4242.json."""
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without error it is renamed onto `path`,
    otherwise removed. So `path` is either the old file or the whole new one, never a partial one; an
    OSError names `path` (the file the user asked for)."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        with naming(path):
            yield tmp
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(folder: str | Path, legacy: tuple[str, ...] = ()) -> list[str]:
    """Remove the temporary files (and folders) that `temporary_path` names in `folder` whose process is
    gone (a kill -9, a power cut), and the `legacy` names older versions used; returns what was removed."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TEMPORARY.match(entry.name)
        if (match and not _alive(int(match.group(1)))) or entry.name in legacy:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to a temporary file beside `path`, then rename it into place."""
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# The libraries whose versions change what a stage computes (importlib.metadata names; mapl is its own).
VERSIONED = ("torch", "transformers", "peft", "datasets")


def library_versions() -> dict[str, str | None]:
    """{python, torch, transformers, peft, datasets, mapl}: installed versions, read without importing the
    libraries; a package that is not installed is null."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    found["mapl"] = __version__
    return found


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
        "versions": library_versions(),
    }
