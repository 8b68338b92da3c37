"""`mapl sample`: n responses per prompt from a model, labelled by the instruction registry, and the
preference pairs they give, in `mapl synthesize`'s input format.

    mapl sample examples/eval_benchmark.jsonl --model tiny-random --n 4 --max-new-tokens 32 --output out/samples
    mapl sample examples/eval_prompts.jsonl --k-min 1 --k-max 3 --model out/dpo --output out/round1
    mapl synthesize out/samples/prefs.parquet --output out/pairs

Writes OUTPUT/samples.parquet, prefs.parquet and manifest.json (and the journal samples.jsonl, which
--resume continues).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mapl_cli.commands.evaluate import (
    BACKEND_HELP,
    DTYPE_HELP,
    FORCE_RUN_HELP,
    TEMPLATE_KWARGS_HELP,
    TOP_P_HELP,
    Backend,
    parse_template_kwargs,
)
from mapl_cli.commands.parsing import at_least_zero, parse_ids, parse_shard, probability
from mapl_cli.models import Dtype

PROMPTS, MODEL, SAMPLING, PAIRS, OUTPUT = "Prompts", "Model", "Sampling", "Pairs", "Output"  # the --help panels


def command(
    prompts: Annotated[str, typer.Argument(rich_help_panel=PROMPTS, show_default=False, help=(
        "The prompts: an IFEval-format benchmark (jsonl with instruction_id_list and kwargs), a base-prompt "
        "jsonl ({key, prompt} rows) or a preference file (.jsonl, .parquet, .json, hf://name[:split]); the "
        "last two need --k-max."))],
    *,
    # Prompts
    k_min: Annotated[int, typer.Option(min=1, rich_help_panel=PROMPTS, help=(
        "Fewest instructions drawn per prompt, for base prompts and preference files."))] = 1,
    k_max: Annotated[int | None, typer.Option(min=1, rich_help_panel=PROMPTS, show_default=False, help=(
        "Most instructions drawn per prompt, for base prompts and preference files (k uniform in "
        "k-min..k-max, drawn as build-benchmark draws them). Required for them; not allowed for a "
        "benchmark."))] = None,
    include: Annotated[list[str] | None, typer.Option(metavar="<id>", rich_help_panel=PROMPTS, show_default=False, help=(
        "Draw only from these instruction ids (repeat the option or comma-separate); by default from "
        "IFEval's 25."))] = None,
    exclude: Annotated[list[str] | None, typer.Option(metavar="<id>", rich_help_panel=PROMPTS, show_default=False, help=(
        "Never draw these instruction ids (repeat the option or comma-separate)."))] = None,
    limit: Annotated[int | None, typer.Option(min=1, rich_help_panel=PROMPTS, show_default=False, help=(
        "Sample only the first N prompts (before --shard splits them)."))] = None,
    shard: Annotated[str, typer.Option(metavar="I/N", rich_help_panel=PROMPTS, help=(
        "Process only the I-th of N contiguous slices of the prompts (0-based, after --limit), for Slurm job "
        "arrays."))] = "0/1",
    # Model
    model: Annotated[str, typer.Option("--model", "-m", metavar="<name|path>", rich_help_panel=MODEL, help=(
        "The policy to sample from: a folder (a mapl train-dpo output, an HF folder, a LoRA adapter), a hub "
        "id, smollm2-135m-instruct or tiny-random."))] = "smollm2-135m-instruct",
    backend: Annotated[Backend, typer.Option(rich_help_panel=MODEL, help=BACKEND_HELP)] = Backend.auto,
    dtype: Annotated[Dtype, typer.Option(rich_help_panel=MODEL, help=DTYPE_HELP)] = Dtype.auto,
    device: Annotated[str | None, typer.Option(metavar="<device>", rich_help_panel=MODEL, show_default=False, help=(
        "The torch device for the hf backend; by default cuda when present, else cpu."))] = None,
    tensor_parallel_size: Annotated[int, typer.Option(min=1, rich_help_panel=MODEL, help=(
        "GPUs per model for the vllm backend (tensor parallelism)."))] = 1,
    batch_size: Annotated[int, typer.Option(min=1, rich_help_panel=MODEL, help=(
        "Prompts per generate call on the hf backend; each brings n sequences."))] = 16,
    chat_template: Annotated[Path | None, typer.Option(rich_help_panel=MODEL, show_default=False, help=(
        "A Jinja chat template file that renders the prompts instead of the model's own."))] = None,
    # Sampling
    n: Annotated[int, typer.Option("--n", rich_help_panel=SAMPLING, help=(
        "Responses sampled per prompt; at least 2, since a pair needs two."))] = 4,
    temperature: Annotated[float, typer.Option(callback=at_least_zero, rich_help_panel=SAMPLING, help=(
        "Sampling temperature; it must be above 0, since greedy decoding gives n identical responses."))] = 1.0,
    top_p: Annotated[float, typer.Option(callback=probability, rich_help_panel=SAMPLING, help=TOP_P_HELP)] = 1.0,
    max_new_tokens: Annotated[int, typer.Option(min=1, rich_help_panel=SAMPLING, help=(
        "Most tokens generated per response."))] = 256,
    seed: Annotated[int, typer.Option(rich_help_panel=SAMPLING, help=(
        "Random seed of the sampling (per chunk of prompts), of the drawn instructions and of the tie-breaks "
        "between equally good pairs."))] = 0,
    chat_template_kwargs: Annotated[str | None, typer.Option(
        metavar="<json>", rich_help_panel=SAMPLING, show_default=False, help=TEMPLATE_KWARGS_HELP)] = None,
    # Pairs
    pairs_per_prompt: Annotated[int, typer.Option(min=1, rich_help_panel=PAIRS, help=(
        "Most preference pairs per prompt: distinct pairs, the widest margin of satisfied instructions "
        "first."))] = 1,
    # Output
    output: Annotated[Path, typer.Option("--output", "-o", rich_help_panel=OUTPUT, show_default=False, help=(
        "Output folder for samples.parquet, prefs.parquet, manifest.json and the journal samples.jsonl."))],
    chunk_size: Annotated[int, typer.Option(min=1, rich_help_panel=OUTPUT, help=(
        "Prompts sampled between writes to samples.jsonl; a crash loses at most one chunk."))] = 64,
    resume: Annotated[bool, typer.Option("--resume", rich_help_panel=OUTPUT, help=(
        "Continue an earlier run in --output: sample only the prompts not yet in its samples.jsonl."))] = False,
    force: Annotated[bool, typer.Option("--force", rich_help_panel=OUTPUT, help=FORCE_RUN_HELP)] = False,
    # --quiet: the old spelling of --no-progress, still accepted (help does not show it)
    progress: Annotated[bool, typer.Option("--progress/--no-progress", " /--quiet", rich_help_panel=OUTPUT, help=(
        "Show a progress bar on stderr."))] = True,
) -> None:
    """Sample n responses per prompt from a model, label them with the instruction registry, and write preference pairs for synthesize."""
    from mapl_cli.sampling.run import SampleConfig, run

    config = SampleConfig(
        prompts=prompts, output=output, model=model,
        # sampling
        n=n, backend=backend.value, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed,
        chat_template_kwargs=parse_template_kwargs(chat_template_kwargs),
        chat_template=None if chat_template is None else str(chat_template),
        # instructions for prompts that carry none
        k_min=k_min, k_max=k_max, include=parse_ids(include), exclude=parse_ids(exclude),
        # pairs
        pairs_per_prompt=pairs_per_prompt,
        # loading the model
        batch_size=batch_size, dtype=dtype.value, device=device, tensor_parallel_size=tensor_parallel_size,
        # which prompts, and the output folder
        limit=limit, shard=parse_shard(shard), chunk_size=chunk_size, resume=resume, force=force, progress=progress,
    )
    manifest = run(config)
    counts = manifest["counts"]
    typer.echo(f"{output}: {counts['samples']} samples of {counts['prompts']} prompts, {counts['pairs']} pairs "
               f"({counts['ties_dropped']} prompts tied), mean satisfied rate {counts['mean_satisfied_rate']}")
