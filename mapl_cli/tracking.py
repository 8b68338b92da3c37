"""Experiment tracking: `--report-to tensorboard|wandb|trackio` (repeatable) for train-rm, train-dpo and evaluate.

    mapl train-dpo pairs.parquet --output out/dpo --report-to tensorboard --report-to wandb
    tensorboard --logdir out/dpo/runs

One small `Tracker` protocol and one adapter per backend, each importing its library only when it is chosen
(the libraries are optional extras: `pip install 'mapl-cli[tensorboard]'`). A stage calls `check_installed`
before it reads or loads anything, so a chosen backend that is missing fails at once with one line, then
`open_trackers` once its output folder exists. Each launch of a command is one tracked run, named after the
output folder and the time (`dpo-20250301-142501`); files go to OUTPUT/runs/STAMP/ (TensorBoard's event
files, W&B's run folder) and stay there when the run fails, which is when a curve is most wanted.
trackio keeps its own local store (TRACKIO_DIR, by default ~/.cache/huggingface/trackio). W&B logs offline
unless WANDB_MODE says otherwise or an API key is set up (WANDB_API_KEY or `wandb login`): an offline run is
uploaded later with `wandb sync OUTPUT/runs/STAMP/wandb/offline-run-*`. See docs/tracking.md.

A shared layer: it imports no stage and no command, and nothing heavy at import time.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import math
import netrc
import os
import sys
import time
from collections.abc import Iterable, Iterator
from enum import Enum
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from mapl_cli.errors import MaplError

#: backend -> the module that must import (the extra of the same name installs it); adapters: TRACKERS below.
BACKENDS = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}
CHOICES = ("none", *BACKENDS)
ReportTo = Enum("ReportTo", {name: name for name in CHOICES}, type=str)  # the --report-to choices, for Typer
DEFAULT_PROJECT = "mapl"  # W&B and trackio project unless WANDB_PROJECT / TRACKIO_PROJECT is set


def chosen(values: Iterable[Any] | None) -> tuple[str, ...]:
    """The backends named by repeated --report-to values (enum members or strings): duplicates dropped,
    order kept; `none` alone (or nothing) means none."""
    names = list(dict.fromkeys(getattr(value, "value", value) for value in values or ()))
    for name in names:
        if name not in CHOICES:
            raise MaplError(f"--report-to must be one of {', '.join(CHOICES)}, got {name!r}")
    if "none" in names and len(names) > 1:
        raise MaplError("--report-to none cannot be combined with a tracker (drop none, or the others)")
    return tuple(name for name in names if name != "none")


def check_installed(names: Iterable[str]) -> None:
    """Every chosen backend's library imports; otherwise one line saying what to install. Run before anything
    is read, loaded or written."""
    for name in names:
        if name not in BACKENDS:
            raise MaplError(f"--report-to must be one of {', '.join(CHOICES)}, got {name!r}")
        module = BACKENDS[name]
        install = f"pip install 'mapl-cli[{name}]'"
        if importlib.util.find_spec(module) is None:
            raise MaplError(f"--report-to {name}: the {module} package is not installed; {install}")
        try:
            importlib.import_module(module)
        except Exception as err:  # installed but broken (a clashing dependency): any import-time error
            cause = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise MaplError(f"--report-to {name}: the {module} package does not import ({cause}); {install}") from None


class Tracker(Protocol):
    """One backend's run. The constructor `(folder, name, options)` starts it and records `options` (the
    command's resolved options) as its hyper-parameters."""

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]], step: int) -> None: ...

    def close(self, failed: bool = False) -> None: ...


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Trackers print banners; stdout carries a command's results (evaluate's table), so they go to stderr."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe options (paths and other objects as text)."""
    return json.loads(json.dumps(options, default=str))


def flat_options(options: dict[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """Options as one level of scalars, as TensorBoard's hparams take them: nested dicts as 'a/b', None and
    lists as text."""
    out: dict[str, bool | int | float | str] = {}
    for key, value in options.items():
        if isinstance(value, dict):
            out.update(flat_options(value, f"{prefix}{key}/"))
        elif isinstance(value, (bool, int, float, str)):
            out[prefix + key] = value
        else:
            out[prefix + key] = json.dumps(value, default=str)
    return out


def markdown_table(columns: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


class TensorBoardTracker:
    """Event files in `folder` (torch's SummaryWriter; needs the tensorboard package): every metric a scalar,
    the options as HParams (the dashboard finds the run's scalars itself) and as a text, tables as text."""

    def __init__(self, folder: Path, name: str, options: dict[str, Any]):
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.writer = SummaryWriter(log_dir=str(folder))
        # Only the session-start record: `add_hparams` would write it to a new sub-folder, and an experiment
        # record with no metrics would hide the run's scalars from the HParams dashboard.
        _, session_start, _ = hparams(flat_options(options), {})
        self.writer._get_file_writer().add_summary(session_start)
        self.writer.add_text("options", "```json\n" + json.dumps(_plain(options), indent=1) + "\n```")

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]], step: int) -> None:
        self.writer.add_text(name, markdown_table(columns, rows), step)

    def close(self, failed: bool = False) -> None:
        self.writer.close()


def wandb_mode() -> str | None:
    """None (W&B decides: WANDB_MODE, or online with a key) when WANDB_MODE or an API key is set up, else
    'offline', so a machine that never logged in (a compute node, CI) logs without prompting or a network."""
    if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"):
        return None
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        if host and netrc.netrc().authenticators(host):  # `wandb login` writes ~/.netrc
            return None
    except (OSError, netrc.NetrcParseError):
        pass
    return "offline"


class WandbTracker:
    """A W&B run whose folder is `folder`/wandb/ (offline unless set up for online, see `wandb_mode`)."""

    def __init__(self, folder: Path, name: str, options: dict[str, Any]):
        import wandb

        self.wandb, mode = wandb, wandb_mode()
        folder.mkdir(parents=True, exist_ok=True)
        with _stdout_to_stderr():
            # console="off": mapl's stdout is a result channel and its stderr a progress bar; neither is
            # worth wrapping into W&B's output.log.
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT, name=name,
                                  dir=str(folder), config=_plain(options), mode=mode,
                                  settings=wandb.Settings(console="off"))
        if mode == "offline":
            sys.stderr.write("wandb: offline, as no API key is set up (WANDB_API_KEY or `wandb login`); "
                             "WANDB_MODE=online overrides\n")

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]], step: int) -> None:
        self.run.log({name: self.wandb.Table(columns=columns, data=rows)}, step=step)

    def close(self, failed: bool = False) -> None:
        with _stdout_to_stderr():
            self.run.finish(exit_code=1 if failed else 0)


class TrackioTracker:
    """A trackio run in its local store (TRACKIO_DIR), project TRACKIO_PROJECT or 'mapl'; `folder` is unused.
    trackio keeps one current run per process: this one, from `trackio.init` to `trackio.finish`."""

    def __init__(self, folder: Path, name: str, options: dict[str, Any]):
        import trackio

        self.trackio = trackio
        with _stdout_to_stderr():
            trackio.init(project=os.environ.get("TRACKIO_PROJECT") or DEFAULT_PROJECT, name=name,
                                    config=_plain(options))

    def log(self, metrics: dict[str, float], step: int) -> None:
        with _stdout_to_stderr():
            self.trackio.log(metrics, step=step)

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]], step: int) -> None:
        with _stdout_to_stderr():
            self.trackio.log({name: self.trackio.Table(columns=columns, data=rows)}, step=step)

    def close(self, failed: bool = False) -> None:
        with _stdout_to_stderr():
            self.trackio.finish()  # the module's finish: it also forgets the run, so none is finished at exit


TRACKERS: dict[str, type] = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker, "trackio": TrackioTracker}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Trackers:
    """The chosen trackers as one: what is logged goes to each. Empty (no --report-to, or a process other
    than rank 0) it does nothing. As a context manager it closes them, as failed after an exception."""

    def __init__(self, trackers: list[Tracker] | None = None, folder: Path | None = None, name: str = ""):
        self.trackers, self.folder, self.name = list(trackers or []), folder, name

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def log(self, metrics: dict[str, Any], step: int, prefix: str = "") -> None:
        """The finite numbers of a metrics record (metrics.jsonl's lines: `step` and nulls are left out)."""
        numbers = {prefix + key: value for key, value in metrics.items() if key != "step" and _number(value)}
        for tracker in self.trackers:
            if numbers:
                tracker.log(numbers, step)

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]], step: int = 0) -> None:
        for tracker in self.trackers:
            tracker.log_table(name, columns, rows, step)

    def close(self, failed: bool = False) -> None:
        """Close each; a tracker that cannot flush is reported on stderr, and does not fail a finished run."""
        trackers, self.trackers = self.trackers, []
        for tracker in trackers:
            try:
                tracker.close(failed)
            except Exception as err:  # the third-party library's own errors: any type
                sys.stderr.write(f"warning: closing the {type(tracker).__name__} failed: {err}\n")

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, kind, err, tb) -> None:
        self.close(failed=kind is not None)


def run_folder(output: Path) -> tuple[Path, str]:
    """OUTPUT/runs/STAMP (a new one: -2, -3 ... when started within the same second) and the run's name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder, n = output / "runs" / stamp, 2
    while folder.exists():
        folder, n = output / "runs" / f"{stamp}-{n}", n + 1
    return folder, f"{Path(os.path.abspath(output)).name}-{folder.name}"


def open_trackers(names: Iterable[str], output: Path, options: dict[str, Any]) -> Trackers:
    """Start one run per chosen backend for a command writing to `output`, with `options` as its
    hyper-parameters. A backend that cannot start closes the others and fails with one line."""
    names = tuple(names)
    if not names:
        return Trackers()
    check_installed(names)
    folder, name = run_folder(Path(output))
    started = Trackers(folder=folder, name=name)
    for backend in names:
        try:
            started.trackers.append(TRACKERS[backend](folder, name, options))
        except Exception as err:  # the library's own error types (a bad WANDB_MODE, a full disk, ...)
            started.close(failed=True)
            cause = " ".join(str(err).split()) or type(err).__name__
            raise MaplError(f"--report-to {backend}: cannot start a run ({cause})") from None
    files = f" (files in {folder})" if set(names) - {"trackio"} else ""
    sys.stderr.write(f"tracking run {name}: {', '.join(names)}{files}\n")
    return started
