"""Which instruction types a model was trained on, read from the manifests mapl writes, so that evaluation
can split accuracy into types the model saw in training and types it never saw (held out).

    mapl synthesize prefs.jsonl --exclude detectable_format:title --output out/pairs
    mapl train-dpo out/pairs --output out/dpo
    mapl evaluate --benchmark bench.jsonl --model out/dpo --train-manifest out/dpo/manifest.json --output out/eval

A training manifest points at its pairs; the ids are those of the instructions in the pairs rows the
objective actually used (kinds whose lambda is 0 are left out: a plain-DPO baseline on MAPL pairs has seen
no instruction at all). A synthesize manifest gives the ids of the instructions it kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mapl_cli.errors import MaplError


def _load(path: Path) -> dict[str, Any]:
    if path.is_dir():
        path = path / "manifest.json"
    if not path.is_file():
        raise MaplError(f"{path}: no such manifest (give DIR/manifest.json of a mapl synthesize or training run)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise MaplError(f"{path}: not a readable manifest ({type(err).__name__})") from None
    if not isinstance(manifest, dict) or "stage" not in manifest:
        raise MaplError(f"{path}: not a mapl manifest (no 'stage')")
    return manifest


def _ids_in_pairs(pairs: Path, kinds: set[str]) -> set[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = pairs / "pairs.parquet" if pairs.is_dir() else pairs
    try:
        table = pq.read_table(file, columns=["kind", "instructions_chosen", "instructions_rejected"])
    except (pa.ArrowException, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MaplError(f"{file}: the training pairs cannot be read ({first})") from None
    ids: set[str] = set()
    for kind, chosen, rejected in zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True):
        if kind in kinds:
            ids.update(i["id"] for i in (chosen or []) + (rejected or []))
    return ids


def seen_instruction_ids(path: str | Path) -> tuple[set[str], str]:
    """The instruction ids a run trained on (or synthesized), and a one-line account of where they came from."""
    path = Path(path)
    manifest = _load(path)
    stage = manifest["stage"]
    if stage == "synthesize":
        kept = manifest.get("counts", {}).get("kept_instructions_by_id", {})
        return {i for i, n in kept.items() if n}, f"instructions kept by synthesize ({path})"
    if stage in ("train-dpo", "train-rm"):
        options = manifest.get("options", {})
        kinds = {"intra"} if options.get("lambda_intra", 1.0) else set()
        kinds |= {"inter"} if options.get("lambda_inter", 1.0) else set()
        pairs = Path(str(options.get("pairs", "")))
        if not kinds:
            return set(), f"{stage} with both lambdas 0: no instruction pairs used ({path})"
        if pairs.exists():
            return _ids_in_pairs(pairs, kinds), f"{', '.join(sorted(kinds))} rows of {pairs} used by {stage} ({path})"
        beside = (pairs if pairs.suffix != ".parquet" else pairs.parent) / "manifest.json"
        if beside.is_file():
            ids, _ = seen_instruction_ids(beside)
            return ids, f"synthesize manifest {beside} of the pairs used by {stage} ({path})"
        raise MaplError(f"{path}: the training pairs {pairs} are not on this machine; pass their synthesize manifest.json instead")
    raise MaplError(f"{path}: a {stage!r} manifest records no training instructions; give a synthesize or training manifest")


def seen_from_models(models: list[str]) -> list[str]:
    """Manifests of the --model folders that are mapl training runs (used when no --train-manifest is given)."""
    found = []
    for model in models:
        manifest = Path(model) / "manifest.json"
        if manifest.is_file():
            try:
                stage = json.loads(manifest.read_text(encoding="utf-8")).get("stage")
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError, AttributeError):
                continue
            if stage in ("train-dpo", "train-rm"):
                found.append(str(manifest))
    return found
