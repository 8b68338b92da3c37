"""Instruction-following scores, IFEval style, computed with mapl's instruction registry.

Strict: the response as it is. Loose: the instruction counts as followed if any of IFEval's loose variants
of the response (markdown asterisks removed, first and/or last line dropped) follows it. An empty (or
whitespace-only) response, or variant, follows nothing. Four metrics, named as in lm-evaluation-harness:
prompt level (every instruction of the prompt followed) and instruction level (each instruction counted on
its own), strict and loose; also per instruction id and by number of instructions in the prompt.

    verdicts = score_row(row, response)
    summary = summarize([(row.instruction_id_list, verdicts) ...])
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mapl_cli.evaluation.benchmark import BenchmarkRow

METRICS = ("prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc")


@dataclass(frozen=True)
class Verdicts:
    """Per-instruction verdicts for one response, in the row's instruction order."""

    strict: list[bool]
    loose: list[bool]


def _check(response: str, ids: Sequence[str], kwargs: Sequence[dict[str, Any]]) -> list[bool]:
    from mapl_cli.instructions import check_all

    if not response.strip():
        return [False] * len(ids)
    return [bool(v) for v in check_all(response, list(ids), list(kwargs))]


def score_row(row: BenchmarkRow, response: str) -> Verdicts:
    """Strict and loose verdicts of `response` on each instruction of `row`."""
    from mapl_cli.instructions import loose_variants

    ids, kwargs = row.instruction_id_list, row.kwargs
    strict = _check(response, ids, kwargs)
    loose = list(strict)
    for variant in loose_variants(response):
        if all(loose):
            break
        for i, ok in enumerate(_check(variant, ids, kwargs)):
            loose[i] = loose[i] or ok
    return Verdicts(strict=strict, loose=loose)


def _accuracies(items: Sequence[tuple[Sequence[str], Verdicts]]) -> dict[str, float]:
    strict = [v.strict for _, v in items]
    loose = [v.loose for _, v in items]
    flat_strict = [x for row in strict for x in row]
    flat_loose = [x for row in loose for x in row]
    return {
        "prompt_level_strict_acc": sum(all(r) for r in strict) / len(strict),
        "inst_level_strict_acc": sum(flat_strict) / len(flat_strict),
        "prompt_level_loose_acc": sum(all(r) for r in loose) / len(loose),
        "inst_level_loose_acc": sum(flat_loose) / len(flat_loose),
    }


def summarize(items: Iterable[tuple[Sequence[str], Verdicts]]) -> dict[str, Any]:
    """The four metrics overall, per instruction id and by number of instructions (k) in the prompt."""
    items = list(items)
    if not items:
        raise ValueError("nothing to summarize")
    per_id: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    by_k: dict[int, list[tuple[Sequence[str], Verdicts]]] = defaultdict(list)
    for ids, verdicts in items:
        by_k[len(ids)].append((ids, verdicts))
        for instruction_id, s, lo in zip(ids, verdicts.strict, verdicts.loose, strict=True):
            per_id[instruction_id].append((s, lo))
    return {
        "n_prompts": len(items),
        "n_instructions": sum(len(ids) for ids, _ in items),
        **_accuracies(items),
        "by_instruction": {
            i: {"n": len(v), "strict_acc": sum(s for s, _ in v) / len(v), "loose_acc": sum(lo for _, lo in v) / len(v)}
            for i, v in sorted(per_id.items())
        },
        "by_num_instructions": {
            str(k): {"n_prompts": len(v), **_accuracies(v)} for k, v in sorted(by_k.items())
        },
    }
