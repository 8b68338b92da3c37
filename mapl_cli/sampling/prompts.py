"""The prompts `mapl sample` draws responses for, each with its instructions, from one of three inputs:

- an IFEval-format benchmark (jsonl rows with instruction_id_list and kwargs): prompts and instructions as
  they are; the instructions' texts are woven into the prompt and not known apart from it ("" here);
- a base-prompt file (jsonl rows of {key, prompt}) with --k-min/--k-max: instructions drawn exactly as
  `mapl build-benchmark` draws them (same conflict table, same (seed, key) seeding);
- a preference file (what `mapl synthesize` reads) with --k-min/--k-max: its distinct prompts, the
  instructions appended to the last user turn as build-benchmark appends them.

    kind, prompts = load_prompts("examples/eval_prompts.jsonl", k_min=1, k_max=3)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mapl_cli.errors import MaplError

Messages = list[dict[str, str]]
NO_INSTRUCTIONS = "prompts carry no instructions; give --k-min/--k-max"


@dataclass(frozen=True)
class SamplePrompt:
    """One prompt to sample for: `messages` (the chat prompt with its instructions), `base_prompt` (the
    messages before instructions were added; None for a benchmark, where they cannot be told apart), and its
    instructions: ids, IFEval arguments and texts, in the same order."""

    key: str
    messages: Messages
    base_prompt: Messages | None
    instruction_ids: list[str]
    kwargs: list[dict[str, Any]]
    texts: list[str] = field(default_factory=list)

    def instructions(self) -> list[dict[str, str]]:
        """The instructions in the pairs table's struct: id, kwargs (JSON), text."""
        return [
            {"id": i, "kwargs": json.dumps(k, sort_keys=True), "text": t}
            for i, k, t in zip(self.instruction_ids, self.kwargs, self.texts, strict=True)
        ]


def input_kind(source: str) -> str:
    """"benchmark", "base_prompts" or "preferences", from the file's type and its first row's fields."""
    from mapl_cli.jsonl import read_jsonl

    if source.startswith("hf://") or Path(source).suffix.lower() != ".jsonl":
        return "preferences"
    first = next(iter(read_jsonl(Path(source), "prompt file")), None)
    if first is None:
        raise MaplError(f"{source}: no prompts (the file is empty)")
    row = first[1]
    if isinstance(row, dict) and "instruction_id_list" in row:
        return "benchmark"
    if isinstance(row, dict) and ("chosen" in row or "rejected" in row):
        return "preferences"
    return "base_prompts"


def load_prompts(
    source: str, k_min: int = 1, k_max: int | None = None, include: Sequence[str] = (), exclude: Sequence[str] = (),
    seed: int = 0, limit: int | None = None,
) -> tuple[str, list[SamplePrompt]]:
    """(input kind, the first `limit` prompts with their instructions); one-line MaplErrors for an empty file,
    instructions asked for twice or not at all, and instruction types that cannot be checked here."""
    kind = input_kind(source)
    if kind == "benchmark":
        if k_max is not None:
            raise MaplError(f"{source}: a benchmark's prompts carry their instructions already; drop --k-min/--k-max")
        prompts = _from_benchmark(source, limit)
    else:
        if k_max is None:
            raise MaplError(f"{source}: {NO_INSTRUCTIONS}")
        from mapl_cli.benchmark import instruction_pool
        from mapl_cli.commands.parsing import check_k_range

        pool = instruction_pool(include, exclude)
        check_k_range(k_min, k_max, pool)
        bases = _base_prompts(source) if kind == "base_prompts" else _preference_prompts(source)
        prompts = [_draw(key, messages, pool, k_min, k_max, seed) for key, messages in bases[: limit or None]]
    _check_scorable(prompts)
    return kind, prompts


def _from_benchmark(source: str, limit: int | None) -> list[SamplePrompt]:
    from mapl_cli.benchmark import read_benchmark

    return [
        SamplePrompt(str(row.key), [{"role": "user", "content": row.prompt}], None, list(row.instruction_id_list),
                     list(row.kwargs), [""] * len(row.instruction_id_list))
        for row in read_benchmark(source, limit)
    ]


def _base_prompts(source: str) -> list[tuple[str, Messages]]:
    from mapl_cli.benchmark import read_base_prompts

    return [(str(key), [{"role": "user", "content": text}]) for key, text in read_base_prompts(source)]


def _preference_prompts(source: str) -> list[tuple[str, Messages]]:
    """The distinct prompts of a preference file, in order; each keyed by the id of its first row."""
    from mapl_cli.prefs import PrefSource, normalise_row

    pref_source = PrefSource(source)
    out: list[tuple[str, Messages]] = []
    seen_prompts, seen_keys = set(), set()
    for batch in pref_source.batches(1024):
        for index, raw in batch:
            row = normalise_row(source, index, raw, pref_source.columns)
            text = json.dumps(row.prompt, sort_keys=True)
            if text in seen_prompts:
                continue
            if row.source_id in seen_keys:
                raise MaplError(f"{source}: row {index}: id {row.source_id!r} names a second, different prompt")
            seen_prompts.add(text)
            seen_keys.add(row.source_id)
            out.append((row.source_id, row.prompt))
    if not out:
        raise MaplError(f"{source}: no prompts (the file has no rows)")
    return out


def _draw(key: str, messages: Messages, pool: Sequence[str], k_min: int, k_max: int, seed: int) -> SamplePrompt:
    """Instructions for one prompt as build-benchmark draws them, appended to its last user turn."""
    from mapl_cli.benchmark import draw_row

    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    row, texts = draw_row(key, messages[last]["content"], pool, k_min, k_max, seed)
    with_instructions = [dict(m) for m in messages]
    with_instructions[last]["content"] = row.prompt
    return SamplePrompt(key, with_instructions, [dict(m) for m in messages], list(row.instruction_id_list),
                        list(row.kwargs), texts)


def _check_scorable(prompts: Sequence[SamplePrompt]) -> None:
    from mapl_cli.instructions import not_scored_reason

    for prompt in prompts:
        for instruction_id in prompt.instruction_ids:
            if reason := not_scored_reason(instruction_id):
                raise MaplError(f"prompt key {prompt.key}: {instruction_id} cannot be checked here ({reason})")
