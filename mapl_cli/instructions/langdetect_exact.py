"""langdetect's `detect_langs`, computed the same way, float for float, in a fraction of the time.

IFEval's language checks call `langdetect.detect` (seeded), which spends milliseconds per text in Python
loops: a character-by-character n-gram state machine and a 55-language probability update per sampled
n-gram. This module runs the same algorithm (langdetect 1.0.9's `Detector`, with its profiles, seed and
random draws) with the two loops made cheap, and gives the same `Language` list, probabilities equal to
the last bit, so every verdict is langdetect's:

  - n-grams: langdetect's state machine resets at every (normalised) space, so a text's n-gram list is the
    concatenation of its words' lists, in order; each word's list is computed once and memoised (words
    repeat across texts, characters' normalisations repeat within them);
  - probabilities: `prob[i] *= weight + p[i]` over the 55 languages is one numpy multiply of the same
    IEEE doubles; the normalising sum stays Python's `sum` over the same list, in the same order;
  - random draws: the same `random.Random(seed)` with the same calls in the same order (`gauss` once per
    trial, `choice` over a list as long as langdetect's n-gram list per update).

tests/test_synth_speed_equivalence.py compares `detect_langs` here with langdetect's on texts in many
scripts and on every example response, probabilities included; it runs about three times as fast.

    >>> from mapl_cli.instructions.langdetect_exact import detect
    >>> detect("Le chat est sur la table et il dort tranquillement.")
    'fr'
"""

from __future__ import annotations

import functools
import random
import re

_WORDS = 65536  # memoised word n-gram lists: English prose uses far fewer distinct words than this
_TRIALS = 7  # Detector.n_trial


@functools.lru_cache(maxsize=1)
def _model():
    """langdetect's loaded profiles (the module-level factory `langdetect.detect` uses), and the classes
    whose rules are followed here."""
    from langdetect import detector_factory
    from langdetect.detector import Detector
    from langdetect.utils.ngram import NGram

    detector_factory.init_factory()
    factory = detector_factory._factory
    defaults = Detector(factory)
    if (defaults.alpha, defaults.n_trial, defaults.prior_map) != (Detector.ALPHA_DEFAULT, _TRIALS, None):
        raise RuntimeError("langdetect's Detector defaults are not 1.0.9's, which langdetect_exact follows")
    return factory, Detector, NGram, defaults.max_text_length


class _Normaliser(dict):
    """str.translate table: each character to langdetect's `NGram.normalize` of it, filled on first use."""

    def __missing__(self, code: int) -> str:
        self[code] = value = _model()[2].normalize(chr(code))
        return value


_NORMALISE = _Normaliser()
_SPACES = re.compile(" {2,}")
_ASCII_RANGE = re.compile("[A-z]")  # langdetect's 'A' <= ch <= 'z' (which takes [\]^_` too)
_ABOVE_0300 = re.compile("[\u0300-\U0010ffff]")


def _append(text: str, max_length: int) -> str:
    """Detector.append: URLs and e-mail addresses blanked, Vietnamese normalised, cut to max_length
    characters, and runs of spaces collapsed to one."""
    _, detector, ngram, _ = _model()
    text = detector.URL_RE.sub(" ", text)
    text = detector.MAIL_RE.sub(" ", text)
    text = ngram.normalize_vi(text)
    return _SPACES.sub(" ", text[:max_length])


def _cleaning_text(text: str) -> str:
    """Detector.cleaning_text: Latin letters dropped from a text that is mostly not Latin."""
    from langdetect.utils.unicode_block import unicode_block

    # langdetect compares unicode_block's number with a block name here, so this is every character >= U+0300;
    # the comparison is kept as langdetect writes it.
    non_latin = sum(1 for ch in _ABOVE_0300.findall(text) if unicode_block(ch) != "Latin Extended Additional")
    if not non_latin:
        return text  # latin * 2 < 0 cannot hold: the common case, decided without counting
    without_latin = _ASCII_RANGE.sub("", text)
    latin = len(text) - len(without_latin)
    return without_latin if latin * 2 < non_latin else text


class _Table:
    """langdetect's n-gram probabilities (a list of 55 floats per n-gram) as rows of one numpy matrix, an
    n-gram's row added when it is first met: a text then takes its rows with one indexing operation."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.matrix = None

    def id(self, gram: str) -> int:
        found = self.ids.get(gram)
        if found is None:
            import numpy as np

            found = self.ids[gram] = len(self.ids)
            if self.matrix is None or found == len(self.matrix):  # grow by doubling
                grown = np.zeros((max(1024, 2 * found), len(_model()[0].langlist)))
                if self.matrix is not None:
                    grown[:found] = self.matrix
                self.matrix = grown
            self.matrix[found] = _model()[0].word_lang_prob_map[gram]
        return found


_TABLE = _Table()


@functools.lru_cache(maxsize=_WORDS)
def _word_ngrams(word: str, spaced: bool) -> tuple[int, ...]:
    """The n-grams (as `_TABLE` ids) langdetect's `_extract_ngrams` takes from one normalised word (no
    spaces in it) that follows a space or starts the text, and that is followed by a space when `spaced`.

    NGram's buffer restarts as " " after a space and keeps the last three characters, so at the word's
    i-th character it holds (" " + word)[max(0, i - 1) : i + 2]; n-grams of length 1-3 are its suffixes,
    skipped where this character and the one before are both upper case (`capitalword`)."""
    known = _model()[0].word_lang_prob_map
    padded = " " + word + (" " if spaced else "")
    found = []
    for end in range(2, len(padded) + 1):  # padded[:end] is the text up to this character
        ch, before = padded[end - 1], padded[end - 2]
        if ch.isupper() and before.isupper():
            continue
        grams = padded[max(0, end - 3) : end]
        for n in range(1, min(3, len(grams)) + 1):
            gram = grams[-n:]
            if gram != " " and gram in known:
                found.append(_TABLE.id(gram))
    return tuple(found)


def _ngrams(text: str) -> list[int]:
    """Detector._extract_ngrams of the cleaned text, in langdetect's order (as `_TABLE` ids)."""
    normalised = text.translate(_NORMALISE)
    words = normalised.split(" ")
    found: list[int] = []
    last = len(words) - 1
    for index, word in enumerate(words):
        if word:  # empty between consecutive spaces: langdetect's buffer stays " " and yields nothing
            found.extend(_word_ngrams(word, index < last))
    return found


def _trials(ngrams: list[int], seed) -> list[float]:
    """Detector._detect_block's trials: langdetect's averaged language probabilities."""
    import numpy as np

    _, detector, _, _ = _model()
    ids = np.fromiter(ngrams, dtype=np.intp, count=len(ngrams))
    present = np.zeros(len(_TABLE.ids), dtype=bool)
    present[ids] = True
    distinct = np.flatnonzero(present)
    table = _TABLE.matrix[distinct]  # this text's n-grams' rows, once each
    position = np.empty(len(present), dtype=np.intp)
    position[distinct] = np.arange(len(distinct))
    rows = position[ids].tolist()  # as long as langdetect's n-gram list: choice() draws the same numbers
    languages = table.shape[1]
    langprob = np.zeros(languages)
    rng = random.Random()
    rng.seed(seed)
    for _ in range(_TRIALS):
        prob = np.full(languages, 1.0 / languages)
        alpha = detector.ALPHA_DEFAULT + rng.gauss(0.0, 1.0) * detector.ALPHA_WIDTH
        factors = (alpha / detector.BASE_FREQ) + table  # weight + p, element by element, as langdetect adds
        i = 0
        while True:
            prob *= factors[rng.choice(rows)]
            if i % 5 == 0:
                values = prob.tolist()
                total = sum(values)  # Python's sum over the same list, as langdetect's _normalize_prob
                prob /= total
                # dividing by a positive number keeps the order, so the largest quotient is max(values) / total
                if max(values) / total > detector.CONV_THRESHOLD or i >= detector.ITERATION_LIMIT:
                    break
            i += 1
        langprob += prob / _TRIALS
    return langprob.tolist()


def detect_langs(text: str) -> list:
    """`langdetect.detect_langs(text)`: langdetect's `Language` list (probability > 0.1, highest first);
    raises langdetect's LangDetectException where the text has no features."""
    from langdetect.lang_detect_exception import ErrorCode, LangDetectException
    from langdetect.language import Language

    factory, detector, _, max_length = _model()
    ngrams = _ngrams(_cleaning_text(_append(text, max_length)))
    if not ngrams:
        raise LangDetectException(ErrorCode.CantDetectError, "No features in text.")
    probabilities = _trials(ngrams, factory.seed)  # DetectorFactory.seed, as each Detector reads it
    found = [Language(lang, p) for lang, p in zip(factory.langlist, probabilities, strict=True) if p > detector.PROB_THRESHOLD]
    found.sort(reverse=True)
    return found


def detect(text: str) -> str:
    """`langdetect.detect(text)`: the most probable language's code, or "unknown"."""
    found = detect_langs(text)
    return found[0].lang if found else "unknown"
