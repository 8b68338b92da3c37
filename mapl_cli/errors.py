"""User-facing errors.

Anything a user can cause (a bad path, a missing column, an empty prompt, an unknown instruction id) is
raised as `MaplError`; the CLI prints its message as one line on stderr and exits with status 2, without a
traceback. Programming errors stay ordinary exceptions so their tracebacks are kept.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path


class MaplError(Exception):
    """An error caused by the user's input or options, reported as one line."""

    exit_code = 2


class InvalidRowError(MaplError):
    """One input row is unusable; `--skip-invalid` turns it into a counted skip instead of a failure."""

    def __init__(self, message: str, reason: str = "invalid_row"):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):  # keep `reason` when the error crosses a process boundary
        return (type(self), (str(self), self.reason))


class Interrupted(MaplError):
    """Ctrl-C or SIGTERM ended a command; the message says what was kept."""

    exit_code = 130


class Terminated(KeyboardInterrupt):
    """SIGTERM (Slurm's scancel, `kill`), raised in the main process so a command cleans up as on Ctrl-C."""


class CtrlC(KeyboardInterrupt):
    """SIGINT, as the CLI raises it. A subclass on purpose: CPython remembers a plain KeyboardInterrupt that
    passes through code an extension runs with PyRun_String, and then ends the process by SIGINT at exit
    (status -2) even after mapl has handled it and chosen its exit status."""


def signal_name(err: BaseException) -> str:
    return "SIGTERM" if isinstance(err, Terminated) else "SIGINT"


_RECEIVED: list[int] = []


def _in_finalizer(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def on_signal(signum: int, frame) -> None:
    """The CLI's SIGINT/SIGTERM handler: remember the signal, then interrupt where the program is. Inside a
    `__del__` (the `regex` engine's parser runs them often) Python would print the exception as "Exception
    ignored in ..." with a traceback and go on, so there the signal is only remembered: long loops call
    `raise_if_interrupted` between steps."""
    _RECEIVED.append(signum)
    if _in_finalizer(frame):
        return
    raise Terminated() if signum == signal.SIGTERM else CtrlC()


def forget_signals() -> None:
    """For a forked worker process: signals its parent received are the parent's to act on."""
    _RECEIVED.clear()


def raise_if_interrupted() -> None:
    """Raise the interruption of a SIGINT or SIGTERM that arrived (and may have been swallowed) earlier."""
    if _RECEIVED:
        raise Terminated() if _RECEIVED[-1] == signal.SIGTERM else CtrlC()


@contextlib.contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """Give an OSError raised inside the block `path` as its file name when it has none (write and flush
    errors from Python and pyarrow carry none), so the CLI's one line says which file failed."""
    try:
        yield
    except OSError as err:
        if err.filename is not None:
            raise
        cause = os.strerror(err.errno) if err.errno else (str(err) or type(err).__name__)
        raise OSError(err.errno, cause, str(path)) from None
