"""Typer option types shared by `mapl train-rm` and `mapl train-dpo`; each command turns its parameters into a
`TrainConfig` field by field. No torch import here, so `mapl --help` stays light."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from mapl_cli.tracking import ReportTo
from mapl_cli.train.config import DTYPES, INTER_LOSSES, SCHEDULERS, TrainConfig, check_options


def train(config: TrainConfig, what: str) -> None:
    """Check the options (one line naming an out-of-range one, before anything is read or written), train,
    say where the `what` ("model", "reward model") was written, and for --push-to-hub upload it: here, after
    `run` has put every output in place and outside its clean-up of a failed run (`run` checks the hub and
    the token before it loads anything). A --resume run that finds the training done uploads too: that is
    how a failed upload is retried."""
    check_options(config)
    from mapl_cli.train.trainer import run

    summary = run(config)
    if summary and not summary.get("already_finished"):
        typer.echo(f"{what} written to {Path(summary['model'])} ({summary['steps']} steps, final loss {summary['loss']:.4f})")
    if summary and config.push_to_hub:  # summary is empty on every process but the first
        from mapl_cli.hub import push_folder

        url = push_folder(summary["model"], config.push_to_hub, f"mapl train-{config.stage}: {summary['steps']} steps")
        typer.echo(f"{what} uploaded to {url}")


# The choices are written once, in config.py (which checks them); these enums only show them to Typer.
Scheduler = Enum("Scheduler", {name: name for name in SCHEDULERS}, type=str)
InterLoss = Enum("InterLoss", {name: name for name in INTER_LOSSES}, type=str)
TrainDtype = Enum("TrainDtype", {name: name for name in DTYPES}, type=str)  # models.Dtype less float16

Pairs = Annotated[Path, typer.Argument(help="pairs.parquet written by `mapl synthesize` (or a folder holding one).")]
Output = Annotated[Path, typer.Option("--output", "-o", help="Output folder: model/, metrics.jsonl, curves.png, manifest.json, checkpoints/.")]
Model = Annotated[str, typer.Option(help="Starting model: smollm2-135m-instruct (built in, default), tiny-random (built in, for tests), a local folder, or a hub id (only when the hub is reachable).")]
EvalPairs = Annotated[Path | None, typer.Option(help="A second pairs table to evaluate on (loss and accuracy by kind, written to eval_metrics.jsonl).")]
Epochs = Annotated[int, typer.Option(help="Passes over the pairs (ignored when --max-steps is set).")]
MaxSteps = Annotated[int | None, typer.Option(help="Stop after this many optimizer steps (overrides --epochs).")]
BatchSize = Annotated[int, typer.Option(help="Pairs per micro-batch per process; each pair is 2 sequences (4 for inter rows with --inter-loss margin) in one forward.")]
GradAccum = Annotated[int, typer.Option(help="Micro-batches accumulated per optimizer step (global batch = batch size x grad accum x processes).")]
Lr = Annotated[float | None, typer.Option(help="Peak learning rate [default: RM 1e-5, DPO 1e-6; with LoRA: RM 1e-4, DPO 5e-5].")]
WarmupSteps = Annotated[int, typer.Option(help="Linear warm-up steps from 0 to --lr.")]
SchedulerOpt = Annotated[Scheduler, typer.Option(help="Learning-rate schedule after warm-up.")]
WeightDecay = Annotated[float, typer.Option(help="AdamW weight decay (not applied to biases and norms).")]
MaxGradNorm = Annotated[float, typer.Option(help="Clip the global gradient norm to this value (0: no clipping).")]
GradCkpt = Annotated[bool, typer.Option("--gradient-checkpointing/--no-gradient-checkpointing", help="Recompute activations in the backward pass: less memory, a little more compute.")]
DtypeOpt = Annotated[TrainDtype, typer.Option(help="Weights dtype: auto is bfloat16 on a GPU that supports it, else float32 (bfloat16 is very slow on CPUs without native support).")]
Seed = Annotated[int, typer.Option(help="Seed for the batch order and for new weights (reward head).")]
MaxLength = Annotated[int, typer.Option(help="Longest prompt+response in tokens; responses are cut at the end (rows whose response would be empty are dropped and counted).")]
MaxPromptLength = Annotated[int, typer.Option(help="Longest prompt in tokens; prompts keep their end (the instructions and the generation prompt).")]
LambdaIntra = Annotated[float, typer.Option(help="Weight of intra-sample (Rc-BT) rows in the loss; 0 ignores them.")]
LambdaInter = Annotated[float, typer.Option(help="Weight of inter-sample (multi-instruction) rows in the loss; 0 ignores them.")]
InterLossOpt = Annotated[InterLoss, typer.Option(help="Inter loss: pair = -log sigmoid(s(x',y_w) - s(x',y_l)); margin = that margin must exceed the margin under the base prompt x (needs base_prompt).")]
EvalEvery = Annotated[int, typer.Option(help="Evaluate on --eval-pairs every N steps (0: only at the end).")]
SaveEvery = Annotated[int, typer.Option(help="Write a checkpoint every N steps (0: only at the end); the two newest are kept.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in --output (starts from scratch if there is none). Every option that changes the result must be the one the checkpoint was written with; --save-every, --eval-every, --progress, --report-to, --fsdp, --packing and the batch split may change, and a --scheduler constant run may be given more --max-steps/--epochs.")]
Force = Annotated[bool, typer.Option("--force", help="Replace mapl outputs in an existing --output folder (other files stay). The new run writes beside it and replaces the old outputs only when it finishes: a failed or interrupted run leaves them as they were.")]
LoraR = Annotated[int, typer.Option(help="LoRA rank (0: full fine-tune).")]
LoraAlpha = Annotated[float | None, typer.Option(help="LoRA alpha [default: 2 x rank].")]
LoraTargets = Annotated[str, typer.Option(help="Modules LoRA adapts: all-linear, or comma-separated names such as q_proj,v_proj.")]
MergeLora = Annotated[bool, typer.Option("--merge-lora", help="Write merged full weights to model/ instead of the adapter.")]
Fsdp = Annotated[bool, typer.Option("--fsdp/--no-fsdp", help="Under several processes (torchrun, accelerate launch, srun): shard parameters, gradients and optimizer state across them (FSDP2) instead of a full replica on each. `accelerate launch --use_fsdp` turns it on too. No effect in one process.")]
PushToHub = Annotated[str | None, typer.Option(help="After training, upload the model folder (weights, tokenizer, README.md model card) to this hub repo (created if missing with the hub's default visibility: create it private beforehand to keep it private). Checked before anything loads: hub access on, a write token (HF_TOKEN or `hf auth login`), the hub answering.", show_default=False)]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")]
ReportToOpt = Annotated[list[ReportTo] | None, typer.Option("--report-to", help="Also send every metric (metrics.jsonl, eval metrics) and the resolved options to an experiment tracker: tensorboard (event files in OUTPUT/runs/), wandb (offline unless WANDB_MODE or an API key says online), trackio (its local store). Repeatable; each needs its extra, e.g. pip install 'mapl-cli\\[tensorboard]'. \\[default: none]", show_default=False)]
Shuffle = Annotated[bool, typer.Option("--shuffle/--no-shuffle", help="Shuffle rows each epoch (seeded) and group them by length to cut padding; --no-shuffle keeps the file order.")]
ChatTemplate = Annotated[Path | None, typer.Option(help="A Jinja chat template file used instead of the model's own to render every prompt and response (the trained model is saved with it); the prompt must still render as a prefix of prompt+response.", show_default=False)]
Packing = Annotated[bool, typer.Option("--packing/--no-packing", help="Pack the sequences of a batch into as few rows as fit (position ids restart per sequence, block-diagonal attention) instead of one padded row each.")]
