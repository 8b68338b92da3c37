"""`--help` that reads well at 100 columns: a command's options in titled panels, each a table of two columns,
the option's names with the metavar of its value, and its description with the default appended.

    COLUMNS=100 mapl train-dpo --help

Typer's own rich help gives the long name, the short name, the `--no-x` name, the type and the description a
column each, which leaves a description about 20 characters at 100 columns. Here the names share one column
(wrapped onto a second line when long) and the description gets the rest. Each option names its panel with
`rich_help_panel=`; panels come in the order of their first option, and `--help` closes the last one.
Descriptions are printed as written, not read as rich markup, so a `[...]` in a sentence stays.

cli.py registers every command with `cls=HelpCommand`. rich is imported only when help is shown.
"""

from __future__ import annotations

import inspect
import io
import shutil
import sys
from enum import Enum
from typing import Any

import typer.core

MAX_WIDTH = 100  # a wider terminal still gets 100 columns: long lines read badly
MIN_WIDTH = 60
NAMES_WIDTH = 36  # the names column at most; longer names wrap
LONGEST_CHOICES = 20  # `<pair|margin>` is shown; longer lists of choices become `<choice>`
UNGROUPED = "Options"  # the panel of an option that names none
#: Old spellings still accepted but no longer shown: synthesize's and sample's --quiet (now --no-progress).
UNLISTED = frozenset({"--quiet", "-q"})


class HelpCommand(typer.core.TyperCommand):
    """A Typer command whose `--help` is `render_help`'s."""

    def format_help(self, ctx, formatter) -> None:
        formatter.write(render_help(self, ctx, help_width(ctx)))


def help_width(ctx) -> int:
    """The terminal's width (COLUMNS when set, 100 when not a terminal), kept within 60..100."""
    columns = getattr(ctx, "terminal_width", None) or shutil.get_terminal_size((MAX_WIDTH, 24)).columns
    return max(MIN_WIDTH, min(MAX_WIDTH, columns))


def is_argument(param) -> bool:
    return param.param_type_name == "argument"


def shown_names(param) -> tuple[list[str], list[str]]:
    """The option's names as help shows them, short ones first: (`-o, --output`), (`--no-progress`)."""
    def ordered(names: list[str]) -> list[str]:
        kept = [n for n in names if n not in UNLISTED]
        return sorted(kept, key=lambda n: n.startswith("--"))

    if is_argument(param):
        return [param.name.upper()], []
    return ordered(list(param.opts)), ordered(list(param.secondary_opts))


def metavar(param, ctx) -> str:
    """What the value looks like (`<int>`, `<path>`, `<pair|margin>`, `I/N`); empty for a flag or an argument."""
    if is_argument(param) or getattr(param, "is_flag", False):
        return ""
    if param.metavar:
        return param.metavar
    label = param.display_type(ctx).replace(" range", "")  # `<int range>`: the range goes in the default note
    if label.startswith("<list[") and label.endswith("]>"):  # a repeatable option: the type of one value
        label = f"<{label[6:-2]}>"
    if "|" in label and len(label) > LONGEST_CHOICES:  # the sentence names the choices
        label = "<choice>"
    return label


def _plain(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def default_note(param, ctx) -> str:
    """`[default: 0.1; at least 1]`, `[required]`, or empty: what a reader needs beside the sentence."""
    notes = []
    if param.required:
        notes.append("required")
    elif isinstance(param.show_default, str):
        notes.append(f"default: {param.show_default}")
    elif param.show_default is not False:
        value = param.get_default(ctx, call=False)
        if getattr(param, "is_flag", False):  # a switch is off by default; a pair names the side that is on
            on, off = shown_names(param)
            value = (on[-1] if value else off[-1]) if off else None
        if value not in (None, "", [], ()) and not callable(value):
            notes.append(f"default: {_plain(value)}")
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None or high is not None:
        notes.append(f"{low} to {high}" if low is not None and high is not None
                     else f"at least {low}" if low is not None else f"at most {high}")
    return f"[{'; '.join(notes)}]" if notes else ""


def panels(command, ctx) -> dict[str, list]:
    """The shown parameters by panel, panels in the order of their first parameter; --help joins the last."""
    grouped: dict[str, list] = {}
    help_option = command.get_help_option(ctx)
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False) or param is help_option:
            continue
        grouped.setdefault(getattr(param, "rich_help_panel", None) or UNGROUPED, []).append(param)
    if help_option is not None:
        if not grouped:
            grouped[UNGROUPED] = []
        grouped[list(grouped)[-1]].append(help_option)
    return grouped


def usage(command, ctx) -> str:
    """`mapl train-dpo PAIRS --output <path> [OPTIONS]`: the arguments and required options, then the rest."""
    pieces = []
    for param in command.get_params(ctx):
        if is_argument(param):
            name = param.name.upper() + ("..." if param.nargs != 1 else "")
            pieces.append(name if param.required else f"[{name}]")
        elif param.required:
            pieces.append(f"{max(param.opts, key=len)} {metavar(param, ctx)}".strip())  # the long name
    return " ".join([ctx.command_path, *pieces, "[OPTIONS]"])


def _names_cell(param, ctx):
    from rich.text import Text

    primary, secondary = shown_names(param)
    cell = Text(", ".join(primary), style="bold cyan")
    if secondary:
        cell.append(" / ")
        cell.append(", ".join(secondary), style="bold magenta")
    label = metavar(param, ctx)
    if label:
        cell.append(" ")
        cell.append(label, style="yellow")
    return cell


def _description_cell(param, ctx, console, width: int):
    """The sentence, then the default note: on the sentence's last line when it fits there, else on a line
    of its own (not broken after "default:")."""
    from rich.text import Text

    cell = Text(" ".join((param.help or "").split()))
    note = default_note(param, ctx)
    if note and cell:
        last = cell.wrap(console, width)[-1]
        cell.append("\n" if last.cell_len + 1 + len(note) > width >= len(note) else " ")
    if note:
        cell.append(note, style="dim")
    return cell


def _panel(title: str, params: list, ctx, console, names_width: int):
    from rich.panel import Panel
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 1), expand=True)
    table.add_column(width=names_width, overflow="fold")
    table.add_column(ratio=1, overflow="fold")
    for param in params:
        # the description's width: the panel's borders and padding take 4 columns, the gap between columns 2
        table.add_row(_names_cell(param, ctx), _description_cell(param, ctx, console, console.width - 6 - names_width))
    return Panel(table, title=title, title_align="left", border_style="dim")


def render_help(command, ctx, width: int) -> str:
    """The whole help page as text: usage, the command's description, one panel per group of options."""
    from rich.console import Console
    from rich.padding import Padding
    from rich.text import Text

    out = io.StringIO()
    tty = sys.stdout.isatty()
    console = Console(file=out, width=width, force_terminal=tty, color_system="auto" if tty else None,
                      highlight=False, markup=False, emoji=False)
    console.print(Padding(Text.assemble(("Usage: ", "yellow"), (usage(command, ctx), "bold")), (1, 1, 0, 1)))
    about = inspect.cleandoc(command.help or "").partition("\f")[0]
    about = "\n\n".join(" ".join(paragraph.split()) for paragraph in about.split("\n\n"))
    if about:
        console.print(Padding(Text(about), (1, 1, 0, 1)))
    console.print()
    groups = panels(command, ctx)
    longest = max((_names_cell(p, ctx).cell_len for params in groups.values() for p in params), default=0)
    names_width = min(longest, NAMES_WIDTH, width // 3)
    for title, params in groups.items():
        console.print(_panel(title, params, ctx, console, names_width))
    return out.getvalue()
