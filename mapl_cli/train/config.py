"""The resolved options of `mapl train-rm` and `mapl train-dpo` (one dataclass for both), their checks, and
which of them a resumed run may change.

    config = TrainConfig(stage="dpo", pairs="pairs.parquet", output="out/dpo", lr=1e-6)
    check_options(config)       # MaplError naming the option, before anything is read, loaded or written
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from mapl_cli.errors import MaplError
from mapl_cli.models import Dtype, read_chat_template

# Learning-rate defaults (DESIGN.md: RM 1e-5 and DPO 1e-6 for a full fine-tune, after Rc-BT/Rc-DPO);
# LoRA trains far fewer parameters and needs a larger step.
DEFAULT_LR = {("rm", False): 1e-5, ("rm", True): 1e-4, ("dpo", False): 1e-6, ("dpo", True): 5e-5}
SCHEDULERS = ("cosine", "linear", "constant")
INTER_LOSSES = ("pair", "margin")
# Training offers every dtype but float16 (the trainer has no loss scaling, which float16 gradients need),
# and bf16-mixed: float32 weights and optimizer state, every forward under bfloat16 autocast (`trainer.precision`).
BF16_MIXED = "bf16-mixed"
DTYPES = (*(d.value for d in Dtype if d is not Dtype.float16), BF16_MIXED)
MAX_SEED = 2**63 - 1  # torch.manual_seed takes at most 64 bits
FLOAT32_MAX = 3.4028234663852886e38


@dataclass
class TrainConfig:
    stage: str  # "rm" or "dpo"
    pairs: str
    output: str
    model: str = "smollm2-135m-instruct"
    eval_pairs: str | None = None
    # schedule
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 4
    grad_accum: int = 1
    lr: float | None = None
    warmup_steps: int = 10
    scheduler: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    # data
    max_length: int = 1024
    max_prompt_length: int = 512
    shuffle: bool = True
    packing: bool = True
    chat_template: str | None = None  # a Jinja file that replaces the model's chat template
    # objective
    lambda_intra: float = 1.0
    lambda_inter: float = 1.0
    inter_loss: str = "pair"
    # rm only
    margin_column: str | None = None
    center_rewards: float = 0.0
    # dpo only
    beta: float = 0.1
    sft_coef: float = 0.0
    ref_model: str | None = None
    precompute_ref: bool = True
    # model
    dtype: str = "auto"
    gradient_checkpointing: bool = False
    lora_r: int = 0
    lora_alpha: float | None = None
    lora_targets: str = "all-linear"
    merge_lora: bool = False
    fsdp: bool = False  # shard across processes instead of replicas
    # bookkeeping
    eval_every: int = 0
    save_every: int = 100
    keep_checkpoints: int = 2
    resume: bool = False
    force: bool = False
    progress: bool = True
    report_to: tuple[str, ...] = ()  # experiment trackers (mapl_cli/tracking.py); () is none
    push_to_hub: str | None = None  # a hub repo id the model folder is uploaded to after training (hub.py)

    @property
    def lora(self) -> bool:
        return self.lora_r > 0

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[(self.stage, self.lora)]


def flag(name: str) -> str:
    """The command-line spelling of a TrainConfig field: max_grad_norm -> --max-grad-norm."""
    return "--" + name.replace("_", "-")


# Options that change how a run is shown, kept or shared, never the model it trains: left out of the
# command that trains it again (`command_line`), and no command-line flag for keep_checkpoints.
NOT_REPRODUCED = frozenset({"resume", "force", "progress", "report_to", "push_to_hub", "keep_checkpoints"})
PATHS = ("pairs", "output", "eval_pairs", "chat_template", "model", "ref_model")  # made absolute when they exist


def command_line(config: TrainConfig) -> str:
    """`mapl train-dpo PAIRS --output OUT --model M ...`, shell-quoted, with every other option that differs
    from its default: the command that trains the same model again (the model card's "Reproduce"). Built
    from the resolved options rather than sys.argv, which may be a launcher (torchrun, python -m), name a
    --config file that has since changed, or carry --resume / --force. Paths that exist are made absolute,
    so the command does not depend on the folder it is run from."""
    import shlex
    from pathlib import Path

    def value_of(name: str):
        value = getattr(config, name)
        return str(Path(value).resolve()) if name in PATHS and value and Path(value).exists() else value

    words = ["mapl", f"train-{config.stage}", value_of("pairs"), "--output", value_of("output"), "--model", value_of("model")]
    for field in fields(TrainConfig):
        value = value_of(field.name)
        if field.name in ("stage", "pairs", "output", "model") or field.name in NOT_REPRODUCED or value == field.default:
            continue
        if isinstance(value, bool):  # Typer's --x / --no-x pairs; only the non-default side is ever written
            words.append(flag(field.name) if value else "--no-" + field.name.replace("_", "-"))
        elif isinstance(value, (tuple, list)):  # a repeatable option
            for item in value:
                words += [flag(field.name), str(item)]
        else:
            words += [flag(field.name), str(value)]
    return shlex.join(words)


def _number(config: TrainConfig, name: str, low: float, low_inclusive: bool = True) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MaplError(f"{flag(name)} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise MaplError(f"{flag(name)} must be a finite number, got {value}")
    if abs(value) > FLOAT32_MAX:  # weights and optimizer state are float32 at most
        raise MaplError(f"{flag(name)} must be at most {FLOAT32_MAX:.4g} (float32's largest value), got {value}")
    if value < low or (value == low and not low_inclusive):
        bound = f"at least {low}" if low_inclusive else f"greater than {low}"
        raise MaplError(f"{flag(name)} must be {bound}, got {value}")


def _integer(config: TrainConfig, name: str, low: int, high: int | None = None) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MaplError(f"{flag(name)} must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        raise MaplError(f"{flag(name)} must be {f'between {low} and {high}' if high is not None else f'at least {low}'}, got {value}")


def _choice(config: TrainConfig, name: str, allowed: tuple[str, ...]) -> None:
    if getattr(config, name) not in allowed:
        raise MaplError(f"{flag(name)} must be one of {', '.join(allowed)}, got {getattr(config, name)!r}")


def check_options(config: TrainConfig) -> None:
    """Every option in range, with one line naming the first that is not: run before anything is read,
    loaded, deleted or written."""
    if config.stage not in ("rm", "dpo"):
        raise MaplError(f"unknown training stage {config.stage!r}")
    for name in ("batch_size", "grad_accum", "epochs", "max_length", "max_prompt_length"):
        _integer(config, name, 1)
    if config.max_steps is not None:
        _integer(config, "max_steps", 1)
    for name in ("warmup_steps", "save_every", "eval_every", "lora_r"):
        _integer(config, name, 0)
    _integer(config, "keep_checkpoints", 0)  # 0: keep every checkpoint
    _integer(config, "seed", 0, MAX_SEED)
    if config.lr is not None:
        _number(config, "lr", 0, low_inclusive=False)
    for name in ("weight_decay", "max_grad_norm", "lambda_intra", "lambda_inter", "center_rewards", "sft_coef"):
        _number(config, name, 0)
    if config.stage == "dpo":
        _number(config, "beta", 0, low_inclusive=False)
    _choice(config, "scheduler", SCHEDULERS)
    _choice(config, "inter_loss", INTER_LOSSES)
    _choice(config, "dtype", DTYPES)
    if config.lora:
        if config.lora_alpha is not None:
            _number(config, "lora_alpha", 0, low_inclusive=False)
        if not any(t.strip() for t in config.lora_targets.split(",")):
            raise MaplError("--lora-targets names no module (all-linear, or names such as q_proj,v_proj)")
    if config.merge_lora and not config.lora:
        raise MaplError("--merge-lora needs --lora-r > 0")
    if config.margin_column is not None and config.stage != "rm":
        raise MaplError("--margin-column applies to train-rm only")
    if config.stage == "rm" and (config.sft_coef or config.ref_model):
        raise MaplError("--sft-coef and --ref-model apply to train-dpo only")
    for name in ("pairs", "output"):
        if not str(getattr(config, name)).strip():
            raise MaplError(f"{'the pairs path' if name == 'pairs' else '--output'} is empty")
    if config.chat_template is not None:
        read_chat_template(config.chat_template)  # a missing or unreadable file fails here; rendering, at load


# What a resumed run may change, and why each is safe:
# - where and how often it writes, and what it shows: output (a moved folder), save_every, eval_every,
#   keep_checkpoints, progress, report_to (where the metrics are also sent), push_to_hub (where the model goes);
# - how the same computation is laid out: fsdp, gradient_checkpointing, packing, precompute_ref, and
#   batch_size / grad_accum as long as the global batch stays the same;
# - the flags themselves (resume, force).
# The pairs and eval pairs are compared by content (sha256), not path; max_steps / epochs by the total number
# of steps they give (a constant schedule may be extended); lr by its resolved value; every other option
# must be the same.
RESUME_FREE = frozenset({
    "output", "save_every", "eval_every", "keep_checkpoints", "progress", "report_to", "push_to_hub", "resume", "force",
    "fsdp", "gradient_checkpointing", "packing", "precompute_ref", "batch_size", "grad_accum",
    "pairs", "eval_pairs", "max_steps", "epochs", "lr",
})
RESUME_FIXED = tuple(f.name for f in fields(TrainConfig) if f.name not in RESUME_FREE)
