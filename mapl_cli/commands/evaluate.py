"""`mapl evaluate`: instruction-following accuracy of models, of ready-made responses, or of reward models.

    mapl evaluate --benchmark examples/eval_benchmark.jsonl --model smollm2-135m-instruct --model out/dpo --output out/eval
    mapl evaluate --benchmark input_data.jsonl --responses responses.jsonl --output out/eval
    mapl evaluate --reward-model out/rm-bt --reward-model out/rm-mapl --pairs out/heldout --output out/eval-rm

Writes OUTPUT/results.parquet, summary.json, report.md, accuracy.png, accuracy_by_k.png and manifest.json;
prints the comparison table on stdout.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from mapl_cli.commands.parsing import parse_shard


class Backend(str, Enum):
    auto = "auto"
    hf = "hf"
    vllm = "vllm"


class Dtype(str, Enum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class LoraMode(str, Enum):
    serve = "serve"
    merge = "merge"


def command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder for results.parquet, summary.json, report.md and charts.", show_default=False)],
    benchmark: Annotated[str | None, typer.Option(help="IFEval-format jsonl (key, prompt, instruction_id_list, kwargs), or hf://google/IFEval when the hub is reachable.", show_default=False)] = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="A model to generate with: a folder (mapl train-dpo output, HF folder, LoRA adapter), a hub id, smollm2-135m-instruct or tiny-random. Repeat to compare models on the same prompts and settings.", show_default=False)] = None,
    responses: Annotated[list[str] | None, typer.Option(help="Score responses made elsewhere: jsonl rows with prompt and response (IFEval's response format); no model is loaded. Repeatable.", show_default=False)] = None,
    reward_model: Annotated[list[str] | None, typer.Option("--reward-model", help="A mapl train-rm output folder to score on --pairs (accuracy and mean margin by kind and condition). Repeatable.", show_default=False)] = None,
    pairs: Annotated[str | None, typer.Option(help="pairs.parquet (or its folder) for --reward-model.", show_default=False)] = None,
    backend: Annotated[Backend, typer.Option(help="Generation backend: auto takes vllm when it imports and a GPU is present, else hf (transformers).")] = Backend.auto,
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens generated per response.")] = 256,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 is greedy decoding.")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass (used when temperature > 0).")] = 1.0,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Prompts per generate call (hf backend) and pairs per forward pass (reward models).")] = 16,
    dtype: Annotated[Dtype, typer.Option(help="Weights dtype: auto is bfloat16 on a GPU that supports it, else float32.")] = Dtype.auto,
    device: Annotated[str | None, typer.Option(help="torch device for the hf backend and reward models (default: cuda when present, else cpu).", show_default=False)] = None,
    tensor_parallel_size: Annotated[int, typer.Option(help="GPUs per model for the vllm backend.")] = 1,
    lora_mode: Annotated[LoraMode, typer.Option(help="vllm backend and LoRA adapters: serve through vLLM's LoRA support, or merge into the base weights first.")] = LoraMode.serve,
    max_length: Annotated[int, typer.Option(help="Reward models: longest prompt+response in tokens (responses are cut at the end; use the training --max-length).")] = 1024,
    limit: Annotated[int | None, typer.Option(help="Evaluate only the first N benchmark prompts.", show_default=False)] = None,
    shard: Annotated[str, typer.Option(help="Evaluate only the I-th of N contiguous slices of the benchmark (after --limit), for Slurm job arrays; combine the shards' output folders with --merge.")] = "0/1",
    merge: Annotated[list[str] | None, typer.Option(help="Combine the output folders of earlier runs (for example the shards of one evaluation) into one report in OUTPUT; nothing is generated. Repeatable.", show_default=False)] = None,
    chunk_size: Annotated[int, typer.Option(help="Prompts generated between writes to results.jsonl (a crash loses at most one chunk).")] = 64,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a run in OUTPUT: skip (model, prompt) pairs already answered.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Discard earlier results in OUTPUT and start over.")] = False,
) -> None:
    """Score instruction following (IFEval metrics, strict and loose, by number of instructions) of models or responses, or the pairwise accuracy of reward models."""
    from mapl_cli.evaluation.backends.base import SamplingConfig
    from mapl_cli.evaluation.evaluate import EvaluateConfig, run

    config = EvaluateConfig(
        output=output,
        benchmark=benchmark,
        models=list(model or []),
        responses=list(responses or []),
        reward_models=list(reward_model or []),
        pairs=pairs,
        backend=backend.value,
        sampling=SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed),
        batch_size=batch_size,
        dtype=dtype.value,
        device=device,
        tensor_parallel_size=tensor_parallel_size,
        lora_mode=lora_mode.value,
        limit=limit,
        shard=parse_shard(shard),
        merge=list(merge or []),
        chunk_size=chunk_size,
        max_length=max_length,
        resume=resume,
        force=force,
    )
    run(config)
