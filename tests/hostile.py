"""Harness for the hostile-input suites (tests/test_hostile_*.py): run `mapl` as a user would, on bad input,
and check what a user must get: the exit status, exactly one `mapl: error:` line naming the problem, no
traceback, and the output folder as it should be before and after.

    result = run_mapl(["synthesize", "missing.jsonl", "--output", str(out)])
    assert_one_line_error(result, "missing.jsonl", "no such")
    before = snapshot(out); ...; assert snapshot(out) == before

`run_mapl` starts a real process (signals, file-size limits and kills need one); `file_size_limit` makes
every write past N bytes fail with EFBIG, a stand-in for a full disk that needs no mount.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("mapl: error:")]


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def file_size_limit(limit: int):
    """A preexec_fn: writes past `limit` bytes in any one file fail with EFBIG (OSError), like a full disk."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def run_mapl(args: list[str], timeout: float = 300, env: dict[str, str] | None = None, stdin: str | None = None,
             preexec_fn=None, cwd: Path | None = None) -> Result:
    """Run `python -m mapl_cli.cli ARGS` to completion."""
    done = subprocess.run(
        [sys.executable, "-m", "mapl_cli.cli", *args], capture_output=True, text=True, timeout=timeout,
        env=_env(env), input=stdin, preexec_fn=preexec_fn, cwd=cwd,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def run_and_signal(args: list[str], sig: int, when: callable, timeout: float = 300,
                   env: dict[str, str] | None = None, poll: float = 0.1, group: bool = False) -> Result:
    """Start `mapl ARGS`, send `sig` once `when()` is true (e.g. a file exists), and wait for the end.

    With `group`, `sig` goes to mapl's whole process group, as a terminal's Ctrl-C does (worker processes
    included), and SIGINT starts at its default, as in a terminal's foreground job (a background shell job,
    such as a test runner started with `&`, would pass it on ignored)."""
    extra = {"start_new_session": True, "preexec_fn": lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)} if group else {}
    proc = subprocess.Popen([sys.executable, "-m", "mapl_cli.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(env), **extra)
    deadline = time.time() + timeout
    while not when():
        if proc.poll() is not None or time.time() > deadline:
            break
        time.sleep(poll)
    if proc.poll() is None:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=timeout)
    return Result(proc.returncode, stdout, stderr)


def run_and_signal_group(args: list[str], sig: int, when: callable, **options) -> Result:
    """`run_and_signal` to the whole process group (Ctrl-C in a terminal)."""
    return run_and_signal(args, sig, when, group=True, **options)


def assert_one_line_error(result: Result, *fragments: str, code: int | None = None) -> None:
    """Non-zero exit (`code` if given), no traceback, exactly one `mapl: error:` line holding every
    fragment (case-insensitive)."""
    assert result.code != 0, f"exit 0; stderr: {result.stderr[-2000:]}"
    if code is not None:
        assert result.code == code, (result.code, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    lines = result.error_lines
    assert len(lines) == 1, f"expected one error line, got {lines!r}; stderr: {result.stderr[-2000:]}"
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), f"{fragment!r} not in {lines[0]!r}"


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones included) with its sha256: compare before and after a run."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial files a failed run must not leave behind (names starting with '.' or holding
    'tmp')."""
    folder = Path(folder)
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.startswith(".") or "tmp" in p.name)
