"""Whether a difference between two models is real: paired bootstrap intervals and exact McNemar tests.

Two models (or response files) scored on the same prompts are compared prompt by prompt. For each of the
four IFEval metrics the difference (model - baseline) gets a 95% percentile interval from a paired
bootstrap that resamples prompts with replacement (both models see the same resample, so the prompt's
difficulty cancels). Prompt-level accuracies also get an exact McNemar test: of the prompts where exactly
one model is right, is the split further from 50/50 than chance allows? Pure functions of verdicts; no
scipy at run time (tests compare with scipy.stats).

    from mapl_cli.evaluation.stats import PromptScores, compare
    result = compare(PromptScores.from_records(baseline), PromptScores.from_records(model), resamples=10_000)
    result["prompt_level_strict_acc"]   # {"diff": 0.031, "ci_low": -0.004, "ci_high": 0.066, ...}
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mapl_cli.evaluation.scoring import METRICS

DEFAULT_RESAMPLES = 10_000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class PromptScores:
    """One model's verdicts per prompt, as arrays aligned on `keys` (prompts with every instruction scored).

    prompt_strict/prompt_loose: 1 when every instruction of the prompt is followed; inst_strict/inst_loose:
    the number of instructions followed; n_inst: the number of instructions.
    """

    keys: tuple[Any, ...]
    prompt_strict: np.ndarray
    prompt_loose: np.ndarray
    inst_strict: np.ndarray
    inst_loose: np.ndarray
    n_inst: np.ndarray

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> PromptScores:
        """From result records ({key, strict: [bool|None], loose: [...]}); a prompt with an instruction that
        was not scored (None) is left out, as it is from the prompt-level metrics."""
        rows = [r for r in records if None not in r["strict"] and None not in r["loose"]]
        rows.sort(key=lambda r: (str(type(r["key"])), r["key"]))
        strict = [[bool(v) for v in r["strict"]] for r in rows]
        loose = [[bool(v) for v in r["loose"]] for r in rows]
        return cls(
            keys=tuple(r["key"] for r in rows),
            prompt_strict=np.array([all(s) for s in strict], dtype=np.float64),
            prompt_loose=np.array([all(s) for s in loose], dtype=np.float64),
            inst_strict=np.array([sum(s) for s in strict], dtype=np.float64),
            inst_loose=np.array([sum(s) for s in loose], dtype=np.float64),
            n_inst=np.array([len(s) for s in strict], dtype=np.float64),
        )

    def subset(self, keys: Sequence[Any]) -> PromptScores:
        index = {k: i for i, k in enumerate(self.keys)}
        take = np.array([index[k] for k in keys], dtype=np.int64)
        return PromptScores(
            keys=tuple(keys),
            prompt_strict=self.prompt_strict[take],
            prompt_loose=self.prompt_loose[take],
            inst_strict=self.inst_strict[take],
            inst_loose=self.inst_loose[take],
            n_inst=self.n_inst[take],
        )


def metric_values(scores: PromptScores, weights: np.ndarray | None = None) -> dict[str, np.ndarray | float]:
    """The four metrics; with `weights` (resamples x prompts counts) one value per resample.

    Prompt level: followed prompts / prompts. Instruction level: followed instructions / instructions over
    the (resampled) prompts, as lm-evaluation-harness pools them.
    """
    if weights is None:
        weights = np.ones((1, len(scores.keys)))
        single = True
    else:
        single = False
    total_prompts = weights.sum(axis=1)
    total_inst = weights @ scores.n_inst
    values = {
        "prompt_level_strict_acc": (weights @ scores.prompt_strict) / total_prompts,
        "inst_level_strict_acc": (weights @ scores.inst_strict) / total_inst,
        "prompt_level_loose_acc": (weights @ scores.prompt_loose) / total_prompts,
        "inst_level_loose_acc": (weights @ scores.inst_loose) / total_inst,
    }
    return {k: float(v[0]) for k, v in values.items()} if single else values


#: Resample counts held in memory at once: about 16 MB of float64, whatever the number of prompts.
_CELLS = 2_000_000


def bootstrap_weights(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """How often each of `n` prompts is drawn in each resample, as blocks of (rows x n) counts that
    together hold `resamples` rows, from one seeded generator (block size depends only on n)."""
    rng = np.random.default_rng(seed)
    block = max(1, _CELLS // max(n, 1))
    for start in range(0, resamples, block):
        yield rng.multinomial(n, np.full(n, 1.0 / n), size=min(block, resamples - start)).astype(np.float64)


def paired_bootstrap(
    baseline: PromptScores, model: PromptScores, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
    confidence: float = CONFIDENCE,
) -> dict[str, dict[str, float]]:
    """For each metric: the observed difference model - baseline and its percentile interval."""
    if baseline.keys != model.keys:
        raise ValueError("paired bootstrap needs the same prompts in the same order")
    if resamples < 1:
        raise ValueError("the bootstrap needs at least one resample")
    observed_b, observed_m = metric_values(baseline), metric_values(model)
    diffs: dict[str, list[np.ndarray]] = {metric: [] for metric in METRICS}
    for weights in bootstrap_weights(len(baseline.keys), resamples, seed):
        boot_b, boot_m = metric_values(baseline, weights), metric_values(model, weights)
        for metric in METRICS:
            diffs[metric].append(boot_m[metric] - boot_b[metric])
    tail = 100 * (1 - confidence) / 2
    out = {}
    for metric in METRICS:
        low, high = np.percentile(np.concatenate(diffs[metric]), [tail, 100 - tail])
        out[metric] = {
            "baseline": observed_b[metric],
            "model": observed_m[metric],
            "diff": observed_m[metric] - observed_b[metric],
            "ci_low": float(low),
            "ci_high": float(high),
            # an interval that excludes 0 on either side: the difference is unlikely to be resampling noise
            "significant": bool(low > 0 or high < 0),
        }
    return out


def mcnemar_exact(baseline_only: int, model_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (baseline right and model wrong, and the
    reverse): twice the binomial(b + c, 1/2) tail at min(b, c), capped at 1; 1.0 with no discordant pair."""
    n = baseline_only + model_only
    if n == 0:
        return 1.0
    k = min(baseline_only, model_only)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    # exact integer arithmetic for the tail, then one division: no underflow for large n
    return min(1.0, 2 * tail / 2**n)


def mcnemar(baseline: np.ndarray, model: np.ndarray) -> dict[str, float | int]:
    """McNemar's test on paired 0/1 prompt verdicts."""
    baseline_only = int(np.sum((baseline == 1) & (model == 0)))
    model_only = int(np.sum((baseline == 0) & (model == 1)))
    return {"baseline_only": baseline_only, "model_only": model_only, "p_value": mcnemar_exact(baseline_only, model_only)}


def compare(
    baseline: PromptScores, model: PromptScores, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> dict[str, Any]:
    """Paired comparison of `model` against `baseline` on the prompts both have scores for."""
    shared = [k for k in baseline.keys if k in set(model.keys)]
    if not shared:
        raise ValueError("the two models share no scored prompt")
    b, m = baseline.subset(shared), model.subset(shared)
    out: dict[str, Any] = {"n_prompts": len(shared), "resamples": resamples, "seed": seed, "confidence": CONFIDENCE}
    out.update(paired_bootstrap(b, m, resamples, seed))
    out["mcnemar"] = {
        "prompt_level_strict_acc": mcnemar(b.prompt_strict, m.prompt_strict),
        "prompt_level_loose_acc": mcnemar(b.prompt_loose, m.prompt_loose),
    }
    return out


def compare_all(
    records_by_model: Mapping[str, Sequence[Mapping[str, Any]]], resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Every model against the first one (the baseline), keyed by model label."""
    labels = list(records_by_model)
    if len(labels) < 2:
        return {}
    baseline = PromptScores.from_records(records_by_model[labels[0]])
    out = {}
    for label in labels[1:]:
        model = PromptScores.from_records(records_by_model[label])
        try:
            out[label] = {"baseline": labels[0], **compare(baseline, model, resamples, seed)}
        except ValueError as err:
            out[label] = {"baseline": labels[0], "error": str(err)}
    return out


def compare_binary(
    baseline: np.ndarray, model: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """Paired comparison of two 0/1 vectors over the same items (for example reward-model pairs judged
    right): accuracy difference with a percentile bootstrap interval, and McNemar's exact p-value."""
    baseline, model = np.asarray(baseline, dtype=np.float64), np.asarray(model, dtype=np.float64)
    if baseline.shape != model.shape or baseline.size == 0:
        raise ValueError("paired comparison needs two equally long, non-empty verdict vectors")
    diff = model - baseline
    boot = np.concatenate([w @ diff / baseline.size for w in bootstrap_weights(baseline.size, resamples, seed)])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(boot, [tail, 100 - tail])
    return {
        "n": int(baseline.size),
        "baseline": float(baseline.mean()),
        "model": float(model.mean()),
        "diff": float(diff.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "significant": bool(low > 0 or high < 0),
        "mcnemar": mcnemar(baseline, model),
    }
