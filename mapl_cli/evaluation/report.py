"""report.md and PNG charts from an evaluation summary (matplotlib, Agg backend, no display needed).

    write_report(Path("out/eval"), summary)   # report.md, accuracy.png, accuracy_by_k.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mapl_cli.evaluation.scoring import METRICS
from mapl_cli.manifest import atomic_path

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


def _signed(x: float) -> str:
    return f"{100 * x:+.1f}"


def _difference(entry: dict[str, Any]) -> str:
    """'+3.7 [+0.5, +6.9] *': difference in points, 95% interval, * when the interval excludes 0."""
    mark = " *" if entry["significant"] else ""
    return f"{_signed(entry['diff'])} [{_signed(entry['ci_low'])}, {_signed(entry['ci_high'])}]{mark}"


def _p(x: float) -> str:
    return f"{x:.3f}" if x >= 0.001 else f"{x:.1e}"


def differences_table(comparisons: dict[str, Any]) -> str:
    """Each model against the baseline: metric differences with bootstrap intervals, McNemar p-values."""
    rows = []
    for name, c in comparisons.items():
        if "error" in c:
            rows.append([name, "-", *(["-"] * len(METRICS)), c["error"]])
            continue
        mc = c["mcnemar"]
        p_values = f"{_p(mc['prompt_level_strict_acc']['p_value'])} / {_p(mc['prompt_level_loose_acc']['p_value'])}"
        rows.append([name, c["n_prompts"], *(_difference(c[k]) for k in METRICS), p_values])
    header = ["model", "paired prompts", *(f"Δ {SHORT[k]}" for k in METRICS), "McNemar p (prompt strict / loose)"]
    return _table(header, rows)


def comparison_note(comparisons: dict[str, Any]) -> str:
    first = next(iter(comparisons.values()))
    resamples = first.get("resamples", "?")
    return (
        f"Differences against {first['baseline']}, in points, with 95% paired bootstrap intervals "
        f"({resamples} resamples of the prompts, seed {first.get('seed', 0)}); * marks an interval that excludes 0. "
        "McNemar: exact two-sided test on the prompts where exactly one of the two models is right."
    )


def comparison_table(summary: dict[str, Any]) -> str:
    """Models side by side: the four accuracies (percent) and the number of prompts, then each model's
    differences from the first with intervals (when there are several)."""
    parts = []
    models = summary.get("models", {})
    if models:
        rows = [[name, m["n_prompts"], *(_pct(m[k]) for k in METRICS)] for name, m in models.items()]
        parts.append(_table(["model", "prompts", *METRICS], rows))
    comparisons = summary.get("comparisons")
    if comparisons:
        parts.append(comparison_note(comparisons) + "\n" + differences_table(comparisons))
    for name, rm in summary.get("reward_models", {}).items():
        rows = [[kind, v["n"], _pct(v["accuracy"]), f"{v['mean_margin']:.3f}"] for kind, v in rm["by_kind"].items()]
        parts.append(f"reward model {name}\n" + _table(["kind", "pairs", "accuracy", "mean margin"], rows))
    if summary.get("reward_comparisons"):
        parts.append(reward_differences(summary["reward_comparisons"]))
    return "\n\n".join(parts)


def summary_metrics(summary: dict[str, Any]) -> dict[str, float | None]:
    """The summary's numbers under flat names, for `--report-to`: MODEL/METRIC overall and MODEL/kK/METRIC by
    number of instructions, MODEL/diff/METRIC against the baseline; a reward model's RM/KIND/accuracy and
    RM/KIND/mean_margin (KIND: overall and each pair kind), and RM/diff/KIND/accuracy against the first."""
    out: dict[str, float | None] = {}
    for name, m in summary.get("models", {}).items():
        out[f"{name}/n_prompts"] = m["n_prompts"]
        out.update({f"{name}/{k}": m[k] for k in METRICS})
        for k, entry in m["by_num_instructions"].items():
            out.update({f"{name}/k{k}/{metric}": entry[metric] for metric in METRICS})
    for name, c in summary.get("comparisons", {}).items():
        if "error" not in c:
            out.update({f"{name}/diff/{k}": c[k]["diff"] for k in METRICS})
    for name, rm in summary.get("reward_models", {}).items():
        for kind, v in {"overall": rm["overall"], **rm["by_kind"]}.items():
            out.update({f"{name}/{kind}/accuracy": v["accuracy"], f"{name}/{kind}/mean_margin": v["mean_margin"]})
    for name, c in summary.get("reward_comparisons", {}).items():
        out.update({f"{name}/diff/{group}/accuracy": e["diff"] for group, e in c.items() if isinstance(e, dict)})
    return out


def summary_tables(summary: dict[str, Any]) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """The comparison table's rows as numbers (fractions, not percent), for `--report-to`: name -> (columns,
    rows). "comparison": each model's accuracies; "differences": each model against the first, with its 95%
    interval; "reward_models": accuracy and mean margin by kind."""
    tables: dict[str, tuple[list[str], list[list[Any]]]] = {}
    models = summary.get("models", {})
    if models:
        tables["comparison"] = (["model", "prompts", *METRICS], [[n, m["n_prompts"], *(m[k] for k in METRICS)] for n, m in models.items()])
    comparisons = {n: c for n, c in summary.get("comparisons", {}).items() if "error" not in c}
    if comparisons:
        rows = [[n, c["baseline"], k, c[k]["diff"], c[k]["ci_low"], c[k]["ci_high"], c[k]["significant"]]
                for n, c in comparisons.items() for k in METRICS]
        tables["differences"] = (["model", "baseline", "metric", "diff", "ci_low", "ci_high", "significant"], rows)
    rows = [[n, kind, v["n"], v["accuracy"], v["mean_margin"]]
            for n, rm in summary.get("reward_models", {}).items() for kind, v in {"overall": rm["overall"], **rm["by_kind"]}.items()]
    if rows:
        tables["reward_models"] = (["reward model", "kind", "pairs", "accuracy", "mean_margin"], rows)
    return tables


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


def reward_differences(comparisons: dict[str, Any]) -> str:
    """Each reward model's pairwise accuracy minus the first one's, overall and by kind, with intervals."""
    first = next(iter(comparisons.values()))
    rows = []
    for name, c in comparisons.items():
        for group, entry in c.items():
            if not isinstance(entry, dict):
                continue
            mc = entry["mcnemar"]
            rows.append([name, group, entry["n"], _difference(entry), _p(mc["p_value"])])
    note = (
        f"Accuracy differences against {first['baseline']}, in points, with 95% paired bootstrap intervals "
        f"({first['resamples']} resamples of the pairs); * marks an interval that excludes 0; McNemar: exact test on "
        "the pairs exactly one of the two models gets right."
    )
    return note + "\n" + _table(["reward model", "kind", "pairs", "Δ accuracy", "McNemar p"], rows)


def _seen_section(summary: dict[str, Any]) -> list[str]:
    models = summary["models"]
    seen = summary["seen_ids"]
    out = [
        "## Instruction types seen and not seen in training",
        "",
        f"Seen: the {len(seen['ids'])} instruction ids in the training data ({seen['from']}); unseen: every other id "
        "in the benchmark. Instruction level: each instruction by its id; prompt level: prompts whose instructions "
        "are all seen, and prompts with at least one unseen instruction. Strict accuracy in percent (count).",
        "",
    ]
    rows = []
    for group in ("seen", "unseen"):
        for level, n_key in (("inst_level_strict_acc", "n_instructions"), ("prompt_level_strict_acc", "n_prompts")):
            row: list[Any] = [group, level]
            for m in models.values():
                g = m.get("seen_unseen", {}).get(group)
                row.append("-" if not g else f"{_pct(g[level])} (n={g[n_key]})")
            rows.append(row)
    return out + [_table(["types", "metric", *models], rows), ""]


def _not_scored_section(models: dict[str, Any]) -> list[str]:
    found: dict[str, dict[str, Any]] = {}
    for m in models.values():
        for i, entry in m.get("not_scored", {}).items():
            found.setdefault(i, entry)
    if not found:
        return []
    rows = [[f"`{i}`", entry["n"], entry["reason"]] for i, entry in sorted(found.items())]
    return [
        "## Not scored",
        "",
        "These instruction types cannot be scored on this machine; they are left out of every metric above "
        "(not counted as failures), and so is every prompt that holds one from the prompt-level metrics.",
        "",
        _table(["instruction", "instructions (per model)", "reason"], rows),
        "",
    ]


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


def _settings_line(summary: dict[str, Any]) -> str:
    s = summary.get("sampling", {})
    return (
        f"Generation settings (models only; --responses are scored as given): max_new_tokens="
        f"{s.get('max_new_tokens')}, temperature={s.get('temperature')}, top_p={s.get('top_p')}, "
        f"seed={s.get('seed')}, chat_template_kwargs={s.get('chat_template_kwargs')}, system prompt="
        f"{'none' if not summary.get('system_prompt') else repr(summary['system_prompt'])}, reasoning traces "
        f"{'removed before scoring' if summary.get('strip_thinking', True) else 'scored as part of the response'}. "
        "Accuracies in percent."
    )


def _models_section(out: Path, summary: dict[str, Any]) -> list[str]:
    """The instruction-following part of the report, and its charts."""
    models = summary["models"]
    lines = [_settings_line(summary), "", "## Comparison", "", comparison_table({"models": models}), "",
             "![accuracies](accuracy.png)", ""]
    if summary.get("comparisons"):
        lines += [
            "## Is the difference real?", "", comparison_note(summary["comparisons"]), "",
            differences_table(summary["comparisons"]), "", "![differences with 95% intervals](differences.png)", "",
        ]
        plot_differences(summary["comparisons"], out / "differences.png")
    if summary.get("seen_ids"):
        lines += _seen_section(summary)
    lines += [
        "## By number of instructions in the prompt", "", "Prompt-level / instruction-level strict accuracy.", "",
        _by_k_table(models), "", "![accuracy by number of instructions](accuracy_by_k.png)", "",
    ]
    for name, m in models.items():
        scored = ""
        if m.get("not_scored"):
            scored = f" (scored: {m['n_prompts_scored']} prompts, {m['n_instructions_scored']} instructions)"
        lines += [f"## {name}", "", f"Source: `{m['source']}`; {m['n_prompts']} prompts, {m['n_instructions']} instructions{scored}.", ""]
        lines += [_table(["metric", "value"], [[k, _pct(m[k])] for k in METRICS]), ""]
    lines += ["## Per instruction (strict / loose)", "", _per_instruction_table(models), ""]
    lines += _not_scored_section(models)
    plot_accuracies(models, out / "accuracy.png")
    plot_by_k(models, out / "accuracy_by_k.png")
    return lines


def write_report(out: Path, summary: dict[str, Any]) -> None:
    """Write report.md and the charts for every model in `summary` into `out`."""
    lines = ["# mapl evaluate", ""]
    if summary.get("models"):
        lines += _models_section(out, summary)
    if summary.get("reward_models"):
        lines += _reward_section(summary["reward_models"])
        if summary.get("reward_comparisons"):
            lines += ["### Is the difference real?", "", reward_differences(summary["reward_comparisons"]), ""]
        plot_reward(summary["reward_models"], out / "reward_accuracy.png")
        lines += ["![reward-model accuracy by kind](reward_accuracy.png)", ""]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")


def _save(plt, fig, path: Path) -> None:
    """Save a chart whole or not at all (a full disk leaves no half-written PNG)."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)


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
        ax.bar(xs, [_percent(v) for v in values], width, label=name)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 100)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(plt, fig, path)


def _percent(v: float | None) -> float:
    return float("nan") if v is None else 100 * v


def plot_differences(comparisons: dict[str, Any], path: Path) -> None:
    """One row per (model, metric): the difference from the baseline and its 95% interval; 0 marked."""
    plt = _pyplot()
    usable = {name: c for name, c in comparisons.items() if "error" not in c}
    labels, diffs, lows, highs = [], [], [], []
    for name, c in usable.items():
        for metric in METRICS:
            labels.append(f"{name}: {SHORT[metric]}")
            diffs.append(100 * c[metric]["diff"])
            lows.append(100 * (c[metric]["diff"] - c[metric]["ci_low"]))
            highs.append(100 * (c[metric]["ci_high"] - c[metric]["diff"]))
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(labels) + 1.2))
    ys = list(range(len(labels)))[::-1]
    ax.errorbar(diffs, ys, xerr=[lows, highs], fmt="o", capsize=3)
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_yticks(ys, labels, fontsize=8)
    baseline = next(iter(usable.values()))["baseline"] if usable else "baseline"
    ax.set_xlabel(f"difference from {baseline} (points), 95% paired bootstrap interval")
    fig.tight_layout()
    _save(plt, fig, path)


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
        ax.plot(ks, [_percent(by_k[str(k)]["prompt_level_strict_acc"]) for k in ks], marker="o", color=color, label=f"{name} (prompt)")
        ax.plot(ks, [_percent(by_k[str(k)]["inst_level_strict_acc"]) for k in ks], marker="x", linestyle="--", color=color, label=f"{name} (inst)")
    ax.set_xlabel("instructions in the prompt")
    ax.set_ylabel("strict accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Accuracy against number of instructions")
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(plt, fig, path)


def plot_reward(reward: dict[str, Any], path: Path) -> None:
    kinds = sorted({k for rm in reward.values() for k in rm["by_kind"]})
    series = {name: [rm["by_kind"].get(k, {}).get("accuracy", 0.0) for k in kinds] for name, rm in reward.items()}
    _grouped_bars(kinds, series, "pairwise accuracy (%)", "Reward models by pair kind", path)
