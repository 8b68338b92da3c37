"""Where a `--model` value points: a full HF folder, a LoRA adapter folder, a training run folder, or a name.

`mapl train-dpo` writes DIR/model/ (HF layout); with LoRA it may write an adapter folder
(adapter_config.json) instead of, or beside, a merged model. Backends ask `resolve_checkpoint` which weights
to load, so every backend treats these layouts the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mapl_cli.errors import MaplError


@dataclass(frozen=True)
class Checkpoint:
    """`base` is what `models.load_causal_lm` loads; `adapter` a LoRA folder to apply on top, or None."""

    base: str
    adapter: str | None = None


def _adapter_base(folder: Path) -> str:
    try:
        config = json.loads((folder / "adapter_config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise MaplError(f"{folder}: unreadable adapter_config.json ({err})") from None
    base = config.get("base_model_name_or_path")
    if not base:
        raise MaplError(f"{folder}/adapter_config.json: no base_model_name_or_path, cannot find the base model")
    return str(base)


def resolve_checkpoint(name: str) -> Checkpoint:
    """Decide what to load for `name`; a path that exists but holds no model raises MaplError."""
    path = Path(name)
    if not path.exists():
        return Checkpoint(base=name)  # a built-in name or a hub id: models.resolve_model decides
    if path.is_file():
        raise MaplError(f"{name}: is a file; --model takes a model folder, a hub id or a built-in name")
    if (path / "config.json").exists():
        return Checkpoint(base=str(path))
    if (path / "adapter_config.json").exists():
        return Checkpoint(base=_adapter_base(path), adapter=str(path))
    for sub in ("model", "merged", "adapter"):
        if (path / sub).is_dir() and ((path / sub / "config.json").exists() or (path / sub / "adapter_config.json").exists()):
            return resolve_checkpoint(str(path / sub))
    raise MaplError(f"{name}: no config.json or adapter_config.json here or in {name}/model/; not a model folder")


def display_name(name: str) -> str:
    """A short label for reports: the run folder's name for paths, the name itself otherwise."""
    path = Path(name)
    if path.exists():
        resolved = path.resolve()
        if resolved.name in ("model", "merged", "adapter") and resolved.parent.name:
            return resolved.parent.name
        return resolved.name
    return name
