"""IFBench's `words:*` instruction types, check-only (see mapl_cli/instructions/ifbench/__init__.py).

Each checker reproduces IFBench's reference verdict (ifbench/instructions.py), quirks included. Most of
them split words on whitespace after removing (or stripping) ASCII punctuation, so "don't" is the word
"dont" and an em dash is a word of its own; words:keywords_specific_position and words:words_position use
NLTK's word tokens (`mapl_cli.instructions.text.word_tokenize`) and compare them case-sensitively;
sentences are IFEval's regex sentences (`split_into_sentences`). Some quirks worth knowing: words:vowel
counts only a, e, i, o, u (no accented vowels) and needs the response to be one line; words:prime_lengths
knows the primes up to 97 only; words:consonants counts y as a consonant; words:palindrome counts repeats of
the same palindrome.

words:start_verb is not scored: its reference tags the first word with NLTK's averaged perceptron tagger,
whose weights no PyPI package ships (they come from `nltk.download`).

    >>> from mapl_cli.instructions import get_instruction
    >>> get_instruction("words:alphabet").check("Apples bloom, cherries don't!", {})
    True
    >>> get_instruction("words:repeats").check("a a a b", {"small_n": 2})
    False
"""

from __future__ import annotations

import string
from collections import Counter
from itertools import pairwise

import syllapy

from mapl_cli.errors import MaplError
from mapl_cli.instructions.base import Kwargs, as_int, as_str
from mapl_cli.instructions.ifbench.util import (
    NO_PUNCT,
    PUNCT_SPACE,
    ParsedType,
    as_count,
    split_into_sentences,
)
from mapl_cli.instructions.text import word_tokenize

_ALPHABET = string.ascii_lowercase


class Alphabet(ParsedType):
    id = "words:alphabet"
    description = "Each word must start with the next letter of the alphabet, looping back to 'A' after 'Z'."

    def verdict(self, response: str) -> bool:
        words = response.translate(NO_PUNCT).strip(PUNCT_SPACE).split()
        if not words:
            return False
        letter = words[0][0].lower()
        # a substring test, as the reference's (for one character it is membership; 'İ'.lower() is two)
        if letter not in _ALPHABET:
            return False
        for word in words[1:]:
            word = word.strip(PUNCT_SPACE).lower()
            if not word:
                continue
            letter = _ALPHABET[(_ALPHABET.index(letter) + 1) % 26]
            if word[0] != letter:
                return False
        return True


class Vowel(ParsedType):
    id = "words:vowel"
    description = "Write a paragraph using words that contain only three types of vowels."

    def verdict(self, response: str) -> bool:
        paragraphs = response.strip().split("\n")
        if len(paragraphs) != 1:
            return False
        return len(set(paragraphs[0].lower()) & set("aeiou")) <= 3


_CONSONANTS = frozenset("bcdfghjklmnpqrstvwxyz")


def _has_cluster(word: str) -> bool:
    return any(a in _CONSONANTS and b in _CONSONANTS for a, b in pairwise(word))


class Consonants(ParsedType):
    id = "words:consonants"
    description = "Ensure each word in your response has at least one consonant cluster (two or more consonants together)."

    def verdict(self, response: str) -> bool:
        return all(_has_cluster(word) for word in response.lower().strip().split())


class Palindrome(ParsedType):
    id = "words:palindrome"
    description = "Include at least 10 single-word palindromes, each at least 5 characters long."

    def verdict(self, response: str) -> bool:
        words = response.translate(NO_PUNCT).lower().split()
        return sum(1 for w in words if w == w[::-1] and len(w) >= 5) >= 10


_PRIMES = frozenset(
    (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97)
)


class PrimeLengths(ParsedType):
    id = "words:prime_lengths"
    description = "Use only words with lengths that are prime numbers."

    def verdict(self, response: str) -> bool:
        return all(len(word) in _PRIMES for word in response.translate(NO_PUNCT).split())


class StartVerb(ParsedType):
    id = "words:start_verb"
    description = "The response must start with a verb."
    not_scored = "needs NLTK's averaged_perceptron_tagger_eng weights, which only nltk.download provides (no PyPI package)"

    def verdict(self, response: str) -> bool:
        raise MaplError(f"instruction {self.id!r} is not scored: {self.not_scored}")


class Repeats(ParsedType):
    id = "words:repeats"
    arg_names = ("small_n",)
    description = "The response should not repeat any word more than {small_n} times."

    def parse(self, args: Kwargs) -> Kwargs:
        return {"small_n": as_count(args["small_n"], self.id, "small_n")}

    def verdict(self, response: str, small_n: int) -> bool:
        counts = Counter(response.lower().translate(NO_PUNCT).split())
        return all(count <= small_n for count in counts.values())


class OddEvenSyllables(ParsedType):
    id = "words:odd_even_syllables"
    description = "Alternate between words with odd and even numbers of syllables."

    def verdict(self, response: str) -> bool:
        words = response.translate(NO_PUNCT).lower().split()
        parities = [syllapy.count(word) % 2 for word in words if word.strip()]
        return all(a != b for a, b in pairwise(parities))


class LastFirst(ParsedType):
    id = "words:last_first"
    description = "The last word of each sentence must become the first word of the next sentence."

    def verdict(self, response: str) -> bool:
        sentences = split_into_sentences(response)
        for sentence, following in pairwise(sentences):
            last = sentence.rstrip(PUNCT_SPACE).split()
            first = following.lstrip(PUNCT_SPACE).split()
            if not last or not first:
                return False  # a sentence of punctuation only: the reference raises IndexError
            if last[-1].lower() != first[0].lower():
                return False
        return True


class ParagraphLastFirst(ParsedType):
    id = "words:paragraph_last_first"
    description = (
        "Each paragraph must end with the same word it started with, separate paragraphs with a newline."
    )

    def verdict(self, response: str) -> bool:
        for paragraph in response.split("\n"):
            paragraph = paragraph.strip().lower()
            if not paragraph:
                continue
            words = paragraph.strip(PUNCT_SPACE).split()
            if not words or words[0] != words[-1]:
                return False
        return True


class NoConsecutive(ParsedType):
    id = "words:no_consecutive"
    description = "No two consecutive words can share the same first letter."

    def verdict(self, response: str) -> bool:
        words = response.lower().translate(NO_PUNCT).split()
        return all(a[0] != b[0] for a, b in pairwise(words))


def _keyword(value: object, inst_id: str) -> str:
    keyword = as_str(value, inst_id, "keyword")
    if not keyword:  # the reference draws a random keyword for an empty one
        raise MaplError(f"instruction {inst_id!r}: argument 'keyword' must not be empty")
    return keyword.strip()


def _position(value: object, inst_id: str, name: str) -> int:
    position = as_int(value, inst_id, name)
    if position == 0:  # the reference draws a random position for 0 (it tests `not n`)
        raise MaplError(f"instruction {inst_id!r}: argument {name!r} must not be 0 (positions count from 1)")
    return position


class KeywordsSpecificPosition(ParsedType):
    id = "words:keywords_specific_position"
    arg_names = ("keyword", "n", "m")
    description = "Include keyword {keyword} in the {n}-th sentence, as the {m}-th word of that sentence."

    def parse(self, args: Kwargs) -> Kwargs:
        return {
            "keyword": _keyword(args["keyword"], self.id),
            "n": _position(args["n"], self.id, "n"),
            "m": _position(args["m"], self.id, "m"),
        }

    def verdict(self, response: str, keyword: str, n: int, m: int) -> bool:
        # Negative positions index from the end, as in the reference, which raises IndexError (False here)
        # where one points before the start.
        sentences = split_into_sentences(response)
        if len(sentences) < n or not -len(sentences) <= n - 1:
            return False
        words = word_tokenize(sentences[n - 1])
        if len(words) < m or not -len(words) <= m - 1:
            return False
        return words[m - 1] == keyword


class WordsPosition(ParsedType):
    id = "words:words_position"
    arg_names = ("keyword",)
    description = (
        "The second word in your response and the second to last word in your response should be the word "
        "{keyword}."
    )

    def parse(self, args: Kwargs) -> Kwargs:
        # Unlike words:keywords_specific_position, the reference keeps an empty keyword (`is None` test);
        # no token is empty, so it is never followed.
        return {"keyword": as_str(args["keyword"], self.id, "keyword").strip()}

    def verdict(self, response: str, keyword: str) -> bool:
        words = word_tokenize(response)
        return len(words) >= 2 and words[1] == words[-2] == keyword


TYPES = [
    Alphabet(),
    Vowel(),
    Consonants(),
    Palindrome(),
    PrimeLengths(),
    StartVerb(),
    Repeats(),
    OddEvenSyllables(),
    LastFirst(),
    ParagraphLastFirst(),
    NoConsecutive(),
    KeywordsSpecificPosition(),
    WordsPosition(),
]
