"""User-facing errors.

Anything a user can cause (a bad path, a missing column, an empty prompt, an unknown instruction id) is
raised as `MaplError`; the CLI prints its message as one line on stderr and exits with status 2, without a
traceback. Programming errors stay ordinary exceptions so their tracebacks are kept.
"""

from __future__ import annotations


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
