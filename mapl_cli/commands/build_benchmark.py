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


def command(
    prompts: Annotated[Path, typer.Argument(help='Base prompts: a jsonl file of {"key": int, "prompt": str} rows (key defaults to the row number).', show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The benchmark jsonl file to write (IFEval format: key, prompt, instruction_id_list, kwargs).", show_default=False)],
    k_min: Annotated[int, typer.Option(min=1, help="Fewest instructions per prompt.")] = 1,
    k_max: Annotated[int, typer.Option(min=1, help="Most instructions per prompt (k is drawn uniformly from k-min..k-max); no more than the instruction types that can share a prompt.")] = 6,
    include: Annotated[list[str] | None, typer.Option(help="Draw only from these instruction ids (repeat or comma-separate); default: IFEval's 25.")] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Never use these instruction ids (repeat or comma-separate).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; each prompt's draw depends only on (seed, key).")] = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N base prompts.", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUTPUT if it exists.")] = False,
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
