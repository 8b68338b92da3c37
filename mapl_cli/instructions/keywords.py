"""Keyword instructions: keywords:existence, keywords:frequency, keywords:forbidden_words,
keywords:letter_frequency.

As in IFEval, keywords are regular expressions matched case-insensitively (existence and frequency match
anywhere, so "cat" is found in "category"; forbidden words match between word boundaries). A keyword that
is not a valid regular expression (IFEval would crash) is matched literally; one with regex syntax runs
with a time budget (patterns.py), so a crafted keyword cannot hang an evaluation.

    >>> import random
    >>> from mapl_cli.instructions import get_instruction
    >>> get_instruction("keywords:existence").check("A lantern glowed.", {"keywords": ["lantern"]})
    True
"""

from __future__ import annotations

import random
import re
import string

from mapl_cli.errors import MaplError
from mapl_cli.instructions.base import (
    RELATIONS,
    Arg,
    BaseInstruction,
    Kwargs,
    Target,
    as_int,
    as_relation,
    as_str,
    compare,
    pick_threshold,
    relation_phrase,
)
from mapl_cli.instructions.patterns import DataPattern, data_pattern
from mapl_cli.instructions.text import BENCHMARK_WORDS, VOCABULARY, content_words, lower, lower_words


def _pattern(source: str, boundaries: bool) -> DataPattern:
    """IFEval's pattern for a keyword, matched in bounded time (patterns.py)."""
    edge = r"\b" if boundaries else ""
    return data_pattern(source, edge, edge, re.IGNORECASE)


_PLAIN = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")


def _plain(keyword: str, response: str) -> bool:
    """Whether the regex search can be replaced by a string operation on the lowercased text: an ASCII
    literal keyword on ASCII text (Unicode case folding, e.g. the Kelvin sign matching "k" under
    IGNORECASE, cannot happen there)."""
    return _PLAIN.fullmatch(keyword) is not None and response.isascii()


def _found(keyword: str, response: str) -> bool:
    if _plain(keyword, response):
        return keyword.lower() in lower(response)
    return _pattern(keyword, False).search(response) is not None


def _present_word(word: str, response: str) -> bool:
    if _plain(word, response) and " " not in word:
        return word.lower() in lower_words(response)  # \bword\b == one whole \w+ run, on ASCII text
    return _pattern(word, True).search(response) is not None


def _occurrences(keyword: str, response: str) -> int:
    if _plain(keyword, response):
        return lower(response).count(keyword.lower())  # non-overlapping, like findall
    return len(_pattern(keyword, False).findall(response))


# Fast equivalents for the plain lowercase words the generators pick (`content_words`, VOCABULARY): the
# regex forms above are what `check` uses, and `generate` verifies every answer with `check`.
def _has(word: str, response: str) -> bool:
    return word in lower(response)


def _has_word(word: str, response: str) -> bool:
    return word in lower_words(response)


def _count(word: str, response: str) -> int:
    return lower(response).count(word)


def _quoted(words: list[str]) -> str:
    quoted = [f"'{w}'" for w in words]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _word_list(value: object, inst_id: str, name: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(w, str) for w in value):
        raise MaplError(
            f"instruction {inst_id!r}: argument {name!r} must be a list of strings, got {value!r}"
        )
    return list(value)


def _sample(pool: list[str], k: int, rng: random.Random) -> list[str]:
    return rng.sample(pool, min(k, len(pool)))


def _cover(candidates: list[str], uncovered: list[str], hits, limit: int) -> list[str] | None:
    """Greedy: words until every response in `uncovered` is hit by one of them (`hits(word, response)`)."""
    chosen = []
    for word in candidates:
        if not uncovered or len(chosen) == limit:
            break
        left = [r for r in uncovered if not hits(word, r)]
        if len(left) < len(uncovered):
            chosen.append(word)
            uncovered = left
    return chosen if not uncovered else None


class KeywordExistence(BaseInstruction):
    id = "keywords:existence"
    arguments = {"keywords": Arg.words}

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        return {"keywords": rng.sample(BENCHMARK_WORDS, 2)}

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        words = _word_list(self.args(kwargs)["keywords"], self.id, "keywords")
        noun = "keyword" if len(words) == 1 else "keywords"
        return rng.choice(
            (
                "Include the {noun} {kw} in the response.",
                "Make sure your answer contains the {noun} {kw}.",
                "Your response must mention the {noun} {kw}.",
                "Use the {noun} {kw} somewhere in your reply.",
            )
        ).format(noun=noun, kw=_quoted(words))

    def _check(self, response: str, args: Kwargs) -> bool:
        return all(_found(k, response) for k in _word_list(args["keywords"], self.id, "keywords"))

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        yes = [r for r, w in targets if w]
        no = [r for r, w in targets if not w]
        if yes:
            pool = list(content_words(yes[0]))
            for other in yes[1:]:  # keep the words every response that must follow contains
                pool = [w for w in pool if _has(w, other)]
        else:
            pool = list(VOCABULARY)
        candidates = _sample(pool, 30, rng)
        chosen = _cover(candidates, no, lambda word, r: not _has(word, r), 3)
        if chosen is None:
            return None
        extra = [w for w in candidates if w not in chosen]
        want = rng.randint(1, 3)
        chosen += extra[: max(0, want - len(chosen))]
        if not chosen:
            return None
        rng.shuffle(chosen)
        return {"keywords": chosen}


class KeywordFrequency(BaseInstruction):
    id = "keywords:frequency"
    arguments = {"keyword": Arg.text, "frequency": Arg.count, "relation": Arg.relation}

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        return {"keyword": rng.choice(BENCHMARK_WORDS), "frequency": rng.randint(1, 3), "relation": rng.choice(RELATIONS)}

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        keyword, relation, n = self._parse(self.args(kwargs))
        times = relation_phrase(rng, relation, n, "time")
        return rng.choice(
            (
                "In your response, the word '{kw}' should appear {times}.",
                "Use the word '{kw}' {times} in your answer.",
                "Make sure '{kw}' occurs {times} in your reply.",
                "The word '{kw}' must show up {times} in the response.",
            )
        ).format(kw=keyword, times=times)

    def _parse(self, args: Kwargs) -> tuple[str, str, int]:
        keyword = as_str(args["keyword"], self.id, "keyword")
        relation = as_relation(args["relation"], self.id, "relation")
        return keyword.strip(), relation, as_int(args["frequency"], self.id, "frequency")

    def _check(self, response: str, args: Kwargs) -> bool:
        keyword, relation, n = self._parse(args)
        return compare(_occurrences(keyword, response), relation, n)

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        pool: dict[str, None] = {}
        for response, _ in targets:
            pool.update(dict.fromkeys(_sample(list(content_words(response)), 6, rng)))
        candidates = list(pool) + _sample(list(VOCABULARY), 2, rng)
        rng.shuffle(candidates)
        for keyword in candidates[:12]:
            counts = [(_count(keyword, r), w) for r, w in targets]
            found = pick_threshold(counts, rng, floors=(2, 1))
            if found is not None:
                relation, n = found
                return {"keyword": keyword, "frequency": n, "relation": relation}
        return None


class ForbiddenWords(BaseInstruction):
    id = "keywords:forbidden_words"
    arguments = {"forbidden_words": Arg.words}

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        return {"forbidden_words": rng.sample(BENCHMARK_WORDS, 2)}

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        words = _word_list(self.args(kwargs)["forbidden_words"], self.id, "forbidden_words")
        noun = "word" if len(words) == 1 else "words"
        return rng.choice(
            (
                "Do not include the {noun} {kw} in the response.",
                "Avoid the {noun} {kw} entirely.",
                "Your answer must not contain the {noun} {kw}.",
                "Never use the {noun} {kw} in your reply.",
            )
        ).format(noun=noun, kw=_quoted(words))

    def _check(self, response: str, args: Kwargs) -> bool:
        words = _word_list(args["forbidden_words"], self.id, "forbidden_words")
        return not any(_present_word(w, response) for w in words)

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        yes = [r for r, w in targets if w]
        no = [r for r, w in targets if not w]
        absent = [w for w in _sample(list(VOCABULARY), 8, rng) if not any(_has_word(w, r) for r in yes)]
        chosen: list[str] = []
        if no:
            pool: dict[str, None] = {}
            for response in no:
                pool.update(dict.fromkeys(content_words(response)))
            candidates = [w for w in _sample(list(pool), 40, rng) if not any(_has_word(w, r) for r in yes)]
            chosen = _cover(candidates, no, _has_word, 3)
            if chosen is None:
                return None
        extra = rng.randint(0 if chosen else 1, 2)
        chosen += absent[:extra]
        if not chosen:
            return None
        rng.shuffle(chosen)
        return {"forbidden_words": chosen}


class LetterFrequency(BaseInstruction):
    id = "keywords:letter_frequency"
    arguments = {"letter": Arg.letter, "let_frequency": Arg.count, "let_relation": Arg.relation}

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        letter = rng.choice("abcdefghijklmnopqrstuvwxyz")
        return {"letter": letter, "let_frequency": rng.randint(1, 10), "let_relation": rng.choice(RELATIONS)}

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        letter, relation, n = self._parse(self.args(kwargs))
        times = relation_phrase(rng, relation, n, "time")
        return rng.choice(
            (
                "In your response, the letter '{letter}' should appear {times}.",
                "Use the letter '{letter}' {times} in your answer.",
                "Make sure the letter '{letter}' occurs {times} in your reply (either case counts).",
                "Write your reply so that the letter '{letter}' appears {times}.",
            )
        ).format(letter=letter, times=times)

    def _parse(self, args: Kwargs) -> tuple[str, str, int]:
        letter = args["letter"]
        # IFEval's own data asks for '#' (key 1122) and '!' (key 1129). Its reference replaces a non-letter
        # with a random letter, so its verdict there is undefined; mapl counts the given character literally.
        if not isinstance(letter, str) or len(letter) != 1 or letter.isspace():
            raise MaplError(
                f"instruction {self.id!r}: argument 'letter' must be a single character, got {letter!r}"
            )
        relation = as_relation(args["let_relation"], self.id, "let_relation")
        return letter.lower(), relation, as_int(args["let_frequency"], self.id, "let_frequency")

    def _check(self, response: str, args: Kwargs) -> bool:
        letter, relation, n = self._parse(args)
        return compare(lower(response).count(letter), relation, n)

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        for letter in rng.sample(string.ascii_lowercase, 26):
            counts = [(lower(r).count(letter), w) for r, w in targets]
            found = pick_threshold(counts, rng, floors=(2, 1))
            if found is not None:
                return {"letter": letter, "let_frequency": found[1], "let_relation": found[0]}
        return None


TYPES = (KeywordExistence(), KeywordFrequency(), ForbiddenWords(), LetterFrequency())
