"""`--config FILE` and `--print-config` for every mapl command.

    mapl train-dpo --config examples/configs/train-dpo-mapl.yaml
    mapl train-dpo --config examples/configs/train-dpo-mapl.yaml --max-steps 4 --print-config

FILE is a YAML (or JSON) mapping of option names, spelt with `-` or `_`, to values; positional arguments
(the input of synthesize, the pairs of train-dpo) are set by their name. Precedence: a flag on the command
line > the file > the option's default. The file's values become click's `default_map` (which ranks exactly
there), after every key is checked here so a mistake ends with one line naming the file and the key.
`--print-config` prints the merged options as YAML that `--config` reads back, and runs nothing.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import re
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from mapl_cli.errors import MaplError

#: Parameters the wrapper adds; a command must not have its own of these names.
ADDED = ("config", "print_config", "mapl_context")
#: Parameters a file never sets: --help, and the two this module adds.
NOT_IN_FILE = ("help", "config", "print_config")


def option_key(name: str) -> str:
    """A parameter name as a config key: `lambda_intra` -> `lambda-intra`."""
    return name.replace("_", "-")


def read_config(path: str) -> dict[str, Any]:
    """The mapping in a YAML or JSON file (JSON by its .json suffix); anything else is one line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MaplError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise MaplError(f"{path}: cannot read the config file ({getattr(err, 'strerror', None) or err})") from None
    if path.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise MaplError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
    else:
        data = _yaml_load(path, text)
    if data is None:  # an empty file sets nothing
        return {}
    if not isinstance(data, dict):
        raise MaplError(f"{path}: expected a mapping of option names to values, got a {type(data).__name__}")
    return data


def _yaml_load(path: str, text: str) -> Any:
    import yaml  # only when a file is given: `mapl --help` stays light

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise MaplError(f"{path}: not valid YAML ({where}{err.problem})") from None
    except (yaml.YAMLError, RecursionError) as err:
        raise MaplError(f"{path}: not valid YAML ({type(err).__name__})") from None


def _settable(command) -> dict[str, Any]:
    """A click command's parameters a config file may set, by parameter name."""
    return {p.name: p for p in command.params if p.name and p.name not in NOT_IN_FILE and p.expose_value}


def _unknown(path: str, key: str, ctx: typer.Context) -> MaplError:
    """The error for a key the command has no parameter for: which other command has it, or a near spelling."""
    name, here = key.replace("-", "_"), f"'mapl {ctx.info_name}'"
    for param in _settable(ctx.command).values():  # --no-shuffle, --quiet: the off switch of a flag pair
        if f"--{option_key(name)}" in getattr(param, "secondary_opts", ()):
            return MaplError(f"{path}: key '{key}' for {here}: --{option_key(name)} is '{option_key(param.name)}: false' in a config file")
    group = ctx.parent.command if ctx.parent is not None else None
    owners = [other for other, command in sorted(getattr(group, "commands", {}).items())
              if other != ctx.info_name and name in _settable(command)]
    if owners:
        names = [f"'mapl {o}'" for o in owners]
        where = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        return MaplError(f"{path}: key '{key}' is an option of {where}, not of {here}")
    known = [option_key(p) for p in _settable(ctx.command)]
    close = difflib.get_close_matches(option_key(name), known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return MaplError(f"{path}: unknown key '{key}' for {here}{hint}")


def _shape(path: str, key: str, param, value: Any) -> Any:
    """The value in the form the parameter takes, or one line: a list for a repeatable option (one value
    becomes a list of one), true/false for a flag and only for a flag, one plain value otherwise."""
    def fail(what: str) -> MaplError:
        return MaplError(f"{path}: key '{key}': expected {what}, got {json.dumps(value, default=str)}")

    if isinstance(value, dict):
        raise fail("a single value or a list, not a mapping")
    if getattr(param, "multiple", False):
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, (list, dict, bool)) for v in items):
            raise fail("a list of values")
        return items
    if isinstance(value, list):
        raise fail("one value, not a list")
    if getattr(param, "is_flag", False) != isinstance(value, bool):
        raise fail("true or false" if getattr(param, "is_flag", False) else "a value, not true or false (in YAML, quote yes/no/on/off)")
    return value


def _check(path: str, key: str, param, value: Any, ctx: typer.Context) -> Any:
    """The value, checked by the parameter's own conversion and callback (type, range, choices), as a
    value from the command line would be."""
    value = _shape(path, key, param, value)
    click_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    try:
        param.process_value(ctx, value)
    except click_error as err:
        message = " ".join(str(getattr(err, "message", err)).split())
        shown = json.dumps(value, default=str)
        if not re.search(rf"(?<![\w.-]){re.escape(str(value))}(?![\w-])", message):  # the message may show it
            message += f" (got {shown})"
        raise MaplError(f"{path}: key '{key}': {message}") from None
    return value


def config_values(path: str, data: dict[str, Any], ctx: typer.Context) -> dict[str, Any]:
    """The file's values by parameter name, every key checked; `null` leaves an option at its default."""
    params = _settable(ctx.command)
    values: dict[str, Any] = {}
    spelt: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise MaplError(f"{path}: key {json.dumps(key, default=str)} is not an option name")
        name = key.replace("-", "_")
        if name in ("config", "print_config"):
            raise MaplError(f"{path}: key '{key}' cannot be set in a config file")
        if name not in params:
            raise _unknown(path, key, ctx)
        if name in spelt:
            raise MaplError(f"{path}: key '{key}' is given twice (also as '{spelt[name]}')")
        spelt[name] = key
        if value is not None:
            values[name] = _check(path, key, params[name], value, ctx)
    return values


def _load(ctx: typer.Context, value: str | None) -> str | None:
    """--config's callback. Eager, so it runs before the other parameters read their values: the file's
    values become defaults, and a flag given on the command line still wins."""
    if value is None or ctx.resilient_parsing:
        return value
    values = config_values(value, read_config(value), ctx)
    ctx.default_map = {**(ctx.default_map or {}), **values}
    ctx.meta["mapl.config"] = value  # for --print-config's header
    return value


ConfigOpt = Annotated[str | None, typer.Option(
    "--config", metavar="<file>", is_eager=True, callback=_load, show_default=False, rich_help_panel="Config file",
    help="Read options from a YAML (or JSON) file whose keys are option names (with - or _) and argument names. "
         "Flags given on the command line override it; see docs/config.md.")]
PrintConfigOpt = Annotated[bool, typer.Option(
    "--print-config", rich_help_panel="Config file",
    help="Print the merged options (defaults, then the --config file, then flags) as YAML and exit without running.")]


def plain(value: Any) -> Any:
    """A resolved option value as YAML writes it: enums by value, paths and other objects as text."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def show_config(ctx: typer.Context, options: dict[str, Any]) -> None:
    """The merged options as YAML on stdout, keys with '-', in the command's order."""
    import yaml

    merged = {option_key(name): plain(value) for name, value in options.items()}
    source = ctx.meta.get("mapl.config") or "no --config file"
    head = f"# mapl {ctx.info_name}: defaults < {source} < flags\n"
    sys.stdout.write(head + yaml.safe_dump(merged, sort_keys=False, allow_unicode=True, default_flow_style=False))


def with_config(command: Callable) -> Callable:
    """`command` with `--config FILE` and `--print-config` added to its Typer signature; the command itself
    receives only its own, merged, parameters."""
    signature = inspect.signature(command, eval_str=True)
    clash = set(signature.parameters) & set(ADDED)
    if clash:
        raise TypeError(f"{command.__module__}.{command.__qualname__} has parameters named {sorted(clash)}")

    @functools.wraps(command)
    def wrapper(*args, config: str | None = None, print_config: bool = False, mapl_context=None, **kwargs):
        if print_config:
            show_config(mapl_context, kwargs)
            return None
        return command(*args, **kwargs)

    keyword = inspect.Parameter.KEYWORD_ONLY
    added = [
        inspect.Parameter("config", keyword, default=None, annotation=ConfigOpt),
        inspect.Parameter("print_config", keyword, default=False, annotation=PrintConfigOpt),
        inspect.Parameter("mapl_context", keyword, annotation=typer.Context),  # Typer passes the context here
    ]
    parameters = [*signature.parameters.values(), *added]
    wrapper.__signature__ = signature.replace(parameters=parameters)
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}  # resolved: no forward references
    return wrapper
