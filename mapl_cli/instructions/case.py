"""Case instructions: change_case:capital_word_frequency, change_case:english_capital,
change_case:english_lowercase.

Capital words are tokens of `nltk.word_tokenize` (Punkt sentences, then treebank words) that are all upper
case ("I" counts), as in IFEval. English is detected with seeded langdetect; where langdetect finds no
features IFEval counts the response as English, and so do we.

    >>> from mapl_cli.instructions import get_instruction
    >>> get_instruction("change_case:english_lowercase").check("hello there, my friend.", {})
    True
"""

from __future__ import annotations

import random

from mapl_cli.instructions.base import (
    RELATIONS,
    Arg,
    BaseInstruction,
    FixedInstruction,
    Kwargs,
    Target,
    as_int,
    as_relation,
    compare,
    pick_threshold,
    relation_phrase,
)
from mapl_cli.instructions.text import count_capital_words, detect_language


def _english(response: str) -> bool:
    language = detect_language(response)
    return language is None or language == "en"


class CapitalWordFrequency(BaseInstruction):
    id = "change_case:capital_word_frequency"
    arguments = {"capital_frequency": Arg.count, "capital_relation": Arg.relation}

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        return {"capital_frequency": rng.randint(1, 20), "capital_relation": rng.choice(RELATIONS)}

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        relation, n = self._parse(self.args(kwargs))
        times = relation_phrase(rng, relation, n, "time")
        words = relation_phrase(rng, relation, n, "word")
        return rng.choice(
            (
                f"In your response, words with all capital letters should appear {times}.",
                f"Use {words} written entirely in capital letters.",
                f"Fully capitalised words (LIKE THIS) should occur {times} in your answer.",
                f"Your reply should contain {words} in ALL CAPS.",
            )
        )

    def _parse(self, args: Kwargs) -> tuple[str, int]:
        relation = as_relation(args["capital_relation"], self.id, "capital_relation")
        return relation, as_int(args["capital_frequency"], self.id, "capital_frequency")

    def _check(self, response: str, args: Kwargs) -> bool:
        relation, n = self._parse(args)
        return compare(count_capital_words(response), relation, n)

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        found = pick_threshold([(count_capital_words(r), w) for r, w in targets], rng, floors=(2, 1))
        return None if found is None else {"capital_frequency": found[1], "capital_relation": found[0]}


class EnglishCapital(FixedInstruction):
    id = "change_case:english_capital"
    phrasings = (
        "Your entire response should be in English, and in all capital letters.",
        "Answer in English, using capital letters only.",
        "WRITE YOUR WHOLE REPLY IN ENGLISH AND IN UPPER CASE.",
        "Respond only in English, with every letter capitalised.",
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        return response.isupper() and _english(response)


class EnglishLowercase(FixedInstruction):
    id = "change_case:english_lowercase"
    phrasings = (
        "Your entire response should be in English, and in all lowercase letters. No capital letters are "
        "allowed.",
        "answer in english, using only lowercase letters.",
        "Write the whole reply in English without a single capital letter.",
        "Respond in English with every letter in lower case.",
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        return response.islower() and _english(response)


TYPES = (CapitalWordFrequency(), EnglishCapital(), EnglishLowercase())
