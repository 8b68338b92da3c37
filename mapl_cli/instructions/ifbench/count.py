"""IFBench's `count:*` instruction types, check-only (see mapl_cli/instructions/ifbench/__init__.py).

Each checker reproduces IFBench's reference verdict (ifbench/instructions.py), quirks included: for
example count:conjunctions counts distinct *spellings* ("and", "And" and "and," are three conjunctions),
count:person_names finds names as case-sensitive substrings ("Leo" in "Leonardo"), and
count:unique_word_count counts a token made only of punctuation as the empty word. Unlike the reference,
every argument is required (the reference draws a missing or negative one at random).

    >>> from mapl_cli.instructions import get_instruction
    >>> get_instruction("count:numbers").check("I have 2 cats and 3 dogs.", {"N": 2.0})
    True
"""

from __future__ import annotations

import random
import re
import string

from mapl_cli.instructions.base import CheckOnlyInstruction, Kwargs, as_str
from mapl_cli.instructions.ifbench.util import as_count
from mapl_cli.instructions.text import count_words

_PUNCT = string.punctuation
_STRIP = _PUNCT + " "  # the reference strips `''.join(string.punctuation) + ' '` from words
_NO_PUNCT = str.maketrans("", "", _PUNCT)


class _CountType(CheckOnlyInstruction):
    """A type with one count argument `N` (or `small_n`); `description` has a {name} placeholder."""

    low = 0

    def _n(self, args: Kwargs) -> int:
        (name,) = self.arg_names
        return as_count(args[name], self.id, name, self.low)

    def describe(self, kwargs: Kwargs | None, rng: random.Random) -> str:
        (name,) = self.arg_names
        return self.description.format(**{name: self._n(self.args(kwargs))})


class WordCountRange(CheckOnlyInstruction):
    id = "count:word_count_range"
    arg_names = ("min_words", "max_words")
    description = "The response must contain between {min_words} and {max_words} words."

    def _parse(self, args: Kwargs) -> tuple[int, int]:
        return as_count(args["min_words"], self.id, "min_words"), as_count(
            args["max_words"], self.id, "max_words"
        )

    def describe(self, kwargs: Kwargs | None, rng: random.Random) -> str:
        low, high = self._parse(self.args(kwargs))
        return self.description.format(min_words=low, max_words=high)

    def _check(self, response: str, args: Kwargs) -> bool:
        low, high = self._parse(args)
        return low <= count_words(response) <= high  # words = runs of \w, as nltk's RegexpTokenizer(r"\w+")


class UniqueWordCount(_CountType):
    id = "count:unique_word_count"
    arg_names = ("N",)
    description = "Use at least {N} unique words in the response."

    def _check(self, response: str, args: Kwargs) -> bool:
        # a token of punctuation only strips to "", which the reference counts as one more unique word
        unique = {word.strip(_STRIP) for word in response.lower().split()}
        return len(unique) >= self._n(args)


_CONJUNCTIONS = frozenset(("and", "but", "for", "nor", "or", "so", "yet"))


class ConjunctionCount(_CountType):
    id = "count:conjunctions"
    arg_names = ("small_n",)
    description = "Use at least {small_n} different coordinating conjunctions in the response."

    def _check(self, response: str, args: Kwargs) -> bool:
        # the reference keeps the raw tokens in its set, so "and", "And" and "and," are three conjunctions
        found = {word for word in response.split() if word.strip(_STRIP).lower() in _CONJUNCTIONS}
        return len(found) >= self._n(args)


PERSON_NAMES = (
    "Emma", "Liam", "Sophia", "Jackson", "Olivia", "Noah", "Ava", "Lucas", "Isabella", "Mason", "Mia",
    "Ethan", "Charlotte", "Alexander", "Amelia", "Benjamin", "Harper", "Leo", "Zoe", "Daniel", "Chloe",
    "Samuel", "Lily", "Matthew", "Grace", "Owen", "Abigail", "Gabriel", "Ella", "Jacob", "Scarlett",
    "Nathan", "Victoria", "Elijah", "Layla", "Nicholas", "Audrey", "David", "Hannah", "Christopher",
    "Penelope", "Thomas", "Nora", "Andrew", "Aria", "Joseph", "Claire", "Ryan", "Stella", "Jonathan",
)  # fmt: skip


class PersonNameCount(_CountType):
    id = "count:person_names"
    arg_names = ("N",)
    description = (
        "Mention at least {N} different person names in the response, from this list of person names: "
        + ", ".join(PERSON_NAMES)
        + " ."
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        # case-sensitive substrings, as in the reference: "Leo" is found in "Leonardo", "Ella" in "Bella"
        return sum(name in response for name in PERSON_NAMES) >= self._n(args)


_DIGIT_RUN = re.compile(r"\d+")  # any Unicode decimal digits, as the reference's pattern


class NumbersCount(_CountType):
    id = "count:numbers"
    arg_names = ("N",)
    description = "Include exactly {N} numbers in the response."

    def _check(self, response: str, args: Kwargs) -> bool:
        # punctuation is deleted first, so "3.14" and "1,000" are one number each (and "5-6" is one too)
        return len(_DIGIT_RUN.findall(response.translate(_NO_PUNCT))) == self._n(args)


_MARKS = frozenset(".,!?;:")


class PunctuationCover(CheckOnlyInstruction):
    id = "count:punctuation"
    description = (
        "Use every standard punctuation mark at least once, including semicolons, colons, and the "
        "interrobang (?!)."
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        if not ("!?" in response or "?!" in response or "‽" in response):
            return False
        # one interrobang is taken out before the six marks are looked for, so "?!" alone covers neither
        rest = response.replace("?!", "", 1)
        if len(rest) == len(response):
            rest = response.replace("!?", "", 1)
        return _MARKS <= set(rest)


_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")  # Hiragana, Katakana, CJK ideographs


class NthWordJapanese(_CountType):
    id = "count:words_japanese"
    arg_names = ("N",)
    description = "Every {N} word of your response must be in Japanese."
    low = 1  # the reference divides by N

    def describe(self, kwargs: Kwargs | None, rng: random.Random) -> str:
        n = self._n(self.args(kwargs))
        suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        return self.description.format(N=f"{n}{suffix}")

    def _check(self, response: str, args: Kwargs) -> bool:
        n = self._n(args)
        for word in response.split()[n - 1 :: n]:
            word = word.strip(_STRIP)
            # empty (punctuation-only) words and digit strings are exempt
            if word and not word.isdigit() and not _JAPANESE.search(word):
                return False
        return True


_PRONOUNS = frozenset(
    "i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his himself she "
    "her hers herself it its itself they them their theirs themselves".split()
)


class PronounCount(_CountType):
    id = "count:pronouns"
    arg_names = ("N",)
    description = "The response should include at least {N} pronouns."

    def _check(self, response: str, args: Kwargs) -> bool:
        # "/" separates words ("she/her"); other punctuation is deleted ("it's" -> "its", a pronoun)
        words = response.replace("/", " ").lower().translate(_NO_PUNCT).split()
        return sum(word in _PRONOUNS for word in words) >= self._n(args)


_KEYWORD_COUNTS = (("keyword1", 1), ("keyword2", 2), ("keyword3", 3), ("keyword4", 5), ("keyword5", 7))


class KeywordsMultiple(CheckOnlyInstruction):
    id = "count:keywords_multiple"
    arg_names = tuple(name for name, _ in _KEYWORD_COUNTS)
    description = (
        "Include keyword {keyword1} once in your response, keyword {keyword2} twice in your response, "
        "keyword {keyword3} three times in your response, keyword {keyword4} five times in your response, "
        "and keyword {keyword5} seven times in your response."
    )

    def _parse(self, args: Kwargs) -> dict[str, str]:
        return {name: as_str(args[name], self.id, name).strip() for name, _ in _KEYWORD_COUNTS}

    def describe(self, kwargs: Kwargs | None, rng: random.Random) -> str:
        return self.description.format(**self._parse(self.args(kwargs)))

    def _check(self, response: str, args: Kwargs) -> bool:
        keywords = self._parse(args)
        text = response.lower()
        # plain substring counts (non-overlapping), so "cat" is also counted inside "category"
        return all(text.count(keywords[name].lower()) == count for name, count in _KEYWORD_COUNTS)


TYPES = [
    WordCountRange(),
    UniqueWordCount(),
    ConjunctionCount(),
    PersonNameCount(),
    NumbersCount(),
    PunctuationCover(),
    NthWordJapanese(),
    PronounCount(),
    KeywordsMultiple(),
]
