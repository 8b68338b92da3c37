"""Paired comparisons (mapl_cli/evaluation/stats.py): McNemar's exact test and the paired bootstrap, against
hand-derived numbers and against scipy.stats."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mapl_cli.evaluation.stats import (
    PromptScores,
    bootstrap_weights,
    compare,
    compare_all,
    mcnemar_exact,
    metric_values,
)


def records(verdicts: list[list[bool | None]], loose: list[list[bool | None]] | None = None) -> list[dict]:
    loose = loose or verdicts
    return [{"key": i, "strict": s, "loose": lo} for i, (s, lo) in enumerate(zip(verdicts, loose, strict=True))]


@pytest.mark.parametrize(
    ("baseline_only", "model_only", "expected", "why"),
    [
        (0, 0, 1.0, "no discordant prompt: no evidence either way"),
        (0, 5, 0.0625, "2 * C(5,0) / 2^5 = 2/32"),
        (1, 9, 0.021484375, "2 * (C(10,0) + C(10,1)) / 2^10 = 22/1024"),
        (9, 1, 0.021484375, "the test is symmetric in the two models"),
        (3, 3, 1.0, "2 * (1+6+15+20)/64 = 84/64, capped at 1"),
        (2, 4, 0.6875, "2 * (1+6+15)/64 = 44/64"),
    ],
)
def test_mcnemar_exact_hand_values(baseline_only, model_only, expected, why):
    assert mcnemar_exact(baseline_only, model_only) == pytest.approx(expected, abs=1e-15), why


def test_mcnemar_matches_scipy_binomtest():
    stats = pytest.importorskip("scipy.stats")
    for b in range(0, 30, 3):
        for c in range(0, 40, 7):
            if b + c == 0:
                continue
            ours = mcnemar_exact(b, c)
            theirs = stats.binomtest(min(b, c), b + c, 0.5).pvalue
            assert ours == pytest.approx(min(1.0, theirs), rel=1e-9), (b, c)


def test_mcnemar_large_counts_do_not_underflow():
    # 600 discordant prompts, 280 vs 320: a float binomial pmf would underflow; exact integers do not
    stats = pytest.importorskip("scipy.stats")
    assert mcnemar_exact(280, 320) == pytest.approx(stats.binomtest(280, 600, 0.5).pvalue, rel=1e-9)


def test_metric_values_pool_instructions_like_lm_eval():
    # prompt 0: 2 of 2 followed; prompt 1: 1 of 3 followed.
    # prompt level = 1/2; instruction level pools instructions: (2 + 1) / (2 + 3) = 0.6, not mean(1, 1/3).
    scores = PromptScores.from_records(records([[True, True], [True, False, False]]))
    values = metric_values(scores)
    assert values["prompt_level_strict_acc"] == 0.5
    assert values["inst_level_strict_acc"] == pytest.approx(0.6)


def test_prompts_with_unscored_instructions_are_left_out():
    scores = PromptScores.from_records(records([[True], [None, True], [False]]))
    assert scores.keys == (0, 2)


def test_identical_models_have_zero_difference_and_no_significance():
    rng = np.random.default_rng(1)
    verdicts = [[bool(v) for v in rng.integers(0, 2, size=3)] for _ in range(50)]
    result = compare(PromptScores.from_records(records(verdicts)), PromptScores.from_records(records(verdicts)), resamples=500)
    for metric in ("prompt_level_strict_acc", "inst_level_strict_acc"):
        assert result[metric]["diff"] == 0 and result[metric]["ci_low"] == 0 and result[metric]["ci_high"] == 0
        assert not result[metric]["significant"]
    assert result["mcnemar"]["prompt_level_strict_acc"] == {"baseline_only": 0, "model_only": 0, "p_value": 1.0}


def test_a_model_right_everywhere_the_baseline_is_wrong():
    # every resample has the same difference, 1.0: the interval is the point [1, 1]
    n = 20
    result = compare(
        PromptScores.from_records(records([[False]] * n)), PromptScores.from_records(records([[True]] * n)), resamples=200
    )
    entry = result["prompt_level_strict_acc"]
    assert (entry["diff"], entry["ci_low"], entry["ci_high"], entry["significant"]) == (1.0, 1.0, 1.0, True)
    assert result["mcnemar"]["prompt_level_strict_acc"]["p_value"] == pytest.approx(2 / 2**20)


def test_prompt_level_interval_matches_scipy_bootstrap():
    # 60 prompts; the model gains 14 and loses 2 against the baseline: difference 12/60.
    stats = pytest.importorskip("scipy.stats")
    base = [True] * 20 + [False] * 14 + [True] * 2 + [False] * 24
    model = [True] * 20 + [True] * 14 + [False] * 2 + [False] * 24
    result = compare(PromptScores.from_records(records([[b] for b in base])),
                     PromptScores.from_records(records([[m] for m in model])), resamples=20_000, seed=3)
    entry = result["prompt_level_strict_acc"]
    assert entry["diff"] == pytest.approx(12 / 60)
    d = np.array(model, dtype=float) - np.array(base, dtype=float)
    theirs = stats.bootstrap((d,), np.mean, n_resamples=20_000, method="percentile", confidence_level=0.95,
                             random_state=np.random.default_rng(0)).confidence_interval
    # both are Monte Carlo estimates of the same percentile interval, on a grid of steps of 1/60: they agree
    # to within about one step
    assert entry["ci_low"] == pytest.approx(theirs.low, abs=0.02)
    assert entry["ci_high"] == pytest.approx(theirs.high, abs=0.02)
    # and to the normal approximation, sd = sqrt(var(d) / n) = 0.0615: [0.08, 0.32]
    sd = d.std() / math.sqrt(len(d))
    assert entry["ci_low"] == pytest.approx(12 / 60 - 1.96 * sd, abs=0.025)
    assert entry["ci_high"] == pytest.approx(12 / 60 + 1.96 * sd, abs=0.025)
    assert entry["significant"]


def test_bootstrap_is_seeded_and_blocks_cover_every_resample():
    first = np.concatenate(list(bootstrap_weights(7, 1000, seed=5)))
    again = np.concatenate(list(bootstrap_weights(7, 1000, seed=5)))
    assert first.shape == (1000, 7) and (first == again).all()
    assert (first.sum(axis=1) == 7).all()  # each resample draws n prompts
    other = np.concatenate(list(bootstrap_weights(7, 1000, seed=6)))
    assert not (first == other).all()


def test_compare_all_uses_the_first_model_as_baseline_and_shared_prompts():
    base = records([[True], [False], [True], [False]])
    partial = records([[True], [True]])  # answers prompts 0 and 1 only
    out = compare_all({"base": base, "new": partial}, resamples=100)
    assert out["new"]["baseline"] == "base"
    assert out["new"]["n_prompts"] == 2
    assert out["new"]["prompt_level_strict_acc"]["diff"] == pytest.approx(0.5)
    assert compare_all({"only": base}) == {}


def test_compare_binary_hand_case():
    # 10 items: the model fixes items 0-3 and breaks item 9: accuracy 0.6 -> 0.9, discordant 1 vs 4
    base = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    model = [1, 1, 1, 1, 1, 1, 1, 1, 1, 0]
    from mapl_cli.evaluation.stats import compare_binary

    out = compare_binary(base, model, resamples=2000)
    assert (out["baseline"], out["model"]) == (0.6, 0.9)
    assert out["diff"] == pytest.approx(0.3)
    assert out["ci_low"] <= 0.3 <= out["ci_high"]
    # 2 * (C(5,0) + C(5,1)) / 2^5 = 12/32
    assert out["mcnemar"] == {"baseline_only": 1, "model_only": 4, "p_value": 0.375}
