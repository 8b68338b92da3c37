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
TrainDtype = Enum("TrainDtype", {name: name for name in DTYPES}, type=str)  # models.Dtype less float16, plus bf16-mixed

# The --help panels of both training commands (commands/help.py), in the order help shows them.
DATA, MODEL, OBJECTIVE, OPTIMISATION = "Data", "Model", "Objective", "Optimisation"
LORA, CHECKPOINTS, DISTRIBUTED, OUTPUT = "LoRA", "Checkpoints", "Distributed", "Output"

# Data
Pairs = Annotated[Path, typer.Argument(rich_help_panel=DATA, show_default=False, help=(
    "The pairs table written by `mapl synthesize`: a pairs.parquet file, or the folder holding one."))]
EvalPairs = Annotated[Path | None, typer.Option(rich_help_panel=DATA, show_default=False, help=(
    "A second pairs table to evaluate on; its loss and accuracy by kind go to eval_metrics.jsonl."))]
EvalEvery = Annotated[int, typer.Option(rich_help_panel=DATA, help=(
    "Evaluate on --eval-pairs every N optimizer steps; 0 evaluates only at the end."))]
MaxLength = Annotated[int, typer.Option(rich_help_panel=DATA, help=(
    "Longest prompt plus response in tokens; responses are cut at the end, and rows whose response would "
    "be empty are dropped and counted."))]
MaxPromptLength = Annotated[int, typer.Option(rich_help_panel=DATA, help=(
    "Longest prompt in tokens; a longer prompt keeps its end (the instructions and the generation prompt)."))]
Shuffle = Annotated[bool, typer.Option("--shuffle/--no-shuffle", rich_help_panel=DATA, help=(
    "Shuffle the rows each epoch (seeded) and group them by length to cut padding; --no-shuffle keeps the "
    "file order."))]
Packing = Annotated[bool, typer.Option("--packing/--no-packing", rich_help_panel=DATA, help=(
    "Pack the sequences of a batch into as few rows as fit (position ids restart per sequence, "
    "block-diagonal attention) instead of one padded row each."))]
ChatTemplate = Annotated[Path | None, typer.Option(rich_help_panel=DATA, show_default=False, help=(
    "A Jinja chat template file that renders every prompt and response instead of the model's own; the "
    "trained model is saved with it. A prompt must still render as a prefix of prompt plus response."))]

# Model
Model = Annotated[str, typer.Option("--model", "-m", metavar="<name|path>", rich_help_panel=MODEL, help=(
    "The starting model: smollm2-135m-instruct (built in), tiny-random (built in, for tests), a local "
    "folder, or a hub id (only when the hub is reachable)."))]
DtypeOpt = Annotated[TrainDtype, typer.Option(rich_help_panel=MODEL, help=(
    "Weights dtype: auto, float32, bfloat16 or bf16-mixed (float32 weights and optimizer state, every "
    "forward under bfloat16 autocast). On a GPU with bfloat16, auto is bf16-mixed for a full model and "
    "bfloat16 frozen weights for LoRA; on a CPU auto is float32. On CPUs with bfloat16 instructions "
    "(AVX512-BF16, AMX) bf16-mixed trains about twice as fast as float32; without them it is slower."))]
GradCkpt = Annotated[bool, typer.Option("--gradient-checkpointing/--no-gradient-checkpointing", rich_help_panel=MODEL, help=(
    "Recompute activations in the backward pass: less memory for a little more compute."))]

# Objective
LambdaIntra = Annotated[float, typer.Option(rich_help_panel=OBJECTIVE, help=(
    "Weight of the intra-sample (Rc-BT) rows in the loss; 0 ignores them."))]
LambdaInter = Annotated[float, typer.Option(rich_help_panel=OBJECTIVE, help=(
    "Weight of the inter-sample (multi-instruction) rows in the loss; 0 ignores them."))]
InterLossOpt = Annotated[InterLoss, typer.Option(rich_help_panel=OBJECTIVE, help=(
    "Form of the inter-sample loss. pair: -log sigmoid(s(x',y_w) - s(x',y_l)). margin: that margin must "
    "exceed the margin under the base prompt x (needs the base_prompt column)."))]

# Optimisation
Epochs = Annotated[int, typer.Option(rich_help_panel=OPTIMISATION, help=(
    "Passes over the pairs; ignored when --max-steps is set."))]
MaxSteps = Annotated[int | None, typer.Option(rich_help_panel=OPTIMISATION, show_default=False, help=(
    "Stop after this many optimizer steps; overrides --epochs."))]
BatchSize = Annotated[int, typer.Option(rich_help_panel=OPTIMISATION, help=(
    "Pairs per micro-batch on each process; a pair is 2 sequences in one forward (4 for inter rows with "
    "--inter-loss margin)."))]
GradAccum = Annotated[int, typer.Option(rich_help_panel=OPTIMISATION, help=(
    "Micro-batches accumulated per optimizer step; the global batch is batch size x grad accum x processes."))]
Lr = Annotated[float | None, typer.Option(
    rich_help_panel=OPTIMISATION, show_default="train-rm 1e-5, train-dpo 1e-6; with LoRA 1e-4 and 5e-5",
    help="Peak learning rate, reached after the warm-up.")]
WarmupSteps = Annotated[int, typer.Option(rich_help_panel=OPTIMISATION, help=(
    "Optimizer steps of linear warm-up from 0 to --lr."))]
SchedulerOpt = Annotated[Scheduler, typer.Option(rich_help_panel=OPTIMISATION, help=(
    "Learning-rate schedule after the warm-up: cosine, linear or constant."))]
WeightDecay = Annotated[float, typer.Option(rich_help_panel=OPTIMISATION, help=(
    "AdamW weight decay; biases and norm weights are not decayed."))]
MaxGradNorm = Annotated[float, typer.Option(rich_help_panel=OPTIMISATION, help=(
    "Clip the global gradient norm to this value; 0 turns clipping off."))]
Seed = Annotated[int, typer.Option(rich_help_panel=OPTIMISATION, help=(
    "Random seed of the batch order and of new weights (the reward head)."))]

# LoRA
LoraR = Annotated[int, typer.Option(rich_help_panel=LORA, help=(
    "LoRA rank; 0 trains every weight instead (a full fine-tune)."))]
LoraAlpha = Annotated[float | None, typer.Option(rich_help_panel=LORA, show_default="2 x rank", help=(
    "LoRA scaling factor alpha; the update is scaled by alpha / rank."))]
LoraTargets = Annotated[str, typer.Option(metavar="<modules>", rich_help_panel=LORA, help=(
    "Modules LoRA adapts: all-linear, or comma-separated module names such as q_proj,v_proj."))]
MergeLora = Annotated[bool, typer.Option("--merge-lora", rich_help_panel=LORA, help=(
    "Write merged full weights to model/ instead of the adapter."))]

# Checkpoints
SaveEvery = Annotated[int, typer.Option(rich_help_panel=CHECKPOINTS, help=(
    "Write a checkpoint every N optimizer steps (0: only at the end); the two newest are kept."))]
Resume = Annotated[bool, typer.Option("--resume", rich_help_panel=CHECKPOINTS, help=(
    "Continue from the newest checkpoint in --output, or start from scratch if there is none. Options that "
    "change the result must be the checkpoint's; --save-every, --eval-every, --progress, --report-to, "
    "--fsdp, --packing and the batch split may change, and a --scheduler constant run may be given more "
    "--max-steps or --epochs."))]

# Distributed
Fsdp = Annotated[bool, typer.Option("--fsdp/--no-fsdp", rich_help_panel=DISTRIBUTED, help=(
    "Under several processes (torchrun, accelerate launch, srun), shard parameters, gradients and optimizer "
    "state across them (FSDP2) instead of keeping a full replica on each. `accelerate launch --use_fsdp` "
    "turns it on too. No effect in one process."))]

# Output
Output = Annotated[Path, typer.Option("--output", "-o", rich_help_panel=OUTPUT, show_default=False, help=(
    "Output folder for model/, metrics.jsonl, curves.png, manifest.json and checkpoints/."))]
Force = Annotated[bool, typer.Option("--force", rich_help_panel=OUTPUT, help=(
    "Replace the mapl outputs of an earlier run in --output (other files stay). The new run writes beside "
    "them and replaces them only when it finishes: a failed or interrupted run leaves them as they were."))]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", rich_help_panel=OUTPUT, help=(
    "Show a progress bar on stderr."))]
ReportToOpt = Annotated[list[ReportTo] | None, typer.Option(
    "--report-to", metavar="<tracker>", rich_help_panel=OUTPUT, show_default=False, help=(
        "Also send every metric (metrics.jsonl, eval metrics) and the resolved options to an experiment "
        "tracker: tensorboard (event files in OUTPUT/runs/), wandb (offline unless WANDB_MODE or an API key "
        "says online) or trackio (its local store). Repeatable; none sends nothing. Each tracker needs its extra, for example "
        "pip install 'mapl-cli[tensorboard]'."))]
PushToHub = Annotated[str | None, typer.Option(metavar="<repo>", rich_help_panel=OUTPUT, show_default=False, help=(
    "After training, upload the model folder (weights, tokenizer, README.md model card) to this hub repo, "
    "created if missing with the hub's default visibility (create it private beforehand to keep it "
    "private). Hub access, a write token (HF_TOKEN or `hf auth login`) and the hub are checked before "
    "anything loads."))]
