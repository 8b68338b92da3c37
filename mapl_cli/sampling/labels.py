"""Labelling samples with the instruction registry, and picking preference pairs from them (pure functions).

A response's verdicts are the strict checks of every instruction of its prompt (an empty response satisfies
none). A pair is (chosen i, rejected j) with n_satisfied[i] > n_satisfied[j]; the pairs with the widest
margin come first, so the first pair is a response satisfying the most instructions against one satisfying
the fewest. Ties among equally wide pairs are broken by an rng seeded by (seed, prompt key).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

#: Why a prompt gave no pair: every sample satisfies the same number of instructions, or the samples that
#: differ cannot form a pair (an empty response, or two texts equal up to surrounding spaces).
ALL_TIED, NO_USABLE_PAIR = "all_tied", "no_usable_pair"


def label(response: str, instruction_ids: Sequence[str], kwargs: Sequence[dict[str, Any]]) -> list[bool]:
    """Strict verdict of `response` on each instruction (as evaluate's strict score)."""
    from mapl_cli.instructions import check_all

    if not response.strip():
        return [False] * len(instruction_ids)
    return [bool(v) for v in check_all(response, instruction_ids, kwargs)]


def choose_pairs(
    key: str, responses: Sequence[str], n_satisfied: Sequence[int], pairs: int, seed: int
) -> tuple[list[tuple[int, int]], str | None]:
    """Up to `pairs` distinct (chosen, rejected) sample indices for one prompt, widest margin first; with
    none, the reason (ALL_TIED or NO_USABLE_PAIR)."""
    if len(set(n_satisfied)) <= 1:
        return [], ALL_TIED
    rng = random.Random(f"mapl-sample:{seed}:{key}")
    candidates = []
    for i, better in enumerate(n_satisfied):
        for j, worse in enumerate(n_satisfied):
            a, b = responses[i].strip(), responses[j].strip()
            if better > worse and a and b and a != b:
                candidates.append((-(better - worse), rng.random(), i, j))
    candidates.sort()
    chosen: list[tuple[int, int]] = []
    seen: set[tuple[str, str]] = set()
    for _, _, i, j in candidates:
        texts = (responses[i].strip(), responses[j].strip())
        if texts not in seen:
            seen.add(texts)
            chosen.append((i, j))
            if len(chosen) == pairs:
                break
    return chosen, None if chosen else NO_USABLE_PAIR
