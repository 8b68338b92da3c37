"""Instruction-following scores, IFEval style, computed with mapl's instruction registry.

Strict: the response as it is. Loose: the instruction counts as followed if any of IFEval's loose variants
of the response (markdown asterisks removed, first and/or last line dropped) follows it. An empty (or
whitespace-only) response, or variant, follows nothing. Four metrics, named as in lm-evaluation-harness:
prompt level (every instruction of the prompt followed) and instruction level (each instruction counted on
its own), strict and loose; also per instruction id and by number of instructions in the prompt.

An instruction whose type cannot be scored on this machine (an IFBench type whose reference data is not
available offline) gets the verdict None: it is left out of the instruction-level metrics, a prompt holding
one is left out of the prompt-level metrics, and the summary lists it under `not_scored` with the reason.
It is never counted as a failure.

    verdicts = score_row(row, response)
    summary = summarize([(row.instruction_id_list, verdicts) ...])
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mapl_cli.benchmark import BenchmarkRow

METRICS = ("prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc")


@dataclass(frozen=True)
class Verdicts:
    """Per-instruction verdicts for one response, in the row's instruction order (None: not scored)."""

    strict: list[bool | None]
    loose: list[bool | None]


def _check(response: str, ids: Sequence[str], kwargs: Sequence[dict[str, Any]]) -> list[bool | None]:
    from mapl_cli.instructions import get_instruction, not_scored_reason

    out: list[bool | None] = []
    for instruction_id, args in zip(ids, kwargs, strict=True):
        if not_scored_reason(instruction_id):
            out.append(None)
        else:
            out.append(bool(response.strip()) and bool(get_instruction(instruction_id).check(response, args or {})))
    return out


def score_row(row: BenchmarkRow, response: str) -> Verdicts:
    """Strict and loose verdicts of `response` on each instruction of `row`."""
    from mapl_cli.instructions import loose_variants

    ids, kwargs = row.instruction_id_list, row.kwargs
    strict = _check(response, ids, kwargs)
    loose = list(strict)
    for variant in loose_variants(response):
        if all(v is not False for v in loose):
            break
        for i, ok in enumerate(_check(variant, ids, kwargs)):
            loose[i] = None if ok is None else bool(loose[i] or ok)
    return Verdicts(strict=strict, loose=loose)


def prompt_verdict(verdicts: Sequence[bool | None]) -> bool | None:
    """Whether every instruction of a prompt was followed; None when one was not scored."""
    return None if None in verdicts else all(verdicts)


def _ratio(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _accuracies(items: Sequence[tuple[Sequence[str], Verdicts]]) -> dict[str, float | None]:
    """The four metrics over the scored prompts and instructions (None where nothing was scored)."""
    strict = [v.strict for _, v in items if None not in v.strict]
    loose = [v.loose for _, v in items if None not in v.loose]
    flat_strict = [x for _, v in items for x in v.strict if x is not None]
    flat_loose = [x for _, v in items for x in v.loose if x is not None]
    return {
        "prompt_level_strict_acc": _ratio(sum(all(r) for r in strict), len(strict)),
        "inst_level_strict_acc": _ratio(sum(flat_strict), len(flat_strict)),
        "prompt_level_loose_acc": _ratio(sum(all(r) for r in loose), len(loose)),
        "inst_level_loose_acc": _ratio(sum(flat_loose), len(flat_loose)),
    }


def summarize(items: Iterable[tuple[Sequence[str], Verdicts]]) -> dict[str, Any]:
    """The four metrics overall, per instruction id and by number of instructions (k) in the prompt."""
    items = list(items)
    if not items:
        raise ValueError("nothing to summarize")
    from mapl_cli.instructions import not_scored_reason

    per_id: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    not_scored: dict[str, int] = defaultdict(int)
    by_k: dict[int, list[tuple[Sequence[str], Verdicts]]] = defaultdict(list)
    for ids, verdicts in items:
        by_k[len(ids)].append((ids, verdicts))
        for instruction_id, s, lo in zip(ids, verdicts.strict, verdicts.loose, strict=True):
            if s is None or lo is None:
                not_scored[instruction_id] += 1
            else:
                per_id[instruction_id].append((s, lo))
    return {
        "n_prompts": len(items),
        "n_instructions": sum(len(ids) for ids, _ in items),
        "n_prompts_scored": sum(1 for _, v in items if None not in v.strict),
        "n_instructions_scored": sum(len(v) for v in per_id.values()),
        **_accuracies(items),
        "by_instruction": {
            i: {"n": len(v), "strict_acc": sum(s for s, _ in v) / len(v), "loose_acc": sum(lo for _, lo in v) / len(v)}
            for i, v in sorted(per_id.items())
        },
        "by_num_instructions": {
            str(k): {"n_prompts": len(v), **_accuracies(v)} for k, v in sorted(by_k.items())
        },
        "not_scored": {
            i: {"n": n, "reason": not_scored_reason(i)} for i, n in sorted(not_scored.items())
        },
    }


def seen_unseen(items: Iterable[tuple[Sequence[str], Verdicts]], seen_ids: Iterable[str]) -> dict[str, Any]:
    """Accuracy split by whether an instruction id was in the model's training data.

    Instruction level: each scored instruction falls in `seen` or `unseen` by its id. Prompt level: prompts
    whose scored instructions are all seen, and prompts holding at least one unseen one.
    """
    seen_ids = set(seen_ids)
    groups: dict[str, dict[str, list]] = {
        name: {"strict": [], "loose": [], "prompt_strict": [], "prompt_loose": [], "ids": set()} for name in ("seen", "unseen")
    }
    for ids, verdicts in items:
        for instruction_id, s, lo in zip(ids, verdicts.strict, verdicts.loose, strict=True):
            if s is None or lo is None:
                continue
            group = groups["seen" if instruction_id in seen_ids else "unseen"]
            group["strict"].append(s)
            group["loose"].append(lo)
            group["ids"].add(instruction_id)
        if None in verdicts.strict:
            continue
        group = groups["seen" if all(i in seen_ids for i in ids) else "unseen"]
        group["prompt_strict"].append(all(verdicts.strict))
        group["prompt_loose"].append(all(verdicts.loose))
    return {
        name: {
            "n_ids": len(g["ids"]),
            "n_instructions": len(g["strict"]),
            "n_prompts": len(g["prompt_strict"]),
            "prompt_level_strict_acc": _ratio(sum(g["prompt_strict"]), len(g["prompt_strict"])),
            "inst_level_strict_acc": _ratio(sum(g["strict"]), len(g["strict"])),
            "prompt_level_loose_acc": _ratio(sum(g["prompt_loose"]), len(g["prompt_loose"])),
            "inst_level_loose_acc": _ratio(sum(g["loose"]), len(g["loose"])),
        }
        for name, g in groups.items()
    }
