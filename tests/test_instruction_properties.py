"""Property tests over every registered instruction type (MAPL's generator contract), judged by a second opinion.

    .venv/bin/pytest tests/test_instruction_properties.py -q

`generate(targets, rng)` already refuses arguments under which mapl's own checker disagrees with a wanted
verdict, so re-running that checker proves nothing. These tests judge the generated arguments with what
generation never consults:

- the IFEval reference checkers (lm-eval's `lm_eval.tasks.ifeval`, through the harness rule that
  tests/test_reference_agreement.py uses): every response gets its wanted verdict from the reference too, so
  a generated value the reference reads differently (a 0 or "" that its harness drops and replaces by a
  random draw, a keyword it treats as a regular expression, a count it takes as exclusive) fails here;
- the written instruction: counts, relations and the language are read back from `describe`'s text (not
  from the arguments), string arguments must appear in it verbatim, and the reference, given what the text
  says, still gives every wanted verdict; argument-free types must name what they ask for.

Cases are seeded (no test draws differently from run to run): per type, 80 target lists of one or two
responses, drawn from test_reference_agreement's corpus and its per-type `featured` responses, each with a
random wanted verdict. Every type must produce arguments for at least 10 of them, with both verdicts.
IFBench's held-out types have no generator (they are check-only), so there is nothing of theirs to judge.
Also here: contradictory or impossible targets are refused, hand-built targets are solved, and `describe`
varies its wording.
"""

from __future__ import annotations

import json
import random
import re

import pytest

from mapl_cli.instructions import REGISTRY, all_ids

CASES_PER_TYPE = 80
MIN_PRODUCED = 10


@pytest.fixture(scope="module")
def reference():
    """tests/test_reference_agreement.py as a module (its corpus, `featured` and `reference_verdict`), and
    the reference's language table; skips when lm-eval is not installed."""
    from tests.nltk_offline import install

    install()
    pytest.importorskip("lm_eval.tasks.ifeval.instructions_registry")
    from tests import test_reference_agreement as agreement

    return agreement


@pytest.fixture(scope="module")
def corpus(reference):
    return reference.build_corpus(random.Random(7), 200)


def target_lists(inst_id: str, reference, corpus) -> list[list[tuple[str, bool]]]:
    rng = random.Random(f"properties:{inst_id}")
    lists = []
    for _ in range(CASES_PER_TYPE):
        picks = [
            reference.featured(inst_id, rng) if rng.random() < 0.5 else rng.choice(corpus)
            for _ in range(rng.choice((1, 1, 2)))
        ]
        lists.append([(response, rng.random() < 0.5) for response in picks])
    return lists


def generated_cases(inst_id: str, reference, corpus):
    """(targets, kwargs, description) for every target list the generator solved."""
    inst = REGISTRY[inst_id]
    cases = []
    for i, targets in enumerate(target_lists(inst_id, reference, corpus)):
        rng = random.Random(i)
        kwargs = inst.generate(targets, rng)
        if kwargs is not None:
            cases.append((targets, kwargs, inst.describe(kwargs, rng)))
    verdicts = {wanted for targets, _, _ in cases for _, wanted in targets}
    assert len(cases) >= MIN_PRODUCED, f"{inst_id}: arguments for only {len(cases)} of {CASES_PER_TYPE} lists"
    assert verdicts == {True, False}, f"{inst_id}: only wanted verdicts {verdicts} were produced"
    return cases


@pytest.mark.parametrize("inst_id", all_ids())
def test_the_reference_checker_gives_the_wanted_verdicts_under_generated_arguments(inst_id, reference, corpus):
    wrong = []
    for targets, kwargs, _ in generated_cases(inst_id, reference, corpus):
        assert json.loads(json.dumps(kwargs)) == kwargs
        for response, wanted in targets:
            if reference.reference_verdict(inst_id, kwargs, response) is not wanted:
                wrong.append((response, wanted, kwargs))
    assert wrong == []


# --- what the written instruction says -------------------------------------------------------------------

_AT_LEAST = re.compile(r"(?:at least|no fewer than) (\d+)|(\d+) \w+ or more|at least once|at least one time|one or more times")
_LESS_THAN = re.compile(r"(?:less than|fewer than|under) (\d+)")
#: (count argument, relation argument or None, the noun the count is written before) of counting types.
_COUNTS = {
    "keywords:frequency": ("frequency", "relation", None),
    "keywords:letter_frequency": ("let_frequency", "let_relation", None),
    "length_constraints:number_sentences": ("num_sentences", "relation", None),
    "length_constraints:number_words": ("num_words", "relation", None),
    "change_case:capital_word_frequency": ("capital_frequency", "capital_relation", None),
    "detectable_content:number_placeholders": ("num_placeholders", None, "placeholder"),
    "detectable_format:number_highlighted_sections": ("num_highlights", None, "section"),
    "detectable_format:number_bullet_lists": ("num_bullets", None, "bullet point"),
    "detectable_format:multiple_sections": ("num_sections", None, "section"),
    "length_constraints:number_paragraphs": ("num_paragraphs", None, "paragraph"),
    "length_constraints:nth_paragraph_first_word": ("num_paragraphs", None, "paragraph"),
}
#: Arguments copied from kwargs once the text is seen to quote them verbatim.
_QUOTED = {
    "keywords:existence": "keywords",
    "keywords:forbidden_words": "forbidden_words",
    "keywords:frequency": "keyword",
    "keywords:letter_frequency": "letter",
    "combination:repeat_prompt": "prompt_to_repeat",
    "startend:end_checker": "end_phrase",
    "detectable_content:postscript": "postscript_marker",
    "detectable_format:multiple_sections": "section_spliter",
    "length_constraints:nth_paragraph_first_word": "first_word",
}
#: What the text of an argument-free type must mention (case-insensitive patterns, all of them).
_NAMES = {
    "punctuation:no_comma": [r"comma"],
    "detectable_format:json_format": [r"JSON"],
    "detectable_format:title": [r"title", r"<<[^<>]+>>"],
    "detectable_format:constrained_response": [r"My answer is yes\.", r"My answer is no\.", r"My answer is maybe\."],
    "startend:quotation": [r"double quot|quotation mark"],
    "combination:two_responses": [r"two", r"\*{6}"],
    "change_case:english_capital": [r"english", r"capital|upper case"],
    "change_case:english_lowercase": [r"english", r"lower ?case|without a single capital"],
}


def arguments_from_text(inst_id: str, text: str, kwargs: dict, languages: dict[str, str]) -> dict:
    """The arguments a reader of `text` would take: numbers, relations and the language read from the text,
    string arguments from `kwargs` after checking that the text quotes them."""
    stated: dict = {}
    if inst_id in _COUNTS:
        count, relation, noun = _COUNTS[inst_id]
        if noun is not None:
            found = re.search(rf"(\d+) {noun}", text)
            assert found, (inst_id, text)
            stated[count] = int(found[1])
        elif found := _AT_LEAST.search(text):
            stated[count], stated[relation] = int(found[1] or found[2] or 1), "at least"
        else:
            found = _LESS_THAN.search(text)
            assert found, (inst_id, text)
            stated[count], stated[relation] = int(found[1]), "less than"
    if inst_id == "length_constraints:nth_paragraph_first_word":
        found = re.search(r"[Pp]aragraph (\d+)|(\d+)(?:st|nd|rd|th) (?:paragraph|one)", text)
        assert found, text
        stated["nth_paragraph"] = int(found[1] or found[2])
    if inst_id in _QUOTED:
        name = _QUOTED[inst_id]
        values = kwargs[name] if isinstance(kwargs[name], list) else [kwargs[name]]
        assert all(value in text for value in values), (inst_id, text, kwargs)
        stated[name] = kwargs[name]
    if inst_id == "language:response_language":
        named = [code for code, language in languages.items() if re.search(rf"\b{language}\b", text)]
        assert len(named) == 1, (text, named)
        stated["language"] = named[0]
    for pattern in _NAMES.get(inst_id, ()):
        assert re.search(pattern, text, re.IGNORECASE), (inst_id, pattern, text)
    return stated


def test_every_type_is_read_back_from_its_text():
    readable = set(_COUNTS) | set(_QUOTED) | set(_NAMES) | {"language:response_language"}
    assert readable == set(REGISTRY)


@pytest.mark.parametrize("inst_id", all_ids())
def test_the_written_instruction_gives_the_wanted_verdicts(inst_id, reference, corpus):
    """Grade each response by what its instruction text says, with the reference checker."""
    languages = reference.instructions_util.LANGUAGE_CODES
    wrong = []
    for targets, kwargs, text in generated_cases(inst_id, reference, corpus):
        stated = arguments_from_text(inst_id, text, kwargs, languages)
        for response, wanted in targets:
            if reference.reference_verdict(inst_id, stated, response) is not wanted:
                wrong.append((response, wanted, text, stated))
    assert wrong == []


@pytest.mark.parametrize("inst_id", all_ids())
def test_contradictory_targets_are_refused(inst_id):
    """The same response cannot both follow and violate one instruction."""
    response = "The lighthouse keeper wrote letters. * one\n* two\n<<T>> P.S. bye"
    for seed in range(5):
        assert REGISTRY[inst_id].generate([(response, True), (response, False)], random.Random(seed)) is None


A = (
    "The lighthouse keeper wrote letters every evening. He never sent them.\n\n"
    "His daughter found them years later, and she read each one aloud."
)
B = "* Apples are red\n* Pears are green\n* Plums are purple"
C = '{"answer": "yes"}'
D = "<<My Title>>\nA short poem about the sea."
E = "My answer is yes."
F = "Le chat dort sur la table depuis ce matin et il ne veut pas bouger du tout."
G = "THIS IS AN ANSWER IN CAPITAL LETTERS ABOUT THE WEATHER TODAY."
H = "this is an answer in lowercase letters about the weather today."
I2 = "First answer here.\n******\nSecond answer here."
J = '"A quoted reply about the weather."'
K = "Section 1\nIntro.\nSection 2\nBody.\nSection 3\nEnd."
L = "Fill in [name] and [address], please. *Important* and *urgent* notes."
M = "Thanks for asking.\n\nP.S. See you soon."
N = "Part one\n***\nPart two\n***\nPart three"

SOLVABLE = {
    "keywords:existence": [[(A, True), (B, False)], [(A, False)], [(B, True), (A, False)]],
    "keywords:frequency": [[(A, True), (B, False)], [(A, False), (B, True)]],
    "keywords:forbidden_words": [[(A, True), (B, False)], [(A, False)], [(B, True)]],
    "keywords:letter_frequency": [[(A, True), (B, False)], [(B, True), (A, False)]],
    "language:response_language": [[(F, True), (A, False)], [(A, True), (F, False)], [(A, False)]],
    "length_constraints:number_sentences": [[(A, True), (E, False)], [(E, True), (A, False)]],
    "length_constraints:number_paragraphs": [[(N, True), (A, False)], [(A, False)]],
    "length_constraints:number_words": [[(A, True), (E, False)], [(E, True), (A, False)]],
    "length_constraints:nth_paragraph_first_word": [[(A, True), (B, False)], [(B, False)]],
    "detectable_content:number_placeholders": [[(L, True), (A, False)], [(A, False)]],
    "detectable_content:postscript": [[(M, True), (A, False)], [(A, False)]],
    "detectable_format:number_bullet_lists": [[(B, True), (A, False)], [(A, False)]],
    "detectable_format:constrained_response": [[(E, True), (A, False)], [(A, False)]],
    "detectable_format:number_highlighted_sections": [[(L, True), (A, False)], [(A, False)]],
    "detectable_format:multiple_sections": [[(K, True), (A, False)], [(A, False)]],
    "detectable_format:json_format": [[(C, True), (A, False)]],
    "detectable_format:title": [[(D, True), (A, False)]],
    "combination:two_responses": [[(I2, True), (A, False)]],
    "combination:repeat_prompt": [[(A, True), (B, False)], [(A, False)]],
    "startend:end_checker": [[(A, True), (B, False)], [(A, False), (B, False)]],
    "startend:quotation": [[(J, True), (A, False)]],
    "change_case:capital_word_frequency": [[(G, True), (H, False)], [(H, True), (G, False)]],
    "change_case:english_capital": [[(G, True), (A, False)]],
    "change_case:english_lowercase": [[(H, True), (A, False)]],
    "punctuation:no_comma": [[(B, True), (A, False)]],
}


def test_solvable_table_covers_the_registry():
    assert set(SOLVABLE) == set(REGISTRY)


@pytest.mark.parametrize("inst_id", all_ids())
def test_generator_succeeds_on_targets_built_for_it(inst_id):
    inst = REGISTRY[inst_id]
    for targets in SOLVABLE[inst_id]:
        for seed in range(10):
            kwargs = inst.generate(targets, random.Random(seed))
            assert kwargs is not None, (targets, seed)
            assert [inst.check(r, kwargs) for r, _ in targets] == [w for _, w in targets]


@pytest.mark.parametrize(
    ("inst_id", "targets"),
    [
        ("detectable_format:number_bullet_lists", [(B, True), (B.replace("Plums", "Figs"), False)]),  # both 3
        ("detectable_format:json_format", [(C, False)]),
        ("detectable_format:title", [(A, True)]),
        ("change_case:english_capital", [(A, True)]),
        ("punctuation:no_comma", [(A, True)]),
        ("detectable_content:number_placeholders", [(A, True)]),
        ("language:response_language", [(A, True), (E, True), (F, True)]),  # English and French
        ("keywords:existence", [("", True)]),  # a blank response follows nothing
    ],
)
def test_generator_refuses_impossible_targets(inst_id, targets):
    for seed in range(5):
        assert REGISTRY[inst_id].generate(targets, random.Random(seed)) is None


@pytest.mark.parametrize("inst_id", all_ids())
def test_describe_has_three_phrasings(inst_id):
    inst = REGISTRY[inst_id]
    kwargs = inst.generate(SOLVABLE[inst_id][0], random.Random(0))
    texts = {inst.describe(kwargs, random.Random(seed)) for seed in range(60)}
    assert all(t.strip() for t in texts)
    assert len(texts) >= 3, texts


@pytest.mark.parametrize(
    "inst_id", ["length_constraints:number_words", "keywords:existence", "keywords:letter_frequency"]
)
def test_generated_arguments_vary_with_the_rng(inst_id):
    inst = REGISTRY[inst_id]
    seen = {json.dumps(inst.generate([(A, True), (E, False)], random.Random(seed))) for seed in range(30)}
    assert len(seen) >= 3, seen


def test_generated_arguments_read_sensibly():
    rng = random.Random(3)
    words = REGISTRY["length_constraints:number_words"]
    keywords = REGISTRY["keywords:existence"]
    for _ in range(50):
        kw = words.generate([(E, False)], rng)
        assert kw["num_words"] >= 5  # never "at least 0 words"
        ex = keywords.generate([(A, True)], rng)
        assert all(len(k) >= 4 and k not in {"the", "and", "with", "they"} for k in ex["keywords"])
