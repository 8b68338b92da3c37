"""User-facing errors.

Anything a user can cause (a bad path, a missing column, an empty prompt, an unknown instruction id) is
raised as `MaplError`; the CLI prints its message as one line on stderr and exits with status 2, without a
traceback. Programming errors stay ordinary exceptions so their tracebacks are kept.
"""

from __future__ import annotations

import contextlib
import os
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


def signal_name(err: BaseException) -> str:
    return "SIGTERM" if isinstance(err, Terminated) else "SIGINT"


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
