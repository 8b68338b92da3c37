"""Synthesis throughput and memory: source pairs per second with 1 and 2 workers, and peak memory.

    python bench/synthesize.py                       # 10,000 source pairs, 1 and 2 workers
    python bench/synthesize.py --rows 100000 --workers 2

The input repeats examples/prefs.jsonl until it holds --rows rows. Every copy after the first is perturbed
(sentences added to and dropped from its responses), so no response text repeats and no per-text cache
in the instruction registry gets a free hit: the number measures work on distinct data. Each run is a separate
`mapl synthesize` process; peak memory is sampled over the whole process tree (the driver plus its workers) as summed PSS, and
the driver's own peak RSS.
Then a breakdown by instruction type: --breakdown-rows rows (default 2,000) synthesized in this process with one
worker, each registry type's `generate`, `check` and `describe` wrapped in a timer that counts a call's own
time (a `check` inside `generate` is counted as check). A text analysis shared between types (sentences,
words) is memoised per text, so its cost falls on whichever type asks first; "outside instruction calls" is
the rest of the stage (pair building, hashing, writing). The bench wraps the registry's objects in its own
process only; mapl's code is not changed for it.
Prints tables and writes bench/results/synthesize.json.
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


class Breakdown:
    """Own (exclusive) seconds and calls per (instruction id, method), from timers wrapped around the
    registry's instruction objects."""

    METHODS = ("generate", "check", "describe")

    def __init__(self) -> None:
        self.seconds: dict[tuple[str, str], float] = {}
        self.calls: dict[tuple[str, str], int] = {}
        self._inner: list[float] = []  # per open call: seconds spent in timed calls inside it

    def wrap(self, inst) -> None:
        for method in self.METHODS:
            setattr(inst, method, self._timed(inst.id, method, getattr(inst, method)))

    def _timed(self, inst_id: str, method: str, call):
        key = (inst_id, method)

        def timed(*args, **kwargs):
            self._inner.append(0.0)
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                inner = self._inner.pop()
                self.seconds[key] = self.seconds.get(key, 0.0) + elapsed - inner
                self.calls[key] = self.calls.get(key, 0) + 1
                if self._inner:
                    self._inner[-1] += elapsed

        return timed

    def rows(self, stage_seconds: float) -> list[dict]:
        ids = sorted({i for i, _ in self.seconds})
        out = []
        for inst_id in ids:
            row = {"id": inst_id}
            for method in self.METHODS:
                row[f"{method}_seconds"] = round(self.seconds.get((inst_id, method), 0.0), 3)
                row[f"{method}_calls"] = self.calls.get((inst_id, method), 0)
            row["seconds"] = round(sum(self.seconds.get((inst_id, m), 0.0) for m in self.METHODS), 3)
            row["share"] = round(row["seconds"] / stage_seconds, 4)
            out.append(row)
        return sorted(out, key=lambda r: -r["seconds"])


def breakdown(input_path: Path, out_dir: Path, rows: int) -> dict:
    """Synthesize the first `rows` rows in this process, one worker, with every instruction type timed."""
    sys.path.insert(0, str(ROOT))
    from mapl_cli.instructions import REGISTRY
    from mapl_cli.synth.run import SynthConfig, run

    # First use loads NLTK's Punkt model and langdetect's profiles (as `mapl synthesize` does before it forks
    # workers), and pyarrow's first conversion imports pandas: timed apart, so the table shows per-row costs.
    start = time.perf_counter()
    sample = "A Warm-up Answer, with words.\n\nIt has TWO paragraphs and a list:\n* one\n* two"
    for inst in REGISTRY.values():
        inst.generate([(sample, True)], random.Random(0))
    __import__("pyarrow").array([sample])
    warm_up = time.perf_counter() - start
    timers = Breakdown()
    for inst in REGISTRY.values():
        timers.wrap(inst)
    config = SynthConfig(input=str(input_path), output=out_dir, workers=1, limit=rows, force=True, progress=False)
    start = time.perf_counter()
    run(config)
    stage = time.perf_counter() - start
    types = timers.rows(stage)
    inside = sum(r["seconds"] for r in types)
    return {"source_rows": rows, "workers": 1, "warm_up_seconds": round(warm_up, 3), "stage_seconds": round(stage, 3), "instruction_seconds": round(inside, 3),
            "outside_instruction_calls_seconds": round(stage - inside, 3), "by_instruction": types}


def print_breakdown(result: dict) -> None:
    print(f"\nbreakdown by instruction type: {result['source_rows']:,} source pairs, 1 worker, in process, "
          f"{result['stage_seconds']:.2f} s after {result['warm_up_seconds']:.2f} s of first-use loading (NLTK, langdetect, pandas)\n"
          "(own time per call; a per-text analysis shared by several types falls on the first to ask)")
    print(f"{'instruction type':<44} {'seconds':>8} {'share':>6} {'generate s':>10} {'calls':>7} {'check s':>8} {'calls':>7} {'describe s':>10}")
    for r in result["by_instruction"]:
        print(f"{r['id']:<44} {r['seconds']:>8.3f} {100 * r['share']:>5.1f}% {r['generate_seconds']:>10.3f} {r['generate_calls']:>7} "
              f"{r['check_seconds']:>8.3f} {r['check_calls']:>7} {r['describe_seconds']:>10.3f}")
    outside = result["outside_instruction_calls_seconds"]
    print(f"{'outside instruction calls':<44} {outside:>8.3f} {100 * outside / result['stage_seconds']:>5.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="source preference rows")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to run")
    parser.add_argument("--breakdown-rows", type=int, default=2_000, help="rows for the by-instruction breakdown (0: none)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "synthesize.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        input_path = tmp / "prefs.jsonl"
        repeats = make_input(args.rows, input_path)
        results = [run_once(input_path, tmp / f"out{w}", w) for w in args.workers]
        by_type = breakdown(input_path, tmp / "breakdown", min(args.breakdown_rows, args.rows)) if args.breakdown_rows > 0 else None

    print(f"\nmapl synthesize, {args.rows:,} source pairs, default options ({platform.processor() or platform.machine()}, {psutil.cpu_count()} cores)")
    print(f"{'workers':>7} {'seconds':>9} {'pairs/s':>9} {'rows out':>9} {'peak MB (tree PSS)':>19} {'sha256':>17}")
    for r in results:
        print(f"{r['workers']:>7} {r['wall_seconds']:>9.2f} {r['source_pairs_per_s']:>9.1f} {r['rows_written']:>9} {r['peak_pss_tree_mb']:>19.1f} {r['pairs_sha256']:>17}")
    print(f"repeated response texts in the input: {repeats}")
    identical = len({r["pairs_sha256"] for r in results}) == 1
    print(f"output identical across worker counts: {identical}")
    if len(results) > 1:
        print(f"speed-up {results[-1]['workers']} vs {results[0]['workers']} workers: {results[-1]['source_pairs_per_s'] / results[0]['source_pairs_per_s']:.2f}x")
    if by_type is not None:
        print_breakdown(by_type)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": "synthesize", "rows": args.rows, "cpu_count": psutil.cpu_count(), "python": platform.python_version(),
              "repeated_response_texts": repeats, "results": results, "identical_across_workers": identical, "breakdown": by_type}
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
