"""Where a training run writes, what it may replace, and what it may continue.

    ws = workspace.plan(config)        # checks only: nothing is created, deleted or loaded
    ... load, train, writing into ws.work ...
    workspace.promote(ws)              # a --force run's outputs replace the old ones only now

A fresh run writes into `--output` itself. A `--force` run over earlier outputs writes into a staging folder
beside it (`.NAME.mapl-force`, or `NAME/.mapl-force` when the parent folder is not writable), and its
outputs replace the old ones only when it has finished: a bad model, a bad option, a crash, Ctrl-C or a
full disk leave the old run as it was. An interrupted `--force` run keeps its staging checkpoints, and
`--resume` continues it. A `--resume` run continues the newest checkpoint only if every option that decides
the result is the one that wrote it (see `RESUME_FREE` in config.py).
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mapl_cli.errors import MaplError
from mapl_cli.train import checkpoint
from mapl_cli.train.config import DEFAULT_LR, RESUME_FIXED, TrainConfig, flag

OUTPUTS = ("model", "checkpoints", "metrics.jsonl", "eval_metrics.jsonl", "curves.png", "manifest.json")
INSIDE_STAGING = ".mapl-force"
TEMPORARY = (".model.tmp", ".manifest.json.tmp", ".curves.png.tmp", ".metrics.jsonl.tmp", ".eval_metrics.jsonl.tmp",
             ".replaced")


@dataclass
class Workspace:
    out: Path  # --output
    work: Path  # where this run writes: `out`, or a staging folder
    staged: bool  # a --force run over earlier outputs: `work` replaces them when the run finishes
    resume_from: Path | None = None  # the checkpoint folder to continue
    meta: dict | None = None  # its meta.json
    created: bool = False  # this run created `work`

    @property
    def checkpoints(self) -> Path:
        return self.work / "checkpoints"


def _staging_candidates(out: Path) -> list[Path]:
    absolute = Path(os.path.abspath(out))
    return [absolute.parent / f".{absolute.name}.mapl-force", out / INSIDE_STAGING]


def _staging_for(out: Path) -> Path:
    """Beside `out` when its parent is writable (so `out` itself is not touched until the end), else inside."""
    sibling, inside = _staging_candidates(out)
    return sibling if os.access(sibling.parent, os.W_OK | os.X_OK) else inside


def _check_writable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise MaplError(f"{out}: exists and is not a folder")
    existing = Path(os.path.abspath(out))
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise MaplError(f"{out}: cannot be created: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise MaplError(f"{out}: not writable ({existing}: permission denied)")


def has_outputs(folder: Path) -> bool:
    return any((folder / name).exists() or (folder / name).is_symlink() for name in OUTPUTS)


def plan(config: TrainConfig) -> Workspace:
    """Decide where the run writes and what it continues, from the folder as it is (nothing is written)."""
    out = Path(config.output)
    _check_writable(out)
    if config.resume:
        for staging in _staging_candidates(out):
            found = checkpoint.latest(staging / "checkpoints")
            if found is not None:  # an interrupted --force run: continue it, then let it replace the old run
                return Workspace(out, staging, True, found, checkpoint.read_meta(found))
        found = checkpoint.latest(out / "checkpoints")
        if found is not None:
            return Workspace(out, out, False, found, checkpoint.read_meta(found))
        if (out / "model").exists() or (out / "manifest.json").exists():
            raise MaplError(f"{out}: nothing to --resume (no checkpoint), but it holds a finished run's outputs; "
                            "pass --force to replace them")
        return Workspace(out, out, False)
    if out.is_dir() and any(out.iterdir()):
        if not config.force:
            raise MaplError(f"{out}: output folder exists and is not empty; pass --force to overwrite or --resume to continue")
        if has_outputs(out):
            return Workspace(out, _staging_for(out), True)
    return Workspace(out, out, False)


# --- resume ---------------------------------------------------------------------------------------------------


def _show(value) -> str:
    return "none" if value is None else repr(value) if isinstance(value, str) else str(value)


def check_same_run(ws: Workspace, config: TrainConfig, data: dict, dtype: str, global_batch: int) -> None:
    """One line naming every option that differs from the one the checkpoint was written with."""
    meta = ws.meta or {}
    saved = meta.get("config", {})
    changed = []
    if "stage" in saved and saved["stage"] != config.stage:
        changed.append(f"the command (train-{saved['stage']} -> train-{config.stage})")
    for name in RESUME_FIXED:
        if name != "stage" and name in saved and saved[name] != getattr(config, name):
            changed.append(f"{flag(name)} ({_show(saved[name])} -> {_show(getattr(config, name))})")
    if "stage" in saved and "lr" in saved:
        old_lr = saved["lr"] if saved["lr"] is not None else DEFAULT_LR.get((saved["stage"], saved.get("lora_r", 0) > 0))
        if old_lr != config.resolved_lr():
            changed.append(f"--lr ({_show(old_lr)} -> {_show(config.resolved_lr())})")
    for key, what in (("pairs_sha256", "the pairs"), ("eval_pairs_sha256", "the eval pairs")):
        before, now = meta.get("data", {}).get(key, data[key]), data[key]
        if before != now:
            changed.append(f"{what} (sha256 {str(before)[:12]} -> {str(now)[:12]})")
    if meta.get("dtype_resolved", dtype) != dtype and not any(c.startswith("--dtype ") for c in changed):
        changed.append(f"--dtype ({meta['dtype_resolved']} -> {dtype})")
    saved_batch = saved.get("batch_size", 0) * saved.get("grad_accum", 0) * meta.get("world_size", 1)
    if saved_batch and saved_batch != global_batch:
        changed.append(f"global batch ({saved_batch} -> {global_batch})")
    if changed:
        raise MaplError(f"cannot --resume from {ws.resume_from}: options changed since it was written: {', '.join(changed)} "
                        "(run with the original options, or --force to start over)")


def check_schedule(ws: Workspace, config: TrainConfig, total_steps: int, step: int) -> None:
    """A different total number of steps is allowed only for a constant schedule (which does not depend on
    it), and never below the checkpoint's step."""
    before = (ws.meta or {}).get("total_steps", total_steps)
    if before == total_steps:
        return
    where = f"cannot --resume from {ws.resume_from}"
    if config.scheduler != "constant":
        raise MaplError(f"{where}: --max-steps/--epochs change the total steps ({before} -> {total_steps}), and a "
                        f"{config.scheduler} schedule depends on the total; only a --scheduler constant run can be extended")
    if total_steps < step:
        raise MaplError(f"{where}: it is at step {step}, beyond the {total_steps} steps that --max-steps/--epochs now give")


def finished(ws: Workspace, total_steps: int, step: int) -> bool:
    """The checkpoint is the run's last step and the run's outputs were written."""
    return step == total_steps and (ws.work / "model").is_dir() and (ws.work / "manifest.json").is_file()


# --- writing ------------------------------------------------------------------------------------------------


def prepare(ws: Workspace) -> None:
    """Create the folder the run writes into (rank 0, just before the first step). A run that does not
    continue a --force run's staging folder starts without one."""
    if ws.resume_from is None:  # what an earlier, interrupted --force run left is not continued: drop it
        for staging in _staging_candidates(ws.out):
            shutil.rmtree(staging, ignore_errors=True)
    ws.created = not ws.work.exists()
    ws.work.mkdir(parents=True, exist_ok=True)


def _move(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
        shutil.move(str(src), str(dst))  # the staging folder is on another file system than --output


def promote(ws: Workspace) -> None:
    """A finished --force run: move the old outputs aside, the new ones into place, then drop the old ones."""
    if not ws.staged:
        return
    trash = ws.work / ".replaced"
    trash.mkdir(exist_ok=True)
    moved = []
    try:
        for name in OUTPUTS:
            if (ws.out / name).exists() or (ws.out / name).is_symlink():
                _move(ws.out / name, trash / name)
                moved.append(name)
        for name in OUTPUTS:
            if (ws.work / name).exists():
                _move(ws.work / name, ws.out / name)
    except OSError as err:
        for name in moved:  # put the old run back
            if not (ws.out / name).exists():
                _move(trash / name, ws.out / name)
        raise checkpoint.WriteError(f"{ws.out}: cannot move the finished --force run into place ({checkpoint.cause(err)}); "
                        f"it is in {ws.work}") from None
    shutil.rmtree(ws.work, ignore_errors=True)


def clean_up(ws: Workspace, interrupted: bool) -> str:
    """After a failure (rank 0): remove temporary files. A --force run is discarded unless it was interrupted
    with a checkpoint to continue from; any other run keeps its checkpoints (`--resume` continues it), and
    one without a checkpoint removes what it wrote. Returns what is left, for the error message."""
    for name in TEMPORARY:
        target = ws.work / name
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    has_checkpoint = checkpoint.latest(ws.checkpoints) is not None
    if ws.staged:
        if interrupted and has_checkpoint:
            return (f"{ws.out} is unchanged; this --force run's checkpoints are in {ws.work} "
                    "(--resume continues it, --force starts over)")
        shutil.rmtree(ws.work, ignore_errors=True)
        return f"{ws.out} is unchanged (this --force run was discarded)"
    if has_checkpoint:
        return ""
    if ws.resume_from is None:
        for name in ("metrics.jsonl", "eval_metrics.jsonl"):
            (ws.work / name).unlink(missing_ok=True)
        for folder in (ws.checkpoints, ws.work if ws.created else None):
            if folder is not None and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return ""
