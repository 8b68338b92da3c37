"""Text analysis shared by the IFBench types (IFBench's `instructions_util`, offline)."""

from __future__ import annotations

import functools
import random
import re
import string
from abc import abstractmethod

from mapl_cli.errors import MaplError
from mapl_cli.instructions.base import CheckOnlyInstruction, Kwargs, as_int

# --- IFEval's regex sentence splitter (instructions_util.split_into_sentences), verbatim ----------------------
# IFBench calls this splitter (not NLTK's Punkt) wherever its checkers say "sentences". The patterns are fixed,
# so no response text ever acts as a pattern.

_ALPHABETS = "([A-Za-z])"
_PREFIXES = "(Mr|St|Mrs|Ms|Dr)[.]"
_SUFFIXES = "(Inc|Ltd|Jr|Sr|Co)"
_STARTERS = r"(Mr|Mrs|Ms|Dr|Prof|Capt|Cpt|Lt|He\s|She\s|It\s|They\s|Their\s|Our\s|We\s|But\s|However\s|That\s|This\s|Wherever)"
_ACRONYMS = "([A-Z][.][A-Z][.](?:[A-Z][.])?)"
_WEBSITES = "[.](com|net|org|io|gov|edu|me)"
_DIGITS = "([0-9])"
_MULTIPLE_DOTS = r"\.{2,}"


@functools.lru_cache(maxsize=4096)
def split_into_sentences(text: str) -> tuple[str, ...]:
    """IFBench's `instructions_util.split_into_sentences(text)`, as a tuple (the same strings, in order)."""
    text = " " + text + "  "
    text = text.replace("\n", " ")
    text = re.sub(_PREFIXES, "\\1<prd>", text)
    text = re.sub(_WEBSITES, "<prd>\\1", text)
    text = re.sub(_DIGITS + "[.]" + _DIGITS, "\\1<prd>\\2", text)
    text = re.sub(_MULTIPLE_DOTS, lambda match: "<prd>" * len(match.group(0)) + "<stop>", text)
    if "Ph.D" in text:
        text = text.replace("Ph.D.", "Ph<prd>D<prd>")
    text = re.sub(r"\s" + _ALPHABETS + "[.] ", " \\1<prd> ", text)
    text = re.sub(_ACRONYMS + " " + _STARTERS, "\\1<stop> \\2", text)
    text = re.sub(_ALPHABETS + "[.]" + _ALPHABETS + "[.]" + _ALPHABETS + "[.]", "\\1<prd>\\2<prd>\\3<prd>", text)
    text = re.sub(_ALPHABETS + "[.]" + _ALPHABETS + "[.]", "\\1<prd>\\2<prd>", text)
    text = re.sub(" " + _SUFFIXES + "[.] " + _STARTERS, " \\1<stop> \\2", text)
    text = re.sub(" " + _SUFFIXES + "[.]", " \\1<prd>", text)
    text = re.sub(" " + _ALPHABETS + "[.]", " \\1<prd>", text)
    if "”" in text:
        text = text.replace(".”", "”.")
    if '"' in text:
        text = text.replace('."', '".')
    if "!" in text:
        text = text.replace('!"', '"!')
    if "?" in text:
        text = text.replace('?"', '"?')
    text = text.replace(".", ".<stop>")
    text = text.replace("?", "?<stop>")
    text = text.replace("!", "!<stop>")
    text = text.replace("<prd>", ".")
    sentences = [s.strip() for s in text.split("<stop>")]
    if sentences and not sentences[-1]:
        sentences = sentences[:-1]
    return tuple(sentences)


# --- words as IFBench's checkers split them ------------------------------------------------------------------

#: `text.translate(NO_PUNCT)` drops ASCII punctuation (the reference's `str.maketrans("", "", string.punctuation)`).
NO_PUNCT = str.maketrans("", "", string.punctuation)
#: What the reference strips from the ends of a word: `''.join(string.punctuation) + ' '`.
PUNCT_SPACE = string.punctuation + " "


# --- arguments ---------------------------------------------------------------------------------------------


def as_count(value: object, inst_id: str, name: str, low: int = 0) -> int:
    """An integer argument of at least `low` (5, 5.0 and "5" are 5). The reference draws a random value where
    one is below its floor, which would make scores irreproducible, so mapl refuses it."""
    n = as_int(value, inst_id, name)
    if n < low:
        raise MaplError(f"instruction {inst_id!r}: argument {name!r} must be at least {low}, got {value!r}")
    return n


class ParsedType(CheckOnlyInstruction):
    """An IFBench type whose arguments `parse` validates once for both `check` and `describe`.

    `description` is IFBench's instruction text with `{name}` placeholders for the parsed arguments;
    `verdict(response, **parsed)` is the reference's `check_following` for a non-blank response.
    """

    def parse(self, args: Kwargs) -> Kwargs:
        return args

    def describe(self, kwargs: Kwargs | None, rng: random.Random) -> str:
        return self.description.format(**self.parse(self.args(kwargs)))

    def _check(self, response: str, args: Kwargs) -> bool:
        return self.verdict(response, **self.parse(args))

    @abstractmethod
    def verdict(self, response: str, **args) -> bool:
        """The reference's verdict for a non-blank response, under parsed arguments."""
