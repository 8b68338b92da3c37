"""Training checkpoints: DIR/checkpoints/step-NNNNNN/ with the trainable weights, optimizer, scheduler,
rng states and the data position (the global step; the batch order is a pure function of seed and epoch).

A checkpoint is written to a temporary folder and renamed into place, so a folder named step-* is always
complete; only the newest `keep` are kept. Under FSDP the weights and optimizer state are gathered in full
on rank 0 (all processes call `save`; rank 0 writes), and the optimizer state is keyed by parameter name,
so a checkpoint loads whatever the process count and whether or not the run that wrote it used FSDP.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

PREFIX = "step-"


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(folder: Path, step: int, par, model, optimizer, scheduler, meta: dict, keep: int = 2) -> Path | None:
    """Write checkpoint `step` under `folder` (DIR/checkpoints) and prune older ones. Every process calls
    it (FSDP gathers the state); rank 0 writes and returns the folder, the others return None."""
    weights = par.trainable_state(model)
    optim = par.optimizer_state(model, optimizer)
    if par.rank != 0:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{PREFIX}{step:06d}"
    tmp = folder / f".tmp-{PREFIX}{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(weights, str(tmp / "trainable.safetensors"))
    torch.save(
        {"optimizer": optim, "scheduler": scheduler.state_dict(), "rng": rng_state(), "step": step,
         "optimizer_layout": "by-name"},
        tmp / "trainer_state.pt",
    )
    (tmp / "meta.json").write_text(json.dumps({"step": step, **meta}, indent=2, default=str) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(folder: Path) -> list[Path]:
    if not folder.exists():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def latest(folder: Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


def load(path: Path, par, model, optimizer, scheduler) -> int:
    """Restore a checkpoint into model/optimizer/scheduler and the rng; returns its step. Every process
    reads the same files (a shared file system, as for the output folder)."""
    try:
        par.load_trainable(model, load_file(str(path / "trainable.safetensors")))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    state = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=False)
    if state.get("optimizer_layout") == "by-name":
        par.load_optimizer_state(model, optimizer, state["optimizer"])
    elif par.sharded:  # checkpoints of earlier mapl versions keep the optimizer state by parameter position
        raise ValueError(f"{path}: written by an earlier mapl version; resume it without --fsdp")
    else:
        optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return int(state["step"])
