"""An output folder a stage fills as it goes, and can continue (`--resume`) or replace (`--force`).

`mapl evaluate` and `mapl sample` append finished work to a journal (a jsonl file) in `--output` and keep the
settings a resumed run must share in a settings file beside it. A `--force` run writes into a hidden staging
folder inside `--output` whose files replace the earlier run's only when the new run has finished, so a
failed or interrupted `--force` run loses nothing.

    folder = RunFolder(out, "results.jsonl", "settings.json", OUTPUT_FILES, "mapl evaluate", "answers")
    summary = folder.run(settings, resume, force, read_journal, body)

`run` prepares the folder, calls `body(done, work)` (the work already done, and the folder to write in: the
output folder, or the staging folder), and after any failure tidies up (`clean_failed`) and turns Ctrl-C
into one line saying what was kept. `body` ends with `promote(work)`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mapl_cli.errors import Interrupted, MaplError, signal_name

T = TypeVar("T")


@dataclass(frozen=True)
class RunFolder:
    output: Path
    journal: str  # file name of the journal of finished work
    settings: str  # file name of the settings a resumed run must share
    files: tuple[str, ...]  # every file the stage writes in the folder
    command: str = "mapl"  # named in messages: "not a settings file written by mapl evaluate"
    noun: str = "work"  # what the journal holds, in messages: "the answers so far are in ..."

    def run(self, settings: dict[str, Any], resume: bool, force: bool, read_journal: Callable[[Path], dict],
            body: Callable[[dict, Path], T], comparable: Callable[[dict[str, Any]], dict[str, Any]] = dict) -> T:
        """`prepare`, then `body(done, work)`; a failure leaves the folder as the docstrings of `prepare` and
        `clean_failed` say, and Ctrl-C (or SIGTERM) ends in one line."""
        created = not self.output.exists()
        before = {name for name in self.files if (self.output / name).exists()}
        work = self.output
        try:
            done, work = self.prepare(settings, resume, force, read_journal, comparable)
            return body(done, work)
        except BaseException as err:
            self.clean_failed(work, resume, created, before)
            if isinstance(err, KeyboardInterrupt):
                raise Interrupted(self.interrupted_line(work, err)) from None
            raise

    def interrupted_line(self, work: Path, err: BaseException) -> str:
        stopped = f"{self.command.removeprefix('mapl ')} interrupted ({signal_name(err)})"
        if work != self.output:
            return f"{stopped}; the earlier run in {self.output} is unchanged"
        if self.journal_has_work():
            return f"{stopped}; the {self.noun} so far are in {self.output / self.journal}: --resume continues"
        return f"{stopped}; nothing was written"

    def make(self) -> None:
        try:
            self.output.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise MaplError(f"{self.output}: cannot create the output folder ({err.strerror or err})") from None

    def read_settings(self, folder: Path | None = None) -> dict[str, Any]:
        path = (folder or self.output) / self.settings
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            found = None
        if not isinstance(found, dict):
            raise MaplError(f"{path}: not a settings file written by {self.command}; start over with --force")
        return found

    def prepare(self, settings: dict[str, Any], resume: bool, force: bool, read_journal: Callable[[Path], dict],
                comparable: Callable[[dict[str, Any]], dict[str, Any]] = dict) -> tuple[dict, Path]:
        """Create the folder (removing temporary files and staging folders of killed runs); return the work
        already done (`read_journal` of the journal, on --resume) and where to write: the folder itself, or with
        --force a staging folder inside it. On --resume the settings must equal the earlier run's, compared
        through `comparable`. The settings file is written last, so a refused resume changes nothing."""
        from mapl_cli.manifest import remove_stale_temporaries, temporary_path, write_json_atomic

        self.make()
        remove_stale_temporaries(self.output)
        if force and not resume:
            work = temporary_path(self.output / "staging")
            work.mkdir()
            try:
                write_json_atomic(work / self.settings, settings)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            return {}, work
        if resume and (self.output / self.settings).exists():
            before, now = comparable(self.read_settings()), comparable(settings)
            if before != now:
                changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
                raise MaplError(f"{self.output}: --resume with different settings ({', '.join(changed)}); "
                                "use a new --output or --force")
        journal = self.output / self.journal
        done = read_journal(journal) if resume and journal.exists() else {}
        write_json_atomic(self.output / self.settings, settings)
        return done, self.output

    def promote(self, work: Path) -> None:
        """Move a finished --force run's files from its staging folder over the earlier run's (manifest.json
        last), remove earlier files the new run did not write, and the staging folder."""
        if work == self.output:
            return
        for name in sorted(self.files, key=lambda name: name == "manifest.json"):
            if (work / name).exists():
                os.replace(work / name, self.output / name)
            else:
                (self.output / name).unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)

    def clean_failed(self, work: Path, resume: bool, created: bool, before: set[str]) -> None:
        """After a failure: drop a --force run's staging folder (the earlier run is untouched), and the files
        this run created if its journal is empty; a journal with work in it stays for --resume, and files that
        were there before (`before`) are never touched. `created`: this run created the folder."""
        if work != self.output:
            shutil.rmtree(work, ignore_errors=True)
            return
        if resume or self.journal_has_work():
            return
        for name in set(self.files) - before:
            (self.output / name).unlink(missing_ok=True)
        if created and self.output.is_dir() and not any(self.output.iterdir()):
            self.output.rmdir()

    def journal_has_work(self, folder: Path | None = None) -> bool:
        journal = (folder or self.output) / self.journal
        return journal.exists() and journal.stat().st_size > 0
