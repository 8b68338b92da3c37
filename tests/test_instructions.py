"""Table-driven checks of every instruction type, the offline text analysis, and the registry API.

    .venv/bin/pytest tests/test_instructions.py -q

Expected verdicts are derived by hand from IFEval's semantics (comments say why where it is not obvious).
"""

from __future__ import annotations

import random
import re
import time

import pytest

from mapl_cli.errors import MaplError
from mapl_cli.instructions import (
    REGISTRY,
    Instruction,
    all_ids,
    check_all,
    conflicts,
    get_instruction,
    loose_variants,
)
from mapl_cli.instructions.content import count_placeholders
from mapl_cli.instructions.format import count_bullets, titles
from mapl_cli.instructions.text import (
    count_capital_words,
    count_capital_words_slow,
    count_words,
    sent_tokenize,
)

IFEVAL_IDS = {
    "keywords:existence", "keywords:frequency", "keywords:forbidden_words", "keywords:letter_frequency",
    "language:response_language", "length_constraints:number_sentences", "length_constraints:number_paragraphs",
    "length_constraints:number_words", "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders", "detectable_content:postscript",
    "detectable_format:number_bullet_lists", "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections", "detectable_format:multiple_sections",
    "detectable_format:json_format", "detectable_format:title", "combination:two_responses",
    "combination:repeat_prompt", "startend:end_checker", "startend:quotation",
    "change_case:capital_word_frequency", "change_case:english_capital", "change_case:english_lowercase",
    "punctuation:no_comma",
}  # fmt: skip

AT_LEAST, LESS = "at least", "less than"

# (id, response, kwargs, expected)
CASES = [
    # keywords:existence -- case-insensitive regex search anywhere (substrings count)
    ("keywords:existence", "The Lantern glowed.", {"keywords": ["lantern"]}, True),
    ("keywords:existence", "The lantern glowed.", {"keywords": ["lantern", "moon"]}, False),
    ("keywords:existence", "A category of things.", {"keywords": ["cat"]}, True),  # substring
    ("keywords:existence", "Café au lait.", {"keywords": ["CAFÉ"]}, True),
    ("keywords:existence", "\u212aelvin", {"keywords": ["kelvin"]}, True),  # re's IGNORECASE: Kelvin sign ~ k
    ("keywords:existence", "   ", {"keywords": ["x"]}, False),  # blank follows nothing
    ("keywords:existence", "", {"keywords": ["x"]}, False),
    # keywords:frequency -- non-overlapping substring count vs relation
    ("keywords:frequency", "the cat, the hat, THE bat", {"keyword": "the", "frequency": 3, "relation": AT_LEAST}, True),
    ("keywords:frequency", "the cat, the hat, THE bat", {"keyword": "the", "frequency": 3, "relation": LESS}, False),
    ("keywords:frequency", "there then the", {"keyword": " the ", "frequency": 3, "relation": AT_LEAST}, True),
    # (the keyword is stripped, and "the" occurs in there, then and the)
    ("keywords:frequency", "no match here", {"keyword": "zebra", "frequency": 1, "relation": LESS}, True),
    ("keywords:frequency", "aaaa", {"keyword": "aa", "frequency": 3, "relation": LESS}, True),  # 2 matches
    ("keywords:frequency", "\u017fun \u017fun sun", {"keyword": "SUN", "frequency": 3, "relation": AT_LEAST}, True),
    # keywords:forbidden_words -- whole words only
    ("keywords:forbidden_words", "I love cats.", {"forbidden_words": ["cat"]}, True),  # "cats" != cat
    ("keywords:forbidden_words", "A cat's toy.", {"forbidden_words": ["cat"]}, False),  # ' is a boundary
    ("keywords:forbidden_words", "Big CAT.", {"forbidden_words": ["dog", "cat"]}, False),
    ("keywords:forbidden_words", "\n", {"forbidden_words": ["cat"]}, False),  # blank
    ("keywords:forbidden_words", "the \u017fun", {"forbidden_words": ["sun"]}, False),  # long s ~ s under IGNORECASE
    # keywords:letter_frequency -- case-insensitive character count
    ("keywords:letter_frequency", "Eerie EVE", {"letter": "e", "let_frequency": 5, "let_relation": AT_LEAST}, True),
    ("keywords:letter_frequency", "Eerie EVE", {"letter": "E", "let_frequency": 6, "let_relation": AT_LEAST}, False),
    ("keywords:letter_frequency", "Eerie EVE", {"letter": "z", "let_frequency": 1, "let_relation": LESS}, True),
    ("keywords:letter_frequency", "éèê", {"letter": "e", "let_frequency": 1, "let_relation": AT_LEAST}, False),
    # language:response_language (seeded langdetect; undetectable text passes any language)
    ("language:response_language", "Le chat dort sur la table depuis ce matin.", {"language": "fr"}, True),
    ("language:response_language", "The cat has been sleeping on the table all morning.", {"language": "fr"}, False),
    ("language:response_language", "12345 !!! ???", {"language": "ja"}, True),
    # length_constraints:number_sentences (NLTK's Punkt sentences, hand counts in SENTENCE_COUNTS below)
    ("length_constraints:number_sentences", "One. Two! Three?", {"num_sentences": 3, "relation": AT_LEAST}, True),
    ("length_constraints:number_sentences", "One. Two! Three?", {"num_sentences": 3, "relation": LESS}, False),
    ("length_constraints:number_sentences", "Dr. Who came. He left.", {"num_sentences": 3, "relation": LESS}, True),
    ("length_constraints:number_sentences", "Wow!!!", {"num_sentences": 2, "relation": AT_LEAST}, True),
    # length_constraints:number_paragraphs -- *** dividers; an empty middle paragraph fails
    ("length_constraints:number_paragraphs", "A\n***\nB\n***\nC", {"num_paragraphs": 3}, True),
    ("length_constraints:number_paragraphs", "***\nA\n***\nB\n***", {"num_paragraphs": 2}, True),  # ends ignored
    ("length_constraints:number_paragraphs", "A\n***\n***\nB", {"num_paragraphs": 2}, False),  # empty middle
    ("length_constraints:number_paragraphs", "A ****** B", {"num_paragraphs": 2}, False),  # *** *** -> empty middle
    ("length_constraints:number_paragraphs", "Just one.", {"num_paragraphs": 1}, True),
    ("length_constraints:number_paragraphs", "A\n\nB", {"num_paragraphs": 2}, False),  # blank lines don't count
    # length_constraints:number_words -- \w+ runs
    ("length_constraints:number_words", "don't stop-me now", {"num_words": 5, "relation": AT_LEAST}, True),
    ("length_constraints:number_words", "don't stop-me now", {"num_words": 5, "relation": LESS}, False),
    ("length_constraints:number_words", "日本語 テキスト", {"num_words": 2, "relation": AT_LEAST}, True),
    ("length_constraints:number_words", "... !!! ,,,", {"num_words": 1, "relation": LESS}, True),
    # length_constraints:nth_paragraph_first_word -- \n\n paragraphs, first word cut at punctuation
    ("length_constraints:nth_paragraph_first_word", "Intro here.\n\nSecond, yes.",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "second"}, True),
    ("length_constraints:nth_paragraph_first_word", "Intro here.\n\n\"Second\" quoted.",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "Second"}, True),
    ("length_constraints:nth_paragraph_first_word", "Intro here.\n\nSecond, yes.\n\nThird.",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "second"}, False),  # 3 paragraphs
    # IFEval indexes the raw split, so a leading blank piece shifts the paragraphs:
    ("length_constraints:nth_paragraph_first_word", "\n\nFirst.\n\nSecond.",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "second"}, False),
    ("length_constraints:nth_paragraph_first_word", "\n\nFirst.\n\nSecond.",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "first"}, True),
    ("length_constraints:nth_paragraph_first_word", "A\n\nB\n\nC",  # nth > num_paragraphs never matches
     {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "c"}, False),
    ("length_constraints:nth_paragraph_first_word", "Alpha\n\n\nbeta",  # "\n\n\n" -> ["Alpha", "\nbeta"]
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "beta"}, True),
    # detectable_content:number_placeholders -- non-greedy [.*?]
    ("detectable_content:number_placeholders", "[name] at [address]", {"num_placeholders": 2}, True),
    ("detectable_content:number_placeholders", "[name] at [address]", {"num_placeholders": 3}, False),
    ("detectable_content:number_placeholders", "[] and [[x]]", {"num_placeholders": 2}, True),
    ("detectable_content:number_placeholders", "[open\nclose]", {"num_placeholders": 1}, False),  # . stops at \n
    # detectable_content:postscript
    ("detectable_content:postscript", "Body.\n\nP.S. See you.", {"postscript_marker": "P.S."}, True),
    ("detectable_content:postscript", "Body.\n\np. s. see you.", {"postscript_marker": "P.S."}, True),
    ("detectable_content:postscript", "Body.\nPS see you.", {"postscript_marker": "P.S."}, False),
    ("detectable_content:postscript", "Body. P.P.S one more", {"postscript_marker": "P.P.S"}, True),
    ("detectable_content:postscript", "Body. P.S. only", {"postscript_marker": "P.P.S"}, False),
    ("detectable_content:postscript", "Body.\nP.P.S. one more", {"postscript_marker": "P.S."}, True),  # contains p.s.
    # detectable_format:number_bullet_lists -- "* x" and any line starting with "-"
    ("detectable_format:number_bullet_lists", "* a\n* b\n- c", {"num_bullets": 3}, True),
    ("detectable_format:number_bullet_lists", "* a\n**bold**\n---", {"num_bullets": 2}, True),  # --- counts
    ("detectable_format:number_bullet_lists", "* a\n* b", {"num_bullets": 1}, False),  # exactly
    ("detectable_format:number_bullet_lists", "no bullets", {"num_bullets": 1}, False),
    # detectable_format:constrained_response
    ("detectable_format:constrained_response", "  My answer is yes.  ", {}, True),
    ("detectable_format:constrained_response", "Well... My answer is maybe. Sorry.", {}, True),
    ("detectable_format:constrained_response", "my answer is yes.", {}, False),  # case-sensitive
    ("detectable_format:constrained_response", "My answer is yes", {}, False),  # needs the period
    # detectable_format:number_highlighted_sections -- *x* and **x** (whose single-star matches are empty)
    ("detectable_format:number_highlighted_sections", "*one* and *two*", {"num_highlights": 2}, True),
    ("detectable_format:number_highlighted_sections", "**bold**", {"num_highlights": 1}, True),
    ("detectable_format:number_highlighted_sections", "**bold**", {"num_highlights": 2}, False),  # "**" x2 empty
    ("detectable_format:number_highlighted_sections", "*a* **b**", {"num_highlights": 2}, True),
    ("detectable_format:number_highlighted_sections", "** ** and * *", {"num_highlights": 1}, False),
    ("detectable_format:number_highlighted_sections", "*across\nlines*", {"num_highlights": 1}, False),
    # detectable_format:multiple_sections -- case-sensitive splitter followed by a number
    ("detectable_format:multiple_sections", "Section 1\nA\nSection 2\nB",
     {"section_spliter": "Section", "num_sections": 2}, True),
    ("detectable_format:multiple_sections", "Section 1\nA\nSection 2\nB",
     {"section_spliter": "SECTION", "num_sections": 1}, False),
    ("detectable_format:multiple_sections", "Section1 A Section22 B Section C",
     {"section_spliter": " Section ", "num_sections": 2}, True),  # splitter is stripped; no space needed
    # detectable_format:json_format
    ("detectable_format:json_format", '```json\n{"a": {"b": [1, 2]}}\n```', {}, True),
    ("detectable_format:json_format", '```JSON\n[1, 2]\n```\n', {}, True),
    ("detectable_format:json_format", "42", {}, True),  # a JSON scalar is valid JSON
    ("detectable_format:json_format", '{"a": 1} trailing', {}, False),
    ("detectable_format:json_format", '```python\n{"a": 1}\n```', {}, False),
    ("detectable_format:json_format", "[" * 5000 + "]" * 5000, {}, False),  # too deep for json (IFEval crashes)
    # detectable_format:title
    ("detectable_format:title", "<<Ode to Joy>>\nText", {}, True),
    ("detectable_format:title", "<< >>", {}, False),
    ("detectable_format:title", "<<multi\nline>>", {}, False),
    ("detectable_format:title", "Text <<<A>>> more", {}, True),
    # combination:two_responses
    ("combination:two_responses", "One answer.\n******\nAnother answer.", {}, True),
    ("combination:two_responses", "Same.\n******\nSame.", {}, False),
    ("combination:two_responses", "******\nA\n******\nB\n******", {}, True),  # blank ends allowed
    ("combination:two_responses", "A\n******\n\n******\nB", {}, False),  # blank middle
    ("combination:two_responses", "A\n*******\nB", {}, True),  # 7 stars: "A\n" and "*\nB"
    # combination:repeat_prompt -- case-insensitive prefix after strip
    ("combination:repeat_prompt", "  write A POEM. Here it is.", {"prompt_to_repeat": "Write a poem."}, True),
    ("combination:repeat_prompt", "Sure! Write a poem.", {"prompt_to_repeat": "Write a poem."}, False),
    # startend:end_checker -- strip, strip quotes, case-insensitive suffix
    ("startend:end_checker", 'Done. Any other questions?"\n', {"end_phrase": "Any other questions?"}, True),
    ("startend:end_checker", "Done. any other QUESTIONS?", {"end_phrase": " Any other questions? "}, True),
    ("startend:end_checker", "Any other questions? Bye.", {"end_phrase": "Any other questions?"}, False),
    # startend:quotation
    ("startend:quotation", '  "Quoted."\n', {}, True),
    ("startend:quotation", '"', {}, False),  # length must exceed 1
    ("startend:quotation", '""', {}, True),
    ("startend:quotation", "“Curly.”", {}, False),
    # change_case:capital_word_frequency -- treebank tokens that are all upper case ("I" counts)
    ("change_case:capital_word_frequency", "I saw NASA and the FBI.", {"capital_frequency": 3,
     "capital_relation": AT_LEAST}, True),
    ("change_case:capital_word_frequency", "I saw NASA and the FBI.", {"capital_frequency": 3,
     "capital_relation": LESS}, False),
    ("change_case:capital_word_frequency", "DON'T", {"capital_frequency": 2, "capital_relation": AT_LEAST},
     True),  # DO + N'T
    # change_case:english_capital / english_lowercase
    ("change_case:english_capital", "THIS IS MY ANSWER IN ENGLISH.", {}, True),
    ("change_case:english_capital", "THIS IS MY answer IN ENGLISH.", {}, False),
    ("change_case:english_capital", "ПРИВЕТ, КАК У ТЕБЯ ДЕЛА СЕГОДНЯ?", {}, False),
    ("change_case:english_lowercase", "this is my answer in english.", {}, True),
    ("change_case:english_lowercase", "this is my answer in English.", {}, False),
    ("change_case:english_lowercase", "123 456", {}, False),  # no cased letter: islower() is False
    # punctuation:no_comma
    ("punctuation:no_comma", "No commas here.", {}, True),
    ("punctuation:no_comma", "One, two.", {}, False),
    ("punctuation:no_comma", "Full-width comma，is not a comma", {}, True),
]  # fmt: skip


@pytest.mark.parametrize(("inst_id", "response", "kwargs", "expected"), CASES)
def test_check(inst_id, response, kwargs, expected):
    assert get_instruction(inst_id).check(response, kwargs) is expected


def test_every_id_has_cases_with_both_verdicts():
    seen = {}
    for inst_id, _, _, expected in CASES:
        seen.setdefault(inst_id, set()).add(expected)
    assert set(seen) == IFEVAL_IDS
    assert all(v == {True, False} for v in seen.values()), {k for k, v in seen.items() if len(v) < 2}


def test_ifeval_style_kwargs_with_none_and_extra_keys():
    # HF IFEval rows carry every argument name, unused ones set to None
    row = {"num_words": 3, "relation": "at least", "keywords": None, "language": None, "num_bullets": None}
    assert get_instruction("length_constraints:number_words").check("one two three", row)
    assert get_instruction("punctuation:no_comma").check("fine", {"keywords": None, "prompt_to_repeat": None})
    assert get_instruction("punctuation:no_comma").check("fine", None)


@pytest.mark.parametrize(
    ("inst_id", "kwargs", "needle"),
    [
        ("length_constraints:number_words", {"num_words": None, "relation": "at least"}, "num_words"),
        ("length_constraints:number_words", {"num_words": 5, "relation": "more than"}, "relation"),
        ("keywords:letter_frequency", {"letter": "ab", "let_frequency": 1, "let_relation": "at least"}, "letter"),
        ("length_constraints:nth_paragraph_first_word",
         {"num_paragraphs": 2, "nth_paragraph": 0, "first_word": "x"}, "nth_paragraph"),
        ("combination:repeat_prompt", {"prompt_to_repeat": "  "}, "prompt_to_repeat"),
        ("detectable_format:number_bullet_lists", {"num_bullets": "many"}, "num_bullets"),
        ("detectable_format:number_bullet_lists", {"num_bullets": float("nan")}, "num_bullets"),
        ("detectable_format:number_bullet_lists", {"num_bullets": 2.5}, "num_bullets"),
    ],
)  # fmt: skip
def test_bad_kwargs_raise_one_line_maplerror(inst_id, kwargs, needle):
    with pytest.raises(MaplError) as info:
        get_instruction(inst_id).check("Some response.", kwargs)
    assert needle in str(info.value) and "\n" not in str(info.value)


# --- text analysis ----------------------------------------------------------------------------------------

# Punkt (English parameters) marks every `.`, `?`, `!` as a candidate break, then keeps a period that ends a
# learned abbreviation (dr, mr, mrs, st, p.m, u.s, ... but not etc, e.g, no) or an initial unless the next
# word looks like a sentence start (capitalised, and by its learned statistics or list of starters). The
# counts are NLTK's (nltk.sent_tokenize after tests.nltk_offline.install()); each comment says why.
SENTENCE_COUNTS = [
    ("", 0),
    ("   \n ", 0),
    ("One sentence without a stop", 1),
    ("One. Two! Three?", 3),
    ("Dr. Smith went home. He slept.", 2),  # "dr" is a learned abbreviation
    ("Mr. and Mrs. Brown met at St. Paul's.", 1),
    ("We bought apples, pears, etc. Then we left.", 2),
    ("We bought apples etc. and pears.", 2),  # "etc" is not in the abbreviation list: its period ends one
    ("Use tools, e.g. hammers. Or not.", 3),  # nor "e.g"
    ("No. 5 is here.", 2),  # nor "no"
    ("J. R. R. Tolkien wrote books.", 1),  # initials before a capitalised name
    ("The U.S. Army arrived.", 1),
    ("It was made in the U.S. The end.", 2),  # "The" is a learned sentence starter
    ("Born in the U.S. However, he left.", 2),
    ("The meeting is at 3 p.m. Please be on time.", 2),  # "please" was seen only lower-case mid-sentence
    ("Wait... What happened?", 1),  # an ellipsis before a word that is not a known starter
    ("It costs 3.50 dollars. Cheap.", 2),  # no break inside a number
    ("Here is a list:\n1. Apples\n2. Pears", 3),  # "1." and "2." end sentences
    ('He said "Hi." Then he left.', 2),  # the closing quote stays with its sentence
    ("(Sent1.) Sent2.", 2),
    ("Title line\nBody line without stop", 1),  # newlines alone never split
    ("Heading\n\nText. More", 2),  # nor do blank lines
    ("Really?! Yes.", 2),
    ("Wow!!!", 2),  # NLTK's quirk: "Wow!!" and "!"
    ("Version 2.0 is out. Get it.", 2),
]


@pytest.mark.parametrize(("text", "count"), SENTENCE_COUNTS)
def test_sentence_hand_counts(text, count):
    assert len(sent_tokenize(text)) == count, sent_tokenize(text)


def test_sentences_keep_leading_whitespace_and_inner_newlines():
    """As NLTK: the first sentence keeps leading whitespace, the last loses trailing whitespace."""
    assert sent_tokenize("  First one.  Second\none!  tail ") == ("  First one.", "Second\none!", "tail")


@pytest.mark.parametrize(
    ("text", "count"),
    [("Hello world", 2), ("don't", 2), ("e-mail me@x.org", 5), ("", 0), ("日本語 です", 2), ("a_b c", 2)],
)
def test_word_count_is_backslash_w_runs(text, count):
    assert count_words(text) == count


CAPITAL_COUNTS = [
    ("I saw NASA and the FBI.", 3),
    ("The Cat sat.", 0),
    ("DON'T STOP", 3),  # DO, N'T, STOP
    ("I'm here", 1),  # I, 'm
    ("McDONALD'S opened.", 1),  # McDONALD, 'S
    ("CANNOT", 2),  # CAN + NOT (treebank contraction)
    ("(USA) [EU] {UN}", 3),
    ("A.B.C. went home. OK!", 2),
    ('He yelled "STOP." Then "GO!"', 2),
    ("", 0),
    ("123 ABC123 _X_", 2),  # ABC123 and _X_ are upper; 123 has no cased letter
]


@pytest.mark.parametrize(("text", "count"), CAPITAL_COUNTS)
def test_capital_word_hand_counts(text, count):
    assert count_capital_words(text) == count
    assert count_capital_words_slow(text) == count


def test_fast_capital_count_equals_word_tokenize():
    """count_capital_words tokenises token by token (cached); it must equal the count over whole
    `word_tokenize` output (treebank over whole Punkt sentences)."""
    rng = random.Random(7)
    pieces = ["I'M", "DON'T", "NASA,", "(FBI)", "\"WOW.\"", "McDONALD'S.", "gonna", "GONNA", "Wanna", "The",
              "end.", "U.S.", "'TIS", "it's", "IT'S", "--", "A--B", "\"Hi\"", "'quoted'", "x:y", "A:B", "3,000",
              "ok?!", "...", "Well...", "E.g.", "[NOTE]", "<TAG>", "#1", "@HOME", "C++", "*BOLD*", "café", "ÉCOLE",
              "\n", "\n\n", "Mr.", "Dr.", "I", "a", "ÀB", "'S", "N'T"]  # fmt: skip
    for _ in range(400):
        text = " ".join(rng.choice(pieces) for _ in range(rng.randint(1, 14)))
        assert count_capital_words(text) == count_capital_words_slow(text), text


# --- registry API -----------------------------------------------------------------------------------------


def test_registry_covers_ifeval_and_follows_the_protocol():
    assert set(REGISTRY) == IFEVAL_IDS
    assert all_ids() == sorted(IFEVAL_IDS)
    for inst_id, inst in REGISTRY.items():
        assert isinstance(inst, Instruction) and inst.id == inst_id
        assert not vars(inst), f"{inst_id} stores state on self"


def test_unknown_id_error_is_one_line_with_a_close_match():
    with pytest.raises(MaplError) as info:
        get_instruction("keywords:existance")
    assert "keywords:existence" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(MaplError, match="unknown instruction id"):
        get_instruction("totally-unrelated")


def test_conflicts():
    assert conflicts("keywords:existence", "keywords:existence")  # a type conflicts with itself
    assert conflicts("change_case:english_capital", "language:response_language")
    assert conflicts("language:response_language", "change_case:english_capital")  # symmetric
    assert conflicts("detectable_format:constrained_response", "punctuation:no_comma")
    assert not conflicts("detectable_format:json_format", "keywords:existence")
    assert not conflicts("punctuation:no_comma", "keywords:existence")
    with pytest.raises(MaplError):
        conflicts("keywords:existence", "nope")


def test_check_all():
    ids = ["punctuation:no_comma", "length_constraints:number_words", "detectable_format:title"]
    kwargs = [{}, {"num_words": 2, "relation": "at least"}, None]
    assert check_all("<<T>> no commas here", ids, kwargs) == [True, True, True]
    assert check_all("a, b", ids, kwargs) == [False, True, False]
    assert check_all("   ", ids, kwargs) == [False, False, False]
    with pytest.raises(MaplError):
        check_all("x", ids, kwargs[:2])


def test_loose_variants_follow_ifeval_order():
    response = "Sure, here:\n*The* answer\nBye"
    assert loose_variants(response) == [
        response,
        "Sure, here:\nThe answer\nBye",
        "*The* answer\nBye",
        "Sure, here:\n*The* answer",
        "*The* answer",
        "The answer\nBye",
        "Sure, here:\nThe answer",
        "The answer",
    ]
    # loose scoring: a leading "Sure," line no longer breaks no_comma
    comma = get_instruction("punctuation:no_comma")
    assert not comma.check(response, {})
    assert any(comma.check(v, {}) for v in loose_variants(response))


def test_loose_variants_of_one_line_and_empty():
    assert loose_variants("only") == ["only", "only", "", "", "", "", "", ""]
    assert loose_variants("") == [""] * 8


# --- bounded time: patterns from data, and linear scans for IFEval's quadratic patterns ------------------

_STAR_BULLET = re.compile(r"^\s*\*[^\*].*$", re.MULTILINE)  # IFEval's patterns, as the reference writes them
_DASH_BULLET = re.compile(r"^\s*-.*$", re.MULTILINE)
_TITLE = re.compile(r"<<[^\n]+>>")
_PLACEHOLDER = re.compile(r"\[.*?\]")


def test_linear_scans_count_what_ifevals_patterns_count():
    """Short strings over an alphabet of the characters the patterns care about (and whitespace that only
    re's \\s knows: \\x1c, \\u2028), so every branch of the scans is compared with the regex."""
    rng = random.Random(7)
    alphabet = ["*", "-", " ", "\n", "a", "\t", "[", "]", "<", ">", "\x1c", "\u2028", "\r", "**", "<<", ">>"]
    for _ in range(30_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        assert count_bullets.__wrapped__(text) == len(_STAR_BULLET.findall(text)) + len(_DASH_BULLET.findall(text)), repr(text)
        assert titles(text) == _TITLE.findall(text), repr(text)
        assert count_placeholders.__wrapped__(text) == len(_PLACEHOLDER.findall(text)), repr(text)


@pytest.mark.parametrize(
    "inst_id, kwargs, response",
    [
        ("detectable_content:number_placeholders", {"num_placeholders": 1}, "[" * 200_000),  # regex: minutes
        ("detectable_content:number_placeholders", {"num_placeholders": 1}, "[a" * 100_000),
        ("detectable_format:number_bullet_lists", {"num_bullets": 1}, "\n" * 200_000),
        ("detectable_format:number_bullet_lists", {"num_bullets": 1}, " \n" * 100_000),
        ("detectable_format:title", {}, "<<" * 100_000),
        ("detectable_content:postscript", {"postscript_marker": "Note:"}, " " * 200_000),
    ],
)
def test_hostile_responses_are_checked_in_linear_time(inst_id, kwargs, response):
    started = time.perf_counter()
    get_instruction(inst_id).check(response, kwargs)
    assert time.perf_counter() - started < 1.0


BOMB = "a" * 5_000 + "!"


@pytest.mark.parametrize(
    "inst_id, kwargs, as_text",
    [
        # as_text: a response holding the pattern as plain text, whose verdict flips once it is matched so
        ("keywords:existence", {"keywords": ["(a|aa)+$"]}, "x (a|aa)+$ y"),
        ("keywords:frequency", {"keyword": "(a|a)*$", "frequency": 1, "relation": "at least"}, "x (a|a)*$ y"),
        ("keywords:forbidden_words", {"forbidden_words": ["(a|aa)+!x"]}, "z(a|aa)+!x ."),
        ("detectable_content:postscript", {"postscript_marker": "(a|aa)+z$"}, "x\n(a|aa)+z$ y"),
        ("detectable_format:multiple_sections", {"section_spliter": "(a|aa)+!x", "num_sections": 2},
         "(a|aa)+!x 1 intro (a|aa)+!x 2 body"),
        ("keywords:existence", {"keywords": ["((((a{100}){100}){100}){100})"]}, "((((a{100}){100}){100}){100})"),
    ],
)
def test_catastrophic_patterns_end_in_well_under_a_second_and_are_matched_literally(inst_id, kwargs, as_text, capsys):
    """`(a|aa)+$` needs exponential time on 'aaa...!' with backtracking engines (re takes hours here); the
    last one makes the `regex` engine unroll 10^8 pieces (gigabytes) if compiled."""
    inst = get_instruction(inst_id)
    started = time.perf_counter()
    first = inst.check(BOMB, kwargs)
    again = inst.check(BOMB, kwargs)  # from now on plain text: no second time budget spent
    assert time.perf_counter() - started < 0.5
    assert first == again
    assert inst.check(as_text, kwargs) != first
    assert "matched as plain text" in capsys.readouterr().err


@pytest.mark.parametrize(
    "inst_id, kwargs, response, expected",
    [
        # ordinary regex syntax keeps IFEval's meaning (the pattern, not the text)
        ("keywords:existence", {"keywords": ["colou?r"]}, "The color red.", True),
        ("keywords:existence", {"keywords": ["colou?r"]}, "colou?r", False),
        ("keywords:forbidden_words", {"forbidden_words": ["cat|dog"]}, "A dog barked.", False),
        # IFEval wraps the pattern as \bcat|dog\b: "\bcat" or "dog\b", so a category counts, a bobcat not
        ("keywords:forbidden_words", {"forbidden_words": ["cat|dog"]}, "A category.", False),
        ("keywords:forbidden_words", {"forbidden_words": ["cat|dog"]}, "A bobcat.", True),
        ("keywords:frequency", {"keyword": "a.c", "frequency": 2, "relation": "at least"}, "abc and a-c", True),
        ("detectable_content:postscript", {"postscript_marker": "N\\.B\\."}, "Done.\nn.b. later", True),
        ("detectable_format:multiple_sections", {"section_spliter": "Sec(tion)?", "num_sections": 2},
         "Sec 1\nintro\nSection 2\nbody", True),
        # an invalid pattern (IFEval crashes) is plain text
        ("keywords:existence", {"keywords": ["(sic"]}, "It is spelled (sic) here.", True),
    ],
)
def test_ordinary_patterns_keep_their_regex_meaning(inst_id, kwargs, response, expected):
    assert get_instruction(inst_id).check(response, kwargs) is expected
