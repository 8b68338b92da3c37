"""Synthesis throughput and memory: source pairs per second with 1 and 2 workers, and peak memory.

    python bench/synthesize.py                       # 10,000 source pairs, 1 and 2 workers
    python bench/synthesize.py --rows 100000 --workers 2

The input repeats examples/prefs.jsonl until it holds --rows rows. Every copy after the first is perturbed
(sentences added to and dropped from its responses), so no response text repeats and no per-text cache
in the instruction registry gets a free hit: the number measures work on distinct data. Each run is a separate
`mapl synthesize` process; peak memory is sampled over the whole process tree (the driver plus its workers) as summed PSS, and
the driver's own peak RSS.
Prints a table and writes bench/results/synthesize.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


FILLERS = (
    "That is worth remembering.", "This matters in practice.", "Keep that in mind.", "It rarely goes wrong.",
    "Most people find this helpful.", "Take your time with it.", "Small steps add up.", "Ask if unsure.",
    "Check the details twice.", "Results vary from case to case.", "It gets easier with practice.",
    "Start simple and adjust.", "Nothing here is set in stone.", "Notes help later.", "Plan a little first.",
)


def perturb(text: str, rng: random.Random) -> str:
    """Add two filler sentences to random paragraphs and drop a word: a new, similar text."""
    paragraphs = text.split("\n\n")
    for _ in range(2):
        i = rng.randrange(len(paragraphs))
        paragraphs[i] = paragraphs[i].rstrip() + " " + rng.choice(FILLERS)
    i = rng.randrange(len(paragraphs))
    words = paragraphs[i].split(" ")
    if len(words) > 4:
        del words[rng.randrange(1, len(words) - 1)]
        paragraphs[i] = " ".join(words)
    return "\n\n".join(paragraphs)


def _response(value, rng):
    if isinstance(value, list):  # conversational: a one-message assistant list
        return [{**value[0], "content": perturb(value[0]["content"], rng)}]
    return perturb(value, rng)


def make_input(rows: int, path: Path) -> int:
    """Write the benchmark input; returns how many response texts occur more than once."""
    examples = [json.loads(line) for line in (ROOT / "examples" / "prefs.jsonl").read_text().splitlines() if line.strip()]
    seen: set[str] = set()
    repeats = 0
    with open(path, "w") as handle:
        for i in range(rows):
            row = dict(examples[i % len(examples)])
            if i >= len(examples):
                rng = random.Random(i)
                row["chosen"], row["rejected"] = _response(row["chosen"], rng), _response(row["rejected"], rng)
            row["id"] = f"bench-{i:07d}"
            for side in ("chosen", "rejected"):
                key = json.dumps(row[side])
                repeats += key in seen
                seen.add(key)
            handle.write(json.dumps(row) + "\n")
    return repeats


def tree_memory(proc: psutil.Process) -> int:
    """Proportional set size (PSS) summed over the process tree: forked workers share the driver's pages,
    which a sum of RSS would count once per process."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
        except psutil.Error:
            pass
    return total


def run_once(input_path: Path, out_dir: Path, workers: int) -> dict:
    cmd = [sys.executable, "-m", "mapl_cli", "synthesize", str(input_path), "--output", str(out_dir), "--workers", str(workers), "--quiet", "--force"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak_tree = peak_main = 0
    while proc.poll() is None:
        try:
            peak_tree = max(peak_tree, tree_memory(ps))
            peak_main = max(peak_main, ps.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"synthesize failed ({proc.returncode}): {err.strip()[-500:]}")
    manifest = json.loads((out_dir / "manifest.json").read_text())
    counts = manifest["counts"]
    return {
        "workers": workers,
        "source_rows": counts["source_rows_read"],
        "rows_written": counts["rows_written"],
        "kept_by_kind": counts["kept_by_kind"],
        "wall_seconds": round(seconds, 2),
        "stage_seconds": manifest["wall_seconds"],
        "source_pairs_per_s": round(counts["source_rows_read"] / seconds, 1),
        "peak_rss_main_mb": round(peak_main / 2**20, 1),
        "peak_pss_tree_mb": round(peak_tree / 2**20, 1),
        "pairs_sha256": __import__("hashlib").sha256((out_dir / "pairs.parquet").read_bytes()).hexdigest()[:16],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="source preference rows")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to run")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "synthesize.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        input_path = tmp / "prefs.jsonl"
        repeats = make_input(args.rows, input_path)
        results = [run_once(input_path, tmp / f"out{w}", w) for w in args.workers]

    print(f"\nmapl synthesize, {args.rows:,} source pairs, default options ({platform.processor() or platform.machine()}, {psutil.cpu_count()} cores)")
    print(f"{'workers':>7} {'seconds':>9} {'pairs/s':>9} {'rows out':>9} {'peak MB (tree PSS)':>19} {'sha256':>17}")
    for r in results:
        print(f"{r['workers']:>7} {r['wall_seconds']:>9.2f} {r['source_pairs_per_s']:>9.1f} {r['rows_written']:>9} {r['peak_pss_tree_mb']:>19.1f} {r['pairs_sha256']:>17}")
    print(f"repeated response texts in the input: {repeats}")
    identical = len({r["pairs_sha256"] for r in results}) == 1
    print(f"output identical across worker counts: {identical}")
    if len(results) > 1:
        print(f"speed-up {results[-1]['workers']} vs {results[0]['workers']} workers: {results[-1]['source_pairs_per_s'] / results[0]['source_pairs_per_s']:.2f}x")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"benchmark": "synthesize", "rows": args.rows, "cpu_count": psutil.cpu_count(), "repeated_response_texts": repeats, "results": results, "identical_across_workers": identical}, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
