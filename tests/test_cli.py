"""The `mapl` command line: help output, and that help never imports the heavy libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mapl_cli.cli import app

runner = CliRunner()
COMMANDS = sorted(c.name for c in app.registered_commands)


def test_no_args_shows_help():
    result = runner.invoke(app, [])
    # Click (>= 8.2) ends a bare `mapl` with the usage-error code 2 after printing the help.
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.output and all(name in result.output for name in COMMANDS)


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("mapl ")


@pytest.mark.parametrize("args", [["--help"], *[[name, "--help"] for name in COMMANDS]])
def test_help_does_not_import_torch_transformers_or_vllm(args):
    code = (
        "import sys\n"
        "from mapl_cli.cli import app\n"
        "try:\n"
        f"    app({args!r})\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'vllm', 'datasets', 'peft') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stdout, result.stdout[-500:]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help_text(name):
    import typer.main

    command = typer.main.get_command(app).commands[name]
    for param in command.params:
        if param.param_type_name == "option" and param.name != "help":
            assert getattr(param, "help", None), f"{name}: option {param.name} has no help text"


def test_console_script_reports_errors_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mapl_cli.cli", "synthesize", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"mapl: error: {tmp_path / 'nope.jsonl'}: no such file"]


def test_usage_errors_are_one_line_naming_the_option(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mapl_cli.cli", "synthesize", "x.jsonl", "--output", str(tmp_path / "o"), "--k-min", "two"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("mapl: error: Invalid value for '--k-min'") and "synthesize --help" in line


def _raising(exc: BaseException):
    from mapl_cli.cli import guarded

    def command():
        raise exc

    return guarded(command)


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (OSError(28, "No space left on device", "out/pairs.parquet"), 1, "mapl: error: out/pairs.parquet: No space left on device"),
        (IsADirectoryError(21, "Is a directory", "out/results.jsonl"), 1, "mapl: error: out/results.jsonl: Is a directory"),
        (KeyboardInterrupt(), 130, "mapl: error: interrupted (SIGINT)"),
    ],
)
def test_the_cli_safety_net_turns_os_errors_and_interruptions_into_one_line(exc, code, line, capsys):
    import typer

    with pytest.raises(typer.Exit) as ended:
        _raising(exc)()
    assert ended.value.exit_code == code
    assert capsys.readouterr().err.strip().splitlines() == [line]


def test_programming_errors_keep_their_traceback():
    with pytest.raises(ZeroDivisionError):
        _raising(ZeroDivisionError("a bug"))()
