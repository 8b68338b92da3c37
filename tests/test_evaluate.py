"""`mapl evaluate`: scoring ready-made responses, generating with tiny-random, resume, bad input, output files,
and reward-model accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mapl_cli.benchmark import read_benchmark
from mapl_cli.cli import app
from mapl_cli.errors import MaplError
from mapl_cli.evaluation.evaluate import EvaluateConfig, run
from mapl_cli.evaluation.scoring import METRICS, score_row, summarize
from mapl_cli.generation.base import DummyBackend, SamplingConfig

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = ROOT / "examples" / "eval_benchmark.jsonl"
RESPONSES = [json.loads(line)["response"] for line in (ROOT / "tests/assets/eval_reference_responses.jsonl").read_text().splitlines()]
runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def _responses_file(tmp_path: Path, n: int = 12, by_key: bool = False) -> Path:
    rows = read_benchmark(BENCHMARK)[:n]
    path = tmp_path / "their_model.jsonl"
    with open(path, "w") as handle:
        for i, row in enumerate(rows):
            record = {"prompt": row.prompt, "response": RESPONSES[i % len(RESPONSES)]}
            if by_key:
                record = {"key": row.key, "response": record["response"]}
            handle.write(json.dumps(record) + "\n")
    return path


def test_responses_are_scored_without_a_model_and_all_outputs_are_written(tmp_path):
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--benchmark", str(BENCHMARK), "--responses", str(_responses_file(tmp_path)), "--output", str(out)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out / "results.parquet").to_pylist()
    assert len(table) == 12 and {r["model"] for r in table} == {"their_model"}
    # Independent recomputation from the benchmark and the response texts.
    rows = read_benchmark(BENCHMARK)[:12]
    expected = summarize([(row.instruction_id_list, score_row(row, RESPONSES[i])) for i, row in enumerate(rows)])
    summary = json.loads((out / "summary.json").read_text())["models"]["their_model"]
    for metric in METRICS:
        assert summary[metric] == pytest.approx(expected[metric])
        assert metric in result.stdout
    assert summary["by_num_instructions"] == json.loads(json.dumps(expected["by_num_instructions"]))
    empty = [r for r in table if not r["response"].strip()]
    assert empty and all(not any(r["strict"]) and not any(r["loose"]) for r in empty)
    report = (out / "report.md").read_text()
    assert "## Comparison" in report and "their_model" in report and "By number of instructions" in report
    for chart in ("accuracy.png", "accuracy_by_k.png"):
        assert (out / chart).read_bytes().startswith(PNG)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "evaluate" and manifest["counts"] == {"their_model": 12}


def test_responses_can_be_matched_by_key(tmp_path):
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--benchmark", str(BENCHMARK), "--responses", str(_responses_file(tmp_path, 5, by_key=True)), "--output", str(out)])
    assert result.exit_code == 0, result.output
    keys = [r["key"] for r in pq.read_table(out / "results.parquet").to_pylist()]
    assert keys == [r.key for r in read_benchmark(BENCHMARK)[:5]]


def test_a_response_for_an_unknown_prompt_fails_naming_the_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"prompt": "not in the benchmark", "response": "x"}) + "\n")
    result = runner.invoke(app, ["evaluate", "--benchmark", str(BENCHMARK), "--responses", str(path), "--output", str(tmp_path / "o")])
    assert result.exit_code == 2 and "line 1" in result.output and "Traceback" not in result.output


def test_tiny_random_models_are_compared_on_the_same_prompts(tmp_path):
    out = tmp_path / "eval"
    args = ["evaluate", "--benchmark", str(BENCHMARK), "--model", "tiny-random", "--model", "tiny-random",
            "--limit", "3", "--max-new-tokens", "8", "--batch-size", "2", "--backend", "hf", "--output", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pq.read_table(out / "results.parquet").to_pylist()
    assert [(r["model"], r["key"]) for r in table] == [(m, k) for m in ("tiny-random", "tiny-random#2") for k in (1, 2, 3)]
    assert all(isinstance(r["response"], str) and len(r["strict"]) == r["n_instructions"] for r in table)
    first, second = table[:3], table[3:]
    assert [r["response"] for r in first] == [r["response"] for r in second]  # same model, same greedy settings
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["models"]) == ["tiny-random", "tiny-random#2"] and summary["sampling"]["max_new_tokens"] == 8
    assert "tiny-random#2" in (out / "report.md").read_text()


class CrashAfter:
    """Backend factory whose backends answer `ok` chunks, then raise (a crash mid-run)."""

    def __init__(self, ok: int | None):
        self.ok, self.prompts = ok, []

    def __call__(self, model):
        factory = self

        class Crashy(DummyBackend):
            def generate(self, prompts, sampling, progress=None):
                if factory.ok is not None and len(factory.prompts) >= factory.ok:
                    raise RuntimeError("simulated crash")
                factory.prompts.append([m[-1]["content"] for m in prompts])
                return super().generate(prompts, sampling, progress)

        return Crashy(model, respond=lambda m: "all lowercase answer without commas")


def _config(out: Path, factory, **kw) -> EvaluateConfig:
    return EvaluateConfig(output=out, benchmark=str(BENCHMARK), models=["tiny-random"], limit=10, chunk_size=4,
                          sampling=SamplingConfig(max_new_tokens=8), backend_factory=factory, **kw)


def test_resume_skips_prompts_already_answered(tmp_path, capsys):
    out = tmp_path / "eval"
    crash = CrashAfter(ok=2)  # two chunks of 4 prompts, then a crash
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(_config(out, crash))
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 8  # finished chunks are on disk
    with pytest.raises(MaplError, match="--resume"):
        run(_config(out, CrashAfter(ok=None)))
    again = CrashAfter(ok=None)
    summary = run(_config(out, again, resume=True))
    rows = read_benchmark(BENCHMARK)[:10]
    assert again.prompts == [[r.prompt for r in rows[8:]]]  # only the two unanswered prompts
    table = pq.read_table(out / "results.parquet").to_pylist()
    assert [r["key"] for r in table] == [r.key for r in rows]
    assert summary["models"]["tiny-random"]["n_prompts"] == 10
    with pytest.raises(MaplError, match="different settings"):
        run(EvaluateConfig(output=out, benchmark=str(BENCHMARK), models=["tiny-random"], limit=10, resume=True,
                           sampling=SamplingConfig(max_new_tokens=9), backend_factory=CrashAfter(None)))


def test_unknown_instruction_id_fails_with_one_line_naming_the_row(tmp_path):
    bad = tmp_path / "bad.jsonl"
    lines = BENCHMARK.read_text().splitlines()[:3]
    row = json.loads(lines[2])
    row["instruction_id_list"][0] = "detectable_format:haiku"
    bad.write_text("\n".join([*lines[:2], json.dumps(row)]) + "\n")
    result = runner.invoke(app, ["evaluate", "--benchmark", str(bad), "--model", "tiny-random", "--output", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert f"row 3 (key {row['key']}): unknown instruction id 'detectable_format:haiku'" in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("model", ["missing-dir/", "broken"])
def test_a_model_that_cannot_load_fails_before_any_generation(tmp_path, model):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    calls = CrashAfter(ok=None)
    name = str(tmp_path / model)
    with pytest.raises(MaplError, match="cannot be loaded|no such model|not a model folder") as info:
        run(EvaluateConfig(output=tmp_path / "o", benchmark=str(BENCHMARK), models=["tiny-random", name], limit=2, backend_factory=calls))
    assert calls.prompts == [] and not (tmp_path / "o").exists()
    assert "\n" not in str(info.value)


def test_reward_models_report_accuracy_and_margin_by_kind_and_condition(tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from mapl_cli.models import resolve_model
    from mapl_cli.pairs import read_pairs
    from tests.train_fixtures import write_pairs

    tiny = str(resolve_model("tiny-random"))
    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_pretrained(tiny, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    rm.config.pad_token_id = tokenizer.pad_token_id
    rm.save_pretrained(tmp_path / "rm" / "model")
    tokenizer.save_pretrained(tmp_path / "rm" / "model")
    pairs = write_pairs(tmp_path / "pairs.parquet", n_sources=4)
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--reward-model", str(tmp_path / "rm"), "--pairs", str(pairs), "--output", str(out), "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    got = json.loads((out / "summary.json").read_text())["reward_models"]["rm"]

    # Independent check: score each (prompt, response) alone, unpadded, with the model's own forward.
    def reward(messages, response):
        text = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": response}], tokenize=False)
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            return rm(**ids).logits[0, 0].item()

    table = read_pairs(pairs).to_pylist()
    for kind in ("standard", "intra", "inter"):
        margins = [reward(r["prompt_chosen"], r["response_chosen"]) - reward(r["prompt_rejected"], r["response_rejected"])
                   for r in table if r["kind"] == kind]
        assert got["by_kind"][kind]["n"] == len(margins)
        assert got["by_kind"][kind]["mean_margin"] == pytest.approx(sum(margins) / len(margins), abs=1e-4)
        assert got["by_kind"][kind]["accuracy"] == sum(m > 0 for m in margins) / len(margins)
    assert set(got["by_condition"]) <= {"intra/all_vs_notall", "intra/some_vs_none"} and got["by_condition"]
    assert "Reward models" in (out / "report.md").read_text()
    assert (out / "reward_accuracy.png").read_bytes().startswith(PNG)

    # the same reward model twice: both scored, compared pair by pair, no difference and no evidence of one
    result = runner.invoke(app, ["evaluate", "--reward-model", str(tmp_path / "rm"), "--reward-model", str(tmp_path / "rm"),
                                 "--pairs", str(pairs), "--output", str(tmp_path / "twice"), "--bootstrap", "500"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "twice" / "summary.json").read_text())
    assert list(summary["reward_models"]) == ["rm", "rm#2"]
    overall = summary["reward_comparisons"]["rm#2"]["overall"]
    assert overall["diff"] == 0 and overall["mcnemar"]["p_value"] == 1.0 and not overall["significant"]
    assert set(summary["reward_comparisons"]["rm#2"]) >= {"overall", "standard", "intra", "inter"}
    assert "Δ accuracy" in result.stdout


def test_lora_reward_model_adapters_are_scored_with_their_trained_head(tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from mapl_cli.evaluation.reward import evaluate_reward_models
    from mapl_cli.models import resolve_model
    from mapl_cli.pairs import read_pairs
    from tests.train_fixtures import write_pairs

    tiny = str(resolve_model("tiny-random"))
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    torch.manual_seed(1)
    base = AutoModelForSequenceClassification.from_pretrained(tiny, num_labels=1)
    base.config.pad_token_id = tokenizer.pad_token_id
    model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="SEQ_CLS", init_lora_weights=False))
    with torch.no_grad():  # a trained-looking head, far from any fresh initialisation
        model.base_model.model.score.modules_to_save["default"].weight.normal_(0, 5.0)
    model.save_pretrained(tmp_path / "rm" / "model")
    tokenizer.save_pretrained(tmp_path / "rm" / "model")
    pairs = write_pairs(tmp_path / "pairs.parquet", n_sources=2)
    got = evaluate_reward_models([str(tmp_path / "rm")], str(pairs), batch_size=4, device="cpu")["models"]["rm"]

    model.eval()

    def reward(messages, response):
        text = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": response}], tokenize=False)
        with torch.no_grad():
            return model(**tokenizer(text, add_special_tokens=False, return_tensors="pt")).logits[0, 0].item()

    margins = [reward(r["prompt_chosen"], r["response_chosen"]) - reward(r["prompt_rejected"], r["response_rejected"])
               for r in read_pairs(pairs).to_pylist()]
    assert got["overall"]["n"] == len(margins)
    assert got["overall"]["mean_margin"] == pytest.approx(sum(margins) / len(margins), abs=1e-3)
    assert abs(got["overall"]["mean_margin"]) > 1e-3  # the head is not a no-op


def test_shards_merged_equal_the_unsharded_run(tmp_path):
    def config(out, **kw):
        return EvaluateConfig(output=out, benchmark=str(BENCHMARK), models=["tiny-random"], limit=11, chunk_size=3,
                              backend_factory=lambda m: DummyBackend(m, respond=lambda msgs: msgs[-1]["content"].lower()), **kw)

    whole = run(config(tmp_path / "whole"))
    for i in range(3):
        run(config(tmp_path / f"shard{i}", shard=(i, 3)))
    sizes = [len((tmp_path / f"shard{i}" / "results.jsonl").read_text().splitlines()) for i in range(3)]
    assert sizes == [3, 4, 4]
    merged = run(EvaluateConfig(output=tmp_path / "merged", merge=[str(tmp_path / f"shard{i}") for i in (2, 0, 1)]))
    assert merged["models"]["tiny-random"] == whole["models"]["tiny-random"]
    keys = [r["key"] for r in pq.read_table(tmp_path / "merged" / "results.parquet").to_pylist()]
    assert keys == [r.key for r in read_benchmark(BENCHMARK)[:11]]
    with pytest.raises(MaplError, match="need 0 <= I < N"):
        run(config(tmp_path / "bad", shard=(3, 3)))
