"""Speed and memory of `mapl train-dpo` on one process, two replica processes and two FSDP processes.

    .venv/bin/python bench/distributed.py                 # smollm2-135m-instruct, 4 steps of 4 pairs, 256 tokens
    .venv/bin/python bench/distributed.py --model tiny-random --steps 3 --out /tmp/dist.json   # a quick dry run

The three runs train the same model on the same pairs with the same global batch (1 process x batch 4, or
2 processes x batch 2 under torchrun, as replicas or with --fsdp), full fine-tune, float32, one after the
other on the same machine; each gets the same number of CPU threads in all (2 x 1 under torchrun). Memory
is the proportional set size (PSS, shared pages split between processes) of the launched process tree,
sampled every 0.2 s: the peak of the whole tree, and the largest single training process while steps 2 on
run (the steady state, after loading and the first step), and, from each run's manifest, the bytes of weights,
gradients and AdamW state that one process holds (exact; PSS also counts what the allocator keeps after
freeing, e.g. the full weights loaded before sharding). Seconds per step and tokens/s are over steps 2 on
(metrics.jsonl). The loss curves of the three runs must agree. Results: bench/results/distributed.json.

On a CPU this shows what sharding does to memory and what its collectives cost; the speed that matters for
FSDP is on GPUs with NCCL, which this script also runs where they are present (it does not pick the device).
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
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.train import write_data  # noqa: E402  (the same pairs as the TRL comparison)


class TreeMemory(threading.Thread):
    """Samples the PSS of a process and its descendants until stopped."""

    def __init__(self, pid: int, metrics: Path):
        super().__init__(daemon=True)
        self.pid, self.metrics = pid, metrics
        self.peak_total = 0.0
        self.peak_process_steady = 0.0
        self.stop = threading.Event()

    def run(self):
        root = psutil.Process(self.pid)
        while not self.stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            sizes = []
            for proc in procs:
                try:
                    sizes.append(proc.memory_full_info().pss / 2**20)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self.peak_total = max(self.peak_total, sum(sizes))
            steady = self.metrics.exists() and len(self.metrics.read_text().splitlines()) >= 1
            if steady and sizes:
                self.peak_process_steady = max(self.peak_process_steady, max(sizes))
            time.sleep(0.2)


def run(name: str, processes: int, flags: list[str], args, pairs: Path, work: Path) -> dict:
    out = work / name
    common = ["train-dpo", str(pairs), "--model", args.model, "--output", str(out), "--max-steps", str(args.steps),
              "--max-length", str(args.max_length), "--lr", str(args.lr), "--warmup-steps", "0", "--scheduler",
              "constant", "--no-shuffle", "--lambda-intra", "0", "--lambda-inter", "0", "--no-progress",
              "--batch-size", str(args.batch_size // processes), "--dtype", "float32", *flags]
    if processes == 1:
        cmd = [sys.executable, "-m", "mapl_cli.cli", *common]
        threads = str(args.threads)
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "mapl_cli.cli", *common]
        threads = str(max(1, args.threads // processes))
    env = {**os.environ, "OMP_NUM_THREADS": threads}
    print(f"running {name} ...", file=sys.stderr, flush=True)
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeMemory(proc.pid, out / "metrics.jsonl")
    sampler.start()
    _, stderr = proc.communicate()
    sampler.stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{stderr[-4000:]}")
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    memory = json.loads((out / "manifest.json").read_text())["outputs"]["memory_rank0"]
    steady = metrics[1:] if len(metrics) > 1 else metrics
    secs = [m["seconds_per_step"] for m in steady]
    return {
        "processes": processes, "flags": flags, "threads_per_process": int(threads),
        "seconds_per_step": round(statistics.median(secs), 3),
        "tokens_per_second": round(sum(m["tokens"] for m in steady) / sum(secs), 1),
        "wall_s": round(time.time() - t0, 1),
        "peak_pss_tree_mb": round(sampler.peak_total),
        "peak_pss_process_steady_mb": round(sampler.peak_process_steady),
        "model_state_mb_per_process": round(memory["trainable_mb"] + memory["gradients_mb"] + memory["optimizer_state_mb"]),
        "manifest_memory_rank0": memory,
        "losses": [round(m["loss"], 6) for m in metrics],
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=4, help="global batch (pairs per optimizer step)")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="CPU threads in all, per run")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max |loss difference| between runs")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "distributed.json"))
    args = p.parse_args()
    if args.batch_size % 2:
        raise SystemExit("--batch-size must be even (it is split over 2 processes)")
    report = {"command": " ".join([Path(sys.executable).name, "bench/distributed.py", *sys.argv[1:]]),
              "model": args.model, "steps": args.steps, "global_batch": args.batch_size,
              "max_length": args.max_length, "cpu_count": os.cpu_count(), "platform": platform.platform(),
              "started_unix": round(time.time()), "runs": {}}
    with tempfile.TemporaryDirectory(prefix="mapl-bench-dist-") as tmp:
        work = Path(tmp)
        pairs, _ = write_data(work, args.steps * args.batch_size)  # standard pairs (lambdas 0: plain DPO)
        for name, processes, flags in [("one process", 1, []), ("2 replicas", 2, []), ("2 fsdp", 2, ["--fsdp"])]:
            report["runs"][name] = run(name, processes, flags, args, pairs, work)
    losses = [r["losses"] for r in report["runs"].values()]
    diff = max(abs(a - b) for curve in losses[1:] for a, b in zip(losses[0], curve, strict=True))
    report["loss_max_abs_diff"] = round(diff, 8)
    report["loss_agrees"] = diff <= args.tolerance
    base = report["runs"]["2 replicas"]
    fsdp = report["runs"]["2 fsdp"]
    report["fsdp_vs_replicas"] = {
        "throughput_ratio": round(fsdp["tokens_per_second"] / base["tokens_per_second"], 3),
        "model_state_ratio": round(fsdp["model_state_mb_per_process"] / base["model_state_mb_per_process"], 3),
        "peak_process_memory_ratio": round(fsdp["peak_pss_process_steady_mb"] / base["peak_pss_process_steady_mb"], 3),
        "peak_tree_memory_ratio": round(fsdp["peak_pss_tree_mb"] / base["peak_pss_tree_mb"], 3),
    }
    print(f"{'run':12} {'tok/s':>8} {'s/step':>8} {'weights+grads+Adam MB/process':>30} "
          f"{'peak PSS MB/process':>20} {'peak PSS MB, all':>17} {'wall s':>7}")
    for name, r in report["runs"].items():
        print(f"{name:12} {r['tokens_per_second']:8.1f} {r['seconds_per_step']:8.2f} {r['model_state_mb_per_process']:30} "
              f"{r['peak_pss_process_steady_mb']:20} {r['peak_pss_tree_mb']:17} {r['wall_s']:7.1f}")
    ratios = report["fsdp_vs_replicas"]
    print(f"fsdp / replicas: throughput x{ratios['throughput_ratio']}, weights+grads+Adam per process "
          f"x{ratios['model_state_ratio']}, peak per process x{ratios['peak_process_memory_ratio']}, all processes x{ratios['peak_tree_memory_ratio']}; "
          f"loss curves {'agree' if report['loss_agrees'] else 'DISAGREE'} (max |diff| {diff:.1e})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
