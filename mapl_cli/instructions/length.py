"""Length instructions: length_constraints:number_sentences, :number_paragraphs, :number_words,
:nth_paragraph_first_word.

Words are `\\w+` runs (as IFEval). Paragraphs are split on "***" for number_paragraphs and on "\\n\\n" for
nth_paragraph_first_word (as IFEval, quirks included). Sentences are IFEval's: `nltk.sent_tokenize` with
NLTK's Punkt English model, run offline by `text.sent_tokenize`.

    >>> from mapl_cli.instructions import get_instruction
    >>> get_instruction("length_constraints:number_words").check("one two three", {"num_words": 3,
    ...     "relation": "at least"})
    True
"""

from __future__ import annotations

import functools
import random
import re

from mapl_cli.errors import MaplError
from mapl_cli.instructions.base import (
    LESS_THAN,
    RELATIONS,
    Arg,
    BaseInstruction,
    Kwargs,
    Target,
    as_int,
    as_relation,
    as_str,
    compare,
    pick_exact,
    pick_threshold,
    plural,
    relation_phrase,
)
from mapl_cli.instructions.text import BENCHMARK_WORDS, count_sentences, count_words

_STAR_DIVIDER = re.compile(r"\s?\*\*\*\s?")
_FIRST_WORD_STOP = frozenset(".,?!'\"")
#: First words for paragraphs when no response has to follow the instruction.
_FIRST_WORDS = (
    "first", "however", "finally", "today", "overall", "moreover", "additionally", "instead", "meanwhile",
    "therefore", "imagine", "sometimes", "initially", "honestly", "consider", "interestingly", "next",
)  # fmt: skip


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class NumberSentences(BaseInstruction):
    id = "length_constraints:number_sentences"
    arguments = {"num_sentences": Arg.count, "relation": Arg.relation}

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        return {"num_sentences": rng.randint(1, 10), "relation": rng.choice(RELATIONS)}

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        relation, n = self._parse(self.args(kwargs))
        amount = relation_phrase(rng, relation, n, "sentence")
        return rng.choice(
            (
                "Your response should contain {amount}.",
                "Answer in {amount}.",
                "Write {amount} in total.",
                "Keep your reply to {amount}." if relation == LESS_THAN else "Use {amount} in your reply.",
            )
        ).format(amount=amount)

    def _parse(self, args: Kwargs) -> tuple[str, int]:
        return as_relation(args["relation"], self.id, "relation"), as_int(
            args["num_sentences"], self.id, "num_sentences"
        )

    def _check(self, response: str, args: Kwargs) -> bool:
        relation, n = self._parse(args)
        return compare(count_sentences(response), relation, n)

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        found = pick_threshold([(count_sentences(r), w) for r, w in targets], rng, floors=(2, 2))
        return None if found is None else {"num_sentences": found[1], "relation": found[0]}


class NumberWords(BaseInstruction):
    id = "length_constraints:number_words"
    arguments = {"num_words": Arg.count, "relation": Arg.relation}

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        return {"num_words": rng.randrange(50, 400, 10), "relation": rng.choice(RELATIONS)}

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        args = self.args(kwargs)
        relation = as_relation(args["relation"], self.id, "relation")
        amount = relation_phrase(rng, relation, as_int(args["num_words"], self.id, "num_words"), "word")
        return rng.choice(
            (
                "Answer with {amount}.",
                "Your response should be {amount} long.",
                "Write {amount} in total.",
                "The reply must contain {amount}.",
            )
        ).format(amount=amount)

    def _check(self, response: str, args: Kwargs) -> bool:
        relation = as_relation(args["relation"], self.id, "relation")
        return compare(count_words(response), relation, as_int(args["num_words"], self.id, "num_words"))

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        found = pick_threshold([(count_words(r), w) for r, w in targets], rng, floors=(10, 5), round_to=10)
        return None if found is None else {"num_words": found[1], "relation": found[0]}


@functools.lru_cache(maxsize=4096)
def star_paragraph_count(text: str) -> int | None:
    """Paragraphs separated by "***", or None when an empty paragraph sits between two dividers (IFEval
    then fails the response whatever the number asked)."""
    paragraphs = _STAR_DIVIDER.split(text)
    count = len(paragraphs)
    for index, paragraph in enumerate(paragraphs):
        if not paragraph.strip():
            if index in (0, len(paragraphs) - 1):
                count -= 1
            else:
                return None
    return count


class NumberParagraphs(BaseInstruction):
    id = "length_constraints:number_paragraphs"
    arguments = {"num_paragraphs": Arg.count}

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        return {"num_paragraphs": rng.randint(2, 5)}

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        n = as_int(self.args(kwargs)["num_paragraphs"], self.id, "num_paragraphs")
        return rng.choice(
            (
                "There should be {p}. Paragraphs are separated with the markdown divider: ***",
                "Write exactly {p}, separating them with the markdown divider ***.",
                "Structure your answer as {p}; put a line with *** between consecutive paragraphs.",
                "Your reply must have {p}, divided from each other by ***.",
            )
        ).format(p=plural(n, "paragraph"))

    def _check(self, response: str, args: Kwargs) -> bool:
        return star_paragraph_count(response) == as_int(args["num_paragraphs"], self.id, "num_paragraphs")

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        n = pick_exact([(star_paragraph_count(r), w) for r, w in targets], rng, low=2, high=6)
        return None if n is None else {"num_paragraphs": n}


@functools.lru_cache(maxsize=4096)
def newline_paragraphs(text: str) -> tuple[tuple[str, ...], int]:
    """IFEval's paragraphs for nth_paragraph_first_word: the raw "\\n\\n" split (empty pieces kept, since
    IFEval indexes into it) and the number of non-empty pieces."""
    paragraphs = tuple(text.split("\n\n"))
    return paragraphs, sum(1 for p in paragraphs if p.strip())


def paragraph_first_word(text: str, nth: int) -> str | None:
    """IFEval's first word of paragraph `nth` (lowercased, cut at . , ? ! ' "), None if there is none."""
    paragraphs, count = newline_paragraphs(text)
    if nth > count:
        return None
    paragraph = paragraphs[nth - 1].strip()
    if not paragraph:
        return None
    word = paragraph.split(None, 1)[0].strip().lstrip("'").lstrip('"')
    first = []
    for letter in word:
        if letter in _FIRST_WORD_STOP:
            break
        first.append(letter.lower())
    return "".join(first)


class NthParagraphFirstWord(BaseInstruction):
    id = "length_constraints:nth_paragraph_first_word"
    arguments = {"num_paragraphs": Arg.count, "nth_paragraph": Arg.count, "first_word": Arg.text}

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        paragraphs = rng.randint(2, 5)
        return {"num_paragraphs": paragraphs, "nth_paragraph": rng.randint(1, paragraphs), "first_word": rng.choice(BENCHMARK_WORDS)}

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        n, nth, word = self._parse(self.args(kwargs))
        return rng.choice(
            (
                "There should be {p}. Paragraphs and only paragraphs are separated with each other by two new "
                "lines as if it was '\\n\\n' in python. Paragraph {nth} must start with word {w}.",
                "Write {p}, separated by blank lines (two newlines), and begin the {nth_o} paragraph with the "
                "word '{w}'.",
                "Your answer needs exactly {p} separated by empty lines; the {nth_o} one starts with '{w}'.",
                "Split the reply into {p} with a blank line between them. Start paragraph {nth} with the word "
                "'{w}'.",
            )
        ).format(p=plural(n, "paragraph"), nth=nth, nth_o=ordinal(nth), w=word)

    def _parse(self, args: Kwargs) -> tuple[int, int, str]:
        n = as_int(args["num_paragraphs"], self.id, "num_paragraphs")
        nth = as_int(args["nth_paragraph"], self.id, "nth_paragraph")
        if nth < 1:  # IFEval would index from the end; an out-of-range nth (> n) simply never matches
            raise MaplError(f"instruction {self.id!r}: nth_paragraph must be at least 1, got {nth}")
        word = as_str(args["first_word"], self.id, "first_word")
        return n, nth, word.lower()

    def _check(self, response: str, args: Kwargs) -> bool:
        n, nth, word = self._parse(args)
        first = paragraph_first_word(response, nth)
        return first is not None and newline_paragraphs(response)[1] == n and first == word

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        yes = [r for r, w in targets if w]
        if yes:
            n = newline_paragraphs(yes[0])[1]
            if n < 2:  # "1 paragraph ... starting with X" reads oddly; ask for a structure instead
                return None
            tries = [(n, nth, paragraph_first_word(yes[0], nth)) for nth in rng.sample(range(1, n + 1), n)]
        else:
            tries = []
            for _ in range(6):
                n = rng.randint(2, 5)
                tries.append((n, rng.randint(1, n), rng.choice(_FIRST_WORDS)))
        for n, nth, word in tries[:8]:
            if not word or not word.isalpha():
                continue
            kwargs = {"num_paragraphs": n, "nth_paragraph": nth, "first_word": word}
            if all(self.check(r, kwargs) == w for r, w in targets):
                return kwargs
        return None


TYPES = (NumberSentences(), NumberParagraphs(), NumberWords(), NthParagraphFirstWord())
