"""Whole runs and steps of `mapl train-dpo` / `mapl train-rm` next to TRL's DPOTrainer / RewardTrainer.

    .venv/bin/python bench/train.py                       # smollm2-135m-instruct, one epoch of 8 steps x 4 pairs, both stages
    .venv/bin/python bench/train.py --model tiny-random --steps 2 --out /tmp/train.json   # a quick dry run

What a user compares is a whole run, each tool at its best settings, so the headline number is the
end-to-end wall time of one full epoch over the same pairs: from process start (before torch, transformers,
TRL or mapl are imported) through model load, tokenisation, every reference pass and the training steps to
the saved model (mapl writes model/ as always; TRL gets `trainer.save_model()`), timed by this script around
the subprocess. TRL's DPOTrainer runs in both of its reference settings: `precompute_ref_log_probs=False`
(a reference model kept in memory, a reference forward inside every step) and `True` (reference log-probs of
the whole dataset computed in `DPOTrainer.__init__`, no reference model during training); mapl is compared
with the faster of the two. The mapl worker calls `mapl_cli.train.trainer.run`, what `mapl train-dpo` /
`mapl train-rm` call after parsing their options. mapl always starts with an empty cache, so its reference
pass runs in every run; `--mapl-ref-inline` adds a mapl run with `--no-precompute-ref` (a frozen copy, a
reference forward per step).

Both sides train the same model on the same standard pairs (the first steps x batch rows of
examples/prefs.jsonl, which has 80, as chat messages), in the same order (file order: mapl --no-shuffle, TRL with a
sequential sampler), for one epoch (steps = pairs / batch), with the same batch size, max length, optimizer
(AdamW, no weight decay), learning rate (constant after 0 warm-up steps) and clipping; lambdas are 0 / rows
are standard, so mapl computes plain DPO / BT. Each run is its own subprocess, so its peak RSS (ru_maxrss)
is its own; runs are sequential, on the same machine. Next to the end-to-end numbers, the per-step ones as
before: tokens/s counts the real (non-padding) tokens of every chosen and rejected sequence (the batches are
identical, so the count is the same for every run) over the steady-state steps (step 2 on; step 1 includes
one-off warm-up). The loss curves of every mapl run and every TRL run must agree within --tolerance over the
first --check-steps steps. Results go to bench/results/train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# End-to-end speed-up of mapl over TRL at its faster setting (at no more peak memory than that run).
TARGETS = {"dpo": 3.0, "rm": 2.0}
LABELS = {"mapl": "mapl", "mapl_ref_inline": "mapl --no-precompute-ref", "trl": "TRL",
          "trl_ref_inline": "TRL precompute_ref_log_probs=False", "trl_ref_precomputed": "TRL precompute_ref_log_probs=True"}
LABELS.update({f"{name}_bf16": label.replace("mapl", "mapl --dtype bf16-mixed").replace("TRL", "TRL bf16=True")
               for name, label in LABELS.items()})


def precision_of(run: str) -> str:
    """"bf16" for a run in bfloat16 mixed precision (float32 weights, bfloat16 autocast), else "fp32"."""
    return "bf16" if run.endswith("_bf16") else "fp32"


def write_data(folder: Path, n: int) -> tuple[Path, Path]:
    """pairs.parquet (standard rows) for mapl and prefs.jsonl (TRL conversational format) from examples/prefs.jsonl."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mapl_cli.pairs import PAIRS_SCHEMA

    rows = [json.loads(line) for line in (ROOT / "examples" / "prefs.jsonl").read_text().splitlines() if line]
    if len(rows) < n:
        raise SystemExit(f"examples/prefs.jsonl has {len(rows)} rows; {n} needed (fewer --steps or --batch-size)")
    rows = rows[:n]
    pairs, trl = [], []
    def text(response):  # a string, or a one-message assistant list (TRL's conversational format)
        return response if isinstance(response, str) else response[-1]["content"]

    for r in rows:
        prompt = r["prompt"] if isinstance(r["prompt"], list) else [{"role": "user", "content": r["prompt"]}]
        prompt = [{"role": m["role"], "content": m["content"]} for m in prompt]
        r = {**r, "chosen": text(r["chosen"]), "rejected": text(r["rejected"])}
        pairs.append({"pair_id": r["id"], "kind": "standard", "source_id": r["id"], "prompt_chosen": prompt,
                      "prompt_rejected": prompt, "response_chosen": r["chosen"], "response_rejected": r["rejected"],
                      "base_prompt": prompt, "instructions_chosen": [], "instructions_rejected": [],
                      "verdicts_chosen": [], "verdicts_rejected": [], "condition": "", "anchor": ""})
        trl.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": r["chosen"]}],
                    "rejected": [{"role": "assistant", "content": r["rejected"]}]})
    pq.write_table(pa.Table.from_pylist(pairs, schema=PAIRS_SCHEMA), folder / "pairs.parquet")
    (folder / "prefs.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trl))
    return folder / "pairs.parquet", folder / "prefs.jsonl"


# ----------------------------------------------------------------------------------------- workers


def worker_mapl(args) -> dict:
    import mapl_cli.train.reference as reference
    from mapl_cli.train.config import TrainConfig
    from mapl_cli.train.report import read_jsonl
    from mapl_cli.train.trainer import run

    phases = {"reference_s": 0.0}
    precompute = reference.precompute

    def timed_precompute(*a, **k):  # looked up at call time by objectives.py, so this wrapper is the one used
        t0 = time.perf_counter()
        try:
            return precompute(*a, **k)
        finally:
            phases["reference_s"] += time.perf_counter() - t0

    reference.precompute = timed_precompute
    out = Path(args.workdir) / f"{args.run}-{args.stage}"
    config = TrainConfig(
        stage=args.stage, pairs=args.pairs, output=str(out), model=args.model, batch_size=args.batch_size,
        epochs=1, max_steps=None, lr=args.lr, warmup_steps=0, scheduler="constant", weight_decay=0.0,
        max_grad_norm=1.0, max_length=args.max_length, max_prompt_length=args.max_length, shuffle=False,
        lambda_intra=0.0, lambda_inter=0.0, save_every=0, progress=False, force=True,
        dtype="bf16-mixed" if args.precision == "bf16" else "float32",
        gradient_checkpointing=args.gradient_checkpointing, precompute_ref=args.ref != "inline",
    )
    run(config)
    metrics = read_jsonl(out / "metrics.jsonl")
    return {"losses": [m["loss"] for m in metrics], "step_seconds": [m["seconds_per_step"] for m in metrics],
            "tokens": [m["tokens"] for m in metrics], "logps_chosen": [m.get("logps/chosen") for m in metrics],
            "phases": {k: round(v, 2) for k, v in phases.items()} if args.ref == "precomputed" else {}}


class _Timer:
    """Times each optimizer step and keeps the logged losses (a TrainerCallback once transformers is imported)."""

    def __init__(self):
        self.step_seconds, self.logs, self._t = [], [], None

    def on_step_begin(self, a, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, a, state, control, **kw):
        self.step_seconds.append(time.perf_counter() - self._t)

    def on_log(self, a, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            self.logs.append(dict(logs))


def _trl_trainer(args, tokenizer, location: str, data, timer, phases: dict):
    """TRL's trainer for the stage (one epoch, file order), its model loaded in `phases['load_s']`."""
    import torch
    from torch.utils.data import SequentialSampler

    common = dict(
        output_dir=str(Path(args.workdir) / f"{args.run}-{args.stage}"), per_device_train_batch_size=args.batch_size,
        num_train_epochs=1, learning_rate=args.lr, warmup_steps=0, lr_scheduler_type="constant",
        weight_decay=0.0, max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
        bf16=args.precision == "bf16", seed=0, max_length=args.max_length, gradient_checkpointing=args.gradient_checkpointing,
        dataloader_num_workers=0,
    )
    t0 = time.perf_counter()
    if args.stage == "dpo":
        from transformers import AutoModelForCausalLM
        from trl import DPOConfig, DPOTrainer

        model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32)
        # The reference batch (pairs) is the training batch, like mapl's (2 x batch sequences).
        base, config = DPOTrainer, DPOConfig(beta=0.1, precompute_ref_log_probs=args.ref == "precomputed",
                                             precompute_ref_batch_size=args.batch_size, **common)
    else:
        from transformers import AutoModelForSequenceClassification
        from trl import RewardConfig, RewardTrainer

        torch.manual_seed(0)  # the same score-head initialisation as mapl (seed 0, same call)
        model = AutoModelForSequenceClassification.from_pretrained(location, num_labels=1, dtype=torch.float32)
        model.config.pad_token_id = tokenizer.pad_token_id
        base, config = RewardTrainer, RewardConfig(**common)
    phases["load_s"] = time.perf_counter() - t0

    class InOrder(base):  # file order, like mapl --no-shuffle, so both see the same batches
        def _get_train_sampler(self, *a, **k):
            return SequentialSampler(self.train_dataset)

        def _precompute_ref_logps(self, *a, **k):  # runs inside __init__ with precompute_ref_log_probs=True
            t1 = time.perf_counter()
            try:
                return super()._precompute_ref_logps(*a, **k)
            finally:
                phases["reference_s"] = phases.get("reference_s", 0.0) + time.perf_counter() - t1

    t0 = time.perf_counter()
    trainer = InOrder(model=model, args=config, train_dataset=data, processing_class=tokenizer, callbacks=[timer])
    phases["init_s"] = time.perf_counter() - t0  # tokenisation, and the reference model load or precompute
    return trainer


def worker_trl(args) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback

    from mapl_cli.models import load_tokenizer, resolve_model

    location = str(resolve_model(args.model))
    tokenizer = load_tokenizer(args.model)
    data = Dataset.from_list([json.loads(x) for x in Path(args.prefs).read_text().splitlines() if x])
    timer, phases = type("Timer", (_Timer, TrainerCallback), {})(), {}
    trainer = _trl_trainer(args, tokenizer, location, data, timer, phases)
    t0 = time.perf_counter()
    trainer.train()
    phases["train_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    trainer.save_model()  # mapl always writes its model folder; TRL's run saves too
    phases["save_s"] = time.perf_counter() - t0
    return {"losses": [log["loss"] for log in timer.logs], "step_seconds": timer.step_seconds,
            "logps_chosen": [log.get("logps/chosen") for log in timer.logs],
            "phases": {k: round(v, 2) for k, v in phases.items()}}


def worker(args) -> None:
    torch_threads = os.environ.get("OMP_NUM_THREADS")
    t0 = time.time()
    result = (worker_mapl if args.worker == "mapl" else worker_trl)(args)
    result["wall_s"] = round(time.time() - t0, 2)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["omp_num_threads"] = torch_threads
    print("RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------------------------------ driver


def plan(stage: str, mapl_ref_inline: bool, bf16: bool = False) -> list[tuple[str, str, str]]:
    """(run name, worker, reference setting) of each run of a stage, in the order they run; with `bf16`, each
    again in bfloat16 mixed precision (run names ending in _bf16)."""
    if stage == "rm":
        runs = [("mapl", "mapl", "none"), ("trl", "trl", "none")]
    else:
        inline = [("mapl_ref_inline", "mapl", "inline")] if mapl_ref_inline else []
        runs = [("mapl", "mapl", "precomputed"), *inline, ("trl_ref_inline", "trl", "inline"),
                ("trl_ref_precomputed", "trl", "precomputed")]
    return runs + ([(f"{name}_bf16", kind, ref) for name, kind, ref in runs] if bf16 else [])


def launch(run: str, kind: str, ref: str, stage: str, args, pairs: Path, prefs: Path, workdir: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--run", run, "--ref", ref, "--stage", stage, "--pairs",
           str(pairs), "--prefs", str(prefs), "--workdir", str(workdir), "--model", args.model, "--steps",
           str(args.steps), "--batch-size", str(args.batch_size), "--max-length", str(args.max_length), "--lr",
           str(args.lr), "--precision", precision_of(run)]
    if args.gradient_checkpointing:
        cmd.append("--gradient-checkpointing")
    # Every run gets a private, empty mapl cache (the built model linked in), so mapl's reference log-probs
    # are computed in the run, not read from an earlier one's cache; and its own datasets cache, so TRL's
    # tokenisation and precompute are never read back either.
    from mapl_cli.models import resolve_model

    cache = workdir / f"cache-{run}-{stage}"
    cache.mkdir(exist_ok=True)
    built = Path(resolve_model(args.model))
    if not (cache / built.name).exists():
        (cache / built.name).symlink_to(built)
    env = {**os.environ, "MAPL_CACHE": str(cache), "HF_DATASETS_CACHE": str(workdir / f"datasets-{run}-{stage}")}
    print(f"running {stage} {run} ...", file=sys.stderr, flush=True)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()  # process start to exit: imports, load, reference, steps, save
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    end_to_end = time.perf_counter() - t0
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{stage} {run} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    shutil.rmtree(workdir / f"{run}-{stage}", ignore_errors=True)  # gigabytes of model and checkpoint, not timed
    result["end_to_end_s"] = round(end_to_end, 2)
    result["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]  # other work on the machine
    return result


def summarise(run: dict, tokens: list[int]) -> dict:
    steady = slice(1, None) if len(run["step_seconds"]) > 1 else slice(None)
    secs = run["step_seconds"][steady]
    return {
        "end_to_end_s": run["end_to_end_s"],
        "steps": len(run["step_seconds"]),
        "seconds_per_step": round(statistics.median(secs), 3),
        "tokens_per_second": round(sum(tokens[steady]) / sum(secs), 1),
        "first_step_s": round(run["step_seconds"][0], 2),
        "train_s": round(sum(run["step_seconds"]), 2),
        "wall_s": run["wall_s"],  # inside the worker, after interpreter start
        "setup_s": round(run["end_to_end_s"] - sum(run["step_seconds"]), 2),  # everything outside the steps
        "phases": run.get("phases", {}),
        "peak_rss_mb": run["peak_rss_mb"],
        "step_seconds": [round(x, 2) for x in run["step_seconds"]],
        "load_average_1min_before_after": run["load_average_1min"],
        "losses": [round(x, 6) for x in run["losses"]],
    }


def compare(m: dict, t: dict, check_steps: int, tolerance: float, same_precision: bool = True) -> dict:
    """mapl run `m` against TRL run `t`: speed-ups (> 1: mapl faster), memory (< 1: mapl smaller), losses
    (checked only between runs of the same precision: float32 and bfloat16 autocast differ by bf16 rounding)."""
    k = min(check_steps, len(m["losses"]), len(t["losses"]))
    diff = max(abs(a - b) for a, b in zip(m["losses"][:k], t["losses"][:k], strict=True))
    return {"end_to_end_ratio": round(t["end_to_end_s"] / m["end_to_end_s"], 3),
            "throughput_ratio": round(m["tokens_per_second"] / t["tokens_per_second"], 3),
            "memory_ratio": round(m["peak_rss_mb"] / t["peak_rss_mb"], 3),
            "loss_max_abs_diff_first_steps": round(diff, 6), "loss_check_steps": k,
            "loss_agrees": diff <= tolerance if same_precision else None}


def stage_report(stage: str, raw: dict[str, dict], args) -> dict:
    """Summaries of a stage's runs, every mapl run against every TRL run, and the headlines, end to end:
    mapl in float32 against TRL's faster float32 setting, and (with --bf16) each tool at its best: the fastest
    mapl run against the fastest TRL run, whatever their precision."""
    steps = {name: len(r["step_seconds"]) for name, r in raw.items()}
    if set(steps.values()) != {args.steps}:
        raise SystemExit(f"{stage}: expected one epoch of {args.steps} steps in every run, got {steps}")
    runs = {name: summarise(r, raw["mapl"]["tokens"]) for name, r in raw.items()}
    trl = [name for name in runs if name.startswith("trl")]
    fastest = lambda names: min(names, key=lambda name: runs[name]["end_to_end_s"])  # noqa: E731
    best = fastest([t for t in trl if precision_of(t) == "fp32"])
    versus = {m: {t: compare(runs[m], runs[t], args.check_steps, args.tolerance, precision_of(m) == precision_of(t))
                  for t in trl} for m in runs if m.startswith("mapl")}
    head = versus["mapl"][best]
    mapl_best, trl_best = fastest(list(versus)), fastest(trl)
    at_best = {"mapl": mapl_best, "trl": trl_best, **versus[mapl_best][trl_best]}
    at_best["meets_target"] = at_best["end_to_end_ratio"] >= TARGETS[stage] and at_best["memory_ratio"] <= 1.0
    return {
        "trl_best": best, "end_to_end_ratio": head["end_to_end_ratio"], "memory_ratio": head["memory_ratio"],
        "throughput_ratio": head["throughput_ratio"], "target_end_to_end_ratio": TARGETS[stage],
        "meets_target": head["end_to_end_ratio"] >= TARGETS[stage] and head["memory_ratio"] <= 1.0,
        "each_at_its_best": at_best,
        "loss_agrees": all(c["loss_agrees"] is not False for row in versus.values() for c in row.values()),
        "runs": runs, "versus": versus,
        "logps_chosen_step1": {name: r["logps_chosen"][0] for name, r in raw.items()},
    }


def print_tables(report: dict) -> None:
    """End to end first (mapl against TRL's faster setting), then the per-step numbers; a Markdown table last."""
    print(f"one epoch of {report['pairs']} pairs ({report['steps']} steps of {report['batch_size']}), "
          "process start to saved model")
    print(f"{'stage':6} {'run':35} {'end-to-end s':>12} {'peak RSS MB':>12} {'ref pass s':>10} {'tok/s':>8} {'s/step':>8}")
    for stage, r in report["stages"].items():
        for name, x in r["runs"].items():
            ref = x["phases"].get("reference_s")
            print(f"{stage:6} {LABELS[name]:35} {x['end_to_end_s']:12.1f} {x['peak_rss_mb']:12.0f} "
                  f"{'' if ref is None else f'{ref:.1f}':>10} {x['tokens_per_second']:8.1f} {x['seconds_per_step']:8.2f}")
        print(f"{stage:6} mapl vs {LABELS[r['trl_best']]} (the faster TRL): end to end x{r['end_to_end_ratio']} "
              f"(target x{r['target_end_to_end_ratio']}), memory x{r['memory_ratio']}, per step x{r['throughput_ratio']}"
              f" -> {'meets' if r['meets_target'] else 'MISSES'} target")
        b = r["each_at_its_best"]
        if b["mapl"] != "mapl" or b["trl"] != r["trl_best"]:
            print(f"{stage:6} each at its best: {LABELS[b['mapl']]} vs {LABELS[b['trl']]}: end to end x{b['end_to_end_ratio']}"
                  f", memory x{b['memory_ratio']} -> {'meets' if b['meets_target'] else 'MISSES'} target")
        for m, row in r["versus"].items():
            for t, c in row.items():
                print(f"{stage:6}   {m} vs {t}: end to end x{c['end_to_end_ratio']}, tokens/s x{c['throughput_ratio']}, "
                      f"memory x{c['memory_ratio']}, loss max |diff| over {c['loss_check_steps']} steps "
                      f"{c['loss_max_abs_diff_first_steps']:.2e} "
                      f"({ {True: 'agrees', False: 'DISAGREES', None: 'other precision'}[c['loss_agrees']] })")
    print("\n| stage | run | end-to-end s | mapl speed-up, end to end | peak RSS | memory ratio | tokens/s (steps 2 on) | s/step |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for stage, r in report["stages"].items():
        for name, x in r["runs"].items():  # a TRL run against mapl in the same precision
            c = r["versus"]["mapl_bf16" if precision_of(name) == "bf16" else "mapl"].get(name)
            ratio = f"{c['end_to_end_ratio']:.2f}x" if c else ""
            mem = f"{c['memory_ratio']:.2f}x" if c else ""
            print(f"| {stage.upper()} | {LABELS[name]}{' (faster TRL)' if name == r['trl_best'] else ''} | "
                  f"{x['end_to_end_s']:.1f} | {ratio} | {x['peak_rss_mb'] / 1000:.1f} GB | {mem} | "
                  f"{x['tokens_per_second']:.1f} | {x['seconds_per_step']:.2f} |")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--steps", type=int, default=8, help="optimizer steps of one epoch (pairs = steps x batch size)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--gradient-checkpointing", action="store_true", help="on for both sides")
    p.add_argument("--stages", default="dpo,rm")
    p.add_argument("--mapl-ref-inline", action="store_true", help="also run mapl DPO with --no-precompute-ref")
    p.add_argument("--bf16", action="store_true", help="also run every configuration in bfloat16 mixed precision "
                   "(mapl --dtype bf16-mixed, TRL bf16=True): float32 weights, bfloat16 autocast")
    p.add_argument("--check-steps", type=int, default=3)
    p.add_argument("--tolerance", type=float, default=2e-3, help="max |loss_mapl - loss_trl| in the first steps")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "train.json"))
    # worker mode (internal)
    p.add_argument("--worker", choices=["mapl", "trl"])
    p.add_argument("--run")
    p.add_argument("--ref", choices=["precomputed", "inline", "none"])
    p.add_argument("--stage", choices=["dpo", "rm"])
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--pairs")
    p.add_argument("--prefs")
    p.add_argument("--workdir")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.worker:
        return worker(args)

    import platform

    n = args.steps * args.batch_size
    report = {"command": " ".join([Path(sys.executable).name, "bench/train.py", *sys.argv[1:]]),
              "model": args.model, "steps": args.steps, "batch_size": args.batch_size, "pairs": n, "epochs": 1,
              "max_length": args.max_length, "lr": args.lr, "gradient_checkpointing": args.gradient_checkpointing,
              "bf16": args.bf16,
              "cpu_count": os.cpu_count(), "platform": platform.platform(), "started_unix": round(time.time()),
              "stages": {}}
    if args.steps < 8:
        print(f"note: {args.steps} steps; the published comparison uses at least 8", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="mapl-bench-") as tmp:
        workdir = Path(tmp)
        pairs, prefs = write_data(workdir, n)
        for stage in args.stages.split(","):
            raw = {run: launch(run, kind, ref, stage, args, pairs, prefs, workdir)
                   for run, kind, ref in plan(stage, args.mapl_ref_inline, args.bf16)}
            report["stages"][stage] = stage_report(stage, raw, args)
    print_tables(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
