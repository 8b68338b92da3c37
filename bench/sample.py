"""Sampling n responses per prompt: one `sample` call (one shared prefill) against n separate passes.

    python bench/sample.py                                       # smollm2-135m-instruct, CPU, 32 prompts x 4
    python bench/sample.py --model tiny-random --prompts 8 --max-new-tokens 16 --rounds 1   # a quick check

This is what `mapl sample` does (the hf backend's `sample`: one forward pass fills each prompt's KV cache,
the cache is repeated n times and one `generate` call continues all n rows) against what one would do with
`mapl evaluate`-style passes: n calls of the backend's `generate`, one per seed, over the same prompts. Both sample at
temperature 1.0 from the first --prompts prompts of examples/eval_benchmark.jsonl at --batch-size prompts per
call. Throughput counts the tokens actually generated (stop token included, padding excluded). Methods
alternate over --rounds rounds so that load from other processes falls on both alike. Prints a table and writes bench/results/sample.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32, help="prompts per generate call")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "sample.json")
    args = parser.parse_args()

    import torch

    from mapl_cli.benchmark import read_benchmark
    from mapl_cli.generation.base import SamplingConfig
    from mapl_cli.generation.hf import HFBackend
    from mapl_cli.models import load_causal_lm

    rows = read_benchmark(ROOT / "examples" / "eval_benchmark.jsonl", limit=args.prompts)
    prompts = [[{"role": "user", "content": r.prompt}] for r in rows]
    model, tokenizer = load_causal_lm(args.model, dtype="float32", device="cpu")
    backend = HFBackend.from_loaded(model, tokenizer, batch_size=args.batch_size)
    backend.generate(prompts[:2], SamplingConfig(max_new_tokens=4))  # warm-up (first-call allocations)

    def one_call(seed: int) -> None:
        backend.sample(prompts, SamplingConfig(args.max_new_tokens, temperature=1.0, seed=seed), args.n)

    def n_passes(seed: int) -> None:
        for k in range(args.n):
            backend.generate(prompts, SamplingConfig(args.max_new_tokens, temperature=1.0, seed=seed * args.n + k))

    methods = {f"sample, n={args.n}, shared prefill": one_call, f"{args.n} generate passes": n_passes}
    totals = {name: {"samples": 0, "tokens": 0, "seconds": 0.0, "cpu_seconds": 0.0} for name in methods}
    names = list(methods)
    for round_index in range(args.rounds):
        for name in names[round_index % 2 :] + names[: round_index % 2]:
            backend.generated_tokens = 0
            wall, cpu = time.perf_counter(), time.process_time()
            methods[name](round_index)
            entry = totals[name]
            entry["samples"] += len(prompts) * args.n
            entry["tokens"] += backend.generated_tokens
            entry["seconds"] += time.perf_counter() - wall
            entry["cpu_seconds"] += time.process_time() - cpu

    base = totals[names[1]]
    results = []
    for name, t in totals.items():
        rate, cpu_rate = t["tokens"] / t["seconds"], t["tokens"] / t["cpu_seconds"]
        results.append({"method": name, "samples": t["samples"], "tokens": t["tokens"], "seconds": round(t["seconds"], 2),
                        "tokens_per_s": round(rate, 2), "speedup": round(rate / (base["tokens"] / base["seconds"]), 2),
                        "cpu_seconds": round(t["cpu_seconds"], 2), "tokens_per_cpu_s": round(cpu_rate, 2),
                        "cpu_speedup": round(cpu_rate / (base["tokens"] / base["cpu_seconds"]), 2)})
    print(f"{'method':<28}{'samples':>8}{'tokens':>8}{'seconds':>9}{'tok/s':>8}{'x passes':>9}{'tok/cpu-s':>11}{'x passes':>9}")
    for r in results:
        print(f"{r['method']:<28}{r['samples']:>8}{r['tokens']:>8}{r['seconds']:>9.1f}{r['tokens_per_s']:>8.1f}"
              f"{r['speedup']:>9.2f}{r['tokens_per_cpu_s']:>11.1f}{r['cpu_speedup']:>9.2f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "command": " ".join(["python", "bench/sample.py", *sys.argv[1:]]),
        "model": args.model, "prompts": args.prompts, "n": args.n, "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens, "rounds": args.rounds, "load_average_after": os.getloadavg(),
        "device": "cpu", "dtype": "float32", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(), "results": results,
    }, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
