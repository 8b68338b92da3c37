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

from mapl_cli.commands.evaluate import Backend, parse_template_kwargs
from mapl_cli.commands.parsing import at_least_zero, parse_ids, parse_shard, probability
from mapl_cli.models import Dtype


def command(
    prompts: Annotated[str, typer.Argument(help="An IFEval-format benchmark (jsonl with instruction_id_list and kwargs), a base-prompt jsonl ({key, prompt} rows) or a preference file (.jsonl, .parquet, .json, hf://name[:split]); the last two need --k-max.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder for samples.parquet, prefs.parquet and manifest.json.", show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="The policy to sample from: a folder (mapl train-dpo output, HF folder, LoRA adapter), a hub id, smollm2-135m-instruct or tiny-random.")] = "smollm2-135m-instruct",
    n: Annotated[int, typer.Option("--n", help="Responses sampled per prompt (at least 2: a pair needs two).")] = 4,
    backend: Annotated[Backend, typer.Option(help="Generation backend: auto takes vllm when it imports and a GPU is present, else hf (transformers).")] = Backend.auto,
    temperature: Annotated[float, typer.Option(callback=at_least_zero, help="Sampling temperature (must be > 0: greedy decoding gives n identical responses).")] = 1.0,
    top_p: Annotated[float, typer.Option(callback=probability, help="Nucleus sampling mass.")] = 1.0,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Most tokens generated per response.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the sampling (per chunk of prompts), of the drawn instructions and of the tie-breaks between equally good pairs.")] = 0,
    chat_template_kwargs: Annotated[str | None, typer.Option(help='Extra chat-template variables as a JSON object, for example \'{"enable_thinking": false}\'.', show_default=False)] = None,
    chat_template: Annotated[Path | None, typer.Option(help="A Jinja chat template file used instead of the model's own to render the prompts.", show_default=False)] = None,
    k_min: Annotated[int, typer.Option(min=1, help="Base prompts and preference files: fewest instructions drawn per prompt.")] = 1,
    k_max: Annotated[int | None, typer.Option(min=1, help="Base prompts and preference files: most instructions drawn per prompt (k uniform in k-min..k-max, drawn as build-benchmark draws them). Required for them; not allowed for a benchmark.", show_default=False)] = None,
    include: Annotated[list[str] | None, typer.Option(help="Draw only from these instruction ids (repeat or comma-separate); default: IFEval's 25.", show_default=False)] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Never draw these instruction ids (repeat or comma-separate).", show_default=False)] = None,
    pairs_per_prompt: Annotated[int, typer.Option(min=1, help="Most preference pairs per prompt (distinct, widest margin of satisfied instructions first).")] = 1,
    batch_size: Annotated[int, typer.Option(min=1, help="Prompts per generate call (hf backend; each brings n sequences).")] = 16,
    dtype: Annotated[Dtype, typer.Option(help="Weights dtype: auto is bfloat16 on a GPU that supports it, else float32.")] = Dtype.auto,
    device: Annotated[str | None, typer.Option(help="torch device for the hf backend (default: cuda when present, else cpu).", show_default=False)] = None,
    tensor_parallel_size: Annotated[int, typer.Option(min=1, help="GPUs for the vllm backend.")] = 1,
    limit: Annotated[int | None, typer.Option(min=1, help="Sample only the first N prompts.", show_default=False)] = None,
    shard: Annotated[str, typer.Option(help="Sample only the I-th of N contiguous slices of the prompts (after --limit), for Slurm job arrays.")] = "0/1",
    chunk_size: Annotated[int, typer.Option(min=1, help="Prompts sampled between writes to samples.jsonl (a crash loses at most one chunk).")] = 64,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a run in OUTPUT: sample only the prompts not in its samples.jsonl.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Discard an earlier run in OUTPUT (replaced only when the new run has finished).")] = False,
    progress: Annotated[bool, typer.Option("--progress/--quiet", help="Show a progress bar on stderr.")] = True,
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
