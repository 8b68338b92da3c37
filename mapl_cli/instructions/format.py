"""Format instructions: detectable_format:number_bullet_lists, :constrained_response,
:number_highlighted_sections, :multiple_sections, :json_format, :title.

The regular expressions are IFEval's, quirks included (a line starting with "-" counts as a bullet,
"* *" is no highlight but "*a*" and "**a**" are, a JSON scalar such as `42` is valid JSON).

    >>> from mapl_cli.instructions import get_instruction
    >>> get_instruction("detectable_format:title").check("<<Ode>>\\nHi", {})
    True
"""

from __future__ import annotations

import functools
import json
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
    pick_exact,
    pick_threshold,
    plural,
)
from mapl_cli.instructions.patterns import data_pattern

_SPACE_RUN = re.compile(r"\s*")
_HIGHLIGHT = re.compile(r"\*[^\n\*]*\*")
_DOUBLE_HIGHLIGHT = re.compile(r"\*\*[^\n\*]*\*\*")
_CONSTRAINED_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
_SECTION_SPLITTERS = ("Section", "SECTION", "Part", "PART", "Chapter", "Step")


def _line_marks(text: str, mark: str, then_not: str | None = None) -> int:
    r"""How many lines start (after whitespace) with `mark`, counted as IFEval's
    len(re.findall(r"^\s*MARK[^THEN_NOT].*$", text, re.MULTILINE)) counts them, in linear time (the regex
    rescans a run of blank lines from each of its line starts: quadratic on a long one).

    At a line start the whitespace run is taken whole (a shorter one is followed by whitespace, not by the
    mark); a match ends at the end of the line holding its last character, and the search goes on there."""
    n, count, run_end, start = len(text), 0, -1, 0
    while start < n:  # `start` is a line start
        if start >= run_end:  # inside a run already measured, the run ends where it did
            run_end = _SPACE_RUN.match(text, start).end()
        mark_at, end = run_end, None
        if mark_at < n and text[mark_at] == mark:
            if then_not is None:
                end = mark_at + 1
            elif mark_at + 1 < n and text[mark_at + 1] != then_not:
                end = mark_at + 2  # [^*] also takes a newline; .*$ then runs to the end of the next line
        if end is None:
            newline = text.find("\n", start)
            if newline < 0:
                break
            start = newline + 1
            continue
        count += 1
        newline = text.find("\n", end)
        end = n if newline < 0 else newline
        start = end if text[end - 1] == "\n" else end + 1
    return count


@functools.lru_cache(maxsize=4096)
def count_bullets(text: str) -> int:
    """IFEval's bullet count: lines starting with '* ' (not '**') plus lines starting with '-'."""
    return _line_marks(text, "*", then_not="*") + _line_marks(text, "-")


def titles(text: str) -> list[str]:
    """re.findall(r"<<[^\n]+>>", text) as in IFEval, in linear time: on each line, from the first '<<' to the
    last '>>' with at least one character between (so at most one per line)."""
    found = []
    for line in text.split("\n"):
        start = line.find("<<")
        if start >= 0 and (end := line.rfind(">>")) >= start + 3:
            found.append(line[start : end + 2])
    return found


@functools.lru_cache(maxsize=4096)
def count_highlights(text: str) -> int:
    single = sum(1 for h in _HIGHLIGHT.findall(text) if h.strip("*").strip())
    double = sum(
        1 for h in _DOUBLE_HIGHLIGHT.findall(text) if h.removeprefix("**").removesuffix("**").strip()
    )
    return single + double


@functools.lru_cache(maxsize=4096)
def count_sections(text: str, splitter: str) -> int:
    r"""IFEval's section count: pieces of re.split(r"\s?" + SPLITTER + r"\s?\d+\s?", text), less one; a
    splitter with regex syntax is matched in bounded time (patterns.py)."""
    if splitter.isalnum() and splitter not in text:  # the pattern needs the literal splitter
        return 0
    return len(data_pattern(splitter, r"\s?", r"\s?\d+\s?").split(text)) - 1


class NumberBulletLists(BaseInstruction):
    id = "detectable_format:number_bullet_lists"
    arguments = {"num_bullets": Arg.count}

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        return {"num_bullets": rng.randint(1, 5)}

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        n = as_int(self.args(kwargs)["num_bullets"], self.id, "num_bullets")
        return rng.choice(
            (
                "Your answer must contain exactly {b}. Use the markdown bullet points such as:\n"
                "* This is point 1. \n* This is point 2",
                "Include exactly {b}, written as markdown bullets (lines starting with '* ').",
                "Format the answer as a markdown list of exactly {b} ('* item').",
                "Use precisely {b} in markdown, like:\n* first point\n* second point",
            )
        ).format(b=plural(n, "bullet point"))

    def _check(self, response: str, args: Kwargs) -> bool:
        return count_bullets(response) == as_int(args["num_bullets"], self.id, "num_bullets")

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        n = pick_exact([(count_bullets(r), w) for r, w in targets], rng, low=1, high=7)
        return None if n is None else {"num_bullets": n}


class ConstrainedResponse(FixedInstruction):
    id = "detectable_format:constrained_response"
    phrasings = (
        "Answer with one of the following options: ('My answer is yes.', 'My answer is no.', "
        "'My answer is maybe.')",
        'Reply with exactly one of: "My answer is yes.", "My answer is no.", or "My answer is maybe."',
        "Your response must be one of these options: My answer is yes. / My answer is no. / "
        "My answer is maybe.",
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        value = response.strip()
        return any(option in value for option in _CONSTRAINED_OPTIONS)


class NumberHighlightedSections(BaseInstruction):
    id = "detectable_format:number_highlighted_sections"
    arguments = {"num_highlights": Arg.count}

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        return {"num_highlights": rng.randint(1, 4)}

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        n = as_int(self.args(kwargs)["num_highlights"], self.id, "num_highlights")
        return rng.choice(
            (
                "Highlight at least {s} in your answer with markdown, i.e. *highlighted section*.",
                "Use markdown to highlight at least {s}, for example *this part*.",
                "Emphasise at least {s} of your reply by wrapping them in asterisks, like *key idea*.",
                "Mark no fewer than {s} as highlighted with markdown (*highlighted section*).",
            )
        ).format(s=plural(n, "section"))

    def _check(self, response: str, args: Kwargs) -> bool:
        return count_highlights(response) >= as_int(args["num_highlights"], self.id, "num_highlights")

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        counts = [(count_highlights(r), w) for r, w in targets]
        found = pick_threshold(counts, rng, floors=(1, 1), relations=(AT_LEAST,))
        return None if found is None else {"num_highlights": found[1]}


class MultipleSections(BaseInstruction):
    id = "detectable_format:multiple_sections"
    arguments = {"section_spliter": Arg.text, "num_sections": Arg.count}  # sic: IFEval's spelling

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        return {"section_spliter": rng.choice(("Section", "SECTION")), "num_sections": rng.randint(2, 5)}

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        splitter, n = self._parse(self.args(kwargs))
        return rng.choice(
            (
                "Your response must have {s}. Mark the beginning of each section with {m} X, such as:\n"
                "{m} 1\n[content of section 1]\n{m} 2\n[content of section 2]",
                "Organise the answer into {s}, each starting with a heading '{m} N' (N = 1, 2, ...).",
                "Split your reply into {s}; begin every section with '{m}' followed by its number, "
                "e.g. '{m} 1'.",
                "Write {s}, labelled {m} 1, {m} 2, and so on.",
            )
        ).format(s=plural(n, "section"), m=splitter)

    def _parse(self, args: Kwargs) -> tuple[str, int]:
        splitter = as_str(args["section_spliter"], self.id, "section_spliter")
        return splitter.strip(), as_int(args["num_sections"], self.id, "num_sections")

    def _check(self, response: str, args: Kwargs) -> bool:
        splitter, n = self._parse(args)
        return count_sections(response, splitter) >= n

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        for splitter in rng.sample(_SECTION_SPLITTERS, len(_SECTION_SPLITTERS)):
            counts = [(count_sections(r, splitter), w) for r, w in targets]
            found = pick_threshold(counts, rng, floors=(2, 2), relations=(AT_LEAST,))
            if found is not None:
                return {"section_spliter": splitter, "num_sections": found[1]}
        return None


class JsonFormat(FixedInstruction):
    id = "detectable_format:json_format"
    phrasings = (
        "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.",
        "Return your whole answer as valid JSON (a ```json code fence is fine).",
        "Format the entire response as JSON (markdown code ticks around it are allowed).",
        "Your complete reply must be parseable JSON, optionally inside markdown ticks.",
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        value = (
            response.strip()
            .removeprefix("```json")
            .removeprefix("```Json")
            .removeprefix("```JSON")
            .removeprefix("```")
            .removesuffix("```")
            .strip()
        )
        try:
            json.loads(value)
        except (ValueError, RecursionError):  # IFEval crashes on JSON nested ~1000 deep; we say False
            return False
        return True


class Title(FixedInstruction):
    id = "detectable_format:title"
    phrasings = (
        "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
        "Give your response a title in double angle brackets, like <<my title>>.",
        "Include a title written as <<title>> in the answer.",
        "Add a title wrapped in double angular brackets, for example <<a short story>>.",
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        return any(t.lstrip("<").rstrip(">").strip() for t in titles(response))


TYPES = (
    NumberBulletLists(),
    ConstrainedResponse(),
    NumberHighlightedSections(),
    MultipleSections(),
    JsonFormat(),
    Title(),
)
