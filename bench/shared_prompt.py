"""Shared prompts: a standard or inter row's prompt run through the model once for both responses, against
once per response (MAPL_SHARE_PROMPTS=0), on the same rows, weights and batches.

    .venv/bin/python bench/shared_prompt.py                                      # tiny-random and smollm2, both data sets
    .venv/bin/python bench/shared_prompt.py --models tiny-random --steps 2 --out /tmp/sp.json   # a quick dry run

Data: the MAPL pairs that `mapl synthesize` writes from examples/prefs.jsonl (standard, intra and inter rows,
default options), and the same rows with a long prompt: a document of --context-words words (taken from
the example responses, one per source row) put before each user turn, as in retrieval or summarisation
preference data. Rows go into batches of --batch-size by the trainer's own batch plan (seed 0).

For each model and data set: the DPO reference precompute (no grad, every sequence of the measured rows,
twice per layout), then --steps policy steps of DPO and of a reward model (forward and backward of the micro-batch; no
optimizer update, so both layouts see the same weights every step), after one untimed warm-up batch. The
two layouts alternate within every batch (which one goes first alternates too), so load from other jobs
falls on both alike. Reported: tokens the forward runs (non-padding; a shared prompt counts once), the
padded batch cells (rows x width), the median seconds per step, and the largest difference in summed
log-probs (DPO) or rewards (RM) between the layouts. Results go to bench/results/shared_prompt.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAYOUTS = ("shared", "separate")
ENV = {"shared": "1", "separate": "0"}


def synthesize(workdir: Path) -> Path:
    out = workdir / "pairs"
    cmd = [sys.executable, "-m", "mapl_cli", "synthesize", str(ROOT / "examples" / "prefs.jsonl"), "--output",
           str(out), "--workers", "1", "--quiet", "--force"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"synthesize failed: {proc.stderr.strip()[-500:]}")
    return out / "pairs.parquet"


def with_context(table, words: int):
    """The same rows with a document of `words` words before every prompt's user turn (the same document on
    every side and in the base prompt of a row, a different one for each source row)."""
    import pyarrow as pa

    def text(response) -> str:  # a string, or a one-message assistant list (conversational format)
        return response if isinstance(response, str) else response[-1]["content"]

    lines = (ROOT / "examples" / "prefs.jsonl").read_text().splitlines()
    corpus = " ".join(text(json.loads(line)["chosen"]) for line in lines if line).split()
    rows = table.to_pylist()
    sources = sorted({r["source_id"] for r in rows})
    for row in rows:
        start = (sources.index(row["source_id"]) * 997) % (len(corpus) - words)
        document = "Read this document, then answer.\n\n" + " ".join(corpus[start : start + words]) + "\n\n"
        for column in ("prompt_chosen", "prompt_rejected", "base_prompt"):
            first = next(i for i, m in enumerate(row[column]) if m["role"] == "user")
            row[column][first] = {**row[column][first], "content": document + row[column][first]["content"]}
    return pa.Table.from_pylist(rows, schema=table.schema)


def _timed_step(objective, model, rows, layout: str) -> tuple[float, object]:
    """Forward and backward of one micro-batch in `layout`; (seconds, outputs)."""
    os.environ["MAPL_SHARE_PROMPTS"] = ENV[layout]
    t0 = time.perf_counter()
    out = objective.forward(model, rows)
    out.loss.sum().backward()
    seconds = time.perf_counter() - t0
    model.zero_grad(set_to_none=True)
    return seconds, out


def _max_diff(a, b) -> float:
    """Largest |a - b|; infinite when either holds a NaN or an infinity (max() would skip a NaN)."""
    import torch

    gap = (a - b).abs()
    return float(gap.max()) if bool(torch.isfinite(gap).all()) else float("inf")


def _layout_tokens(model, rows, config, pad_id: int) -> dict:
    """Forward tokens and padded cells of one micro-batch in each layout."""
    from mapl_cli.train.objectives import _batch, _layout

    sequences, _ = _layout(rows, config.inter_loss == "margin")
    out = {}
    for layout in LAYOUTS:
        os.environ["MAPL_SHARE_PROMPTS"] = ENV[layout]
        batch = _batch(model, sequences, config, pad_id, "cpu")
        out[layout] = (batch.forward_tokens, int(batch.input_ids.numel()), batch.shared)
    return out


def steps(objective, model, plan, rows, pad_id: int) -> dict:
    """Time every batch of `plan` (the first untimed) in both layouts; tokens, cells, seconds, differences."""
    sums = {layout: {"tokens": 0, "cells": 0, "seconds": [], "batches_laid_out_shared": 0} for layout in LAYOUTS}
    diff = 0.0
    for n, batch in enumerate(plan):
        micro = [rows[i] for i in batch]
        counts = _layout_tokens(model, micro, objective.config, pad_id)
        outs = {}
        for layout in (LAYOUTS if n % 2 == 0 else LAYOUTS[::-1]):
            seconds, outs[layout] = _timed_step(objective, model, micro, layout)
            if n > 0:
                sums[layout]["seconds"].append(seconds)
                sums[layout]["tokens"] += counts[layout][0]
                sums[layout]["cells"] += counts[layout][1]
                sums[layout]["batches_laid_out_shared"] += counts[layout][2]
        a, b = outs["shared"], outs["separate"]
        pair = ((a.logps_chosen, b.logps_chosen), (a.logps_rejected, b.logps_rejected)) if objective.with_logps else (
            (a.s_chosen, b.s_chosen), (a.s_rejected, b.s_rejected))
        diff = max([diff] + [_max_diff(x, y) for x, y in pair])
    return {"layouts": sums, "max_abs_diff": diff}


def reference(model, rows, batch_size: int, pad_id: int) -> dict:
    """The reference precompute over every sequence of `rows`, in both layouts, twice each in the order
    shared, separate, separate, shared (so a slow spell on the machine falls on both)."""
    from mapl_cli.train.reference import compute_logps

    unique = {k: s for r in rows for k, s in zip(r.keys, r.sequences, strict=True)}
    keys = sorted(unique)
    sums, values = {layout: {"seconds": []} for layout in LAYOUTS}, {}
    for layout in LAYOUTS + LAYOUTS[::-1]:
        os.environ["MAPL_SHARE_PROMPTS"] = ENV[layout]
        t0 = time.perf_counter()
        values[layout] = compute_logps(model, [unique[k] for k in keys], batch_size, "cpu", pad_id)
        sums[layout]["seconds"].append(time.perf_counter() - t0)
    import torch

    diff = _max_diff(torch.tensor(values["shared"]), torch.tensor(values["separate"]))
    return {"layouts": sums, "max_abs_diff": diff, "cache": dict(zip(keys, values["shared"], strict=True))}


def measure(model_name: str, data_name: str, table, args) -> list[dict]:
    import torch

    from mapl_cli.encoding.tokens import encode_pairs
    from mapl_cli.models import load_tokenizer
    from mapl_cli.train.config import TrainConfig
    from mapl_cli.train.data import batch_plan
    from mapl_cli.train.objectives import make_objective

    tokenizer = load_tokenizer(model_name)
    rows, _ = encode_pairs(table, tokenizer, args.max_length, args.max_prompt_length)
    plan = batch_plan(rows, args.batch_size, seed=0, epoch=0)[: args.steps + 1]
    used = [rows[i] for batch in plan for i in batch]
    shape = {"rows": len(used), "mean_prompt_tokens": round(statistics.mean(len(s.prompt_ids) for r in used for s in r.sequences), 1),
             "mean_response_tokens": round(statistics.mean(len(s.response_ids) for r in used for s in r.sequences), 1),
             "rows_sharing_a_prompt": sum(r.sequences[0].prompt_ids == r.sequences[1].prompt_ids for r in used)}
    results = []
    for stage in ("dpo", "rm"):
        config = TrainConfig(stage=stage, pairs="-", output="-", model=model_name, batch_size=args.batch_size,
                             max_length=args.max_length, max_prompt_length=args.max_prompt_length)
        objective = make_objective(config, torch.device("cpu"), torch.float32, tokenizer)
        model = objective.build()
        model.train()
        if stage == "dpo":
            with torch.no_grad():
                ref = reference(model, used, 2 * args.batch_size, tokenizer.pad_token_id)
            objective.ref_cache = ref.pop("cache")
            results.append(_record(model_name, data_name, "reference precompute", ref, shape))
        timed = steps(objective, model, plan, rows, tokenizer.pad_token_id)
        results.append(_record(model_name, data_name, f"{stage} step", timed, shape))
        del model, objective
    return results


def _record(model: str, data: str, what: str, timed: dict, shape: dict) -> dict:
    layouts = {}
    for layout, v in timed["layouts"].items():
        layouts[layout] = {"median_s": round(statistics.median(v["seconds"]), 4), "runs": len(v["seconds"])}
        for key in ("tokens", "cells"):
            if key in v:
                layouts[layout][f"{key}_per_step"] = round(v[key] / len(v["seconds"]), 1)
        if "batches_laid_out_shared" in v:
            layouts[layout]["batches_laid_out_shared"] = v["batches_laid_out_shared"]
    speedup = layouts["separate"]["median_s"] / layouts["shared"]["median_s"]
    return {"model": model, "data": data, "what": what, **shape, "layouts": layouts, "speedup": round(speedup, 3),
            "max_abs_diff": timed["max_abs_diff"]}


def table(results: list[dict]) -> str:
    head = ("| model | data | what | prompt / response tokens | forward tokens per step (shared / separate) | "
            "padded cells | s (shared / separate) | speed-up | max abs diff |")
    lines = [head, "|" + " --- |" * 9]
    for r in results:
        s, p = r["layouts"]["shared"], r["layouts"]["separate"]
        tokens = f"{s['tokens_per_step']:.0f} / {p['tokens_per_step']:.0f}" if "tokens_per_step" in s else "-"
        cells = f"{s['cells_per_step']:.0f} / {p['cells_per_step']:.0f}" if "cells_per_step" in s else "-"
        lines.append(f"| {r['model']} | {r['data']} | {r['what']} | {r['mean_prompt_tokens']} / {r['mean_response_tokens']} | "
                     f"{tokens} | {cells} | {s['median_s']} / {p['median_s']} | x{r['speedup']} | {r['max_abs_diff']:.1e} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny-random", "smollm2-135m-instruct"])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per model, data set and objective")
    parser.add_argument("--batch-size", type=int, default=4, help="pairs rows per step")
    parser.add_argument("--context-words", type=int, default=300, help="words of the long-prompt data's document")
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--max-prompt-length", type=int, default=768)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "shared_prompt.json")
    args = parser.parse_args()

    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        pairs = pq.read_table(synthesize(Path(tmp)))
    data = {"mapl pairs": pairs, f"long prompt (+{args.context_words} words)": with_context(pairs, args.context_words)}
    results, load = [], [round(os.getloadavg()[0], 2)]
    for model in args.models:
        for name, rows in data.items():
            print(f"{model}, {name} ...", file=sys.stderr, flush=True)
            results.extend(measure(model, name, rows, args))
    load.append(round(os.getloadavg()[0], 2))
    print(table(results))
    record = {"command": " ".join(["bench/shared_prompt.py", *sys.argv[1:]]), "options": {k: str(v) for k, v in vars(args).items()},
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, float32, CPU",
              "load_average_1min": load, "synthesized_rows_by_kind": dict(zip(*_kinds(pairs), strict=True)),
              "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"written to {args.out}", file=sys.stderr)


def _kinds(table) -> tuple[list, list]:
    from collections import Counter

    counts = Counter(table.column("kind").to_pylist())
    return list(counts), list(counts.values())


if __name__ == "__main__":
    main()
