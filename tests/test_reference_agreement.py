"""Our checkers against the IFEval reference checkers shipped in lm-eval (lm_eval.tasks.ifeval).

    .venv/bin/pytest tests/test_reference_agreement.py -q

Cases: a seeded random.Random builds responses from a corpus of pieces (prose, markdown, JSON, titles,
postscripts, sections, other languages, upper/lower case) plus hand-written adversarial strings, and draws
kwargs per id around each response's real counts so that both verdicts occur. Verdicts are compared under
the reference harness's strict rule (`response.strip() and check_following(response)`).

The reference's length_constraints:number_sentences and change_case:capital_word_frequency call NLTK's
Punkt English model; `tests.nltk_offline.install()` makes it load offline (from the parameters mapl uses),
so the reference runs unchanged. Exception (see docs/instructions.md, "Differences from the IFEval
reference"): a keyword that is not a valid regular expression crashes the reference; we match it literally.
"""

from __future__ import annotations

import json
import random

import pytest

from tests.nltk_offline import install

install()  # before the reference is imported: it looks for punkt_tab and would download it
registry = pytest.importorskip("lm_eval.tasks.ifeval.instructions_registry")
instructions_util = pytest.importorskip("lm_eval.tasks.ifeval.instructions_util")

from mapl_cli.instructions import REGISTRY, all_ids, conflicts  # noqa: E402
from mapl_cli.instructions.content import count_placeholders  # noqa: E402
from mapl_cli.instructions.format import count_bullets, count_highlights  # noqa: E402
from mapl_cli.instructions.text import count_capital_words, count_sentences  # noqa: E402

PROSE = [
    "The lighthouse keeper lived alone for many years.",
    "He wrote letters every day, and he never sent them.",
    "Dr. Smith arrived at 5 p.m. and left before dinner.",
    "I think this is the best answer... Maybe not.",
    "Is it raining? Yes! It is.",
    "My answer is yes.",
    "My answer is maybe.",
    "NASA launched a NEW rocket in the U.S. last week.",
    "THIS IS ALL IN CAPITAL LETTERS AND IT IS IN ENGLISH.",
    "this is all in lowercase letters and it is in english.",
    "I'M SURE WE CAN'T GO, BUT DON'T WORRY.",
    "McDONALD'S. It opened today.",
    "The recipe needs 3.5 cups of flour, e.g. for bread.",
    "Any other questions?",
    "Is there anything else I can help with?",
    "Please fill in [name] and [address] before [date].",
    "Use *this part* and **that part** carefully.",
    "Le chat est sur la table et il dort tranquillement.",
    "El perro corre por el parque todos los días.",
    "Der Hund spielt im Garten mit dem Ball.",
    "Привет, как у тебя дела сегодня?",
    "これは日本語の文章です。",
    "Commas, commas, and more commas.",
    "No commas in this sentence at all",
    'She said "hello." Then she left.',
    "Mr. Brown met Mrs. Green at St. Paul's.",
    "1. First item\n2. Second item",
    "Ünïcödé text with accents: café, naïve, ÉCOLE.",
]
BLOCKS = [
    "* first bullet\n* second bullet\n* third bullet",
    "- dash one\n- dash two",
    "* only one bullet",
    "SECTION 1\nIntro text.\nSECTION 2\nMore text.",
    "Section 1: setup\nSection 2: run\nSection 3: finish",
    "Part 1 begins. Part 2 ends.",
    "P.S. Remember to water the plants.",
    "P.P.S. One more thing.",
    "p. s. lowercase postscript",
    "<<A Title>>",
    "<<poem of joy>>",
    "***",
    "******",
    '```json\n{"a": {"b": [1, 2]}}\n```',
    '{"key": "value", "n": 3}',
    '"A quoted sentence."',
    "---",
    "**Bold heading**",
]
ADVERSARIAL = [
    "",
    "   \n\t ",
    # the regex engine's \w (NLTK >= 3.10) takes the variation selector in "❤️" and combining accents
    "I ❤️ this naive cafe\u0301 and the nai\u0308ve one, 1️⃣ x² ½.",
    "ZWJ family 👨\u200d👩\u200d👧 and Ⓐ circled.",
    "P.S.",
    "p.s. hi",
    "P. S. spaced out",
    '```json\n{"nested": {"list": [1, {"x": null}]}}\n```',
    "```\n[1, 2, 3]\n```",
    '{"unterminated": 1',
    "42",
    '""',
    '"',
    '"Wrapped in quotes"\n',
    "<<>>",
    "<< >>",
    "<<Title>>\nBody text here.",
    "******",
    "first\n******\nsecond",
    "same\n******\nsame",
    "a\n******\n\n******\nb",
    "Section 1\nSECTION 2\nSection3",
    "* * *",
    "***\n***",
    "A\n\n\n\nB",
    "\n\nLeading blank paragraph.\n\nSecond one.",
    "One ***  two *** three",
    "First para.\n\nSecond para starts here.\n\nThird.",
    '"Quoted first word starts.\n\nSecond paragraph.',
    "ΑΒΓ ΔΕΖ ΗΘΙ",
    "日本語のテキストです。",
    "- item\n- item\n* star\n**bold**\n*italic*",
    "*a* **b** ***c*** ** ** * *",
    "[name] [] [[x]] [a][b]",
    "MY ANSWER IS YES.",
    "My answer is no.\n\n\n",
    "Trailing newlines\n\n\n",
    'any other questions?"',
    "Ends with phrase. Any other questions?  \n",
    "12345 67890",
    "I I I I",
    "hello, world",
    "HELLO WORLD",
    "the \u017fun and the \u212aelvin scale",  # Unicode case folding under re.IGNORECASE
]
VOCAB = ["lantern", "orchard", "glacier", "rocket", "commas", "bread", "letters", "answer", "the", "is"]
LANGS = ["en", "fr", "es", "de", "ru", "ja", "it", "pt"]


def build_corpus(rng: random.Random, n: int) -> list[str]:
    corpus = list(ADVERSARIAL)
    separators = [" ", "\n", "\n\n", "\n\n***\n\n", " *** "]
    while len(corpus) < n:
        parts = []
        for _ in range(rng.randint(1, 6)):
            parts.append(rng.choice(PROSE) if rng.random() < 0.65 else rng.choice(BLOCKS))
        text = parts[0]
        for part in parts[1:]:
            text += rng.choice(separators) + part
        if rng.random() < 0.1:
            text = text.upper()
        elif rng.random() < 0.1:
            text = text.lower()
        if rng.random() < 0.1:
            text = '"' + text + '"'
        if rng.random() < 0.1:
            text += "\n" * rng.randint(1, 3)
        corpus.append(text)
    return corpus


def _words(text: str) -> list[str]:
    return [w for w in "".join(c if c.isalnum() else " " for c in text.lower()).split() if w.isalpha()]


def _near(rng: random.Random, value: int, low: int = 1) -> int:
    return max(low, value + rng.randint(-2, 2))


def sample_kwargs(inst_id: str, response: str, rng: random.Random) -> dict:
    words = _words(response) or ["lantern"]
    relation = rng.choice(["less than", "at least"])
    if inst_id == "keywords:existence":
        return {"keywords": rng.sample(words + VOCAB, rng.randint(1, 3))}
    if inst_id == "keywords:frequency":
        keyword = rng.choice(words + VOCAB)
        return {
            "keyword": keyword,
            "frequency": _near(rng, response.lower().count(keyword)),
            "relation": relation,
        }
    if inst_id == "keywords:forbidden_words":
        return {"forbidden_words": rng.sample(words + VOCAB, rng.randint(1, 3))}
    if inst_id == "keywords:letter_frequency":
        letter = rng.choice("etaoinsrhlz")
        return {"letter": letter, "let_frequency": _near(rng, response.lower().count(letter)),
                "let_relation": relation}  # fmt: skip
    if inst_id == "language:response_language":
        return {"language": rng.choice(LANGS)}
    if inst_id == "length_constraints:number_sentences":
        return {"num_sentences": _near(rng, count_sentences(response)), "relation": relation}
    if inst_id == "length_constraints:number_paragraphs":
        return {"num_paragraphs": rng.randint(1, 4)}
    if inst_id == "length_constraints:number_words":
        return {"num_words": _near(rng, len(response.split())), "relation": relation}
    if inst_id == "length_constraints:nth_paragraph_first_word":
        n = rng.randint(1, 4)
        pieces = [p.split() for p in response.split("\n\n") if p.strip()]
        first = pieces[min(len(pieces), rng.randint(1, n)) - 1][0] if pieces else "lantern"
        first = "".join(c for c in first.lower() if c.isalpha()) or "lantern"
        return {"num_paragraphs": n, "nth_paragraph": rng.randint(1, n), "first_word": first}
    if inst_id == "detectable_content:number_placeholders":
        return {"num_placeholders": _near(rng, count_placeholders(response))}
    if inst_id == "detectable_content:postscript":
        return {"postscript_marker": rng.choice(["P.S.", "P.P.S"])}
    if inst_id == "detectable_format:number_bullet_lists":
        return {"num_bullets": _near(rng, count_bullets(response))}
    if inst_id == "detectable_format:number_highlighted_sections":
        return {"num_highlights": _near(rng, count_highlights(response))}
    if inst_id == "detectable_format:multiple_sections":
        return {
            "section_spliter": rng.choice(["Section", "SECTION", "Part"]),
            "num_sections": rng.randint(1, 3),
        }
    if inst_id == "combination:repeat_prompt":
        head = " ".join(response.split()[: rng.randint(1, 5)])
        return {"prompt_to_repeat": rng.choice([head.upper(), head, "Write a poem about the sea."]) or "x"}
    if inst_id == "startend:end_checker":
        tail = " ".join(response.split()[-rng.randint(1, 3) :])
        return {"end_phrase": rng.choice([tail, "Any other questions?", "Is there anything else I can help with?"])
                or "Any other questions?"}  # fmt: skip
    if inst_id == "change_case:capital_word_frequency":
        return {"capital_frequency": rng.randint(1, 6), "capital_relation": relation}
    return {}


def reference_verdict(inst_id: str, kwargs: dict, response: str) -> bool:
    checker = registry.INSTRUCTION_DICT[inst_id](inst_id)
    checker.build_description(**{k: v for k, v in kwargs.items() if v})  # the harness drops falsy values
    return bool(response.strip() and checker.check_following(response))


def _prose(rng: random.Random, k: int = 2) -> str:
    return " ".join(rng.sample(PROSE[:16], k))


def featured(inst_id: str, rng: random.Random) -> str:
    """A response built to have the feature `inst_id` looks for (often, not always, well-formed)."""
    kind = inst_id.split(":")[1]
    prose = _prose(rng)
    if kind == "two_responses":
        a, b = _prose(rng), rng.choice([_prose(rng), prose])
        return rng.choice(["", "******\n"]) + a + rng.choice(["\n******\n", "******"]) + b
    if kind == "json_format":
        body = json.dumps(
            {"answer": prose, "items": [1, {"x": None}], "ok": True}, indent=rng.choice([None, 2])
        )
        return rng.choice(
            ["{}", "```json\n{}\n```", "```JSON\n{}\n```", "```\n{}\n```", "{} trailing"]
        ).format(body)
    if kind == "title":
        return rng.choice(["<<{}>>\n{}", "{}\n<<{}>>", "<<\n{}>>{}"]).format(_prose(rng, 1)[:20], prose)
    if kind == "quotation":
        return rng.choice(['"{}"', '  "{}"\n', '"{}', "'{}'"]).format(prose)
    if kind == "english_capital":
        return rng.choice(
            [prose.upper(), prose.upper() + " ok", "BONJOUR, JE SUIS TRÈS CONTENT AUJOURD'HUI."]
        )
    if kind == "english_lowercase":
        return rng.choice(
            [prose.lower(), prose.lower() + " OK", "bonjour, je suis très content aujourd'hui."]
        )
    if kind == "constrained_response":
        return prose + rng.choice([" My answer is no.", " my answer is yes.", "\nMy answer is maybe."])
    if kind == "number_placeholders":
        return prose.replace(" ", " [slot] ", rng.randint(0, 4))
    if kind == "postscript":
        return prose + rng.choice(["\n\nP.S. ", "\nP.P.S ", "\np.p.s. ", " PS "]) + _prose(rng, 1)
    if kind == "multiple_sections":
        splitter = rng.choice(["Section", "SECTION", "Part"])
        return "\n".join(f"{splitter} {i}\n{_prose(rng, 1)}" for i in range(1, rng.randint(2, 5)))
    if kind == "number_bullet_lists":
        return "\n".join(rng.choice(["* ", "- ", "  * "]) + _prose(rng, 1) for _ in range(rng.randint(1, 5)))
    if kind == "number_highlighted_sections":
        return " ".join(rng.choice(["*{}*", "**{}**", "{}"]).format(w) for w in prose.split()[:8])
    if kind in ("number_paragraphs", "nth_paragraph_first_word"):
        divider = "\n\n***\n\n" if kind == "number_paragraphs" else "\n\n"
        return divider.join(_prose(rng, 1) for _ in range(rng.randint(1, 4)))
    if kind == "end_checker":
        return prose + rng.choice(
            [" Any other questions?", ' Any other questions?"', "\nIs there anything else I can help with?"]
        )
    return prose


def make_cases(per_id: int = 25, per_id_featured: int = 15) -> list[tuple[str, str, dict]]:
    rng = random.Random(20250518)
    corpus = build_corpus(rng, 160)
    cases = []
    for inst_id in all_ids():
        picks = list(ADVERSARIAL) + rng.sample(corpus[len(ADVERSARIAL) :], per_id)
        picks += [featured(inst_id, rng) for _ in range(per_id_featured)]
        for response in picks:
            cases.append((inst_id, response, sample_kwargs(inst_id, response, rng)))
    return cases


CASES = make_cases()


def test_case_set_covers_every_id_and_both_verdicts():
    assert len(CASES) >= 500
    assert {c[0] for c in CASES} == set(REGISTRY) == set(registry.INSTRUCTION_DICT)


def test_verdicts_match_the_reference():
    disagreements = []
    verdicts: dict[str, set[bool]] = {}
    for inst_id, response, kwargs in CASES:
        ours = REGISTRY[inst_id].check(response, kwargs)
        theirs = reference_verdict(inst_id, kwargs, response)
        verdicts.setdefault(inst_id, set()).add(ours)
        if ours != theirs:
            disagreements.append((inst_id, response, kwargs, ours, theirs))
    assert disagreements == []
    one_sided = sorted(i for i, seen in verdicts.items() if len(seen) < 2)
    assert one_sided == [], "every id should see both verdicts"


def test_sentence_and_capital_word_counts_equal_the_reference():
    """Beyond verdicts: the counts behind number_sentences and capital_word_frequency, on every response."""
    for response in sorted({c[1] for c in CASES}):
        assert count_sentences(response) == instructions_util.count_sentences(response), response
        capitals = sum(w.isupper() for w in instructions_util.nltk.word_tokenize(response))
        assert count_capital_words(response) == capitals, response


def test_invalid_regex_keyword_is_matched_literally_where_the_reference_crashes():
    import re

    with pytest.raises(re.error):
        reference_verdict("keywords:existence", {"keywords": ["(sic"]}, "It is spelled (sic) there.")
    assert REGISTRY["keywords:existence"].check("It is spelled (sic) there.", {"keywords": ["(sic"]})
    assert not REGISTRY["keywords:existence"].check("It is spelled sic there.", {"keywords": ["(sic"]})


def test_conflict_table_mirrors_reference():
    table = registry.conflict_make({k: set(v) for k, v in registry.INSTRUCTION_CONFLICTS.items()})
    for a in all_ids():
        for b in all_ids():
            assert conflicts(a, b) == (b in table[a]), (a, b)
