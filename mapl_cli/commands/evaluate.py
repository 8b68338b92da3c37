"""`mapl evaluate`: instruction-following accuracy of models, of ready-made responses, or of reward models.

    mapl evaluate --benchmark examples/eval_benchmark.jsonl --model smollm2-135m-instruct --model out/dpo --output out/eval
    mapl evaluate --benchmark input_data.jsonl --responses responses.jsonl --output out/eval
    mapl evaluate --reward-model out/rm-bt --reward-model out/rm-mapl --pairs out/heldout --output out/eval-rm

Writes OUTPUT/results.parquet, summary.json, report.md, accuracy.png, accuracy_by_k.png and manifest.json;
prints the comparison table on stdout (with several models: each one's differences from the first, with
95% paired bootstrap intervals and McNemar p-values).
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from mapl_cli.commands.parsing import at_least_zero, parse_shard, probability
from mapl_cli.errors import MaplError
from mapl_cli.models import Dtype
from mapl_cli.tracking import ReportTo, chosen


class Backend(str, Enum):
    auto = "auto"
    hf = "hf"
    vllm = "vllm"


class LoraMode(str, Enum):
    serve = "serve"
    merge = "merge"


class Preset(str, Enum):
    mapl = "mapl"
    lm_eval = "lm-eval"


# The --help panels, and descriptions `mapl sample` shares.
INPUTS, MODEL, GENERATION, REWARD_MODEL = "Inputs", "Model", "Generation", "Reward model"
STATISTICS, OUTPUT = "Statistics", "Output"
BACKEND_HELP = ("Generation backend: auto, hf or vllm. auto takes vllm when it imports and a GPU is present, "
                "else hf (transformers).")
DTYPE_HELP = ("Weights dtype: auto, float32, bfloat16 or float16. auto is bfloat16 on a GPU that supports it, "
              "else float32.")
TOP_P_HELP = "Nucleus sampling: sample from the smallest set of tokens whose probability mass reaches top-p."
TEMPLATE_KWARGS_HELP = "Extra chat-template variables as a JSON object, for example '{\"enable_thinking\": false}'."
FORCE_RUN_HELP = ("Replace an earlier run in --output; its files are replaced only when the new run has "
                  "finished, so a failed run loses nothing.")

#: Generation settings of each preset (explicit options override them). lm-eval: lm-evaluation-harness's
#: IFEval task (greedy, at most 1,280 new tokens).
PRESETS: dict[str, dict[str, Any]] = {
    "mapl": {"max_new_tokens": 256, "temperature": 0.0, "top_p": 1.0},
    "lm-eval": {"max_new_tokens": 1280, "temperature": 0.0, "top_p": 1.0},
}


def parse_template_kwargs(text: str | None) -> dict[str, Any] | None:
    """--chat-template-kwargs: a JSON object, e.g. '{"enable_thinking": false}'."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise MaplError(f"--chat-template-kwargs: not valid JSON ({err.msg}): {text!r}") from None
    except RecursionError:
        raise MaplError("--chat-template-kwargs: not valid JSON (nested too deeply)") from None
    if not isinstance(value, dict):
        raise MaplError(f"--chat-template-kwargs: must be a JSON object such as '{{\"enable_thinking\": false}}', got {text!r}")
    return value


def resolve_sampling(preset: Preset, max_new_tokens: int | None, temperature: float | None, top_p: float | None,
                     seed: int, chat_template_kwargs: str | None):
    """The generation settings: the preset's defaults, overridden by every option given explicitly."""
    from mapl_cli.generation.base import SamplingConfig

    defaults = PRESETS[preset.value]
    return SamplingConfig(
        max_new_tokens=defaults["max_new_tokens"] if max_new_tokens is None else max_new_tokens,
        temperature=defaults["temperature"] if temperature is None else temperature,
        top_p=defaults["top_p"] if top_p is None else top_p,
        seed=seed,
        chat_template_kwargs=parse_template_kwargs(chat_template_kwargs),
    )


def command(
    *,
    # Inputs
    benchmark: Annotated[str | None, typer.Option(metavar="<path>", rich_help_panel=INPUTS, show_default=False, help=(
        "The benchmark: IFEval-format jsonl (key, prompt, instruction_id_list, kwargs), or hf://google/IFEval "
        "when the hub is reachable."))] = None,
    responses: Annotated[list[str] | None, typer.Option(metavar="<path>", rich_help_panel=INPUTS, show_default=False, help=(
        "Score responses made elsewhere: jsonl rows with prompt and response (IFEval's response format); no "
        "model is loaded. Repeatable."))] = None,
    limit: Annotated[int | None, typer.Option(min=1, rich_help_panel=INPUTS, show_default=False, help=(
        "Evaluate only the first N benchmark prompts (before --shard splits them)."))] = None,
    shard: Annotated[str, typer.Option(metavar="I/N", rich_help_panel=INPUTS, help=(
        "Process only the I-th of N contiguous slices of the benchmark (0-based, after --limit), for Slurm "
        "job arrays; --merge combines the shards' output folders."))] = "0/1",
    merge: Annotated[list[str] | None, typer.Option(metavar="<path>", rich_help_panel=INPUTS, show_default=False, help=(
        "Combine the output folders of earlier runs (for example the shards of one evaluation) into one "
        "report in --output; nothing is generated. Repeatable."))] = None,
    # Model
    model: Annotated[list[str] | None, typer.Option("--model", "-m", metavar="<name|path>", rich_help_panel=MODEL, show_default=False, help=(
        "A model to generate with: a folder (a mapl train-dpo output, an HF folder, a LoRA adapter), a hub "
        "id, smollm2-135m-instruct or tiny-random. Repeat it to compare models on the same prompts and "
        "settings."))] = None,
    backend: Annotated[Backend, typer.Option(rich_help_panel=MODEL, help=BACKEND_HELP)] = Backend.auto,
    dtype: Annotated[Dtype, typer.Option(rich_help_panel=MODEL, help=DTYPE_HELP)] = Dtype.auto,
    device: Annotated[str | None, typer.Option(metavar="<device>", rich_help_panel=MODEL, show_default=False, help=(
        "The torch device for the hf backend and reward models; by default cuda when present, else cpu."))] = None,
    tensor_parallel_size: Annotated[int, typer.Option(min=1, rich_help_panel=MODEL, help=(
        "GPUs per model for the vllm backend (tensor parallelism)."))] = 1,
    lora_mode: Annotated[LoraMode, typer.Option(rich_help_panel=MODEL, help=(
        "How the vllm backend runs a LoRA adapter: serve (through vLLM's LoRA support) or merge (into the "
        "base weights first)."))] = LoraMode.serve,
    batch_size: Annotated[int, typer.Option(min=1, rich_help_panel=MODEL, help=(
        "Prompts per generate call (hf backend) and pairs per forward pass (reward models)."))] = 16,
    chat_template: Annotated[Path | None, typer.Option(rich_help_panel=MODEL, show_default=False, help=(
        "A Jinja chat template file that renders the prompts instead of each --model's own (for example the "
        "one a model was trained with elsewhere)."))] = None,
    # Generation
    preset: Annotated[Preset, typer.Option(rich_help_panel=GENERATION, help=(
        "Generation defaults: mapl (256 new tokens, greedy) or lm-eval (lm-evaluation-harness's IFEval task: "
        "1,280 new tokens, greedy). Explicit --max-new-tokens, --temperature and --top-p override it."))] = Preset.mapl,
    max_new_tokens: Annotated[int | None, typer.Option(min=1, rich_help_panel=GENERATION, show_default="256, or the --preset's", help=(
        "Most tokens generated per response."))] = None,
    temperature: Annotated[float | None, typer.Option(callback=at_least_zero, rich_help_panel=GENERATION, show_default="0, or the --preset's", help=(
        "Sampling temperature; 0 is greedy decoding."))] = None,
    top_p: Annotated[float | None, typer.Option(callback=probability, rich_help_panel=GENERATION, show_default="1, or the --preset's", help=(
        TOP_P_HELP))] = None,
    seed: Annotated[int, typer.Option(rich_help_panel=GENERATION, help=(
        "Random seed of the sampling and of the bootstrap resampling."))] = 0,
    system_prompt: Annotated[str | None, typer.Option(metavar="<text>", rich_help_panel=GENERATION, show_default=False, help=(
        "A system message put before every benchmark prompt; none by default, as in IFEval."))] = None,
    chat_template_kwargs: Annotated[str | None, typer.Option(
        metavar="<json>", rich_help_panel=GENERATION, show_default=False, help=TEMPLATE_KWARGS_HELP)] = None,
    strip_thinking: Annotated[bool, typer.Option("--strip-thinking/--no-strip-thinking", rich_help_panel=GENERATION, help=(
        "Score only the text after a reasoning trace (<think>...</think>); responses without one are "
        "unchanged, and the trace is kept in results.parquet."))] = True,
    # Reward model
    reward_model: Annotated[list[str] | None, typer.Option("--reward-model", metavar="<path>", rich_help_panel=REWARD_MODEL, show_default=False, help=(
        "A mapl train-rm output folder to score on --pairs: accuracy and mean margin by kind and condition. "
        "Repeatable."))] = None,
    pairs: Annotated[str | None, typer.Option(metavar="<path>", rich_help_panel=REWARD_MODEL, show_default=False, help=(
        "The pairs table for --reward-model: a pairs.parquet file, or the folder holding one."))] = None,
    max_length: Annotated[int, typer.Option(min=1, rich_help_panel=REWARD_MODEL, help=(
        "Longest prompt plus response in tokens for reward models; responses are cut at the end (use the "
        "training --max-length)."))] = 1024,
    # Statistics
    bootstrap: Annotated[int, typer.Option(min=0, rich_help_panel=STATISTICS, help=(
        "Resamples for the paired bootstrap intervals of each model's difference from the first; 0 turns the "
        "comparison off."))] = 10_000,
    train_manifest: Annotated[list[str] | None, typer.Option("--train-manifest", metavar="<path>", rich_help_panel=STATISTICS, show_default=False, help=(
        "The manifest.json of the synthesize or training run behind the models; the report splits accuracy "
        "into instruction types seen and not seen in training. Repeatable; by default the manifests of "
        "--model folders that are mapl training runs."))] = None,
    # Output
    output: Annotated[Path, typer.Option("--output", "-o", rich_help_panel=OUTPUT, show_default=False, help=(
        "Output folder for results.parquet, summary.json, report.md, the charts and manifest.json."))],
    chunk_size: Annotated[int, typer.Option(min=1, rich_help_panel=OUTPUT, help=(
        "Prompts generated between writes to results.jsonl; a crash loses at most one chunk."))] = 64,
    resume: Annotated[bool, typer.Option("--resume", rich_help_panel=OUTPUT, help=(
        "Continue an earlier run in --output: skip the (model, prompt) pairs already answered."))] = False,
    force: Annotated[bool, typer.Option("--force", rich_help_panel=OUTPUT, help=FORCE_RUN_HELP)] = False,
    report_to: Annotated[list[ReportTo] | None, typer.Option("--report-to", metavar="<tracker>", rich_help_panel=OUTPUT, show_default=False, help=(
        "Also send the summary's metrics and the comparison table to an experiment tracker: tensorboard "
        "(event files in OUTPUT/runs/), wandb (offline unless WANDB_MODE or an API key says online) or "
        "trackio (its local store). Repeatable; none sends nothing. Each tracker needs its extra, for example pip install "
        "'mapl-cli[tensorboard]'."))] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", rich_help_panel=OUTPUT, help=(
        "Show a progress bar on stderr while responses are generated."))] = True,
) -> None:
    """Score instruction following (IFEval metrics, strict and loose, by number of instructions) of models or responses, or the pairwise accuracy of reward models."""
    from mapl_cli.evaluation.evaluate import EvaluateConfig, run

    sampling = resolve_sampling(preset, max_new_tokens, temperature, top_p, seed, chat_template_kwargs)
    if resume and force:
        raise MaplError("--resume and --force: choose one (continue the run in --output, or start it over)")

    config = EvaluateConfig(
        output=output,
        # what is scored
        benchmark=benchmark, models=list(model or []), responses=list(responses or []),
        reward_models=list(reward_model or []), pairs=pairs,
        # how responses are made and read
        backend=backend.value, sampling=sampling, system_prompt=system_prompt, strip_thinking=strip_thinking,
        chat_template=None if chat_template is None else str(chat_template),
        # the report
        bootstrap=bootstrap, train_manifests=list(train_manifest or []),
        # loading models
        batch_size=batch_size, dtype=dtype.value, device=device, tensor_parallel_size=tensor_parallel_size,
        lora_mode=lora_mode.value, max_length=max_length,
        # which prompts, and the output folder
        limit=limit, shard=parse_shard(shard), merge=list(merge or []), chunk_size=chunk_size,
        resume=resume, force=force, report_to=chosen(report_to), progress=progress,
    )
    run(config)
