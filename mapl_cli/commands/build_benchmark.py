"""`mapl build-benchmark`: an IFEval-format multi-instruction benchmark from a list of base prompts.

    mapl build-benchmark examples/eval_prompts.jsonl --output examples/eval_benchmark.jsonl --k-min 1 --k-max 6

Each base prompt gets k instructions (k uniform in k-min..k-max), mutually conflict-free, appended one per
line. The same input, options and seed give a byte-identical file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mapl_cli.commands.parsing import check_k_range, parse_ids

INPUT, INSTRUCTIONS, OUTPUT = "Input", "Instructions", "Output"  # the --help panels


def command(
    prompts: Annotated[Path, typer.Argument(rich_help_panel=INPUT, show_default=False, help=(
        'Base prompts: a jsonl file of {"key": int, "prompt": str} rows (key defaults to the row number).'))],
    *,
    # Input
    limit: Annotated[int | None, typer.Option(min=1, rich_help_panel=INPUT, show_default=False, help=(
        "Use only the first N base prompts."))] = None,
    # Instructions
    k_min: Annotated[int, typer.Option(min=1, rich_help_panel=INSTRUCTIONS, help=(
        "Fewest instructions per prompt."))] = 1,
    k_max: Annotated[int, typer.Option(min=1, rich_help_panel=INSTRUCTIONS, help=(
        "Most instructions per prompt (k is drawn uniformly from k-min..k-max); no more than the instruction "
        "types that can share a prompt."))] = 6,
    include: Annotated[list[str] | None, typer.Option(metavar="<id>", rich_help_panel=INSTRUCTIONS, show_default=False, help=(
        "Draw only from these instruction ids (repeat the option or comma-separate); by default from "
        "IFEval's 25."))] = None,
    exclude: Annotated[list[str] | None, typer.Option(metavar="<id>", rich_help_panel=INSTRUCTIONS, show_default=False, help=(
        "Never draw these instruction ids (repeat the option or comma-separate)."))] = None,
    seed: Annotated[int, typer.Option(rich_help_panel=INSTRUCTIONS, help=(
        "Random seed; each prompt's draw depends only on the seed and the prompt's key."))] = 0,
    # Output
    output: Annotated[Path, typer.Option("--output", "-o", rich_help_panel=OUTPUT, show_default=False, help=(
        "The benchmark jsonl file to write, in IFEval's format (key, prompt, instruction_id_list, kwargs)."))],
    force: Annotated[bool, typer.Option("--force", rich_help_panel=OUTPUT, help=(
        "Replace the --output file if it exists."))] = False,
) -> None:
    """Write an IFEval-format multi-instruction benchmark (1 to 6 instructions per prompt by default)."""
    from mapl_cli.benchmark import (
        build_rows,
        check_benchmark_output,
        instruction_pool,
        read_base_prompts,
        write_benchmark,
    )

    # Options, then the output path, then the prompts; the output is written whole or not at all.
    include_ids, exclude_ids = parse_ids(include), parse_ids(exclude)
    check_k_range(k_min, k_max, instruction_pool(include_ids, exclude_ids))
    check_benchmark_output(output, force)
    base = read_base_prompts(prompts)[: limit if limit else None]
    rows = build_rows(base, k_min=k_min, k_max=k_max, include=include_ids, exclude=exclude_ids, seed=seed)
    write_benchmark(rows, output)
    counts: dict[int, int] = {}
    for row in rows:
        counts[len(row.instruction_id_list)] = counts.get(len(row.instruction_id_list), 0) + 1
    spread = ", ".join(f"k={k}: {n}" for k, n in sorted(counts.items()))
    typer.echo(f"{output}: {len(rows)} prompts, {sum(counts[k] * k for k in counts)} instructions ({spread})")
