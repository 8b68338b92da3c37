"""The resolved options of `mapl train-rm` and `mapl train-dpo` (one dataclass for both)."""

from __future__ import annotations

from dataclasses import dataclass

# Learning-rate defaults (DESIGN.md: RM 1e-5 and DPO 1e-6 for a full fine-tune, after Rc-BT/Rc-DPO);
# LoRA trains far fewer parameters and needs a larger step.
DEFAULT_LR = {("rm", False): 1e-5, ("rm", True): 1e-4, ("dpo", False): 1e-6, ("dpo", True): 5e-5}


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

    @property
    def lora(self) -> bool:
        return self.lora_r > 0

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[(self.stage, self.lora)]
