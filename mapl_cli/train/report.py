"""metrics.jsonl lines, the per-step statistics behind them, and curves.png."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from mapl_cli.jsonl import read_jsonl as read_jsonl_lines
from mapl_cli.pairs import KINDS

# Sums accumulated over the rows of one optimizer step (all micro-batches, all processes), then reduced.
FIELDS = (
    "loss", "rows", "rewards_chosen", "rewards_rejected", "correct", "logps_chosen", "logps_rejected", "tokens",
    *(f"{what}_{kind}" for kind in KINDS for what in ("rows", "loss", "correct")),
)
INDEX = {name: i for i, name in enumerate(FIELDS)}


def new_sums() -> torch.Tensor:
    return torch.zeros(len(FIELDS), dtype=torch.float64)


def accumulate(sums: torch.Tensor, out, loss_part: float) -> None:
    """Add one micro-batch's RowOutputs to the running sums (`loss_part` is its share of the step loss)."""
    correct = (out.s_chosen > out.s_rejected).double().cpu()
    kinds = out.kinds.cpu()
    pref = out.preference.double().cpu()
    sums[INDEX["loss"]] += loss_part
    sums[INDEX["rows"]] += len(kinds)
    sums[INDEX["rewards_chosen"]] += out.s_chosen.double().sum().item()
    sums[INDEX["rewards_rejected"]] += out.s_rejected.double().sum().item()
    sums[INDEX["correct"]] += correct.sum().item()
    if out.logps_chosen is not None:
        sums[INDEX["logps_chosen"]] += out.logps_chosen.double().sum().item()
        sums[INDEX["logps_rejected"]] += out.logps_rejected.double().sum().item()
    sums[INDEX["tokens"]] += out.tokens
    for kind_id, kind in enumerate(KINDS):
        mask = kinds == kind_id
        sums[INDEX[f"rows_{kind}"]] += mask.sum().item()
        sums[INDEX[f"loss_{kind}"]] += pref[mask].sum().item()
        sums[INDEX[f"correct_{kind}"]] += correct[mask].sum().item()


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def summarise(sums: torch.Tensor, with_logps: bool) -> dict:
    """Metric dict (names as TRL/DPO users plot them) from reduced sums; absent kinds give null."""
    s = {name: float(sums[i]) for i, name in enumerate(FIELDS)}
    n = s["rows"]
    out = {
        "loss": s["loss"],
        "rewards/chosen": _ratio(s["rewards_chosen"], n),
        "rewards/rejected": _ratio(s["rewards_rejected"], n),
        "rewards/margins": _ratio(s["rewards_chosen"] - s["rewards_rejected"], n),
        "rewards/accuracies": _ratio(s["correct"], n),
    }
    if with_logps:
        out["logps/chosen"] = _ratio(s["logps_chosen"], n)
        out["logps/rejected"] = _ratio(s["logps_rejected"], n)
    for kind in KINDS:
        out[f"loss/{kind}"] = _ratio(s[f"loss_{kind}"], s[f"rows_{kind}"])
    for kind in KINDS:
        out[f"accuracy/{kind}"] = _ratio(s[f"correct_{kind}"], s[f"rows_{kind}"])
    out["rows"] = int(n)
    out["tokens"] = int(s["tokens"])
    return out


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def _records(path: Path) -> list[dict]:
    """The complete records of a jsonl file; a line cut short (a kill or a full disk mid-write) is skipped."""
    return [record for _, record in read_jsonl_lines(path, None, skip_bad_lines=True)
            if isinstance(record, dict) and isinstance(record.get("step"), int)]


def truncate_jsonl(path: Path, last_step: int) -> None:
    """Drop lines after `last_step` (a resumed run rewrites them), and any incomplete line."""
    if not path.exists():
        return
    keep = [record for record in _records(path) if record["step"] <= last_step]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(record) + "\n" for record in keep))
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict]:
    return _records(path) if path.exists() else []


def plot_curves(metrics: list[dict], path: Path, title: str, eval_metrics: list[dict] | None = None) -> None:
    """curves.png: loss (total and per kind) and accuracy per kind against the optimizer step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [m["step"] for m in metrics]

    def series(key, rows):
        pts = [(m["step"], m[key]) for m in rows if m.get(key) is not None and math.isfinite(m[key])]
        return [p[0] for p in pts], [p[1] for p in pts]

    left.plot(steps, [m["loss"] for m in metrics], label="loss", color="black")
    for kind in KINDS:
        x, y = series(f"loss/{kind}", metrics)
        if x:
            left.plot(x, y, ".-", label=f"loss/{kind}", alpha=0.7)  # markers: a kind may be in few steps
        x, y = series(f"accuracy/{kind}", metrics)
        if x:
            right.plot(x, y, ".-", label=f"accuracy/{kind}", alpha=0.7)
    if eval_metrics:
        x, y = series("loss", eval_metrics)
        left.plot(x, y, "o--", label="eval loss")
        x, y = series("rewards/accuracies", eval_metrics)
        right.plot(x, y, "o--", label="eval accuracy")
    left.set(xlabel="step", ylabel="loss", title=f"{title}: loss")
    right.set(xlabel="step", ylabel="accuracy", title=f"{title}: accuracy (chosen score > rejected)", ylim=(-0.05, 1.05))
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")  # a failed write (a full disk) leaves no partial image
    try:
        fig.savefig(tmp, dpi=100, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
