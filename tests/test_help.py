"""Every command's `--help`, rendered at 100 columns (mapl_cli/commands/help.py), read back as a reader sees it:
no line over 100 columns, options in titled panels (training: Data, Model, Objective, Optimisation, LoRA,
Checkpoints, Distributed, Output), every option with a whole sentence beside it in a description column at
least 50 characters wide, and one name for one idea across commands."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter

import pytest
import typer.main
from typer.testing import CliRunner

from mapl_cli.cli import app

WIDTH = 100
COMMANDS = sorted(c.name for c in app.registered_commands)
TRAINING_PANELS = ["Data", "Model", "Objective", "Optimisation", "LoRA", "Checkpoints", "Distributed", "Output",
                   "Config file"]
#: One idea, one spelling: what every command that has the option shows for it (names and metavar).
SHARED = {
    "output": "-o, --output <path>",
    "force": "--force",
    "seed": "--seed <int>",
    "limit": "--limit <int>",
    "shard": "--shard I/N",
    "progress": "--progress / --no-progress",
}


def _command(name: str):
    return typer.main.get_command(app).commands[name]


def _shown(name: str) -> list:
    """The parameters help shows: every parameter but the hidden ones, and --help."""
    command = _command(name)
    ctx = command.make_context(name, ["--help"], resilient_parsing=True)
    return [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]


def _help(name: str) -> str:
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0, result.output
    return result.output


def _panels(text: str) -> list[tuple[str, list[str]]]:
    """(title, inner lines) of each box drawn in the help."""
    found, inner = [], None
    for line in text.splitlines():
        top = re.match(r"╭─ (.+?) ─+╮$", line)
        if top:
            inner = []
            found.append((top.group(1), inner))
        elif line.startswith("╰"):
            inner = None
        elif inner is not None:
            assert line.startswith("│ ") and line.endswith(" │"), line
            inner.append(line[2:-2])
    return found


def _starts_row(content: str, param) -> bool:
    names = [param.name.upper()] if param.param_type_name == "argument" else param.opts
    return any(re.match(rf"{re.escape(n)}(,| |$)", content) for n in names)


def _rows(name: str) -> tuple[dict[str, tuple[str, list[str]]], int]:
    """Each shown parameter's (panel, description lines), and the column its descriptions start at."""
    panels, params = _panels(_help(name)), _shown(name)
    starts = Counter(m.end() for _, lines in panels for line in lines
                     if any(_starts_row(line, p) for p in params) and (m := re.match(r"\S+(?: \S+)*( {2,})", line)))
    assert starts, f"{name}: no option rows found in the help"
    start = starts.most_common(1)[0][0]
    rows: dict[str, tuple[str, list[str]]] = {}
    for title, lines in panels:
        current = None
        for line in lines:
            names, description = line[:start].strip(), line[start:].rstrip()
            owner = next((p for p in params if names and _starts_row(names, p)), None)
            if owner is not None:
                current = rows.setdefault(owner.name, (title, []))[1]
            if current is not None and description:
                current.append(description)
    return rows, start


@pytest.mark.parametrize("name", COMMANDS)
def test_help_fits_100_columns(name):
    long = [line for line in _help(name).splitlines() if len(line) > WIDTH]
    assert not long, f"{name}: {len(long)} lines over {WIDTH} columns, e.g. {long[0]!r}"


def test_the_command_list_fits_100_columns():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0 and all(len(line) <= WIDTH for line in result.output.splitlines())
    assert all(name in result.output for name in COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_a_sentence_in_a_wide_column(name):
    rows, start = _rows(name)
    assert (WIDTH - 4) - start >= 50, f"{name}: the description column is {(WIDTH - 4) - start} characters wide"
    for param in _shown(name):
        assert param.name in rows, f"{name}: {param.name} is not in the help"
        sentence = " ".join((param.help or "").split())
        assert re.fullmatch(r"[A-Z].*[.]", sentence) and len(sentence.split()) >= 4, \
            f"{name} {param.name}: not a sentence: {sentence!r}"
        lines = rows[param.name][1]
        shown = " ".join(lines)
        assert shown.startswith(sentence), f"{name} {param.name}: shown as {shown!r}"
        assert len(lines[0].split()) >= min(5, len(shown.split())), f"{name} {param.name}: squeezed: {lines!r}"
        assert all(len(line) >= 35 for line in lines[:-1]), f"{name} {param.name}: squeezed: {lines!r}"


@pytest.mark.parametrize("name", COMMANDS)
def test_no_bracketed_text_is_swallowed(name):
    """Rich markup ate Typer's `[default: ...]` inside a sentence, leaving 'Reference model .'."""
    text = _help(name)
    stray = re.search(r"\S +[.,;:](\s|$)", text)  # punctuation after a space: the bracket before it is gone
    assert stray is None, f"{name}: {text[max(0, stray.start() - 60):stray.end() + 20]!r}"
    for param in _shown(name):
        assert all(part in text for part in re.findall(r"\[[^\]]*\]", param.help or "")), param.name


@pytest.mark.parametrize("name", COMMANDS)
def test_every_choice_is_named_beside_its_option(name):
    rows, _ = _rows(name)
    for param in _shown(name):
        choices = getattr(getattr(param, "type_descriptor", None), "choices", None) or ()
        text = " ".join(rows[param.name][1])
        for choice in choices:
            value = getattr(choice, "value", choice)
            assert value in text or value in (param.metavar or ""), f"{name} --{param.name}: choice {value} not named"


@pytest.mark.parametrize("name", COMMANDS)
def test_options_are_grouped_into_panels(name):
    rows, _ = _rows(name)
    titles = [title for title, _ in _panels(_help(name))]
    assert "Options" not in titles and titles[-1] == "Config file", titles
    assert rows["config"][0] == rows["print_config"][0] == "Config file"
    if name.startswith("train-"):
        assert titles == TRAINING_PANELS
    assert all(getattr(p, "rich_help_panel", None) for p in _command(name).params), name


def test_one_name_for_one_idea_across_commands():
    from mapl_cli.commands.help import metavar, shown_names

    seen = Counter()
    for name in COMMANDS:
        command = _command(name)
        ctx = typer.Context(command)
        for param in command.params:
            if param.name in SHARED:
                primary, secondary = shown_names(param)
                shown = " / ".join(", ".join(names) for names in (primary, secondary) if names)
                shown = f"{shown} {metavar(param, ctx)}".strip()
                assert shown == SHARED[param.name], f"{name}: {shown!r}, expected {SHARED[param.name]!r}"
                seen[param.name] += 1
    assert seen["output"] == len(COMMANDS) and seen["progress"] >= 4 and seen["shard"] >= 3, seen


@pytest.mark.parametrize("name", ["synthesize", "sample"])
def test_quiet_is_still_accepted_but_not_shown(name):
    assert "--quiet" not in _help(name)
    args = {"synthesize": ["in.jsonl"], "sample": ["prompts.jsonl"]}[name]
    result = CliRunner().invoke(app, [name, *args, "-o", "out", "--quiet", "--print-config"])
    assert result.exit_code == 0 and "progress: false" in result.output, result.output


def test_a_bad_option_is_still_one_error_line():
    result = subprocess.run([sys.executable, "-m", "mapl_cli.cli", "train-dpo", "--bad-option"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("mapl: error: ") and "--bad-option" in line and "train-dpo --help" in line
