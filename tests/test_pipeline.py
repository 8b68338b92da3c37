"""The whole pipeline through the `mapl` command line on the tiny-random model, each stage reading the
previous stage's output, as examples/demo.sh chains them:

    mapl synthesize examples/prefs.jsonl --limit 6 -o syn
    mapl train-dpo syn --model tiny-random -o dpo --max-steps 2 ...
    mapl train-rm syn/pairs.parquet --model tiny-random -o rm --max-steps 2 ...
    mapl evaluate --benchmark examples/eval_benchmark.jsonl --limit 4 --model dpo --reward-model rm --pairs syn ...

    .venv/bin/pytest tests/test_pipeline.py -q

Every artifact is checked against what the stage before it wrote: row and kind counts against the pairs
table, manifest inputs (path and sha256) against the previous output, training steps against --max-steps,
the evaluation's counts against the benchmark rows and the pairs table. The four commands run once (a module
fixture, about 30 s on 2 CPU cores); the tests read their outputs.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mapl_cli.benchmark import read_benchmark
from mapl_cli.cli import app
from mapl_cli.models import resolve_model

ROOT = Path(__file__).resolve().parents[1]
PREFS = ROOT / "examples" / "prefs.jsonl"
BENCHMARK = ROOT / "examples" / "eval_benchmark.jsonl"
SOURCE_ROWS, STEPS, PROMPTS = 6, 2, 4
TRAIN = ["--model", "tiny-random", "--max-steps", str(STEPS), "--batch-size", "2", "--lr", "1e-3",
         "--warmup-steps", "0", "--max-length", "256", "--no-progress"]  # fmt: skip
PNG = b"\x89PNG\r\n\x1a\n"


def mapl(*args: str) -> None:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (args[0], result.output[-3000:], result.exception)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Folders {syn, dpo, rm, eval} of one pipeline run, with a private cache for reference log-probs."""
    root = tmp_path_factory.mktemp("pipeline")
    cache = root / "cache"
    cache.mkdir()
    tiny = resolve_model("tiny-random")  # built once in the shared cache; reused here
    (cache / tiny.name).symlink_to(tiny)
    out = {name: root / name for name in ("syn", "dpo", "rm", "eval")}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MAPL_CACHE", str(cache))
        mapl("synthesize", PREFS, "--limit", SOURCE_ROWS, "--output", out["syn"], "--quiet")
        mapl("train-dpo", out["syn"], "--output", out["dpo"], *TRAIN)  # a folder, as demo.sh passes it
        mapl("train-rm", out["syn"] / "pairs.parquet", "--output", out["rm"], *TRAIN)
        mapl("evaluate", "--benchmark", BENCHMARK, "--limit", PROMPTS, "--model", out["dpo"],
             "--reward-model", out["rm"], "--pairs", out["syn"], "--backend", "hf", "--device", "cpu",
             "--max-new-tokens", "8", "--batch-size", "4", "--bootstrap", "0", "--output", out["eval"])  # fmt: skip
    return out


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _sha256(path: Path) -> str:
    """A file's sha256; a folder's over its files' relative names and bytes in sorted order (manifest.py)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _pairs(run) -> list[dict]:
    return pq.read_table(run["syn"] / "pairs.parquet").to_pylist()


def test_synthesize_writes_every_kind_and_a_manifest_that_counts_the_rows(run):
    rows = _pairs(run)
    kinds = Counter(r["kind"] for r in rows)
    assert set(kinds) == {"standard", "intra", "inter"}
    assert kinds["standard"] == SOURCE_ROWS  # one copy of each source pair
    assert len({r["pair_id"] for r in rows}) == len(rows)
    for r in rows:
        if r["kind"] != "standard":
            assert len(r["verdicts_chosen"]) == len(r["instructions_chosen"]) >= 1
            assert len(r["verdicts_rejected"]) == len(r["instructions_rejected"]) >= 1
    manifest = _manifest(run["syn"])
    assert manifest["stage"] == "synthesize"
    assert manifest["counts"]["source_rows_read"] == SOURCE_ROWS
    assert manifest["counts"]["rows_written"] == len(rows)
    assert manifest["counts"]["kept_by_kind"] == dict(kinds)
    [source] = manifest["inputs"]
    assert Path(source["path"]) == PREFS and source["sha256"] == _sha256(PREFS)


@pytest.mark.parametrize(("stage", "given"), [("dpo", ""), ("rm", "pairs.parquet")])
def test_training_writes_a_model_finite_metrics_and_a_manifest_naming_its_pairs(run, stage, given):
    out = run[stage]
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["num_hidden_layers"] == 2  # tiny-random's shape
    head = {"dpo": "ForCausalLM", "rm": "ForSequenceClassification"}[stage]
    assert config["architectures"][0].endswith(head)
    if stage == "rm":
        assert len(config["id2label"]) == 1  # one-output reward head
    assert any(f.stat().st_size > 0 for f in (out / "model").glob("*.safetensors"))
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, STEPS + 1))
    assert all(math.isfinite(m["loss"]) and m["loss"] > 0 for m in metrics)
    assert all(0 <= m["rewards/accuracies"] <= 1 for m in metrics)
    manifest = _manifest(out)
    assert manifest["stage"] == f"train-{stage}"
    assert manifest["counts"]["steps"] == STEPS and manifest["counts"]["rows"] == len(_pairs(run))
    [pairs] = manifest["inputs"]
    expected = run["syn"] / given if given else run["syn"]
    assert Path(pairs["path"]) == expected and pairs["sha256"] == _sha256(expected)
    assert manifest["outputs"]["final"]["loss"] == pytest.approx(metrics[-1]["loss"])


def test_evaluate_scores_the_policy_and_the_reward_model_on_what_the_earlier_stages_wrote(run):
    out = run["eval"]
    prompts = read_benchmark(BENCHMARK)[:PROMPTS]
    results = pq.read_table(out / "results.parquet").to_pylist()
    assert [(r["model"], r["key"]) for r in results] == [("dpo", p.key) for p in prompts]
    assert all(len(r["strict"]) == len(r["loose"]) == r["n_instructions"] for r in results)

    summary = json.loads((out / "summary.json").read_text())
    policy = summary["models"]["dpo"]
    assert policy["n_prompts"] == PROMPTS
    assert policy["n_instructions"] == sum(len(p.instruction_id_list) for p in prompts)
    assert sum(v["n_prompts"] for v in policy["by_num_instructions"].values()) == PROMPTS
    for metric in summary["metrics"]:
        assert 0 <= policy[metric] <= 1, metric
    strict = [all(r["strict"]) for r in results]
    assert policy["prompt_level_strict_acc"] == pytest.approx(sum(strict) / PROMPTS)
    assert summary["sampling"]["max_new_tokens"] == 8

    rows = _pairs(run)
    reward = summary["reward_models"]["rm"]
    assert reward["overall"]["n"] == len(rows) and 0 <= reward["overall"]["accuracy"] <= 1
    kinds = Counter(r["kind"] for r in rows)
    assert {kind: v["n"] for kind, v in reward["by_kind"].items()} == dict(kinds)
    assert all(0 <= v["accuracy"] <= 1 for v in reward["by_kind"].values())

    # the instruction types the policy was trained on come from train-dpo's manifest and its pairs
    trained = {i["id"] for r in rows if r["kind"] != "standard"
               for i in r["instructions_chosen"] + r["instructions_rejected"]}  # fmt: skip
    assert set(summary["seen_ids"]["ids"]) == trained

    manifest = _manifest(out)
    assert manifest["stage"] == "evaluate" and manifest["counts"] == {"dpo": PROMPTS}
    inputs = {Path(i["path"]): i["sha256"] for i in manifest["inputs"]}
    assert inputs == {BENCHMARK: _sha256(BENCHMARK), run["syn"]: _sha256(run["syn"])}
    report = (out / "report.md").read_text()
    assert "dpo" in report and "rm" in report
    for chart in ("accuracy.png", "accuracy_by_k.png", "reward_accuracy.png"):
        assert (out / chart).read_bytes().startswith(PNG), chart
