"""`mapl train-dpo`: DPO with the MAPL objectives (standard + intra + inter rows).

    mapl train-dpo out/pairs/pairs.parquet --output out/dpo --max-steps 200
    mapl train-dpo pairs.parquet --model tiny-random --output /tmp/dpo --max-steps 3    # smoke run
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
    ref_model: Annotated[str | None, typer.Option(
        metavar="<name|path>", rich_help_panel=o.MODEL,
        show_default="a frozen copy of --model; with LoRA, --model with its adapters disabled",
        help="The reference model of the DPO loss, named as --model is.")] = None,
    precompute_ref: Annotated[bool, typer.Option("--precompute-ref/--no-precompute-ref", rich_help_panel=o.MODEL, help=(
        "Compute the reference log-probs once before training and cache them in $MAPL_CACHE/ref-logps (keyed "
        "by the pair tokens and the model's fingerprint), so no reference model stays in memory."))] = True,
    dtype: o.DtypeOpt = o.TrainDtype.auto,
    gradient_checkpointing: o.GradCkpt = False,
    # Objective
    beta: Annotated[float, typer.Option(rich_help_panel=o.OBJECTIVE, help=(
        "DPO temperature beta in the score s = beta * (log pi(y|x) - log pi_ref(y|x))."))] = 0.1,
    lambda_intra: o.LambdaIntra = 1.0,
    lambda_inter: o.LambdaInter = 1.0,
    inter_loss: o.InterLossOpt = o.InterLoss.pair,
    sft_coef: Annotated[float, typer.Option(rich_help_panel=o.OBJECTIVE, help=(
        "Weight of an extra negative log-likelihood term on the chosen responses (mean per token); 0 turns "
        "it off."))] = 0.0,
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
    """Train a DPO policy on a pairs table with the MAPL objectives."""
    config = TrainConfig(
        stage="dpo", pairs=str(pairs), output=str(output), model=model,
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
        # dpo only
        beta=beta, sft_coef=sft_coef, ref_model=ref_model, precompute_ref=precompute_ref,
        # model
        dtype=dtype.value, gradient_checkpointing=gradient_checkpointing, lora_r=lora_r, lora_alpha=lora_alpha,
        lora_targets=lora_targets, merge_lora=merge_lora, fsdp=fsdp,
        # bookkeeping
        eval_every=eval_every, save_every=save_every, resume=resume, force=force, progress=progress,
        report_to=chosen(report_to), push_to_hub=push_to_hub,
    )
    o.train(config, "model")
