"""Reward-model evaluation: pairwise accuracy and mean margin on a pairs table, by kind and by condition.

A pair counts as correct when r(prompt_chosen, response_chosen) > r(prompt_rejected, response_rejected).
Sequences are tokenised and scored with the code the trainer uses (`encoding.tokens.encode_pairs`,
`encoding.forward.last_token_rewards`), so evaluation reads a reward model exactly as `mapl train-rm` trained it.

    mapl evaluate --reward-model out/rm-bt --reward-model out/rm-mapl --pairs out/heldout --output out/eval-rm
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from mapl_cli.errors import MaplError
from mapl_cli.generation.checkpoints import display_name, resolve_checkpoint


def _json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _not_a_reward_model(name: str, checkpoint: Any) -> str | None:
    """Why `name` is not a reward model, or None when it is one. A mapl manifest beside the weights decides
    (stage train-rm); otherwise a LoRA adapter must be for sequence classification (task_type SEQ_CLS) and a
    full model's config must name a *ForSequenceClassification architecture. Anything else would be loaded
    with a freshly initialised score head and give a meaningless accuracy."""
    folder = Path(checkpoint.adapter or checkpoint.base)
    for manifest in (Path(name) / "manifest.json", folder / "manifest.json", folder.parent / "manifest.json"):
        stage = (_json(manifest) or {}).get("stage") if manifest.is_file() else None
        if isinstance(stage, str):
            return None if stage == "train-rm" else f"{manifest} says it is a {stage} output"
    if checkpoint.adapter:
        task = (_json(folder / "adapter_config.json") or {}).get("task_type")
        return None if task == "SEQ_CLS" else f"its LoRA adapter is for {task or 'an unnamed task'}, not SEQ_CLS"
    architectures = (_json(folder / "config.json") or {}).get("architectures") or []
    if any(isinstance(a, str) and a.endswith("ForSequenceClassification") for a in architectures):
        return None
    return f"its config.json names {', '.join(map(str, architectures)) or 'no architecture'}, not a *ForSequenceClassification model"


def preflight_reward_model(name: str) -> None:
    """Fail early when `name` is not a reward-model folder (or an adapter over one), or its files are
    damaged, before anything is generated or written."""
    from mapl_cli.generation.preflight import check_folders

    if not Path(name).exists():
        raise MaplError(f"{name}: no such reward-model folder (give the output folder of mapl train-rm)")
    checkpoint = resolve_checkpoint(name)
    check_folders(name, checkpoint)
    why = _not_a_reward_model(name, checkpoint)
    if why:
        raise MaplError(f"--reward-model {name}: not a reward model ({why}); give the output folder of mapl train-rm")


def load_reward_model(name: str, device: Any = None, dtype: str = "auto") -> tuple[Any, Any, Any]:
    """(model, tokenizer, device) for a `mapl train-rm` output: a full folder or a LoRA adapter folder."""
    from transformers import AutoModelForSequenceClassification

    from mapl_cli.models import (
        default_device,
        load_tokenizer,
        merge_adapter_into,
        resolve_dtype,
        resolve_model,
    )

    device = device if device is not None else default_device()
    checkpoint = resolve_checkpoint(name)
    torch_dtype = resolve_dtype(dtype, device)
    try:
        if checkpoint.adapter:
            from transformers.utils import logging as hf_logging

            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()  # "score weights newly initialised": the adapter brings them
            try:
                base = AutoModelForSequenceClassification.from_pretrained(str(resolve_model(checkpoint.base)), num_labels=1, dtype=torch_dtype)
            finally:
                hf_logging.set_verbosity(verbosity)
            model = merge_adapter_into(base, checkpoint.adapter)
            tokenizer_source = checkpoint.adapter if (Path(checkpoint.adapter) / "tokenizer_config.json").exists() else checkpoint.base
        else:
            model = AutoModelForSequenceClassification.from_pretrained(checkpoint.base, num_labels=1, dtype=torch_dtype)
            tokenizer_source = checkpoint.base
    except (OSError, ValueError) as err:
        raise MaplError(f"reward model {name!r} cannot be loaded: {type(err).__name__}: {str(err).splitlines()[0]}") from None
    if tokenizer_source == checkpoint.adapter:
        from transformers import AutoTokenizer

        from mapl_cli.models import prepare_tokenizer

        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(tokenizer_source), name)
    else:
        tokenizer = load_tokenizer(tokenizer_source)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer, device


def _stats(margins: list[float]) -> dict[str, Any]:
    return {
        "n": len(margins),
        "accuracy": sum(m > 0 for m in margins) / len(margins),
        "mean_margin": sum(margins) / len(margins),
    }


def pair_margins(model: Any, tokenizer: Any, table: Any, device: Any, batch_size: int = 16, max_length: int = 1024) -> dict[str, float]:
    """r(chosen side) - r(rejected side) for every pair that survives tokenisation, keyed by pair_id."""
    import torch

    from mapl_cli.encoding.batch import make_batch
    from mapl_cli.encoding.forward import can_share_prompts, last_token_rewards
    from mapl_cli.encoding.tokens import encode_pairs

    rows, _dropped = encode_pairs(table, tokenizer, max_length=max_length, max_prompt_length=None)
    margins: dict[str, float] = {}
    rows = sorted(rows, key=lambda r: r.length)  # similar lengths per batch: less padding
    share = can_share_prompts(model)  # a standard or inter row's prompt scored once for both responses
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        sequences = [s for r in batch for s in r.sequences[:2]]
        batch_tokens = make_batch(sequences, tokenizer.pad_token_id, packing=False, share_prompts=share).to(device)
        with torch.inference_mode():
            rewards = last_token_rewards(model, batch_tokens).tolist()
        for n, row in enumerate(batch):
            margins[row.pair_id] = rewards[2 * n] - rewards[2 * n + 1]
    return margins


def summarize_margins(table: Any, margins: dict[str, float]) -> dict[str, Any]:
    """Accuracy and mean margin overall, by kind, and by condition (intra rows)."""
    by_kind: dict[str, list[float]] = defaultdict(list)
    by_condition: dict[str, list[float]] = defaultdict(list)
    for pair_id, kind, condition in zip(*(table.column(c).to_pylist() for c in ("pair_id", "kind", "condition")), strict=True):
        if pair_id not in margins:
            continue
        by_kind[kind].append(margins[pair_id])
        if condition:
            by_condition[f"{kind}/{condition}"].append(margins[pair_id])
    if not margins:
        raise MaplError("no pair could be scored (every response was truncated away; raise --max-length)")
    return {
        "overall": _stats(list(margins.values())),
        "by_kind": {k: _stats(v) for k, v in sorted(by_kind.items())},
        "by_condition": {k: _stats(v) for k, v in sorted(by_condition.items())},
        "n_pairs": table.num_rows,
        "n_scored": len(margins),
    }


def compare_reward_models(
    table: Any, margins_by_model: dict[str, dict[str, float]], resamples: int, seed: int = 0
) -> dict[str, Any]:
    """Each reward model against the first, on the pairs both scored: accuracy difference with a paired
    bootstrap interval and McNemar's exact p-value, overall and by kind."""
    from mapl_cli.evaluation.stats import compare_binary

    labels = list(margins_by_model)
    if len(labels) < 2 or resamples < 1:
        return {}
    kinds = dict(zip(table.column("pair_id").to_pylist(), table.column("kind").to_pylist(), strict=True))
    base = margins_by_model[labels[0]]
    out = {}
    for label in labels[1:]:
        mine = margins_by_model[label]
        shared = [p for p in base if p in mine]
        groups = {"overall": shared, **{k: [p for p in shared if kinds[p] == k] for k in sorted({kinds[p] for p in shared})}}
        out[label] = {"baseline": labels[0], "resamples": resamples, "seed": seed}
        for group, ids in groups.items():
            if ids:
                out[label][group] = compare_binary(
                    [base[p] > 0 for p in ids], [mine[p] > 0 for p in ids], resamples=resamples, seed=seed
                )
    return out


def evaluate_reward_models(
    names: list[str], pairs: Any, batch_size: int = 16, device: Any = None, console: Any = None,
    max_length: int = 1024, resamples: int = 10_000, seed: int = 0,
) -> dict[str, Any]:
    """{label: summary} for each reward model on the same pairs (a pairs table, or the path of one), and
    "comparisons": each against the first."""
    from mapl_cli.pairs import read_pairs

    table = read_pairs(pairs) if isinstance(pairs, (str, Path)) else pairs
    out: dict[str, Any] = {}
    margins_by_model: dict[str, dict[str, float]] = {}
    for name in names:
        label, n = display_name(name), 2
        while label in out:  # the same folder name twice: rm, rm#2
            label, n = f"{display_name(name)}#{n}", n + 1
        model, tokenizer, dev = load_reward_model(name, device=device)
        margins = pair_margins(model, tokenizer, table, dev, batch_size=batch_size, max_length=max_length)
        margins_by_model[label] = margins
        out[label] = {"source": name, **summarize_margins(table, margins)}
        if console is not None:
            overall = out[label]["overall"]
            console.print(f"{label}: accuracy {overall['accuracy']:.3f}, mean margin {overall['mean_margin']:+.3f} on {overall['n']} pairs")
        del model
    return {"models": out, "comparisons": compare_reward_models(table, margins_by_model, resamples, seed)}
