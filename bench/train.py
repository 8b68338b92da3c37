"""Speed and memory of `mapl train-dpo` / `mapl train-rm` next to TRL's DPOTrainer / RewardTrainer.

    .venv/bin/python bench/train.py                       # smollm2-135m-instruct, 6 steps of 4 pairs, both stages
    .venv/bin/python bench/train.py --model tiny-random --steps 3 --out /tmp/train.json   # a quick dry run

Both sides train the same model on the same standard pairs (the first steps x batch rows of
examples/prefs.jsonl, as chat messages), in the same order (file order: mapl --no-shuffle, TRL with a
sequential sampler), with the same batch size, max length, optimizer (AdamW, no weight decay), learning
rate (constant after 0 warm-up steps), clipping and number of steps; lambdas are 0 / rows are standard, so
mapl computes plain DPO / BT. Each run is its own subprocess so its peak RSS (ru_maxrss) is its own; runs
are sequential, on the same machine. tokens/s counts the real (non-padding) tokens of every chosen and
rejected sequence (the batches are identical, so the count is the same for both) over the steady-state
training steps (step 2 on; step 1 includes one-off warm-up). mapl's precompute of reference log-probs
(cold: each mapl run gets an empty cache) is outside the steps and counted in `setup_s`/`wall_s`. The loss curves must agree within --tolerance over
the first --check-steps steps. Results go to bench/results/train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


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
    from mapl_cli.train.config import TrainConfig
    from mapl_cli.train.report import read_jsonl
    from mapl_cli.train.trainer import run

    out = Path(args.workdir) / f"mapl-{args.stage}"
    config = TrainConfig(
        stage=args.stage, pairs=args.pairs, output=str(out), model=args.model, batch_size=args.batch_size,
        max_steps=args.steps, lr=args.lr, warmup_steps=0, scheduler="constant", weight_decay=0.0,
        max_grad_norm=1.0, max_length=args.max_length, max_prompt_length=args.max_length, shuffle=False,
        lambda_intra=0.0, lambda_inter=0.0, save_every=0, progress=False, force=True, dtype="float32",
        gradient_checkpointing=args.gradient_checkpointing,
    )
    run(config)
    metrics = read_jsonl(out / "metrics.jsonl")
    return {"losses": [m["loss"] for m in metrics], "step_seconds": [m["seconds_per_step"] for m in metrics],
            "tokens": [m["tokens"] for m in metrics],
            "logps_chosen": [m.get("logps/chosen") for m in metrics]}


def worker_trl(args) -> dict:
    import torch
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, TrainerCallback

    from mapl_cli.models import load_tokenizer, resolve_model

    location = str(resolve_model(args.model))
    tokenizer = load_tokenizer(args.model)
    data = Dataset.from_list([json.loads(x) for x in Path(args.prefs).read_text().splitlines() if x])

    class Timer(TrainerCallback):
        def __init__(self):
            self.step_seconds, self.logs, self._t = [], [], None

        def on_step_begin(self, a, state, control, **kw):
            self._t = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            self.step_seconds.append(time.perf_counter() - self._t)

        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.logs.append(dict(logs))

    common = dict(
        output_dir=str(Path(args.workdir) / f"trl-{args.stage}"), per_device_train_batch_size=args.batch_size,
        max_steps=args.steps, learning_rate=args.lr, warmup_steps=0, lr_scheduler_type="constant",
        weight_decay=0.0, max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
        bf16=False, seed=0, max_length=args.max_length, gradient_checkpointing=args.gradient_checkpointing,
        dataloader_num_workers=0,
    )
    timer = Timer()
    if args.stage == "dpo":
        from trl import DPOConfig, DPOTrainer

        model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32)
        base, config = DPOTrainer, DPOConfig(beta=0.1, **common)
    else:
        from trl import RewardConfig, RewardTrainer

        torch.manual_seed(0)  # the same score-head initialisation as mapl (seed 0, same call)
        model = AutoModelForSequenceClassification.from_pretrained(location, num_labels=1, dtype=torch.float32)
        model.config.pad_token_id = tokenizer.pad_token_id
        base, config = RewardTrainer, RewardConfig(**common)

    class InOrder(base):  # file order, like mapl --no-shuffle, so both see the same batches
        def _get_train_sampler(self, *a, **k):
            return SequentialSampler(self.train_dataset)

    trainer = InOrder(model=model, args=config, train_dataset=data, processing_class=tokenizer, callbacks=[timer])
    trainer.train()
    return {"losses": [log["loss"] for log in timer.logs], "step_seconds": timer.step_seconds,
            "logps_chosen": [log.get("logps/chosen") for log in timer.logs]}


def worker(args) -> None:
    torch_threads = os.environ.get("OMP_NUM_THREADS")
    t0 = time.time()
    result = (worker_mapl if args.worker == "mapl" else worker_trl)(args)
    result["wall_s"] = round(time.time() - t0, 2)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["omp_num_threads"] = torch_threads
    print("RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------------------------------ driver


def launch(kind: str, stage: str, args, pairs: Path, prefs: Path, workdir: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--stage", stage, "--pairs", str(pairs), "--prefs", str(prefs),
           "--workdir", str(workdir), "--model", args.model, "--steps", str(args.steps), "--batch-size",
           str(args.batch_size), "--max-length", str(args.max_length), "--lr", str(args.lr)]
    if args.gradient_checkpointing:
        cmd.append("--gradient-checkpointing")
    # mapl runs with a private, empty cache (the built model linked in), so its reference log-probs are
    # computed in this run and counted in its wall time, not read from an earlier run's cache.
    from mapl_cli.models import resolve_model

    cache = workdir / f"cache-{kind}-{stage}"
    cache.mkdir(exist_ok=True)
    built = Path(resolve_model(args.model))
    if not (cache / built.name).exists():
        (cache / built.name).symlink_to(built)
    env = {**os.environ, "MAPL_CACHE": str(cache)}
    print(f"running {kind} {stage} ...", file=sys.stderr, flush=True)
    load_before = os.getloadavg()[0]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{kind} {stage} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]  # other work on the machine
    return result


def summarise(run: dict, tokens: list[int]) -> dict:
    steady = slice(1, None) if len(run["step_seconds"]) > 1 else slice(None)
    secs = run["step_seconds"][steady]
    return {
        "seconds_per_step": round(statistics.median(secs), 3),
        "tokens_per_second": round(sum(tokens[steady]) / sum(secs), 1),
        "first_step_s": round(run["step_seconds"][0], 2),
        "train_s": round(sum(run["step_seconds"]), 2),
        "wall_s": run["wall_s"],
        "setup_s": round(run["wall_s"] - sum(run["step_seconds"]), 2),
        "peak_rss_mb": run["peak_rss_mb"],
        "step_seconds": [round(x, 2) for x in run["step_seconds"]],
        "load_average_1min_before_after": run["load_average_1min"],
        "losses": [round(x, 6) for x in run["losses"]],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--gradient-checkpointing", action="store_true", help="on for both sides")
    p.add_argument("--stages", default="dpo,rm")
    p.add_argument("--check-steps", type=int, default=3)
    p.add_argument("--tolerance", type=float, default=2e-3, help="max |loss_mapl - loss_trl| in the first steps")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "train.json"))
    # worker mode (internal)
    p.add_argument("--worker", choices=["mapl", "trl"])
    p.add_argument("--stage", choices=["dpo", "rm"])
    p.add_argument("--pairs")
    p.add_argument("--prefs")
    p.add_argument("--workdir")
    args = p.parse_args()
    if args.worker:
        return worker(args)

    import platform

    targets = {"dpo": 1.5, "rm": 1.2}
    report = {"command": " ".join([Path(sys.executable).name, "bench/train.py", *sys.argv[1:]]),
              "model": args.model, "steps": args.steps, "batch_size": args.batch_size, "max_length": args.max_length,
              "lr": args.lr, "gradient_checkpointing": args.gradient_checkpointing, "cpu_count": os.cpu_count(),
              "platform": platform.platform(), "started_unix": round(time.time()), "stages": {}}
    with tempfile.TemporaryDirectory(prefix="mapl-bench-") as tmp:
        workdir = Path(tmp)
        pairs, prefs = write_data(workdir, args.steps * args.batch_size)
        for stage in args.stages.split(","):
            mapl = launch("mapl", stage, args, pairs, prefs, workdir)
            trl = launch("trl", stage, args, pairs, prefs, workdir)
            tokens = mapl["tokens"]
            m, t = summarise(mapl, tokens), summarise(trl, tokens)
            k = min(args.check_steps, len(m["losses"]), len(t["losses"]))
            diff = max(abs(a - b) for a, b in zip(m["losses"][:k], t["losses"][:k], strict=True))
            speedup = round(m["tokens_per_second"] / t["tokens_per_second"], 3)
            report["stages"][stage] = {
                "mapl": m, "trl": t, "throughput_ratio": speedup,
                "memory_ratio": round(m["peak_rss_mb"] / t["peak_rss_mb"], 3),
                "loss_max_abs_diff_first_steps": round(diff, 6), "loss_check_steps": k,
                "loss_agrees": diff <= args.tolerance, "target_throughput_ratio": targets[stage],
                "meets_target": speedup >= targets[stage] and m["peak_rss_mb"] <= t["peak_rss_mb"],
                "logps_chosen_step1": {"mapl": mapl["logps_chosen"][0], "trl": trl["logps_chosen"][0]},
            }
    print(f"{'stage':6} {'impl':5} {'tok/s':>8} {'s/step':>8} {'peak RSS MB':>12} {'wall s':>8}")
    for stage, r in report["stages"].items():
        for impl in ("mapl", "trl"):
            x = r[impl]
            print(f"{stage:6} {impl:5} {x['tokens_per_second']:8.1f} {x['seconds_per_step']:8.2f} {x['peak_rss_mb']:12.0f} {x['wall_s']:8.1f}")
        print(f"{stage:6} ratio throughput x{r['throughput_ratio']} (target x{r['target_throughput_ratio']}), "
              f"memory x{r['memory_ratio']}, loss max |diff| over {r['loss_check_steps']} steps "
              f"{r['loss_max_abs_diff_first_steps']:.2e} ({'agrees' if r['loss_agrees'] else 'DISAGREES'})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
