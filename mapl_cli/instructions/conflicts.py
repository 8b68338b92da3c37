"""Which instruction types must not share a prompt: a mirror of IFEval's INSTRUCTION_CONFLICTS, made
symmetric and reflexive as IFEval's `conflict_make` does (every type conflicts with itself)."""

from __future__ import annotations

_KEYWORDS = (
    "keywords:existence",
    "keywords:frequency",
    "keywords:forbidden_words",
    "keywords:letter_frequency",
)
ALL_IDS = frozenset(
    {
        *_KEYWORDS,
        "language:response_language",
        "length_constraints:number_sentences",
        "length_constraints:number_paragraphs",
        "length_constraints:number_words",
        "length_constraints:nth_paragraph_first_word",
        "detectable_content:number_placeholders",
        "detectable_content:postscript",
        "detectable_format:number_bullet_lists",
        "detectable_format:constrained_response",
        "detectable_format:number_highlighted_sections",
        "detectable_format:multiple_sections",
        "detectable_format:json_format",
        "detectable_format:title",
        "combination:two_responses",
        "combination:repeat_prompt",
        "startend:end_checker",
        "change_case:capital_word_frequency",
        "change_case:english_capital",
        "change_case:english_lowercase",
        "punctuation:no_comma",
        "startend:quotation",
    }
)

_DECLARED: dict[str, set[str]] = {
    "language:response_language": {
        "detectable_format:multiple_sections",
        *_KEYWORDS[:3],
        "startend:end_checker",
        "change_case:english_capital",
        "change_case:english_lowercase",
    },
    "length_constraints:number_paragraphs": {
        "length_constraints:nth_paragraph_first_word",
        "length_constraints:number_sentences",
    },
    "length_constraints:nth_paragraph_first_word": {"length_constraints:number_paragraphs"},
    "detectable_format:constrained_response": set(ALL_IDS),
    "detectable_format:multiple_sections": {
        "language:response_language",
        "detectable_format:number_highlighted_sections",
    },
    "detectable_format:json_format": set(ALL_IDS - {"keywords:forbidden_words", "keywords:existence"}),
    "combination:two_responses": set(
        ALL_IDS
        - {
            "keywords:forbidden_words",
            "keywords:existence",
            "language:response_language",
            "detectable_format:title",
            "punctuation:no_comma",
        }
    ),
    "combination:repeat_prompt": set(
        ALL_IDS - {"keywords:existence", "detectable_format:title", "punctuation:no_comma"}
    ),
    "change_case:capital_word_frequency": {"change_case:english_lowercase", "change_case:english_capital"},
    "change_case:english_lowercase": {"change_case:english_capital"},
    "startend:quotation": {"detectable_format:title"},
}


def _closure() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {i: {i} for i in ALL_IDS}
    for key, others in _DECLARED.items():
        for other in others:
            table[key].add(other)
            table[other].add(key)
    return {key: frozenset(value) for key, value in table.items()}


CONFLICTS = _closure()
