"""MAPL objectives as pure functions of score tensors.

A *score* s(x, y) is whatever the trainer compares: for a reward model s = r(x, y); for DPO
s = beta * (log pi(y|x) - log pi_ref(y|x)) summed over response tokens. Every function here takes score
tensors of shape (B,) and returns unreduced per-row losses of shape (B,); `combine` reduces them with the
per-kind weights. No model, no I/O: both trainers share this module.

    per_row = pair_loss(s_chosen, s_rejected)
    total, by_kind = combine(per_row, kinds, lambda_intra=1.0, lambda_inter=1.0)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mapl_cli.encoding.tokens import KIND_IDS
from mapl_cli.pairs import KINDS

KIND_INTER = KIND_IDS["inter"]


def pair_loss(
    s_chosen: torch.Tensor, s_rejected: torch.Tensor, margin: torch.Tensor | None = None
) -> torch.Tensor:
    """Bradley-Terry loss -log sigmoid(s_chosen - s_rejected [- margin]), per row.

    The same formula serves standard rows (one prompt, two responses), intra rows (Rc-BT: one response,
    two prompts x_w and x_l) and inter rows in `pair` form (one prompt x', two responses). `margin` is the
    optional per-row margin of Llama 2's reward model (the chosen score must win by at least that much).
    """
    diff = s_chosen - s_rejected
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff)


def margin_inter_loss(
    s_chosen_multi: torch.Tensor,
    s_rejected_multi: torch.Tensor,
    s_chosen_base: torch.Tensor,
    s_rejected_base: torch.Tensor,
) -> torch.Tensor:
    """Inter loss, `margin` form: -log sigmoid([s(x', y_w) - s(x', y_l)] - [s(x, y_w) - s(x, y_l)]).

    The margin under the multi-instruction prompt x' must exceed the margin under the original prompt x.
    """
    return -F.logsigmoid((s_chosen_multi - s_rejected_multi) - (s_chosen_base - s_rejected_base))


def row_weights(kinds: torch.Tensor, lambda_intra: float, lambda_inter: float) -> torch.Tensor:
    """Weight per row: 1 for standard, lambda_intra for intra, lambda_inter for inter rows."""
    weight = {"standard": 1.0, "intra": lambda_intra, "inter": lambda_inter}
    table = torch.tensor([weight[kind] for kind in KINDS], dtype=torch.float32, device=kinds.device)
    return table[kinds]


def combine(
    per_row: torch.Tensor,
    kinds: torch.Tensor,
    lambda_intra: float = 1.0,
    lambda_inter: float = 1.0,
    denominator: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted mean of per-row losses, weights by kind; also the plain mean per kind (detached).

    total = sum_i w_i * l_i / sum_i w_i. `denominator` replaces sum_i w_i when the caller normalises over
    a larger set than this batch (gradient accumulation, several processes), so that the sum of the parts
    equals the loss of the whole. If every weight is zero the total is a zero that still carries a graph.
    Per-kind means are NaN for kinds absent from the batch.
    """
    weights = row_weights(kinds, lambda_intra, lambda_inter).to(per_row.dtype)
    # Rows of weight 0 are left out rather than multiplied by 0: with both lambdas 0 the total is then
    # computed exactly as plain BT / DPO computes it, and a non-finite loss on an ignored row cannot leak in.
    used = weights != 0
    weights, kept = weights[used], per_row[used]
    norm = weights.sum() if denominator is None else torch.as_tensor(denominator, dtype=per_row.dtype)
    weighted = (weights * kept).sum()
    total = weighted / norm if float(norm) > 0 else per_row.sum() * 0.0
    by_kind = {}
    for kind_id, name in enumerate(KINDS):
        mask = kinds == kind_id
        by_kind[name] = per_row.detach()[mask].mean() if bool(mask.any()) else per_row.new_tensor(float("nan"))
    return total, by_kind


def dpo_scores(policy_logps: torch.Tensor, reference_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO implicit reward beta * (log pi(y|x) - log pi_ref(y|x)), with log-probs summed over response tokens."""
    return beta * (policy_logps - reference_logps)


def mapl_row_losses(
    s_chosen: torch.Tensor,
    s_rejected: torch.Tensor,
    kinds: torch.Tensor,
    inter_loss: str = "pair",
    s_chosen_base: torch.Tensor | None = None,
    s_rejected_base: torch.Tensor | None = None,
    margin: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-row MAPL losses for a batch mixing kinds.

    Standard, intra and (with inter_loss="pair") inter rows use `pair_loss`. With inter_loss="margin",
    inter rows use `margin_inter_loss` and need the base-prompt scores s(x, y_w), s(x, y_l) for those rows
    (values on other rows are ignored). `margin` (optional, per row) applies to the pair-form losses.
    """
    losses = pair_loss(s_chosen, s_rejected, margin)
    if inter_loss == "pair":
        return losses
    if inter_loss != "margin":
        raise ValueError(f"unknown inter_loss {inter_loss!r}")
    if s_chosen_base is None or s_rejected_base is None:
        raise ValueError("inter_loss='margin' needs base-prompt scores")
    margin = margin_inter_loss(s_chosen, s_rejected, s_chosen_base, s_rejected_base)
    return torch.where(kinds == KIND_INTER, margin, losses)


def center_rewards_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Per-row auxiliary term (r_chosen + r_rejected)^2 that keeps reward-model outputs centred at zero.

    Same form as TRL's `center_rewards_coefficient` (Eisenstein et al. 2023); multiplied by a coefficient.
    """
    return (r_chosen + r_rejected) ** 2
