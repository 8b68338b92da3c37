"""MAPL pair construction for one preference row: standard, intra-sample and inter-sample pairs.

Pure and deterministic: every row gets its own `random.Random` seeded from the run seed and the row's
position and content, so the output does not depend on worker count, batching or sharding.

    from mapl_cli.synth.core import synthesize_row
    from mapl_cli.synth.run import SynthConfig
    config = SynthConfig(input="examples/prefs.jsonl", output=Path("out/pairs"), seed=0)
    rows, dropped = synthesize_row(pref_row, config, ("punctuation:no_comma", "startend:quotation"))

Intra (prompt side, Rc-BT): for a response y, two prompts x_w and x_l carrying the same instruction types
with different arguments, so that y fits x_w better:
  all_vs_notall  y satisfies every instruction of x_w and violates at least one of x_l;
  some_vs_none   y satisfies at least one instruction of x_w and none of x_l.
Inter (across responses): one prompt x' = x + instructions that y_w satisfies all of and y_l violates at
least one of.

A row whose prompt already carries instructions (`PrefRow.instructions`, from `mapl sample`) gets new ones
only of types it does not use and that conflict with none of its own; its own instructions lead the intra
and inter rows' instruction lists, with verdicts computed here by the registry, and the conditions above
apply to the added instructions (the carried ones are the same on both prompts).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mapl_cli.instructions import REGISTRY, check_all, conflicts
from mapl_cli.prefs import Message, PrefRow, content_hash

if TYPE_CHECKING:
    from mapl_cli.synth.run import SynthConfig


@dataclass
class Picked:
    """One instruction type chosen for a prompt, with the arguments for each side."""

    id: str
    kwargs: dict[str, Any]


def row_rng(seed: int, row: PrefRow) -> random.Random:
    """The row's own generator: seeded by run seed, row position and row content."""
    key = f"{seed}:{row.index}:{content_hash(row.prompt, row.chosen, row.rejected)}"
    return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))


def with_instructions(prompt: list[Message], texts: list[str]) -> list[Message]:
    """The prompt with instruction lines appended to its last user turn (one per line)."""
    last_user = max(i for i, m in enumerate(prompt) if m["role"] == "user")
    messages = [dict(m) for m in prompt]
    if texts:
        messages[last_user]["content"] = messages[last_user]["content"].rstrip() + "\n\n" + "\n".join(texts)
    return messages


#: json.dumps(kwargs, sort_keys=True, ensure_ascii=False), without building an encoder per call.
_KWARGS_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False)


def _instruction_records(picked: list[Picked], rng: random.Random) -> list[dict[str, str]]:
    return [
        {"id": p.id, "kwargs": _KWARGS_JSON.encode(p.kwargs), "text": REGISTRY[p.id].describe(p.kwargs, rng)}
        for p in picked
    ]


def _candidates(rng: random.Random, ids: tuple[str, ...]) -> list[str]:
    order = list(ids)
    rng.shuffle(order)
    return order


def _fits(chosen_ids: list[str], candidate: str) -> bool:
    return all(not conflicts(candidate, other) for other in chosen_ids)


def _generate(inst_id: str, targets: list[tuple[str, bool]], rng: random.Random) -> dict[str, Any] | None:
    return REGISTRY[inst_id].generate(targets, rng)


def _intra_sides(y: str, condition: str, k: int, rng: random.Random, ids: tuple[str, ...]) -> tuple[list[Picked], list[Picked]] | None:
    """Instructions for x_w and x_l (same types, their own arguments), or None when too few types fit."""
    if condition == "all_vs_notall":
        return _all_vs_notall(y, k, rng, ids)
    return _some_vs_none(y, k, rng, ids)


def _all_vs_notall(y: str, k: int, rng: random.Random, ids: tuple[str, ...]) -> tuple[list[Picked], list[Picked]] | None:
    """x_w: k types whose arguments y satisfies; x_l: the same types, at least one with arguments y violates."""
    types: list[str] = []
    sat: list[dict] = []
    for inst_id in _candidates(rng, ids):
        if len(types) == k:
            break
        if _fits(types, inst_id) and (yes := _generate(inst_id, [(y, True)], rng)) is not None:
            types.append(inst_id)
            sat.append(yes)
    if len(types) < k:
        return None
    # Each type is violated in x_l with probability 1/2 (when it can be), and at least one always is;
    # violating arguments are asked for only where they are needed.
    vio: dict[int, dict] = {}
    untried = []
    for i in range(len(types)):
        if rng.random() < 0.5:
            if (no := _generate(types[i], [(y, False)], rng)) is not None:
                vio[i] = no
        else:
            untried.append(i)
    rng.shuffle(untried)
    for i in untried:
        if vio:
            break
        if (no := _generate(types[i], [(y, False)], rng)) is not None:
            vio[i] = no
    if not vio:
        return None
    chosen_side = [Picked(t, s) for t, s in zip(types, sat, strict=True)]
    rejected_side = [
        Picked(t, vio[i]) if i in vio else Picked(t, _generate(t, [(y, True)], rng) or sat[i])  # own arguments, still satisfied
        for i, t in enumerate(types)
    ]
    return chosen_side, rejected_side


def _some_vs_none(y: str, k: int, rng: random.Random, ids: tuple[str, ...]) -> tuple[list[Picked], list[Picked]] | None:
    """x_l: k types whose arguments y violates; x_w: the same types, at least one with arguments y satisfies."""
    types: list[str] = []
    sat: list[dict] = []
    vio: list[dict] = []
    for inst_id in _candidates(rng, ids):
        if len(types) == k:
            break
        if not _fits(types, inst_id) or (no := _generate(inst_id, [(y, False)], rng)) is None:
            continue
        if (yes := _generate(inst_id, [(y, True)], rng)) is None:
            continue
        types.append(inst_id)
        sat.append(yes)
        vio.append(no)
    if len(types) < k:
        return None
    keep = {i for i in range(len(types)) if rng.random() < 0.5} or {rng.randrange(len(types))}
    chosen_side = [
        Picked(t, sat[i]) if i in keep else Picked(t, _generate(t, [(y, False)], rng) or vio[i])
        for i, t in enumerate(types)
    ]
    rejected_side = [Picked(t, v) for t, v in zip(types, vio, strict=True)]
    return chosen_side, rejected_side


def _inter_side(y_w: str, y_l: str, k: int, rng: random.Random, ids: tuple[str, ...]) -> list[Picked] | None:
    """Instructions that y_w satisfies all of and y_l violates at least one of, or None."""
    picked: list[Picked] = []
    discriminating = 0
    for inst_id in _candidates(rng, ids):
        if len(picked) == k:
            break
        if not _fits([p.id for p in picked], inst_id):
            continue
        kwargs = _generate(inst_id, [(y_w, True), (y_l, False)], rng)
        if kwargs is not None:
            discriminating += 1
        elif discriminating or len(picked) < k - 1:
            kwargs = _generate(inst_id, [(y_w, True)], rng)
        if kwargs is not None:
            picked.append(Picked(inst_id, kwargs))
    if len(picked) < k or discriminating == 0:
        return None
    rng.shuffle(picked)
    return picked


def _verdicts(response: str, picked: list[Picked]) -> list[bool]:
    return [bool(REGISTRY[p.id].check(response, p.kwargs)) for p in picked]


def _drawable(instruction_ids: tuple[str, ...], carried: tuple[dict[str, str], ...]) -> tuple[str, ...]:
    """The types that may be added to a prompt carrying `carried`: none it uses, none that conflicts with them."""
    if not carried:
        return instruction_ids
    own = {inst["id"] for inst in carried}
    return tuple(i for i in instruction_ids if not any(conflicts(i, other) for other in own))


def _carried_verdicts(response: str, carried: tuple[dict[str, str], ...]) -> list[bool]:
    """The registry's strict verdicts of `response` on the prompt's own instructions (as `mapl sample` labels)."""
    if not carried:
        return []
    kwargs = [json.loads(inst["kwargs"]) or {} for inst in carried]
    return [bool(v) for v in check_all(response, [inst["id"] for inst in carried], kwargs)]


def _row(kind: str, source: PrefRow, prompt_w, prompt_l, resp_w, resp_l, inst_w, inst_l, ver_w, ver_l, condition="", anchor="") -> dict[str, Any]:
    pair_id = content_hash(kind, prompt_w, prompt_l, resp_w, resp_l, inst_w, inst_l)
    return {
        "pair_id": pair_id,
        "kind": kind,
        "source_id": source.source_id,
        "prompt_chosen": prompt_w,
        "prompt_rejected": prompt_l,
        "response_chosen": resp_w,
        "response_rejected": resp_l,
        "base_prompt": source.prompt,
        "instructions_chosen": inst_w,
        "instructions_rejected": inst_l,
        "verdicts_chosen": ver_w,
        "verdicts_rejected": ver_l,
        "condition": condition,
        "anchor": anchor,
    }


def _intra_holds(condition: str, ver_w: list[bool], ver_l: list[bool]) -> bool:
    if condition == "all_vs_notall":
        return all(ver_w) and not all(ver_l)
    return any(ver_w) and not any(ver_l)


def synthesize_row(source: PrefRow, config: SynthConfig, instruction_ids: tuple[str, ...]) -> tuple[list[dict[str, Any]], Counter]:
    """All MAPL pairs for one preference row, and a Counter of dropped candidates by reason.

    `config` gives the seed, k range, conditions, anchors and how many pairs of each kind to build;
    `instruction_ids` are the types that may be drawn (its --include/--exclude, resolved).

    Every intra and inter row is re-checked with the registry before it is returned: a row whose verdicts
    do not hold is dropped and counted, never written.
    """
    rng = row_rng(config.seed, source)
    carried = list(source.instructions)
    instruction_ids = _drawable(instruction_ids, source.instructions)
    own = {side: _carried_verdicts(getattr(source, side), source.instructions) for side in ("chosen", "rejected")}
    rows: list[dict[str, Any]] = []
    dropped: Counter = Counter()
    if config.standard:
        rows.append(_row("standard", source, source.prompt, source.prompt, source.chosen, source.rejected, [], [], [], []))
    responses = {"chosen": source.chosen, "rejected": source.rejected}
    for anchor in config.anchors:
        y = responses[anchor]
        for _ in range(config.intra_per_response):
            condition = rng.choice(config.conditions)
            k = rng.randint(config.k_min, config.k_max)
            sides = _intra_sides(y, condition, k, rng, instruction_ids)
            if sides is None:
                dropped[f"intra:{condition}:too_few_instructions"] += 1
                continue
            picked_w, picked_l = sides
            order = list(range(len(picked_w)))
            rng.shuffle(order)  # same types on both sides, listed in one shuffled order
            picked_w = [picked_w[i] for i in order]
            picked_l = [picked_l[i] for i in order]
            ver_w, ver_l = _verdicts(y, picked_w), _verdicts(y, picked_l)
            if not _intra_holds(condition, ver_w, ver_l):
                dropped[f"intra:{condition}:verdict_mismatch"] += 1
                continue
            inst_w, inst_l = _instruction_records(picked_w, rng), _instruction_records(picked_l, rng)
            prompt_w = with_instructions(source.prompt, [i["text"] for i in inst_w])
            prompt_l = with_instructions(source.prompt, [i["text"] for i in inst_l])
            if prompt_w == prompt_l:
                dropped[f"intra:{condition}:identical_prompts"] += 1
                continue
            rows.append(_row("intra", source, prompt_w, prompt_l, y, y, carried + inst_w, carried + inst_l,
                             own[anchor] + ver_w, own[anchor] + ver_l, condition, anchor))
    for _ in range(config.inter_per_pair):
        row = _inter_row(source, config, rng, instruction_ids, carried, own, dropped)
        if row is not None:
            rows.append(row)
    return rows, dropped


def _inter_row(source: PrefRow, config: SynthConfig, rng: random.Random, instruction_ids: tuple[str, ...],
               carried: list[dict[str, Any]], own: dict[str, list[bool]], dropped: Counter) -> dict[str, Any] | None:
    """One inter row (a new multi-instruction prompt, the original two responses), or None with the reason
    counted in `dropped`."""
    k = rng.randint(config.k_min, config.k_max)
    picked = _inter_side(source.chosen, source.rejected, k, rng, instruction_ids)
    if picked is None:
        dropped["inter:no_discriminating_instructions"] += 1
        return None
    ver_w, ver_l = _verdicts(source.chosen, picked), _verdicts(source.rejected, picked)
    if not all(ver_w) or all(ver_l):
        dropped["inter:verdict_mismatch"] += 1
        return None
    inst = _instruction_records(picked, rng)
    prompt = with_instructions(source.prompt, [i["text"] for i in inst])
    return _row("inter", source, prompt, prompt, source.chosen, source.rejected, carried + inst, carried + inst,
                own["chosen"] + ver_w, own["rejected"] + ver_l)
