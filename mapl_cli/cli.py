"""The `mapl` command line.

    mapl --help
    mapl synthesize examples/prefs.jsonl --output out/pairs

Each command lives in its own module under `mapl_cli/commands/`; those modules import only typer and the
standard library at top level, so `mapl --help` stays fast and never imports torch, transformers or vllm.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable

import typer

from mapl_cli import __version__
from mapl_cli.commands import build_benchmark as build_benchmark_cmd
from mapl_cli.commands import evaluate as evaluate_cmd
from mapl_cli.commands import export as export_cmd
from mapl_cli.commands import sample, synthesize, train_dpo, train_rm
from mapl_cli.commands.config_file import with_config
from mapl_cli.commands.help import HelpCommand
from mapl_cli.errors import MaplError, on_signal, signal_name

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


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"mapl: error: {message}\n")
    raise typer.Exit(code)


def os_error_line(err: OSError) -> str:
    """'PATH: cause' for an operating-system error (disk full, permission, I/O), on one line."""
    cause = err.strerror or str(err) or type(err).__name__
    if err.filename is None:
        return cause
    if err.filename2 is not None:
        return f"{err.filename} -> {err.filename2}: {cause}"
    return f"{err.filename}: {cause}"


def guarded(command: Callable) -> Callable:
    """Wrap a command so what a user can cause ends with one `mapl: error:` line on stderr, no traceback:
    a `MaplError` exits with its status (2: bad input or options), an `OSError` the command did not turn
    into one (a full disk, an I/O error) with 1, and an interruption (Ctrl-C, SIGTERM) with 130. Any other
    exception is a bug in mapl and keeps its traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                if signal.getsignal(sig) is not signal.SIG_IGN:  # nohup and background jobs ignore SIGINT
                    previous[sig] = signal.signal(sig, on_signal)
            except ValueError:  # not the main thread (an embedding application): leave signals alone
                break
        try:
            return command(*args, **kwargs)
        except MaplError as err:
            _fail(str(err), err.exit_code)
        except KeyboardInterrupt as err:
            _fail(f"interrupted ({signal_name(err)})", 130)
        except BrokenPipeError:  # stdout closed early (`mapl ... | head`): nobody is left to read a message
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit, so the final flush is quiet
            raise typer.Exit(1) from None
        except OSError as err:
            _fail(os_error_line(err), 1)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    return wrapper


# Every command also takes --config FILE and --print-config (commands/config_file.py); its --help groups the
# options into panels (commands/help.py).
app.command("sample", cls=HelpCommand)(guarded(with_config(sample.command)))
app.command("synthesize", cls=HelpCommand)(guarded(with_config(synthesize.command)))
app.command("train-rm", cls=HelpCommand)(guarded(with_config(train_rm.command)))
app.command("train-dpo", cls=HelpCommand)(guarded(with_config(train_dpo.command)))
app.command("build-benchmark", cls=HelpCommand)(guarded(with_config(build_benchmark_cmd.command)))
app.command("evaluate", cls=HelpCommand)(guarded(with_config(evaluate_cmd.command)))
app.command("export", cls=HelpCommand)(guarded(with_config(export_cmd.command)))


def main() -> None:
    """Console-script entry point: every error a user can cause ends with one `mapl: error:` line."""
    # Typer may vendor click; its exception classes are found from one it exports.
    click_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    for sig in (signal.SIGINT, signal.SIGTERM):  # from here on, not only inside a command (see `guarded`)
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, on_signal)
    try:
        code = app(standalone_mode=False)
    except KeyboardInterrupt as err:  # outside a command body: while the command line is read
        sys.stderr.write(f"mapl: error: interrupted ({signal_name(err)})\n")
        sys.exit(130)
    except typer.Abort:  # Ctrl-C while click itself was reading the command line
        sys.stderr.write("mapl: error: interrupted (SIGINT)\n")
        sys.exit(130)
    except click_error as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # the help text is already printed
            sys.exit(err.exit_code)
        line = " ".join(err.format_message().split())
        if getattr(err, "ctx", None) is not None:  # a usage error: say where the options are explained
            line += f" (see '{err.ctx.command_path} --help')"
        sys.stderr.write(f"mapl: error: {line}\n")
        sys.exit(err.exit_code)
    except MaplError as err:  # raised outside a command body (for example while parsing)
        sys.stderr.write(f"mapl: error: {err}\n")
        sys.exit(err.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
