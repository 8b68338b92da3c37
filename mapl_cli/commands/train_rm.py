"""`mapl train-rm`: a Bradley-Terry reward model with the MAPL objectives (standard + intra + inter rows).

    mapl train-rm out/pairs/pairs.parquet --output out/rm --max-steps 200
    mapl train-rm pairs.parquet --model tiny-random --output /tmp/rm --max-steps 3     # smoke run
"""

from __future__ import annotations

from typing import Annotated

import typer

from mapl_cli.tracking import chosen
from mapl_cli.train import options as o
from mapl_cli.train.config import TrainConfig


def command(
    pairs: o.Pairs,
    *,
    # Data
    eval_pairs: o.EvalPairs = None,
    eval_every: o.EvalEvery = 0,
    max_length: o.MaxLength = 1024,
    max_prompt_length: o.MaxPromptLength = 512,
    shuffle: o.Shuffle = True,
    packing: o.Packing = True,
    chat_template: o.ChatTemplate = None,
    # Model
    model: o.Model = "smollm2-135m-instruct",
    dtype: o.DtypeOpt = o.TrainDtype.auto,
    gradient_checkpointing: o.GradCkpt = False,
    # Objective
    lambda_intra: o.LambdaIntra = 1.0,
    lambda_inter: o.LambdaInter = 1.0,
    inter_loss: o.InterLossOpt = o.InterLoss.pair,
    margin_column: Annotated[str | None, typer.Option(metavar="<column>", rich_help_panel=o.OBJECTIVE, show_default=False, help=(
        "A numeric column of the pairs table used as a per-row margin: -log sigmoid(r_chosen - r_rejected - "
        "margin)."))] = None,
    center_rewards: Annotated[float, typer.Option(rich_help_panel=o.OBJECTIVE, help=(
        "Coefficient of (r_chosen + r_rejected)^2, a penalty that keeps the rewards centred at 0; 0 turns it "
        "off."))] = 0.0,
    # Optimisation
    epochs: o.Epochs = 1,
    max_steps: o.MaxSteps = None,
    batch_size: o.BatchSize = 4,
    grad_accum: o.GradAccum = 1,
    lr: o.Lr = None,
    warmup_steps: o.WarmupSteps = 10,
    scheduler: o.SchedulerOpt = o.Scheduler.cosine,
    weight_decay: o.WeightDecay = 0.0,
    max_grad_norm: o.MaxGradNorm = 1.0,
    seed: o.Seed = 0,
    # LoRA
    lora_r: o.LoraR = 0,
    lora_alpha: o.LoraAlpha = None,
    lora_targets: o.LoraTargets = "all-linear",
    merge_lora: o.MergeLora = False,
    # Checkpoints
    save_every: o.SaveEvery = 100,
    resume: o.Resume = False,
    # Distributed
    fsdp: o.Fsdp = False,
    # Output
    output: o.Output,
    force: o.Force = False,
    progress: o.Progress = True,
    report_to: o.ReportToOpt = None,
    push_to_hub: o.PushToHub = None,
) -> None:
    """Train a reward model (one-output sequence-classification head) on a pairs table with the MAPL objectives."""
    config = TrainConfig(
        stage="rm", pairs=str(pairs), output=str(output), model=model,
        eval_pairs=None if eval_pairs is None else str(eval_pairs),
        # schedule
        epochs=epochs, max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, lr=lr,
        warmup_steps=warmup_steps, scheduler=scheduler.value, weight_decay=weight_decay,
        max_grad_norm=max_grad_norm, seed=seed,
        # data
        max_length=max_length, max_prompt_length=max_prompt_length, shuffle=shuffle, packing=packing,
        chat_template=None if chat_template is None else str(chat_template),
        # objective
        lambda_intra=lambda_intra, lambda_inter=lambda_inter, inter_loss=inter_loss.value,
        # rm only
        margin_column=margin_column, center_rewards=center_rewards,
        # model
        dtype=dtype.value, gradient_checkpointing=gradient_checkpointing, lora_r=lora_r, lora_alpha=lora_alpha,
        lora_targets=lora_targets, merge_lora=merge_lora, fsdp=fsdp,
        # bookkeeping
        eval_every=eval_every, save_every=save_every, resume=resume, force=force, progress=progress,
        report_to=chosen(report_to), push_to_hub=push_to_hub,
    )
    o.train(config, "reward model")
