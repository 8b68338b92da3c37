"""The one jsonl reader (mapl_cli/jsonl.py): what it yields, and the one-line error for each way a file can be
wrong. Every stage that reads jsonl (synthesize, build-benchmark, evaluate) goes through it."""

from __future__ import annotations

import pytest

from mapl_cli.errors import MaplError
from mapl_cli.jsonl import read_jsonl

DEEP = "[" * 200_000 + "]" * 200_000  # valid JSON that json.loads cannot parse (RecursionError)


def _write(tmp_path, content: str | bytes, name: str = "f.jsonl"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_values_come_with_their_line_numbers_and_blank_lines_are_skipped(tmp_path):
    path = _write(tmp_path, '{"a": 1}\n\n   \n[2, 3]\n"text"\n')
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (4, [2, 3]), (5, "text")]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"a": 1}\n{not json\n', "line 2: not valid JSON (Expecting property name enclosed in double quotes)"),
        ('{"a": 1}\n\n{"a": \n', "line 3: not valid JSON (Expecting value)"),
        (DEEP + "\n", "line 1: not valid JSON (nested too deeply)"),
        (b'{"a": "caf\xe9"}\n', "not a UTF-8 text file"),
    ],
)
def test_a_bad_file_ends_in_one_line_naming_the_file_and_line(tmp_path, content, message):
    path = _write(tmp_path, content)
    with pytest.raises(MaplError) as info:
        list(read_jsonl(path))
    assert str(info.value) == f"{path}: {message}"


def test_folders_and_missing_files_are_named_with_what_they_should_be(tmp_path):
    with pytest.raises(MaplError, match=r"nope\.jsonl: no such benchmark file$"):
        list(read_jsonl(tmp_path / "nope.jsonl", "benchmark file"))
    with pytest.raises(MaplError, match=r": is a folder, expected a jsonl responses file$"):
        list(read_jsonl(tmp_path, "responses file"))
    with pytest.raises(FileNotFoundError):  # what=None: the caller has checked, an OSError is unexpected
        list(read_jsonl(tmp_path / "nope.jsonl", None))


def test_the_path_is_named_as_given_and_advice_ends_the_utf8_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, b"\xff\n", "bad.jsonl")
    with pytest.raises(MaplError) as info:
        list(read_jsonl("./bad.jsonl", advice="start over with --force"))
    assert str(info.value) == "./bad.jsonl: not a UTF-8 text file; start over with --force"


def test_skip_bad_lines_passes_over_lines_that_are_not_json(tmp_path):
    # a journal whose last line a crash cut short: everything before it is intact
    path = _write(tmp_path, '{"k": 1}\n{"k": 2}\n{"k": 3, "resp')
    assert list(read_jsonl(path, skip_bad_lines=True)) == [(1, {"k": 1}), (2, {"k": 2})]
    with pytest.raises(MaplError, match="line 3: not valid JSON"):
        list(read_jsonl(path))


def test_lines_are_read_as_they_are_needed(tmp_path):
    path = _write(tmp_path, '{"k": 1}\n{broken\n')
    rows = read_jsonl(path)
    assert next(rows) == (1, {"k": 1})  # the bad second line is not read yet
    with pytest.raises(MaplError, match="line 2"):
        next(rows)
