"""Regular expressions built from benchmark arguments (a keyword, a postscript marker, a section splitter),
matched in bounded time.

IFEval compiles some arguments as regular expressions, so a crafted benchmark or `--responses` file could
hang an evaluation with catastrophic backtracking (`(a|aa)+$` against "aaaa...!"). mapl keeps IFEval's
verdicts where that costs nothing and bounds the time everywhere else:

- an argument without regex syntax (the usual case: a word) is compiled with Python's `re`, exactly as
  IFEval does;
- an argument that is not a valid pattern for `re` (IFEval would crash) is matched literally;
- an argument with regex syntax runs on the `regex` engine with a time budget (`TIMEOUT_S` per match); a
  match that runs out of time, or a pattern whose counted repeats would expand past `MAX_EXPANSION`
  pieces when compiled, is matched literally from then on, with one warning on stderr.

    from mapl_cli.instructions.patterns import data_pattern
    data_pattern("colou?r", r"\\b", r"\\b", re.IGNORECASE).search("The colour.")   # a match
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass

import regex

try:  # Python >= 3.11
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _sre_parse  # type: ignore[no-redef]

#: Seconds one match of an argument with regex syntax may take before it is matched literally instead.
TIMEOUT_S = 0.1
#: Most pieces a pattern's counted repeats may expand to: `regex` unrolls `(a{100}){100}` when it
#: compiles, and four such levels take gigabytes.
MAX_EXPANSION = 10_000

_SYNTAX = frozenset(".^$*+?{}[]|()\\")
_REGEX_FLAGS = {re.IGNORECASE: regex.IGNORECASE, re.MULTILINE: regex.MULTILINE, re.DOTALL: regex.DOTALL}
_SLOW: set[str] = set()  # patterns that ran out of time once: matched literally for the rest of the run


def has_syntax(text: str) -> bool:
    """Whether `text` uses any regular-expression syntax (if not, it is the same as its escaped form)."""
    return not _SYNTAX.isdisjoint(text)


def _warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")


def _expansion(parsed) -> int:
    """Pieces a parsed pattern expands to when every counted repeat is unrolled (unbounded ones count
    their minimum)."""
    total = 0
    for op, value in parsed:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = value
            times = low if high == _sre_parse.MAXREPEAT else high
            total += max(1, times) * max(1, _expansion(sub))
        elif name == "SUBPATTERN":
            total += _expansion(value[-1])
        elif name == "BRANCH":
            total += sum(_expansion(branch) for branch in value[1])
        elif name in ("ASSERT", "ASSERT_NOT"):
            total += _expansion(value[1])
        elif name == "ATOMIC_GROUP":
            total += _expansion(value)
        elif name == "GROUPREF_EXISTS":
            total += sum(_expansion(branch) for branch in value[1:] if branch)
        else:
            total += 1
        if total > MAX_EXPANSION:
            break
    return total


@dataclass(frozen=True)
class DataPattern:
    """`prefix + argument + suffix`: `guarded` is the `regex` form (None when the argument is plain text or
    not a valid pattern), `literal` the form with the argument escaped, compiled with `re`."""

    argument: str
    pattern: str
    literal: re.Pattern[str]
    guarded: regex.Pattern[str] | None = None

    def _call(self, method: str, text: str):
        if self.guarded is not None and self.pattern not in _SLOW:
            try:
                return getattr(self.guarded, method)(text, timeout=TIMEOUT_S)
            except TimeoutError:
                _SLOW.add(self.pattern)
                _warn(f"the pattern {self.argument!r} took over {TIMEOUT_S} s on one response; it is matched as plain text from now on")
        return getattr(self.literal, method)(text)

    def search(self, text: str):
        return self._call("search", text)

    def findall(self, text: str) -> list:
        return self._call("findall", text)

    def split(self, text: str) -> list[str]:
        return self._call("split", text)


@functools.lru_cache(maxsize=4096)
def data_pattern(argument: str, prefix: str = "", suffix: str = "", flags: int = 0,
                 literal_prefix: str | None = None, literal_suffix: str | None = None) -> DataPattern:
    """The pattern `prefix + argument + suffix`, matched as described in the module docstring.
    `literal_prefix`/`literal_suffix` replace prefix/suffix in the literal form (a caller that knows a
    cheaper equivalent for plain text)."""
    literal = re.compile(
        (prefix if literal_prefix is None else literal_prefix) + re.escape(argument)
        + (suffix if literal_suffix is None else literal_suffix), flags,
    )
    full = prefix + argument + suffix
    if not has_syntax(argument):
        return DataPattern(argument, full, literal)
    try:
        parsed = _sre_parse.parse(full, flags)  # Python's re decides what is a valid pattern, as in IFEval
        re.compile(full, flags)
    except (re.error, RecursionError, OverflowError, ValueError):
        return DataPattern(argument, full, literal)
    if _expansion(parsed) > MAX_EXPANSION:
        _warn(f"the pattern {argument!r} repeats too much to compile safely; it is matched as plain text")
        return DataPattern(argument, full, literal)
    engine_flags = 0
    for flag, equivalent in _REGEX_FLAGS.items():
        if flags & flag:
            engine_flags |= equivalent
    try:
        guarded = regex.compile(full, engine_flags)
    except (regex.error, RecursionError, OverflowError, ValueError):
        _warn(f"the pattern {argument!r} is not supported by the regex engine; it is matched as plain text")
        return DataPattern(argument, full, literal)
    return DataPattern(argument, full, literal, guarded)
