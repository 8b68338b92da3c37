"""The two training objectives, behind the one small interface (`Objective`) the training loop calls.

An objective builds its model, prepares whatever reference it scores against, and, for a micro-batch of
encoded rows, runs one forward over all their sequences and returns per-row scores and losses; it also
writes the trained model. The loss math itself lives in `losses.py`.

    objective = make_objective(config, device, dtype, tokenizer)      # DPOObjective or RMObjective
    model = objective.build()
    info = objective.prepare_reference(model, rows, par, console)     # DPO: reference log-probs
    out = objective.forward(model, rows)                              # RowOutputs
    objective.save_model(model, folder)
"""

from __future__ import annotations

import copy
import gc
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Protocol

import torch

from mapl_cli.encoding.batch import attention_ratio_of, make_batch
from mapl_cli.encoding.forward import can_share_prompts, last_token_rewards, response_logps
from mapl_cli.encoding.tokens import EncodedRow
from mapl_cli.errors import MaplError
from mapl_cli.train import losses
from mapl_cli.train.config import TrainConfig


@dataclass
class RowOutputs:
    """Per-row results of one micro-batch (shape (B,) each)."""

    loss: torch.Tensor  # preference loss (+ auxiliary terms), with grad
    preference: torch.Tensor  # preference loss alone, detached, for loss/<kind>
    s_chosen: torch.Tensor  # detached
    s_rejected: torch.Tensor  # detached
    kinds: torch.Tensor
    tokens: int  # real tokens in the forward
    logps_chosen: torch.Tensor | None = None
    logps_rejected: torch.Tensor | None = None


class Objective(Protocol):
    """What the training loop needs from a training objective."""

    stage: str  # "dpo" or "rm": names the command, the progress bar and the manifest
    with_logps: bool  # whether RowOutputs carry policy log-probs (reported as logps/chosen, logps/rejected)

    def build(self, device=None, state=None):
        """The model to train, on `device` (default: the objective's), with `state` loaded when given."""

    def prepare_reference(self, model, rows: list[EncodedRow], par, console) -> dict:
        """Whatever the scores are measured against, before the model is sharded; returns manifest fields."""

    def forward(self, model, rows: list[EncodedRow]) -> RowOutputs:
        """One forward over the rows' sequences: per-row losses (with grad) and scores."""

    def save_model(self, model, folder) -> None:
        """Write the trained model (and tokenizer) in the Hugging Face layout."""


def make_objective(config: TrainConfig, device, dtype, tokenizer, margins: dict[str, float] | None = None) -> Objective:
    """The objective of `config.stage` (`margins`: per-pair reward margins, reward models only)."""
    if config.stage == "dpo":
        return DPOObjective(config, device, dtype, tokenizer)
    return RMObjective(config, device, dtype, tokenizer, margins)


def _layout(rows: list[EncodedRow], with_base: bool):
    """Flatten rows into one list of sequences and the index of each row's chosen, rejected (and base) ones."""
    sequences, chosen, rejected, base_c, base_r = [], [], [], [], []
    for row in rows:
        first = len(sequences)
        sequences.extend(row.sequences)
        chosen.append(first)
        rejected.append(first + 1)
        has_base = with_base and len(row.sequences) == 4
        base_c.append(first + 2 if has_base else first)
        base_r.append(first + 3 if has_base else first + 1)
    index = [torch.tensor(x) for x in (chosen, rejected, base_c, base_r)]
    return sequences, index


def apply_lora(model, config: TrainConfig, task_type: str):
    from peft import LoraConfig, get_peft_model

    from mapl_cli.models import quiet_peft

    targets = config.lora_targets if config.lora_targets == "all-linear" else [
        t.strip() for t in config.lora_targets.split(",") if t.strip()
    ]
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha if config.lora_alpha is not None else 2 * config.lora_r,
        target_modules=targets,
        lora_dropout=0.0,
        task_type=task_type,
    )
    try:
        with quiet_peft():
            return get_peft_model(model, lora)
    except ValueError as err:
        raise MaplError(f"--lora-targets {config.lora_targets!r}: {err}") from None


def _prepare(model, config: TrainConfig, state=None):
    if state is not None:
        model.load_state_dict(state)
    model.mapl_attention_ratio = attention_ratio_of(model.config)
    if config.gradient_checkpointing:
        model.config.use_cache = False
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def _ratio(model) -> float | None:
    return getattr(model, "mapl_attention_ratio", None) or attention_ratio_of(getattr(model, "config", None))


def _batch(model, sequences, config: TrainConfig, pad_id: int, device):
    """The micro-batch's token layout for `model`: packed or padded, and a standard or inter row's two
    sequences sharing their prompt where the model takes the 4D mask that needs (`can_share_prompts`)."""
    return make_batch(sequences, pad_id, config.packing, _ratio(model), can_share_prompts(model)).to(device)


class DPOObjective:
    """s = beta * (log pi(y|x) - log pi_ref(y|x)), log-probs summed over response tokens."""

    stage = "dpo"
    with_logps = True

    def __init__(self, config: TrainConfig, device, dtype, tokenizer):
        self.config, self.device, self.dtype, self.tokenizer = config, device, dtype, tokenizer
        self.ref_cache: dict[str, float] | None = None
        self.ref_model = None  # a frozen copy, only without --precompute-ref and without LoRA

    def build(self, device=None, state=None):
        """The policy to train (`state`: full weights to load instead, e.g. gathered from FSDP shards)."""
        from transformers import AutoModelForCausalLM

        from mapl_cli.models import resolve_model

        model = AutoModelForCausalLM.from_pretrained(str(resolve_model(self.config.model)), dtype=self.dtype)
        model.config.pad_token_id = self.tokenizer.pad_token_id
        model.to(device or self.device)
        if self.config.lora:
            model = apply_lora(model, self.config, "CAUSAL_LM")
        return _prepare(model, self.config, state)

    def prepare_reference(self, model, rows: list[EncodedRow], par, console) -> dict:
        """With --precompute-ref (default): reference log-probs of every sequence, from the on-disk cache or one
        no-grad pass sharded by rows over processes; a separate reference model is freed afterwards.
        Otherwise a reference kept for the loop: a frozen copy (wrapped like the policy) or, with LoRA and no
        --ref-model, the policy itself with its adapters disabled."""
        if not self.config.precompute_ref:
            if self.config.ref_model or not self.config.lora:
                self.ref_model = par.wrap(self.load_reference(model))
            return {"reference": "in-loop " + ("adapters disabled" if self.ref_model is None else "frozen copy")}
        from mapl_cli.models import fingerprint
        from mapl_cli.train.reference import cache_path, precompute

        path = cache_path(fingerprint(self.config.ref_model or self.config.model), self.dtype)
        ref = self.load_reference(model) if self.config.ref_model else model
        t0 = time.time()
        with self.reference_context(ref):
            self.ref_cache, computed = precompute(
                ref, rows, path, 2 * self.config.batch_size, par.device, self.tokenizer.pad_token_id, par.rank,
                par.world, packing=self.config.packing,
            )
        if ref is not model:
            del ref
            gc.collect()
        if par.rank == 0:
            console.print(f"reference log-probs: {computed} computed, the rest from {path} ({time.time() - t0:.1f} s)")
        return {"reference": "precomputed", "reference_cache": str(path), "reference_computed": computed}

    def load_reference(self, policy):
        """The reference model for a pass: --ref-model, else the starting policy (LoRA: adapters disabled)."""
        from transformers import AutoModelForCausalLM

        from mapl_cli.models import resolve_model

        if self.config.ref_model:
            from mapl_cli.models import loading

            with loading(self.config.ref_model, "--ref-model"):
                ref = AutoModelForCausalLM.from_pretrained(str(resolve_model(self.config.ref_model)), dtype=self.dtype)
            return ref.to(self.device).eval()
        if self.config.lora:
            return policy  # used under policy.disable_adapter()
        return copy.deepcopy(policy).eval().requires_grad_(False)

    def reference_context(self, ref):
        if ref is not None and hasattr(ref, "disable_adapter") and not self.config.ref_model:
            return ref.disable_adapter()
        return nullcontext()

    def forward(self, model, rows: list[EncodedRow]) -> RowOutputs:
        cfg = self.config
        with_base = cfg.inter_loss == "margin"
        sequences, (ic, ir, ibc, ibr) = _layout(rows, with_base)
        batch = _batch(model, sequences, cfg, self.tokenizer.pad_token_id, self.device)
        logps, n_tokens = response_logps(model, batch)
        ref = self._reference_logps(model, sequences, batch).to(logps)
        scores = losses.dpo_scores(logps, ref, cfg.beta)
        kinds = torch.tensor([r.kind for r in rows], device=logps.device)
        ic, ir, ibc, ibr = (t.to(logps.device) for t in (ic, ir, ibc, ibr))
        pref = losses.mapl_row_losses(scores[ic], scores[ir], kinds, cfg.inter_loss, scores[ibc], scores[ibr])
        loss = pref
        if cfg.sft_coef:
            loss = loss + cfg.sft_coef * (-logps[ic] / n_tokens[ic].to(logps))
        return RowOutputs(
            loss, pref.detach(), scores[ic].detach(), scores[ir].detach(), kinds, batch.real_tokens,
            logps[ic].detach(), logps[ir].detach(),
        )

    def _reference_logps(self, model, sequences, batch) -> torch.Tensor:
        if self.ref_cache is not None:
            from mapl_cli.train.reference import lookup

            return lookup(self.ref_cache, sequences)
        ref = self.ref_model if self.ref_model is not None else model
        if batch.shared and not can_share_prompts(ref):  # a --ref-model whose attention takes no 4D mask
            batch = _batch(ref, sequences, self.config, self.tokenizer.pad_token_id, self.device)
        with torch.no_grad(), self.reference_context(ref):
            return response_logps(ref, batch)[0]

    def save_model(self, model, folder) -> None:
        if self.config.lora and self.config.merge_lora:
            model = model.merge_and_unload()
        model.save_pretrained(str(folder), safe_serialization=True)
        self.tokenizer.save_pretrained(str(folder))


class RMObjective:
    """s = r(x, y) from a one-output sequence-classification head at the last real token."""

    stage = "rm"
    with_logps = False

    def __init__(self, config: TrainConfig, device, dtype, tokenizer, margins: dict[str, float] | None = None):
        self.config, self.device, self.dtype, self.tokenizer = config, device, dtype, tokenizer
        self.margins = margins

    def build(self, device=None, state=None):
        """The model to train (`state`: full weights to load instead, e.g. gathered from FSDP shards)."""
        from transformers import AutoModelForSequenceClassification
        from transformers.utils import logging as hf_logging

        from mapl_cli.models import resolve_model

        torch.manual_seed(self.config.seed)  # the new score head is initialised from this seed
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "some weights were newly initialised": expected for the head
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                str(resolve_model(self.config.model)), num_labels=1, dtype=self.dtype
            )
        finally:
            hf_logging.set_verbosity(verbosity)
        model.config.pad_token_id = self.tokenizer.pad_token_id
        model.to(device or self.device)
        if self.config.lora:
            model = apply_lora(model, self.config, "SEQ_CLS")
        return _prepare(model, self.config, state)

    def prepare_reference(self, model, rows: list[EncodedRow], par, console) -> dict:
        """A reward model is scored on its own: no reference."""
        return {}

    def forward(self, model, rows: list[EncodedRow]) -> RowOutputs:
        cfg = self.config
        with_base = cfg.inter_loss == "margin"
        sequences, (ic, ir, ibc, ibr) = _layout(rows, with_base)
        batch = _batch(model, sequences, cfg, self.tokenizer.pad_token_id, self.device)
        rewards = last_token_rewards(model, batch)
        kinds = torch.tensor([r.kind for r in rows], device=rewards.device)
        ic, ir, ibc, ibr = (t.to(rewards.device) for t in (ic, ir, ibc, ibr))
        margin = None
        if self.margins is not None:
            margin = torch.tensor([self.margins[r.pair_id] for r in rows], dtype=rewards.dtype, device=rewards.device)
        pref = losses.mapl_row_losses(
            rewards[ic], rewards[ir], kinds, cfg.inter_loss, rewards[ibc], rewards[ibr], margin=margin
        )
        loss = pref
        if cfg.center_rewards:
            loss = loss + cfg.center_rewards * losses.center_rewards_loss(rewards[ic], rewards[ir])
        return RowOutputs(loss, pref.detach(), rewards[ic].detach(), rewards[ir].detach(), kinds, batch.real_tokens)

    def save_model(self, model, folder) -> None:
        if self.config.lora and self.config.merge_lora:
            model = model.merge_and_unload()
        model.save_pretrained(str(folder), safe_serialization=True)
        self.tokenizer.save_pretrained(str(folder))
