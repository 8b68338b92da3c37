"""Generation speed of the transformers backend against a plain one-prompt-at-a-time `model.generate` loop.

    python bench/generate.py                                   # smollm2-135m-instruct, CPU, 64 new tokens
    python bench/generate.py --batch-sizes 1 8 32 --prompts 32 --loop-prompts 8 --max-new-tokens 64 --rounds 2

Prompts are the first --prompts prompts of examples/eval_benchmark.jsonl (rendered with the chat template).
Both sides decode greedily and stop at the end-of-turn token; throughput counts the tokens actually generated
(stop token included, padding excluded), so a batch pays for its longest response. The one-at-a-time loop and
batch size 1 run on the first --loop-prompts prompts (they are slow); larger batches on all --prompts, once
per round. Methods are interleaved over --rounds rounds so that load from other processes hits them alike.
Prints a table and writes bench/results/generate.json.
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


def plain_loop(model, tokenizer, prompts, max_new_tokens, stop_ids) -> tuple[int, float]:
    """What one would write without a backend: one prompt, one `generate` call, no padding."""
    import torch

    tokens, started = 0, time.perf_counter()
    for messages in prompts:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop_ids,
                                 pad_token_id=tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None)
        new = out[0, ids["input_ids"].shape[1] :].tolist()
        tokens += next((j + 1 for j, t in enumerate(new) if t in stop_ids), len(new))
    return tokens, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--loop-prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (each batch-32 pass covers all --prompts)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "generate.json")
    args = parser.parse_args()

    import torch

    from mapl_cli.benchmark import read_benchmark
    from mapl_cli.generation.base import SamplingConfig
    from mapl_cli.generation.hf import HFBackend
    from mapl_cli.models import load_causal_lm

    rows = read_benchmark(ROOT / "examples" / "eval_benchmark.jsonl", limit=args.prompts)
    prompts = [[{"role": "user", "content": r.prompt}] for r in rows]
    model, tokenizer = load_causal_lm(args.model, dtype="float32", device="cpu")
    backend = HFBackend.from_loaded(model, tokenizer)
    sampling = SamplingConfig(max_new_tokens=args.max_new_tokens)
    backend.generate(prompts[:2], SamplingConfig(max_new_tokens=4))  # warm-up (first-call allocations)

    # Methods run interleaved over --rounds rounds (the prompt sets split across rounds), so slow-downs from
    # other processes on a shared machine fall on every method alike. CPU seconds (this process, all
    # threads) are reported beside wall seconds: they are less sensitive to such contention.
    methods = [("model.generate loop", 0), *(("hf backend", b) for b in args.batch_sizes)]
    totals = {m: {"prompts": 0, "tokens": 0, "seconds": 0.0, "cpu_seconds": 0.0} for m in methods}
    for round_index in range(args.rounds):
        for method in methods[round_index % len(methods) :] + methods[: round_index % len(methods)]:
            name, batch_size = method
            few = prompts[: args.loop_prompts][round_index :: args.rounds]
            subset = few if batch_size <= 1 else prompts
            wall, cpu = time.perf_counter(), time.process_time()
            if batch_size == 0:
                tokens, _ = plain_loop(model, tokenizer, subset, args.max_new_tokens, backend.stop_ids)
            else:
                backend.batch_size, backend.generated_tokens = batch_size, 0
                backend.generate(subset, sampling)
                tokens = backend.generated_tokens
            entry = totals[method]
            entry["prompts"] += len(subset)
            entry["tokens"] += tokens
            entry["seconds"] += time.perf_counter() - wall
            entry["cpu_seconds"] += time.process_time() - cpu
    loop = totals[methods[0]]
    results = []
    for (name, batch_size), t in totals.items():
        rate, cpu_rate = t["tokens"] / t["seconds"], t["tokens"] / t["cpu_seconds"]
        results.append({"method": name, "batch_size": max(1, batch_size), "prompts": t["prompts"], "tokens": t["tokens"],
                        "seconds": round(t["seconds"], 2), "tokens_per_s": round(rate, 2),
                        "speedup": round(rate / (loop["tokens"] / loop["seconds"]), 2),
                        "cpu_seconds": round(t["cpu_seconds"], 2), "tokens_per_cpu_s": round(cpu_rate, 2),
                        "cpu_speedup": round(cpu_rate / (loop["tokens"] / loop["cpu_seconds"]), 2)})

    print(f"{'method':<22}{'batch':>6}{'prompts':>9}{'tokens':>8}{'seconds':>9}{'tok/s':>8}{'x loop':>8}{'tok/cpu-s':>11}{'x loop':>8}")
    for r in results:
        print(f"{r['method']:<22}{r['batch_size']:>6}{r['prompts']:>9}{r['tokens']:>8}{r['seconds']:>9.1f}{r['tokens_per_s']:>8.1f}"
              f"{r['speedup']:>8.2f}{r['tokens_per_cpu_s']:>11.1f}{r['cpu_speedup']:>8.2f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "command": " ".join(["python", "bench/generate.py", *sys.argv[1:]]),
        "model": args.model, "max_new_tokens": args.max_new_tokens, "rounds": args.rounds,
        "load_average_after": os.getloadavg(), "device": "cpu", "dtype": "float32",
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(), "results": results,
    }, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
