"""Reading jsonl files (one JSON value per line), for every stage that takes one: preference rows,
benchmarks, base prompts, response files and the journals of evaluate and sample; and appending to such a
journal (`JsonlAppender`).

    from mapl_cli.jsonl import read_jsonl
    for lineno, value in read_jsonl("examples/eval_prompts.jsonl", "prompts file"):
        ...

Blank lines are skipped; line numbers count every line of the file, from 1. A problem ends in one MaplError
line naming the file and, where it applies, the line: "FILE: line 3: not valid JSON (Expecting value)".
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mapl_cli.errors import MaplError, naming


def jsonl_lines(path: str | Path, what: str | None = "file", *, advice: str = "") -> Iterator[tuple[int, str]]:
    """(line number, text) of the non-blank lines of a UTF-8 text file, read as they are needed.

    `what` names the file in the messages for a folder or a missing file ("no such benchmark file"); with
    None those are not checked and the OSError reaches the caller. `advice` ends the message for bytes
    that are not UTF-8. `path` is named in messages as given.
    """
    if what is not None:
        if Path(path).is_dir():
            raise MaplError(f"{path}: is a folder, expected a jsonl {what}")
        if not Path(path).is_file():
            raise MaplError(f"{path}: no such {what}")
    try:
        with open(path, encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, start=1):
                if line.strip():
                    yield lineno, line
    except UnicodeDecodeError:
        raise MaplError(f"{path}: not a UTF-8 text file{f'; {advice}' if advice else ''}") from None


def parse_line(text: str, path: str | Path, lineno: int) -> Any:
    """The JSON value on line `lineno` of `path`; MaplError "PATH: line N: not valid JSON (...)" if it is not
    one (text that does not parse, or nesting too deep for the parser)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise MaplError(f"{path}: line {lineno}: not valid JSON ({err.msg})") from None
    except RecursionError:
        raise MaplError(f"{path}: line {lineno}: not valid JSON (nested too deeply)") from None


def read_jsonl(
    path: str | Path, what: str | None = "file", *, skip_bad_lines: bool = False, advice: str = ""
) -> Iterator[tuple[int, Any]]:
    """(line number, JSON value) for each non-blank line of `path`; see `jsonl_lines` for `what` and `advice`.

    A line that is not JSON ends the reading with `parse_line`'s error, or with `skip_bad_lines` is passed
    over: for a journal appended to as work finishes, whose last line a crash can cut short.
    """
    for lineno, text in jsonl_lines(path, what, advice=advice):
        try:
            value = parse_line(text, path, lineno)
        except MaplError:
            if skip_bad_lines:
                continue
            raise
        yield lineno, value


class JsonlAppender:
    """Appends records to a journal (evaluate's results.jsonl, sample's samples.jsonl) and forces them to disk
    after every `write`, so a crash loses at most the records of the write in progress."""

    def __init__(self, path: Path):
        self.path = path
        with naming(path):
            self.handle = open(path, "a", encoding="utf-8")

    def write(self, records: Sequence[dict]) -> None:
        with naming(self.path):
            for record in records:
                self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.handle.flush()
            os.fsync(self.handle.fileno())

    def close(self) -> None:
        try:
            with naming(self.path):
                self.handle.close()
        except OSError:
            pass  # a failed final flush only repeats the write error already being reported
