"""Property tests over every registered instruction type (MAPL's generator contract).

    .venv/bin/pytest tests/test_instruction_properties.py -q

- Whenever `generate(targets, rng)` returns kwargs, `check` gives every response its wanted verdict, and the
  kwargs are JSON-serialisable and describable.
- `describe` has at least three phrasings per type.
- Every type's generator succeeds on targets built for it (a generator that always says None fails).
"""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapl_cli.instructions import REGISTRY, all_ids

PIECES = [
    "The lighthouse keeper wrote letters every evening.",
    "He never sent them, and nobody knew why.",
    "Is this the right answer? Maybe!",
    "Dr. Smith arrived at 5 p.m. with the U.S. team.",
    "I think NASA and the FBI are busy.",
    "* first bullet point",
    "* second bullet point",
    "- a dash item",
    "**Bold heading**",
    "Use *this part* carefully.",
    "Fill in [name] and [address].",
    "<<A Fine Title>>",
    "SECTION 1",
    "Section 2",
    "Part 3",
    "P.S. Water the plants.",
    "P.P.S. One more thing.",
    "***",
    "******",
    '{"answer": "yes", "items": [1, 2]}',
    "My answer is yes.",
    "Any other questions?",
    "Le chat dort sur la table depuis ce matin.",
    "El perro corre por el parque todos los días.",
    "ALL CAPITAL LETTERS IN THIS LINE.",
    "only lowercase letters in this line.",
    "Café, naïve, ÉCOLE: ünïcödé.",
    "12345",
    '"',
]
SEPARATORS = [" ", "\n", "\n\n", "\n\n***\n\n", "\n******\n", ""]


@st.composite
def responses(draw):
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=40))  # raw unicode junk, blanks included
    parts = draw(st.lists(st.sampled_from(PIECES), min_size=1, max_size=8))
    text = parts[0]
    for part in parts[1:]:
        text += draw(st.sampled_from(SEPARATORS)) + part
    case = draw(st.sampled_from(["keep", "keep", "keep", "upper", "lower", "quote"]))
    if case == "upper":
        text = text.upper()
    elif case == "lower":
        text = text.lower()
    elif case == "quote":
        text = f'"{text}"'
    return text


targets_strategy = st.lists(st.tuples(responses(), st.booleans()), min_size=1, max_size=2)


@pytest.mark.parametrize("inst_id", all_ids())
def test_generated_kwargs_give_the_wanted_verdicts(inst_id):
    inst = REGISTRY[inst_id]
    produced = []

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(targets=targets_strategy, seed=st.integers(0, 2**32 - 1))
    def run(targets, seed):
        rng = random.Random(seed)
        kwargs = inst.generate(targets, rng)
        if kwargs is None:
            return
        produced.append(kwargs)
        assert json.loads(json.dumps(kwargs)) == kwargs
        for response, wanted in targets:
            assert inst.check(response, kwargs) is wanted, (response, wanted, kwargs)
        text = inst.describe(kwargs, rng)
        assert isinstance(text, str) and text.strip()

    run()
    assert len(produced) >= 5, f"{inst_id}: generate gave kwargs in only {len(produced)} of 60 examples"


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
