"""IFBench's `sentence:*` instruction types, check-only (see mapl_cli/instructions/ifbench/__init__.py).

Each checker reproduces IFBench's reference verdict (ifbench/instructions.py), quirks included: sentences
are IFEval's regex sentences (`split_into_sentences`), sentence:keyword finds the keyword as a
case-insensitive substring ("eat" is in "great"), and with N = 0 it looks at the last sentence (the
reference indexes `sentences[N - 1]`). Words are whitespace-separated pieces after ASCII punctuation is
removed (sentence:increment) or stripped from their start (sentence:alliteration_increment). A negative
N or small_n, which the reference replaces by a random one, is an error; so is an empty keyword.

    >>> from mapl_cli.instructions import get_instruction
    >>> get_instruction("sentence:increment").check("One two. One two three.", {"small_n": 1.0})
    True
"""

from __future__ import annotations

from itertools import pairwise

from mapl_cli.errors import MaplError
from mapl_cli.instructions.base import Kwargs, as_str
from mapl_cli.instructions.ifbench.util import (
    NO_PUNCT,
    PUNCT_SPACE,
    ParsedType,
    as_count,
    split_into_sentences,
)


def _alliteration(sentence: str) -> int:
    """Words in runs of two or more consecutive words with one first character (lowercased)."""
    words = [w.lstrip(PUNCT_SPACE) for w in sentence.lower().split()]
    words = [w for w in words if w]
    total, in_run = 0, False
    for word, following in pairwise(words):
        if word[0] == following[0]:
            total += 1 if in_run else 2  # a new run counts both of its first two words
            in_run = True
        else:
            in_run = False
    return total


class AlliterationIncrement(ParsedType):
    id = "sentence:alliteration_increment"
    description = (
        "Each sentence must have a longer sequence of consecutive alliterative words than the previous one."
    )

    def verdict(self, response: str) -> bool:
        previous = -1
        for sentence in split_into_sentences(response):
            count = _alliteration(sentence)
            if count <= previous:
                return False
            previous = count
        return True


class Keyword(ParsedType):
    id = "sentence:keyword"
    arg_names = ("word", "N")
    description = 'The response must include keyword "{word}" in the {N}-th sentence.'

    def parse(self, args: Kwargs) -> Kwargs:
        word = as_str(args["word"], self.id, "word")
        if not word:  # the reference draws a random keyword for an empty one
            raise MaplError(f"instruction {self.id!r}: argument 'word' must not be empty")
        return {"word": word, "N": as_count(args["N"], self.id, "N")}

    def verdict(self, response: str, word: str, N: int) -> bool:  # N: IFBench's argument name
        sentences = split_into_sentences(response)
        if len(sentences) < N or not sentences:
            return False  # (N = 0 with no sentence: the reference raises IndexError)
        return word.lower() in sentences[N - 1].lower()


def _word_count(sentence: str) -> int:
    return len(sentence.translate(NO_PUNCT).strip().split())


class Increment(ParsedType):
    id = "sentence:increment"
    arg_names = ("small_n",)
    description = "Each sentence must contain exactly {small_n} more words than the previous one."

    def parse(self, args: Kwargs) -> Kwargs:
        return {"small_n": as_count(args["small_n"], self.id, "small_n")}

    def verdict(self, response: str, small_n: int) -> bool:
        counts = [_word_count(s) for s in split_into_sentences(response)]
        if not counts:
            return False  # the reference raises IndexError
        return all(later == earlier + small_n for earlier, later in pairwise(counts))


TYPES = [AlliterationIncrement(), Keyword(), Increment()]
