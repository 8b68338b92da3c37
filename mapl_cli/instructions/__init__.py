"""The instruction registry (MAPL's G_0): IFEval's 25 verifiable instruction types, with IFEval's ids,
argument names and strict checking, plus a MAPL generator hook per type (see base.py for the contract).

`REGISTRY` holds the types synthesis and build-benchmark draw from. `CHECK_ONLY` holds IFBench's held-out
types (mapl_cli/instructions/ifbench/): `get_instruction` finds them, so evaluation scores IFBench data with
the same code, but they are never drawn.

    >>> import random
    >>> from mapl_cli.instructions import check_all, get_instruction
    >>> inst = get_instruction("punctuation:no_comma")
    >>> inst.describe({}, random.Random(0)) != ""
    True
    >>> check_all("No commas here.", ["punctuation:no_comma"], [{}])
    [True]

Documentation of every type, and of where verdicts differ from IFEval's reference code:
docs/instructions.md.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from mapl_cli.errors import MaplError
from mapl_cli.instructions import (
    case,
    combination,
    content,
    format,
    ifbench,
    keywords,
    language,
    length,
    startend,
)
from mapl_cli.instructions.base import Instruction, Kwargs
from mapl_cli.instructions.conflicts import CONFLICTS

__all__ = [
    "CHECK_ONLY",
    "REGISTRY",
    "Instruction",
    "all_ids",
    "check_all",
    "conflicts",
    "get_instruction",
    "loose_variants",
    "not_scored_reason",
    "require_drawable",
]

_TYPES = [inst for module in (keywords, language, length, content, format, combination, startend, case) for inst in module.TYPES]
#: IFEval's reference (instructions_registry.INSTRUCTION_DICT) lists these two last, after change_case.
_LAST = ("punctuation:no_comma", "startend:quotation")

#: The drawable types, in the order of IFEval's registry: build-benchmark draws from them in this order, so
#: the order is part of what a seed gives.
REGISTRY: dict[str, Instruction] = {inst.id: inst for inst in sorted(_TYPES, key=lambda inst: inst.id in _LAST)}

#: Types that are scored but never drawn (IFBench's held-out types).
CHECK_ONLY: dict[str, Instruction] = {inst.id: inst for inst in ifbench.TYPES}


def get_instruction(instruction_id: str) -> Instruction:
    """The registered type for `instruction_id`; MaplError (one line, with a close match) if unknown."""
    try:
        return REGISTRY[instruction_id]
    except (KeyError, TypeError):
        pass
    try:
        return CHECK_ONLY[instruction_id]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(instruction_id), [*REGISTRY, *CHECK_ONLY], n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known ids: {len(REGISTRY)} (see all_ids())"
        raise MaplError(f"unknown instruction id {instruction_id!r}{hint}") from None


def all_ids() -> list[str]:
    """The ids synthesis and build-benchmark can draw (check-only types excluded)."""
    return sorted(REGISTRY)


def require_drawable(instruction_ids: Sequence[str]) -> None:
    """MaplError when an id is unknown or check-only (IFBench's types are for testing, never drawn)."""
    for instruction_id in instruction_ids:
        get_instruction(instruction_id)
        if instruction_id in CHECK_ONLY:
            raise MaplError(
                f"{instruction_id!r} is one of IFBench's held-out types: mapl evaluate scores it, but it is never "
                "drawn for training pairs or benchmarks"
            )


def not_scored_reason(instruction_id: str) -> str | None:
    """Why `instruction_id` cannot be scored on this machine, or None when it can."""
    return getattr(get_instruction(instruction_id), "not_scored", None)


def conflicts(id_a: str, id_b: str) -> bool:
    """Whether two types must not share a prompt (IFEval's INSTRUCTION_CONFLICTS; a type conflicts with
    itself)."""
    get_instruction(id_a), get_instruction(id_b)
    return id_b in CONFLICTS[id_a]


def check_all(
    response: str, instruction_ids: Sequence[str], kwargs_list: Sequence[Kwargs | None]
) -> list[bool]:
    """Strict verdict of `response` for each (id, kwargs), as in IFEval's `test_instruction_following_strict`."""
    if len(instruction_ids) != len(kwargs_list):
        raise MaplError(f"{len(instruction_ids)} instruction ids but {len(kwargs_list)} kwargs entries")
    return [
        get_instruction(i).check(response, k or {}) for i, k in zip(instruction_ids, kwargs_list, strict=True)
    ]


def loose_variants(response: str) -> list[str]:
    """IFEval's loose-scoring variants of a response, in the reference's order: the response, without '*',
    without its first line, last line, both, and those three without '*'. A type is followed loosely when
    `check` is True on any of them."""
    lines = response.split("\n")
    remove_first = "\n".join(lines[1:]).strip()
    remove_last = "\n".join(lines[:-1]).strip()
    remove_both = "\n".join(lines[1:-1]).strip()
    return [
        response,
        response.replace("*", ""),
        remove_first,
        remove_last,
        remove_both,
        remove_first.replace("*", ""),
        remove_last.replace("*", ""),
        remove_both.replace("*", ""),
    ]
