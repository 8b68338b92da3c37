"""README.md model cards: what a trained model folder says about itself, in the Hugging Face format.

    mapl train-dpo out/pairs/pairs.parquet --output out/dpo --max-steps 200     # writes out/dpo/model/README.md
    python -c "from huggingface_hub import ModelCard; print(ModelCard.load('out/dpo/model/README.md').data)"

A card is rendered from the run's manifest (manifest.py): YAML front matter the hub reads (`library_name`,
`base_model` when the starting model has a hub id, `license` when it is known, `pipeline_tag`, `tags`,
`datasets` when the pairs were synthesised from a hub dataset), then the base model, the stage and its
objective with the lambdas, the data with its sha256 and rows by kind, the final training and evaluation
metrics, the command that trains the same model again, the library versions and every resolved option.
huggingface_hub's `ModelCard` parses the result before it is written, so a card that loads is the only
kind written.

A shared layer: it imports no stage and no command.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mapl_cli.manifest import atomic_path

# Built-in starting models that have a hub counterpart: (hub id, license). tiny-random (random weights
# made here) has none. SmolLM2's license is apache-2.0 (the GGUF's general.license and the hub card).
BUILTIN_ORIGIN = {"smollm2-135m-instruct": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0")}
STAGES = {
    "train-dpo": ("dpo", "A DPO policy", "text-generation"),
    "train-rm": ("reward-model", "A Bradley-Terry reward model", "text-classification"),
}
KINDS = ("standard", "intra", "inter")
METRICS = (
    "loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected",
    *(f"loss/{kind}" for kind in KINDS), *(f"accuracy/{kind}" for kind in KINDS),
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_CACHE_SNAPSHOT = re.compile(r"models--([^/]+)--([^/]+)/snapshots/")


def base_model_id(model: str) -> str | None:
    """The hub id of a starting model: a built-in one's counterpart, a hub id itself, a folder in the hub's
    download cache by its path; None for a local folder or tiny-random (no hub id to point at)."""
    if model in BUILTIN_ORIGIN:
        return BUILTIN_ORIGIN[model][0]
    path = Path(model).expanduser()
    if path.exists():
        found = _CACHE_SNAPSHOT.search(str(path.resolve()))
        return f"{found.group(1)}/{found.group(2)}" if found else None
    if model == "tiny-random" or not _HUB_ID.match(model):
        return None
    return model


def hub_dataset(upstream: dict | None) -> str | None:
    """The hub dataset the pairs were synthesised from (`hf://name[:split]` in synthesize's manifest)."""
    inputs = (upstream or {}).get("inputs") or [{}]
    path = str(inputs[0].get("path", ""))
    if not path.startswith("hf://"):
        return None
    return path[len("hf://"):].partition(":")[0] or None


def read_upstream(pairs: str | Path) -> dict | None:
    """The manifest.json synthesize wrote beside the pairs file, if there is one."""
    path = Path(pairs)
    folder = path if path.is_dir() else path.parent
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("stage") == "synthesize" else None


def card_data(manifest: dict, upstream: dict | None = None):
    """The front matter, as huggingface_hub's `ModelCardData`."""
    from huggingface_hub import ModelCardData

    options = manifest["options"]
    tag, _, pipeline = STAGES[manifest["stage"]]
    adapter = options.get("lora_r", 0) > 0 and not options.get("merge_lora")
    dataset = hub_dataset(upstream)
    return ModelCardData(
        library_name="peft" if adapter else "transformers",
        base_model=base_model_id(options["model"]),
        license=BUILTIN_ORIGIN.get(options["model"], (None, None))[1],
        pipeline_tag=pipeline,
        tags=["mapl", tag, "preference-learning", *(["lora"] if options.get("lora_r", 0) > 0 else [])],
        datasets=[dataset] if dataset else None,
    )


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_number(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _objective(options: dict, stage: str, outputs: dict) -> str:
    weights = (f"lambda_intra {_number(options['lambda_intra'])}, lambda_inter {_number(options['lambda_inter'])} "
               f"(standard rows weigh 1), inter loss `{options['inter_loss']}`")
    if stage == "train-dpo":
        extra = f", SFT coefficient {_number(options['sft_coef'])}" if options.get("sft_coef") else ""
        ref = options.get("ref_model") or ("the starting model with the adapters disabled" if options.get("lora_r")
                                            else "the starting model, frozen")
        how = " (log-probs computed once, before training)" if outputs.get("reference") == "precomputed" else ""
        return f"DPO, beta {_number(options['beta'])}{extra}, reference: {ref}{how}; {weights}"
    extra = f", margin column `{options['margin_column']}`" if options.get("margin_column") else ""
    center = f", reward centring {_number(options['center_rewards'])}" if options.get("center_rewards") else ""
    return f"Bradley-Terry{extra}{center}; {weights}"


def _weights(options: dict) -> str:
    if not options.get("lora_r"):
        return "full fine-tune"
    alpha = options.get("lora_alpha") or 2 * options["lora_r"]
    kept = "merged into the weights" if options.get("merge_lora") else "saved as an adapter (load it with peft)"
    return f"LoRA r {options['lora_r']}, alpha {_number(alpha)}, targets `{options['lora_targets']}`, {kept}"


def _training(manifest: dict) -> str:
    options, counts = manifest["options"], manifest["counts"]
    rows = [
        ("stage", f"`mapl {manifest['stage']}`"),
        ("objective", _objective(options, manifest["stage"], manifest.get("outputs") or {})),
        ("weights", _weights(options)),
        ("steps", f"{counts.get('steps')} (global batch {counts.get('global_batch')}, "
                  f"{counts.get('steps_per_epoch')} steps per epoch)"),
        ("optimiser", f"AdamW, lr {_number(options.get('lr'))}, {options.get('scheduler')} schedule, "
                      f"{options.get('warmup_steps')} warm-up steps, weight decay {_number(options.get('weight_decay'))}"),
        ("precision", f"{options.get('dtype_resolved')} on {options.get('device')}, {counts.get('world_size')} "
                      f"process{'es' if counts.get('world_size', 1) != 1 else ''} ({counts.get('strategy')})"),
        ("seed", options.get("seed")),
        ("wall time", f"{_number(manifest.get('wall_seconds'))} s"),
    ]
    return "## Training\n\n" + _table(("", ""), rows)


def _by_kind(counts: dict, prefix: str = "") -> list[tuple]:
    read = counts.get(f"{prefix}rows_by_kind") or {}
    used = counts.get(f"{prefix}rows_used_by_kind") or {}
    return [(kind, read.get(kind), used.get(kind)) for kind in KINDS if kind in read or kind in used]


def _data(manifest: dict, data: dict, upstream: dict | None) -> str:
    counts, inputs = manifest["counts"], manifest.get("inputs") or []
    pairs_sha = data.get("pairs_sha256") or (inputs[0].get("sha256") if inputs else None)
    pairs = Path(inputs[0]["path"] if inputs else manifest["options"]["pairs"])
    pairs = pairs / "pairs.parquet" if pairs.is_dir() else pairs  # the sha256 is the file's
    parts = ["## Data", "",
             f"Pairs: `{pairs}`, sha256 `{pairs_sha}`, "
             f"{counts.get('rows')} rows read, {counts.get('rows_used')} trained on (after truncation).", "",
             _table(("kind", "rows read", "rows trained on"), _by_kind(counts))]
    left_out = {k: v for k, v in counts.items() if k.startswith("rows_") and k.endswith("_left_out") and v}
    if left_out:
        parts += ["", "Left out before training: " + ", ".join(f"{k} {v}" for k, v in left_out.items()) + "."]
    if data.get("eval_pairs_sha256"):
        held = inputs[1]["path"] if len(inputs) > 1 else manifest["options"].get("eval_pairs")  # trainer's order
        parts += ["", f"Evaluation pairs: `{held}`, sha256 "
                      f"`{data['eval_pairs_sha256']}`, {counts.get('eval_rows')} rows."]
    if upstream:
        source = (upstream.get("inputs") or [{}])[0]
        sha = f", sha256 `{source['sha256']}`" if source.get("sha256") else ""
        kept = upstream.get("counts", {}).get("kept_by_kind") or {}
        parts += ["", f"The pairs were synthesised by `mapl synthesize` (mapl {upstream.get('mapl_version')}) from "
                      f"`{source.get('path')}`{sha}; kept by kind: "
                      + (", ".join(f"{k} {v}" for k, v in kept.items()) or "-") + "."]
    return "\n".join(parts)


def _results(manifest: dict, last_step: dict | None) -> str:
    final_eval = manifest.get("outputs", {}).get("final_eval") or {}
    last_step = last_step or manifest.get("outputs", {}).get("final") or {}
    header = ("metric", f"last training step ({last_step.get('step', '-')})") + (("final evaluation",) if final_eval else ())
    rows = [(name, last_step.get(name)) + ((final_eval.get(name),) if final_eval else ())
            for name in METRICS if last_step.get(name) is not None or final_eval.get(name) is not None]
    note = ("Training metrics are the last optimizer step's batch; accuracy is the share of pairs whose chosen "
            "side scores higher. Every step is in metrics.jsonl beside this run's manifest.json.")
    return "## Results\n\n" + _table(header, rows) + "\n\n" + note


def _usage(manifest: dict) -> str:
    options = manifest["options"]
    adapter = options.get("lora_r", 0) > 0 and not options.get("merge_lora")
    if manifest["stage"] == "train-rm":
        load = ("from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
                "model = AutoModelForSequenceClassification.from_pretrained(PATH, num_labels=1)  # reward: logits[:, 0]")
        if adapter:
            load = ("from peft import AutoPeftModelForSequenceClassification\n"
                    "model = AutoPeftModelForSequenceClassification.from_pretrained(PATH, num_labels=1)")
    else:
        load = ("from transformers import AutoModelForCausalLM, AutoTokenizer\n"
                "model = AutoModelForCausalLM.from_pretrained(PATH)")
        if adapter:
            load = "from peft import AutoPeftModelForCausalLM\nmodel = AutoPeftModelForCausalLM.from_pretrained(PATH)"
    return ("## Usage\n\nPATH is this folder or its hub repo id; `mapl evaluate --model PATH` scores a policy, "
            "`mapl evaluate --reward-model RUN_FOLDER` a reward model.\n\n```python\n" + load + "\n```")


def _provenance(manifest: dict) -> str:
    versions = manifest.get("versions") or {}
    command = manifest.get("reproduce")
    parts = ["## Reproduce", ""]
    if command:
        parts += ["The options that differ from their defaults (every resolved option is listed below):", "",
                  "```bash", command, "```", ""]
    parts += ["Library versions:", "", _table(("library", "version"), list(versions.items())), "",
              "## All options", "", "```json", json.dumps(manifest["options"], indent=2, default=str), "```"]
    return "\n".join(parts)


def render_card(manifest: dict, last_step: dict | None = None, data: dict | None = None,
                upstream: dict | None = None):
    """The model card (huggingface_hub `ModelCard`) of a training run's manifest; `last_step` is the last
    metrics.jsonl record, `data` the pairs' sha256 (`pairs_sha256`, `eval_pairs_sha256`), `upstream` the
    manifest synthesize wrote beside the pairs."""
    from huggingface_hub import ModelCard

    options = manifest["options"]
    _, what, _ = STAGES[manifest["stage"]]
    base = base_model_id(options["model"])
    origin = f" (hub: [{base}](https://huggingface.co/{base}))" if base and base != options["model"] else ""
    intro = (f"# {Path(options['output']).name}\n\n{what} trained by mapl {manifest.get('mapl_version')} "
             f"with MAPL (Multi-Level Aware Preference Learning, [arXiv 2505.12845](https://arxiv.org/abs/2505.12845)): "
             f"standard preference pairs plus intra-sample (same response, two prompts) and inter-sample "
             f"(multi-instruction prompt) pairs.\n\nBase model: `{options['model']}`{origin}.")
    sections = [intro, _training(manifest), _data(manifest, data or {}, upstream), _results(manifest, last_step),
                _usage(manifest), _provenance(manifest)]
    front = card_data(manifest, upstream).to_yaml()
    return ModelCard(f"---\n{front}\n---\n\n" + "\n\n".join(sections) + "\n")


def write_card(folder: str | Path, manifest: dict, last_step: dict | None = None, data: dict | None = None) -> Path:
    """Write folder/README.md atomically (a temporary file renamed into place) and return its path."""
    card = render_card(manifest, last_step, data, read_upstream(manifest["options"]["pairs"]))
    path = Path(folder) / "README.md"
    with atomic_path(path) as tmp:
        tmp.write_text(str(card), encoding="utf-8")
    return path
