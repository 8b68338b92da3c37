"""Training checkpoints: DIR/checkpoints/step-NNNNNN/ with the trainable weights, optimizer, scheduler,
rng states and the data position (the global step; the batch order is a pure function of seed and epoch).

Nothing in a checkpoint is a pickle, so reading one (from a shared file system, a downloaded run) never
runs code:

- `trainable.safetensors`: the trainable weights;
- `trainer_state.safetensors`: the optimizer moments and the torch (and CUDA) RNG states;
- `trainer_state.json`: the step, the scheduler state, the optimizer's hyper-parameters, Python's RNG state,
  and for every optimizer tensor its key in `trainer_state.safetensors`;
- `meta.json`: the options, process count, total steps and the sha256 of the pairs (what `--resume` compares).

Checkpoints of earlier mapl versions keep the trainer state in `trainer_state.pt`, a pickle: it is read with
`torch.load(weights_only=True)` (tensors and plain containers only), and a file that needs anything more is
refused with one line. A checkpoint is written to a temporary folder and renamed into place, so a folder
named step-* is always complete; a failed write (a full disk) removes the temporary folder and keeps the
older checkpoints; only the newest `keep` are kept. Under FSDP the weights and optimizer state are gathered
in full on rank 0 (all processes call `save`; rank 0 writes), and the optimizer state is keyed by parameter
name, so a checkpoint loads whatever the process count and whether or not the run that wrote it used FSDP.

    saved = checkpoint.read(checkpoint.latest(out / "checkpoints"))   # files only: before the model loads
    step = checkpoint.apply(saved, par, model, optimizer, scheduler)
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mapl_cli.errors import MaplError

PREFIX = "step-"
FORMAT = 2
WEIGHTS = "trainable.safetensors"
STATE_TENSORS = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"
META = "meta.json"
LEGACY_STATE = "trainer_state.pt"  # earlier versions: a pickle, read with weights_only=True


class WriteError(MaplError):
    """The file system refused a write (a full disk, an I/O error): exit status 1, as the CLI gives an OSError."""

    exit_code = 1


@dataclass
class Saved:
    """A checkpoint read from disk and checked, not yet applied to a model."""

    path: Path
    step: int
    meta: dict
    weights: dict[str, torch.Tensor]
    optimizer: dict
    by_name: bool  # optimizer state keyed by parameter name, else by position (the earliest checkpoints)
    scheduler: dict
    rng: dict


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)


def cause(err: BaseException) -> str:
    """A one-line cause for an I/O failure: the OS's words (File too large, No space left on device), also
    out of safetensors' "Error while serializing: I/O error: File too large (os error 27)"."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err).strip().splitlines()
    found = re.search(r"I/O error: (.+?) \(os error \d+\)", text[0]) if text else None
    return found.group(1) if found else text[0] if text else type(err).__name__


# --- writing ------------------------------------------------------------------------------------------------


def _split_state(optim: dict, rng: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer and RNG state as (tensors for safetensors, the rest as JSON-ready values)."""
    tensors: dict[str, torch.Tensor] = {}

    def put(key: str, value: torch.Tensor) -> dict:
        tensors[key] = value.detach().cpu().contiguous()
        return {"tensor": key}

    state = {
        str(name): {k: put(f"optimizer/{name}/{k}", v) if isinstance(v, torch.Tensor) else v for k, v in entry.items()}
        for name, entry in optim["state"].items()
    }
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in group.items()} for group in optim["param_groups"]]
    version, internal, gauss = rng["python"]
    plain_rng = {"python": [version, list(internal), gauss], "torch": put("rng/torch", rng["torch"]),
                 "cuda": [put(f"rng/cuda/{i}", t) for i, t in enumerate(rng.get("cuda", []))]}
    return tensors, {"optimizer": {"state": state, "param_groups": groups}, "rng": plain_rng}


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def save(folder: Path, step: int, par, model, optimizer, scheduler, meta: dict, keep: int = 2) -> Path | None:
    """Write checkpoint `step` under `folder` (DIR/checkpoints) and prune older ones. Every process calls
    it (FSDP gathers the state); rank 0 writes and returns the folder, the others return None. A write that
    fails raises MaplError (on rank 0) and leaves no partial folder."""
    weights = par.trainable_state(model)
    optim = par.optimizer_state(model, optimizer)
    if par.rank != 0:
        return None
    tensors, plain = _split_state(optim, rng_state())
    target = folder / f"{PREFIX}{step:06d}"
    tmp = folder / f".tmp-{PREFIX}{step:06d}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_file(weights, str(tmp / WEIGHTS))
        save_file(tensors, str(tmp / STATE_TENSORS))
        _write_json(tmp / STATE_JSON, {"format": FORMAT, "step": step, "optimizer_layout": "by-name",
                                       "scheduler": scheduler.state_dict(), **plain})
        _write_json(tmp / META, {"step": step, **meta})
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except (OSError, SafetensorError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise WriteError(f"{target}: cannot write the checkpoint ({cause(err)})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def latest(folder: Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


# --- reading ------------------------------------------------------------------------------------------------


def read_meta(path: Path) -> dict:
    """meta.json of a checkpoint (the options that wrote it), or one line saying why it cannot be read."""
    file = path / META
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MaplError(f"{file}: missing (an incomplete checkpoint)") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise MaplError(f"{file}: not a readable checkpoint file ({cause(err)})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config", {}), dict):
        raise MaplError(f"{file}: not a mapl checkpoint meta file")
    return meta


def _tensors(file: Path) -> dict[str, torch.Tensor]:
    from mapl_cli.modelcheck import check_safetensors

    if not file.is_file():
        raise MaplError(f"{file}: missing (an incomplete checkpoint)")
    check_safetensors(file)
    try:
        return load_file(str(file))
    except (OSError, SafetensorError) as err:
        raise MaplError(f"{file}: not a readable safetensors file ({cause(err)})") from None


def _read_state(path: Path) -> dict:
    """The trainer state as one dict (tensors in place), from the JSON + safetensors pair."""
    file = path / STATE_JSON
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise MaplError(f"{file}: not a readable checkpoint file ({cause(err)})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise MaplError(f"{file}: not a mapl trainer state (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    tensors = _tensors(path / STATE_TENSORS)

    def value(v):
        if isinstance(v, dict) and set(v) == {"tensor"}:
            if v["tensor"] not in tensors:
                raise MaplError(f"{path / STATE_TENSORS}: has no tensor {v['tensor']!r}")
            return tensors[v["tensor"]]
        return v

    try:
        optim = doc["optimizer"]
        state = {name: {k: value(v) for k, v in entry.items()} for name, entry in optim["state"].items()}
        groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
                  for g in optim["param_groups"]]
        version, internal, gauss = doc["rng"]["python"]
        rng = {"python": (version, tuple(internal), gauss), "torch": value(doc["rng"]["torch"]),
               "cuda": [value(t) for t in doc["rng"].get("cuda", [])]}
        return {"step": doc["step"], "optimizer_layout": doc.get("optimizer_layout"), "scheduler": doc["scheduler"],
                "optimizer": {"state": state, "param_groups": groups}, "rng": rng}
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise MaplError(f"{file}: malformed trainer state ({type(err).__name__}: {err})") from None


def _read_legacy(file: Path) -> dict:
    """An earlier version's pickled trainer state, read with weights_only=True: tensors, numbers, strings and plain
    containers only; anything else (a class to construct, a function to call) is refused, not run."""
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise MaplError(
            f"{file}: refused: this pickled trainer state holds more than tensors and plain values, and loading it "
            "could run code (mapl now writes trainer_state.json and trainer_state.safetensors, never a pickle)"
        ) from None
    except Exception as err:  # torch.load raises many types on a file that is not a checkpoint at all
        raise MaplError(f"{file}: not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict):
        raise MaplError(f"{file}: not a mapl trainer state")
    return state


def _checked(path: Path, file: Path, state: dict) -> tuple[int, dict, dict, dict]:
    """(step, optimizer, scheduler, rng) after checking their shapes, so applying them cannot fail halfway."""
    step, optim, sched, rng = (state.get(k) for k in ("step", "optimizer", "scheduler", "rng"))
    problems = []
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        problems.append(f"step {step!r}")
    if not isinstance(optim, dict) or not isinstance(optim.get("state"), dict) or not isinstance(optim.get("param_groups"), list):
        problems.append("optimizer state")
    if not isinstance(sched, dict):
        problems.append("scheduler state")
    try:
        random.Random().setstate(rng["python"])
        if not (isinstance(rng["torch"], torch.Tensor) and rng["torch"].dtype == torch.uint8):
            raise TypeError
    except (KeyError, TypeError, ValueError):
        problems.append("rng state")
    if problems:
        raise MaplError(f"{file}: malformed trainer state ({', '.join(problems)})")
    return step, optim, sched, rng


def read(path: Path) -> Saved:
    """Read and check checkpoint folder `path` (files only: call it before loading the model)."""
    meta = read_meta(path)
    weights = _tensors(path / WEIGHTS)
    if (path / STATE_JSON).exists():
        file, state = path / STATE_JSON, _read_state(path)
    elif (path / LEGACY_STATE).exists():
        file, state = path / LEGACY_STATE, _read_legacy(path / LEGACY_STATE)
    else:
        raise MaplError(f"{path}: an incomplete checkpoint (no {STATE_JSON})")
    step, optim, sched, rng = _checked(path, file, state)
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise MaplError(f"{path / WEIGHTS}: weight {name!r} holds NaN or Inf; refusing to resume from it")
    return Saved(path, step, meta, weights, optim, state.get("optimizer_layout") == "by-name", sched, rng)


def _check_fits(saved: Saved, model, optimizer, scheduler) -> None:
    """The optimizer and scheduler state have the shape this run's optimizer and scheduler expect."""
    where = saved.path
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if saved.by_name:
        for name, entry in saved.optimizer["state"].items():
            if name not in params or not isinstance(entry, dict):
                raise MaplError(f"{where}: optimizer state for {name!r}, which this model does not train")
            for key, value in entry.items():
                if isinstance(value, torch.Tensor) and value.ndim and tuple(value.shape) != tuple(params[name].shape):
                    raise MaplError(f"{where}: optimizer state {name}/{key} has shape {tuple(value.shape)}, "
                                    f"the parameter {tuple(params[name].shape)}")
    current_groups = optimizer.state_dict()["param_groups"]
    if len(saved.optimizer["param_groups"]) != len(current_groups):
        raise MaplError(f"{where}: {len(saved.optimizer['param_groups'])} optimizer parameter groups, expected {len(current_groups)}")
    for group, current in zip(saved.optimizer["param_groups"], current_groups, strict=True):
        if not isinstance(group, dict) or set(group) != set(current):
            raise MaplError(f"{where}: optimizer parameter group keys do not match this optimizer")
        for key, value in group.items():
            if key != "params" and value is not None and current[key] is not None and type(value) is not type(current[key]) \
                    and not (isinstance(value, (int, float)) and isinstance(current[key], (int, float))):
                raise MaplError(f"{where}: optimizer setting {key!r} is {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise MaplError(f"{where}: optimizer setting {key!r} is {value!r}")
    if set(saved.scheduler) != set(scheduler.state_dict()):
        raise MaplError(f"{where}: the scheduler state does not match this run's scheduler")


def apply(saved: Saved, par, model, optimizer, scheduler) -> int:
    """Restore a checkpoint into model/optimizer/scheduler and the rng; returns its step. Every process
    reads the same files (a shared file system, as for the output folder)."""
    try:
        par.load_trainable(model, saved.weights)
    except (ValueError, RuntimeError) as err:
        raise MaplError(f"{saved.path}: {str(err).splitlines()[0]}") from None
    _check_fits(saved, model, optimizer, scheduler)
    try:
        if saved.by_name:
            par.load_optimizer_state(model, optimizer, saved.optimizer)
        elif par.sharded:  # the earliest checkpoints keep the optimizer state by parameter position
            raise MaplError(f"{saved.path}: written by an earlier mapl version; resume it without --fsdp")
        else:
            optimizer.load_state_dict(saved.optimizer)
        scheduler.load_state_dict(saved.scheduler)
        set_rng_state(saved.rng)
    except (ValueError, RuntimeError, KeyError, TypeError) as err:
        raise MaplError(f"{saved.path}: does not fit this run ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    return saved.step
