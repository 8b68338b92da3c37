"""Content instructions: detectable_content:number_placeholders, detectable_content:postscript and
punctuation:no_comma.

    >>> from mapl_cli.instructions import get_instruction
    >>> get_instruction("detectable_content:postscript").check("Hi.\\nP.S. bye", {"postscript_marker": "P.S."})
    True
"""

from __future__ import annotations

import functools
import random
import re

from mapl_cli.instructions.base import (
    AT_LEAST,
    Arg,
    BaseInstruction,
    FixedInstruction,
    Kwargs,
    Target,
    as_int,
    as_str,
    pick_threshold,
    plural,
)
from mapl_cli.instructions.patterns import data_pattern
from mapl_cli.instructions.text import lower

_POSTSCRIPT_MARKERS = ("P.S.", "P.P.S")  # IFEval's _POSTSCRIPT_MARKER


@functools.lru_cache(maxsize=4096)
def count_placeholders(text: str) -> int:
    r"""len(re.findall(r"\[.*?\]", text)) as in IFEval, in linear time (the regex takes quadratic time on a
    long line of '['): on each line, a '[' and the first ']' after it, then on from there."""
    count = 0
    for line in text.split("\n"):
        start = line.find("[")
        while start >= 0:
            end = line.find("]", start + 1)
            if end < 0:
                break  # no ']' after this '[' on the line, so none after any later one either
            count += 1
            start = line.find("[", end + 1)
    return count


class NumberPlaceholders(BaseInstruction):
    id = "detectable_content:number_placeholders"
    arguments = {"num_placeholders": Arg.count}

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        return {"num_placeholders": rng.randint(1, 4)}

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        n = as_int(self.args(kwargs)["num_placeholders"], self.id, "num_placeholders")
        return rng.choice(
            (
                "The response must contain at least {p} represented by square brackets, such as [address].",
                "Include at least {p} in square brackets, like [name], for the reader to fill in.",
                "Leave at least {p} written in square brackets (for example [date]) in your answer.",
                "Use no fewer than {p} of the form [placeholder] in the reply.",
            )
        ).format(p=plural(n, "placeholder"))

    def _check(self, response: str, args: Kwargs) -> bool:
        return count_placeholders(response) >= as_int(args["num_placeholders"], self.id, "num_placeholders")

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        counts = [(count_placeholders(r), w) for r, w in targets]
        found = pick_threshold(counts, rng, floors=(1, 1), relations=(AT_LEAST,))
        return None if found is None else {"num_placeholders": found[1]}


_PPS = re.compile(r"p\.\s?p\.\s?s")
_PS = re.compile(r"p\.\s?s\.")


def _postscript_found(marker: str, text: str) -> bool:
    r"""IFEval's postscript search on the lowercased response; other markers are used as regular expressions
    (in bounded time, patterns.py). IFEval writes r"\s*p\.\s?s\..*$" (MULTILINE); the leading \s* and
    trailing .*$ match anywhere, so a search without them gives the same verdict in linear time (the same
    holds for a marker of plain text, searched as a substring)."""
    if marker == "P.P.S":
        return _PPS.search(text) is not None
    if marker == "P.S.":
        return _PS.search(text) is not None
    return data_pattern(marker.lower(), r"\s*", r".*$", re.MULTILINE, "", "").search(text) is not None


class Postscript(BaseInstruction):
    id = "detectable_content:postscript"
    arguments = {"postscript_marker": Arg.text}

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        return {"postscript_marker": rng.choice(("P.S.", "P.P.S"))}

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        marker = self._marker(self.args(kwargs))
        return rng.choice(
            (
                "At the end of your response, please explicitly add a postscript starting with {m}",
                "Finish with a postscript that begins with {m}",
                "Add a postscript after your answer, introduced by {m}",
                "Close the reply with a short postscript starting with '{m}'.",
            )
        ).format(m=marker)

    def _marker(self, args: Kwargs) -> str:
        return as_str(args["postscript_marker"], self.id, "postscript_marker").strip()

    def _check(self, response: str, args: Kwargs) -> bool:
        return _postscript_found(self._marker(args), lower(response))

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        for marker in rng.sample(_POSTSCRIPT_MARKERS, len(_POSTSCRIPT_MARKERS)):
            kwargs = {"postscript_marker": marker}
            if all(self.check(r, kwargs) == w for r, w in targets):
                return kwargs
        return None


class NoComma(FixedInstruction):
    id = "punctuation:no_comma"
    phrasings = (
        "In your entire response, refrain from the use of any commas.",
        "Do not use a single comma anywhere in your answer.",
        "Write the reply without any commas.",
        "Avoid commas completely in your response.",
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        return "," not in response


TYPES = (NumberPlaceholders(), Postscript(), NoComma())
