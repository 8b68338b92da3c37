"""The MAPL objectives (mapl_cli/train/losses.py), checked with numbers derived by hand.

Notation: L(d) = -log sigmoid(d) = log(1 + e^-d). Values used below:
    L(2)   = log(1 + e^-2)   = log(1.135335283) = 0.126928011
    L(0)   = log 2                              = 0.693147181
    L(-2)  = log(1 + e^2)    = log(8.389056099) = 2.126928011
    L(1)   = log(1 + e^-1)   = log(1.367879441) = 0.313261688
    L(0.2) = log(1 + e^-0.2) = log(1.818730753) = 0.598138869
"""

import pytest
import torch
import torch.nn.functional as F

from mapl_cli.encoding.tokens import KIND_IDS
from mapl_cli.train.losses import (
    center_rewards_loss,
    combine,
    dpo_scores,
    mapl_row_losses,
    margin_inter_loss,
    pair_loss,
)

KIND_STANDARD, KIND_INTRA, KIND_INTER = KIND_IDS["standard"], KIND_IDS["intra"], KIND_IDS["inter"]

T = torch.tensor


def test_pair_loss_hand_values():
    """Rows (s_c, s_r) = (2, 0), (0, 0), (0, 2): differences 2, 0, -2 give L(2), L(0), L(-2)."""
    got = pair_loss(T([2.0, 0.0, 0.0]), T([0.0, 0.0, 2.0]))
    torch.testing.assert_close(got, T([0.126928011, 0.693147181, 2.126928011]))


def test_pair_loss_with_margin():
    """s_c - s_r = 3 with margin 1 gives L(2) = 0.126928011."""
    torch.testing.assert_close(pair_loss(T([3.0]), T([0.0]), margin=T([1.0])), T([0.126928011]))


def test_margin_inter_loss_hand_value():
    """Multi-instruction margin s(x',y_w) - s(x',y_l) = 3 - 1 = 2; base margin s(x,y_w) - s(x,y_l) = 1 - 0 = 1;
    the loss is L(2 - 1) = L(1) = 0.313261688."""
    got = margin_inter_loss(T([3.0]), T([1.0]), T([1.0]), T([0.0]))
    torch.testing.assert_close(got, T([0.313261688]))


def test_combine_weights_rows_by_kind():
    """per-row losses [L(2), L(0), L(-2)] for kinds [standard, intra, inter], lambda_intra = 0.5, lambda_inter = 2:
    total = (1 * 0.126928011 + 0.5 * 0.693147181 + 2 * 2.126928011) / (1 + 0.5 + 2)
          = (0.126928011 + 0.346573590 + 4.253856022) / 3.5 = 4.727357623 / 3.5 = 1.350673607.
    The per-kind means are the unweighted row losses."""
    per_row = pair_loss(T([2.0, 0.0, 0.0]), T([0.0, 0.0, 2.0]))
    kinds = T([KIND_STANDARD, KIND_INTRA, KIND_INTER])
    total, by_kind = combine(per_row, kinds, lambda_intra=0.5, lambda_inter=2.0)
    torch.testing.assert_close(total, T(1.350673607))
    torch.testing.assert_close(by_kind["standard"], T(0.126928011))
    torch.testing.assert_close(by_kind["intra"], T(0.693147181))
    torch.testing.assert_close(by_kind["inter"], T(2.126928011))


def test_combine_denominator_splits_a_batch_exactly():
    """Summing the parts of a split batch, each divided by the whole batch's weight, gives the whole's total
    (gradient accumulation and several processes rely on it)."""
    g = torch.Generator().manual_seed(1)
    per_row = torch.rand(8, generator=g, dtype=torch.float64)
    kinds = T([0, 1, 2, 0, 1, 2, 2, 0])
    whole, _ = combine(per_row, kinds, 0.3, 1.7)
    weight = 3 * 1.0 + 2 * 0.3 + 3 * 1.7  # 3 standard, 2 intra, 3 inter rows
    parts = sum(combine(per_row[i : i + 3], kinds[i : i + 3], 0.3, 1.7, denominator=weight)[0] for i in (0, 3, 6))
    torch.testing.assert_close(parts, whole)


def test_combine_absent_kind_is_nan_and_all_zero_weights_give_zero():
    total, by_kind = combine(T([0.5, 0.7]), T([KIND_INTRA, KIND_INTRA]), lambda_intra=0.0, lambda_inter=1.0)
    assert total.item() == 0.0
    assert torch.isnan(by_kind["standard"]) and torch.isnan(by_kind["inter"])
    torch.testing.assert_close(by_kind["intra"], T(0.6))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lambdas_zero_is_plain_bradley_terry_exactly(dtype):
    """With both lambdas 0 only standard rows count, and the total is bit-for-bit the plain BT mean."""
    g = torch.Generator().manual_seed(0)
    for n in (6, 33, 128):
        s_c, s_r = torch.randn(n, generator=g, dtype=dtype), torch.randn(n, generator=g, dtype=dtype)
        kinds = torch.randint(0, 3, (n,), generator=g)
        kinds[0] = KIND_STANDARD
        total, _ = combine(mapl_row_losses(s_c, s_r, kinds), kinds, 0.0, 0.0)
        keep = kinds == KIND_STANDARD
        plain = (-F.logsigmoid(s_c[keep] - s_r[keep])).mean()
        assert torch.equal(total, plain)


def test_lambdas_zero_is_plain_dpo_exactly():
    """Policy log-probs (c, r) = (-10, -12), reference (-11, -11), beta 0.1: scores 0.1 and -0.1, so the
    DPO loss is L(0.2) = 0.598138869, the same as TRL's sigmoid loss -log sigmoid(beta * (pi_logratio - ref_logratio))."""
    policy_c, policy_r = T([-10.0, -3.0]), T([-12.0, -1.0])
    ref_c, ref_r = T([-11.0, -2.0]), T([-11.0, -2.0])
    kinds = T([KIND_STANDARD, KIND_INTRA])
    per_row = mapl_row_losses(dpo_scores(policy_c, ref_c, 0.1), dpo_scores(policy_r, ref_r, 0.1), kinds)
    total, _ = combine(per_row, kinds, 0.0, 0.0)
    torch.testing.assert_close(total, T(0.598138869))
    trl_style = -F.logsigmoid(0.1 * ((policy_c[:1] - policy_r[:1]) - (ref_c[:1] - ref_r[:1]))).mean()
    assert torch.equal(total, trl_style)


def test_swapping_chosen_and_rejected_raises_the_loss():
    s_c, s_r = T([1.5, 0.2, 3.0]), T([0.5, -0.4, 1.0])
    kinds = T([KIND_STANDARD, KIND_INTRA, KIND_INTER])
    right, _ = combine(mapl_row_losses(s_c, s_r, kinds), kinds)
    swapped, _ = combine(mapl_row_losses(s_r, s_c, kinds), kinds)
    assert swapped > right


def test_gradient_pushes_chosen_up_and_rejected_down():
    """d L(s_c - s_r) / d s_c = -sigmoid(s_r - s_c) < 0, so gradient descent raises s_c and lowers s_r.
    At s_c = s_r = 0 with one row, the gradients are exactly -1/2 and +1/2."""
    s_c = T([0.0, 1.0, -2.0], requires_grad=True)
    s_r = T([0.0, 0.5, 2.0], requires_grad=True)
    kinds = T([KIND_STANDARD, KIND_INTRA, KIND_INTER])
    total, _ = combine(mapl_row_losses(s_c, s_r, kinds), kinds)
    total.backward()
    assert (s_c.grad < 0).all() and (s_r.grad > 0).all()
    one = T([0.0], requires_grad=True)
    pair_loss(one, T([0.0])).sum().backward()
    torch.testing.assert_close(one.grad, T([-0.5]))


def test_margin_form_applies_to_inter_rows_only():
    """Row 0 standard (2, 0): L(2). Row 1 inter with multi margin 3 - 1 = 2 and base margin 1 - 0 = 1: L(1).
    The base scores given for row 0 are ignored."""
    kinds = T([KIND_STANDARD, KIND_INTER])
    got = mapl_row_losses(T([2.0, 3.0]), T([0.0, 1.0]), kinds, "margin", T([9.0, 1.0]), T([-9.0, 0.0]))
    torch.testing.assert_close(got, T([0.126928011, 0.313261688]))
    with pytest.raises(ValueError):
        mapl_row_losses(T([0.0]), T([0.0]), T([KIND_INTER]), "margin")


def test_center_rewards_hand_value():
    """(r_c + r_r)^2 for (1.5, -0.5) is 1.0, for (1, 1) is 4."""
    torch.testing.assert_close(center_rewards_loss(T([1.5, 1.0]), T([-0.5, 1.0])), T([1.0, 4.0]))
