"""The `mapl` command line.

    mapl --help
    mapl synthesize examples/prefs.jsonl --output out/pairs

Each command lives in its own module under `mapl_cli/commands/`; those modules import only typer and the
standard library at top level, so `mapl --help` stays fast and never imports torch, transformers or vllm.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import typer

from mapl_cli import __version__
from mapl_cli.commands import build_benchmark as build_benchmark_cmd
from mapl_cli.commands import evaluate as evaluate_cmd
from mapl_cli.commands import synthesize, train_dpo, train_rm
from mapl_cli.errors import MaplError

app = typer.Typer(
    name="mapl",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="MAPL: multi-level aware preference learning for prompts with several constraints at once.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mapl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """MAPL: multi-level aware preference learning for prompts with several constraints at once."""


def guarded(command: Callable) -> Callable:
    """Wrap a command so a `MaplError` ends it with one line on stderr and its exit status, no traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except MaplError as err:
            sys.stderr.write(f"mapl: error: {err}\n")
            raise typer.Exit(err.exit_code) from None

    return wrapper


app.command("synthesize")(guarded(synthesize.command))
app.command("train-rm")(guarded(train_rm.command))
app.command("train-dpo")(guarded(train_dpo.command))
app.command("build-benchmark")(guarded(build_benchmark_cmd.command))
app.command("evaluate")(guarded(evaluate_cmd.command))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except MaplError as err:  # raised outside a command body (for example while parsing)
        sys.stderr.write(f"mapl: error: {err}\n")
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
