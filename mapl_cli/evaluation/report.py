"""report.md and PNG charts from an evaluation summary (matplotlib, Agg backend, no display needed).

    write_report(Path("out/eval"), summary)   # report.md, accuracy.png, accuracy_by_k.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mapl_cli.evaluation.scoring import METRICS

SHORT = {
    "prompt_level_strict_acc": "prompt strict",
    "inst_level_strict_acc": "inst strict",
    "prompt_level_loose_acc": "prompt loose",
    "inst_level_loose_acc": "inst loose",
}


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def comparison_table(summary: dict[str, Any]) -> str:
    """Models side by side: the four accuracies (percent) and the number of prompts."""
    parts = []
    models = summary.get("models", {})
    if models:
        rows = [[name, m["n_prompts"], *(_pct(m[k]) for k in METRICS)] for name, m in models.items()]
        parts.append(_table(["model", "prompts", *METRICS], rows))
    for name, rm in summary.get("reward_models", {}).items():
        rows = [[kind, v["n"], _pct(v["accuracy"]), f"{v['mean_margin']:.3f}"] for kind, v in rm["by_kind"].items()]
        parts.append(f"reward model {name}\n" + _table(["kind", "pairs", "accuracy", "mean margin"], rows))
    return "\n\n".join(parts)


def _by_k_table(models: dict[str, Any]) -> str:
    ks = sorted({int(k) for m in models.values() for k in m["by_num_instructions"]})
    rows = []
    for k in ks:
        row: list[Any] = [k]
        for m in models.values():
            entry = m["by_num_instructions"].get(str(k))
            row.append("-" if entry is None else f"{_pct(entry['prompt_level_strict_acc'])} / {_pct(entry['inst_level_strict_acc'])} (n={entry['n_prompts']})")
        rows.append(row)
    return _table(["instructions in prompt", *models], rows)


def _per_instruction_table(models: dict[str, Any]) -> str:
    ids = sorted({i for m in models.values() for i in m["by_instruction"]})
    rows = []
    for i in ids:
        row: list[Any] = [f"`{i}`"]
        for m in models.values():
            entry = m["by_instruction"].get(i)
            row.append("-" if entry is None else f"{_pct(entry['strict_acc'])} / {_pct(entry['loose_acc'])} (n={entry['n']})")
        rows.append(row)
    return _table(["instruction", *models], rows)


def _reward_section(reward: dict[str, Any]) -> list[str]:
    out = ["## Reward models", "", "Accuracy: share of pairs where the chosen side scores higher; margin: mean score difference.", ""]
    kinds = sorted({k for rm in reward.values() for k in rm["by_kind"]})
    rows = []
    for kind in kinds:
        row: list[Any] = [kind]
        for rm in reward.values():
            v = rm["by_kind"].get(kind)
            row.append("-" if v is None else f"{_pct(v['accuracy'])} ({v['mean_margin']:+.3f}, n={v['n']})")
        rows.append(row)
    out += [_table(["kind", *reward], rows), ""]
    conditions = sorted({c for rm in reward.values() for c in rm["by_condition"]})
    if conditions:
        rows = []
        for c in conditions:
            row = [c]
            for rm in reward.values():
                v = rm["by_condition"].get(c)
                row.append("-" if v is None else f"{_pct(v['accuracy'])} ({v['mean_margin']:+.3f}, n={v['n']})")
            rows.append(row)
        out += ["By condition (intra rows):", "", _table(["condition", *reward], rows), ""]
    return out


def write_report(out: Path, summary: dict[str, Any]) -> None:
    """Write report.md and the charts for every model in `summary` into `out`."""
    models = summary.get("models", {})
    lines = ["# mapl evaluate", ""]
    if models:
        s = summary.get("sampling", {})
        lines += [
            f"Generation settings (models only; --responses are scored as given): max_new_tokens="
            f"{s.get('max_new_tokens')}, temperature={s.get('temperature')}, top_p={s.get('top_p')}, "
            f"seed={s.get('seed')}. Accuracies in percent.",
            "",
            "## Comparison",
            "",
            comparison_table({"models": models}),
            "",
            "![accuracies](accuracy.png)",
            "",
            "## By number of instructions in the prompt",
            "",
            "Prompt-level / instruction-level strict accuracy.",
            "",
            _by_k_table(models),
            "",
            "![accuracy by number of instructions](accuracy_by_k.png)",
            "",
        ]
        for name, m in models.items():
            lines += [f"## {name}", "", f"Source: `{m['source']}`; {m['n_prompts']} prompts, {m['n_instructions']} instructions.", ""]
            lines += [_table(["metric", "value"], [[k, _pct(m[k])] for k in METRICS]), ""]
        lines += ["## Per instruction (strict / loose)", "", _per_instruction_table(models), ""]
        plot_accuracies(models, out / "accuracy.png")
        plot_by_k(models, out / "accuracy_by_k.png")
    if summary.get("reward_models"):
        lines += _reward_section(summary["reward_models"])
        plot_reward(summary["reward_models"], out / "reward_accuracy.png")
        lines += ["![reward-model accuracy by kind](reward_accuracy.png)", ""]
    (out / "report.md").write_text("\n".join(lines))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grouped_bars(groups: list[str], series: dict[str, list[float]], ylabel: str, title: str, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups)), 4))
    width = 0.8 / max(1, len(series))
    for j, (name, values) in enumerate(series.items()):
        xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(groups))]
        ax.bar(xs, [100 * v for v in values], width, label=name)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 100)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_accuracies(models: dict[str, Any], path: Path) -> None:
    series = {name: [m[k] for k in METRICS] for name, m in models.items()}
    _grouped_bars([SHORT[k] for k in METRICS], series, "accuracy (%)", "Instruction following", path)


def plot_by_k(models: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for j, (name, m) in enumerate(models.items()):
        ks = sorted(int(k) for k in m["by_num_instructions"])
        by_k = m["by_num_instructions"]
        color = f"C{j}"  # one color per model: solid prompt level, dashed instruction level
        ax.plot(ks, [100 * by_k[str(k)]["prompt_level_strict_acc"] for k in ks], marker="o", color=color, label=f"{name} (prompt)")
        ax.plot(ks, [100 * by_k[str(k)]["inst_level_strict_acc"] for k in ks], marker="x", linestyle="--", color=color, label=f"{name} (inst)")
    ax.set_xlabel("instructions in the prompt")
    ax.set_ylabel("strict accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Accuracy against number of instructions")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reward(reward: dict[str, Any], path: Path) -> None:
    kinds = sorted({k for rm in reward.values() for k in rm["by_kind"]})
    series = {name: [rm["by_kind"].get(k, {}).get("accuracy", 0.0) for k in kinds] for name, rm in reward.items()}
    _grouped_bars(kinds, series, "pairwise accuracy (%)", "Reward models by pair kind", path)
