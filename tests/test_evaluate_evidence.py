"""`mapl evaluate` on the field's own data and with evidence: IFEval's published rows with non-letter
"letters", string keys, instructions that are not scored, paired comparisons, seen/unseen splits, reasoning
traces, and lm-eval-compatible generation settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mapl_cli.benchmark import read_benchmark
from mapl_cli.cli import app
from mapl_cli.errors import MaplError
from mapl_cli.evaluation.evaluate import EvaluateConfig, run, split_reasoning
from mapl_cli.generation.base import DummyBackend, SamplingConfig
from mapl_cli.instructions import get_instruction
from mapl_cli.instructions.base import CheckOnlyInstruction

ROOT = Path(__file__).resolve().parents[1]
IFEVAL_ROWS = ROOT / "tests/assets/ifeval_nonletter_rows.jsonl"  # keys 1122 and 1129 of IFEval's input_data.jsonl
BENCHMARK = ROOT / "examples/eval_benchmark.jsonl"
runner = CliRunner()

#: Every argument name IFEval uses: the hub copy of IFEval lists them all in every kwargs dict, mostly null.
IFEVAL_ARG_NAMES = [
    "num_highlights", "relation", "num_words", "num_placeholders", "prompt_to_repeat", "num_paragraphs",
    "first_word", "nth_paragraph", "keywords", "forbidden_words", "keyword", "frequency", "num_sentences",
    "postscript_marker", "num_bullets", "section_spliter", "num_sections", "capital_relation",
    "capital_frequency", "end_phrase", "language", "let_relation", "letter", "let_frequency",
]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---- IFEval as published -----------------------------------------------------------------------------------


def test_ifeval_rows_with_non_letter_letters_load_in_both_published_forms(tmp_path):
    rows = read_benchmark(IFEVAL_ROWS)
    assert [r.key for r in rows] == [1122, 1129]
    assert rows[0].kwargs[1] == {"let_relation": "at least", "letter": "#", "let_frequency": 4}
    # the hub copy: every argument name present, unused ones null
    hub = []
    for line in IFEVAL_ROWS.read_text().splitlines():
        raw = json.loads(line)
        raw["kwargs"] = [{**dict.fromkeys(IFEVAL_ARG_NAMES), **k} for k in raw["kwargs"]]
        hub.append(raw)
    assert [r.kwargs for r in read_benchmark(_write_jsonl(tmp_path / "hub.jsonl", hub))] == [r.kwargs for r in rows]


@pytest.mark.parametrize(
    ("letter", "response", "expected", "why"),
    [
        ("#", "#one #two #three #four", True, "four '#' characters, counted literally"),
        ("#", "#one #two #three four", False, "three '#'"),
        ("!", "wow! great! yes! sure! fine! done!", True, "six '!'"),
        ("!", "wow! great! yes! sure! fine. done.", False, "four '!'"),
        ("a", "A banana", True, "letters still count case-insensitively: A, a, a, a"),
    ],
)
def test_letter_frequency_counts_a_non_letter_literally(letter, response, expected, why):
    n = 6 if letter == "!" else 4
    kwargs = {"letter": letter, "let_frequency": n, "let_relation": "at least"}
    assert get_instruction("keywords:letter_frequency").check(response, kwargs) is expected, why


def test_ifeval_rows_score_end_to_end(tmp_path):
    rows = read_benchmark(IFEVAL_ROWS)
    pitch = rows[1].kwargs[1]["prompt_to_repeat"] + " Try it! Love it! Buy it! Now! Really! Yes!"
    responses = _write_jsonl(tmp_path / "answers.jsonl", [
        {"key": 1122, "response": "new issue out now #playboy #style #weekend #mood"},
        {"key": 1129, "response": pitch},
    ])
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--benchmark", str(IFEVAL_ROWS), "--responses", str(responses), "--output", str(out)])
    assert result.exit_code == 0, result.output
    table = {r["key"]: r for r in pq.read_table(out / "results.parquet").to_pylist()}
    assert table[1122]["strict"][1] is True  # four '#'
    assert table[1129]["strict"] == [True, True]  # the prompt repeated first, and '!' 6 + 1 (from the prompt) times


def test_a_whitespace_or_multi_character_letter_is_still_refused(tmp_path):
    for letter in (" ", "ab", ""):
        row = {"key": 1, "prompt": "p", "instruction_id_list": ["keywords:letter_frequency"],
               "kwargs": [{"letter": letter, "let_frequency": 2, "let_relation": "at least"}]}
        with pytest.raises(MaplError, match="'letter' must be a single character"):
            read_benchmark(_write_jsonl(tmp_path / "b.jsonl", [row]))


def test_string_keys_are_accepted_and_matched(tmp_path):
    rows = [{"key": str(i), "prompt": f"Prompt {i}.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]} for i in range(3)]
    bench = _write_jsonl(tmp_path / "b.jsonl", rows)
    assert [r.key for r in read_benchmark(bench)] == ["0", "1", "2"]
    answers = _write_jsonl(tmp_path / "a.jsonl", [{"key": "1", "response": "no commas"}, {"key": "0", "response": "a, b"}])
    summary = run(EvaluateConfig(output=tmp_path / "out", benchmark=str(bench), responses=[str(answers)]))
    assert summary["models"]["a"]["n_prompts"] == 2 and summary["models"]["a"]["prompt_level_strict_acc"] == 0.5
    mixed = rows + [{**rows[0], "key": 7}]
    with pytest.raises(MaplError, match="not of the same kind"):
        read_benchmark(_write_jsonl(tmp_path / "mixed.jsonl", mixed))


def test_a_second_response_for_the_same_prompt_is_an_error(tmp_path):
    answers = _write_jsonl(tmp_path / "a.jsonl", [{"key": 1122, "response": "x"}, {"key": 1122, "response": "y"}])
    with pytest.raises(MaplError, match="line 2: a second response for benchmark key 1122"):
        run(EvaluateConfig(output=tmp_path / "out", benchmark=str(IFEVAL_ROWS), responses=[str(answers)]))


# ---- instructions that cannot be scored ---------------------------------------------------------------------


class _Unscorable(CheckOnlyInstruction):
    id = "test:needs_data"
    not_scored = "needs a model that is not available offline"

    def _check(self, response, args):  # pragma: no cover - never called
        raise AssertionError("a not-scored type must never be checked")


def test_not_scored_instructions_are_reported_and_never_counted_as_failures(tmp_path, monkeypatch):
    from mapl_cli import instructions

    monkeypatch.setitem(instructions.CHECK_ONLY, _Unscorable.id, _Unscorable())
    rows = [
        {"key": 1, "prompt": "a", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
        {"key": 2, "prompt": "b", "instruction_id_list": ["punctuation:no_comma", "test:needs_data"], "kwargs": [{}, {}]},
        {"key": 3, "prompt": "c", "instruction_id_list": ["test:needs_data"], "kwargs": [{}]},
    ]
    bench = _write_jsonl(tmp_path / "b.jsonl", rows)
    answers = _write_jsonl(tmp_path / "a.jsonl", [{"key": k, "response": "no commas here"} for k in (1, 2, 3)])
    out = tmp_path / "out"
    summary = run(EvaluateConfig(output=out, benchmark=str(bench), responses=[str(answers)]))["models"]["a"]
    # instruction level: the two no_comma instructions, both followed; prompt level: prompt 1 only
    assert summary["inst_level_strict_acc"] == 1.0 and summary["n_instructions_scored"] == 2
    assert summary["prompt_level_strict_acc"] == 1.0 and summary["n_prompts_scored"] == 1
    assert summary["not_scored"] == {"test:needs_data": {"n": 2, "reason": _Unscorable.not_scored}}
    assert "test:needs_data" not in summary["by_instruction"]
    table = pq.read_table(out / "results.parquet").to_pylist()
    assert table[1]["strict"] == [True, None] and table[1]["prompt_strict"] is None
    report = (out / "report.md").read_text()
    assert "## Not scored" in report and _Unscorable.not_scored in report


# ---- paired comparisons -------------------------------------------------------------------------------------


def _two_response_files(tmp_path: Path) -> tuple[Path, Path]:
    rows = read_benchmark(BENCHMARK)[:40]
    plain = [{"key": r.key, "response": "Sure, here is my answer, with commas."} for r in rows]
    better = [{"key": r.key, "response": "sure here is my answer without commas"} for r in rows]
    return _write_jsonl(tmp_path / "plain.jsonl", plain), _write_jsonl(tmp_path / "better.jsonl", better)


def test_comparisons_give_intervals_and_p_values_in_summary_report_and_stdout(tmp_path):
    plain, better = _two_response_files(tmp_path)
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--benchmark", str(BENCHMARK), "--responses", str(plain), "--responses",
                                 str(better), "--limit", "40", "--bootstrap", "2000", "--output", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    comparison = summary["comparisons"]["better"]
    assert comparison["baseline"] == "plain" and comparison["n_prompts"] == 40 and comparison["resamples"] == 2000
    for metric in ("prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc"):
        entry = comparison[metric]
        assert entry["diff"] == pytest.approx(summary["models"]["better"][metric] - summary["models"]["plain"][metric])
        assert entry["ci_low"] <= entry["diff"] <= entry["ci_high"]
    mc = comparison["mcnemar"]["prompt_level_strict_acc"]
    assert 0 <= mc["p_value"] <= 1 and mc["baseline_only"] + mc["model_only"] >= 0
    assert "Δ prompt strict" in result.stdout and "95% paired bootstrap" in result.stdout
    assert "## Is the difference real?" in (out / "report.md").read_text()
    assert (out / "differences.png").read_bytes().startswith(b"\x89PNG")
    # the same seed gives the same intervals
    again = run(EvaluateConfig(output=tmp_path / "again", benchmark=str(BENCHMARK), responses=[str(plain), str(better)],
                               limit=40, bootstrap=2000))
    assert again["comparisons"] == json.loads(json.dumps(summary["comparisons"]))


def test_bootstrap_zero_turns_comparisons_off(tmp_path):
    plain, better = _two_response_files(tmp_path)
    summary = run(EvaluateConfig(output=tmp_path / "out", benchmark=str(BENCHMARK), responses=[str(plain), str(better)],
                                 limit=40, bootstrap=0))
    assert "comparisons" not in summary


# ---- seen and unseen instruction types ---------------------------------------------------------------------


def _synthesize(tmp_path: Path) -> Path:
    out = tmp_path / "pairs"
    done = subprocess.run([sys.executable, "-m", "mapl_cli.cli", "synthesize", str(ROOT / "examples/prefs.jsonl"),
                           "--output", str(out), "--quiet", "--workers", "1", "--limit", "20"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


def test_seen_and_unseen_types_from_a_training_manifest(tmp_path):
    from mapl_cli.evaluation.provenance import seen_instruction_ids

    pairs = _synthesize(tmp_path)
    table = pq.read_table(pairs / "pairs.parquet").to_pylist()
    intra_ids = {i["id"] for r in table if r["kind"] == "intra" for i in r["instructions_chosen"] + r["instructions_rejected"]}
    kept = json.loads((pairs / "manifest.json").read_text())["counts"]["kept_instructions_by_id"]
    assert seen_instruction_ids(pairs / "manifest.json")[0] == set(kept)
    train = tmp_path / "run"
    train.mkdir()
    manifest = {"stage": "train-dpo", "options": {"pairs": str(pairs), "lambda_intra": 1.0, "lambda_inter": 0.0}}
    (train / "manifest.json").write_text(json.dumps(manifest))
    assert seen_instruction_ids(train / "manifest.json")[0] == intra_ids  # inter rows had weight 0
    manifest["options"]["lambda_intra"] = 0.0
    (train / "manifest.json").write_text(json.dumps(manifest))
    assert seen_instruction_ids(train / "manifest.json")[0] == set()  # plain DPO saw no instruction

    plain, better = _two_response_files(tmp_path)
    out = tmp_path / "eval"
    summary = run(EvaluateConfig(output=out, benchmark=str(BENCHMARK), responses=[str(plain), str(better)], limit=40,
                                 bootstrap=0, train_manifests=[str(pairs / "manifest.json")]))
    split = summary["models"]["better"]["seen_unseen"]
    rows = read_benchmark(BENCHMARK)[:40]
    n_seen = sum(1 for r in rows for i in r.instruction_id_list if i in kept)
    assert split["seen"]["n_instructions"] == n_seen
    assert split["seen"]["n_instructions"] + split["unseen"]["n_instructions"] == sum(len(r.instruction_id_list) for r in rows)
    assert summary["seen_ids"]["ids"] == sorted(kept)
    assert "## Instruction types seen and not seen in training" in (out / "report.md").read_text()


def test_a_manifest_that_records_no_training_fails_with_one_line(tmp_path):
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps({"stage": "evaluate"}))
    plain, _ = _two_response_files(tmp_path)
    result = runner.invoke(app, ["evaluate", "--benchmark", str(BENCHMARK), "--responses", str(plain), "--limit", "40",
                                 "--train-manifest", str(bad), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and "records no training instructions" in result.output
    assert "Traceback" not in result.output


# ---- reasoning traces and generation settings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "answer", "why"),
    [
        ("plain answer", "plain answer", "no trace: unchanged"),
        ("<think>let me see</think>\n\nfinal answer", "final answer", "a whole trace is removed"),
        ("let me see</think>final", "final", "templates that open the trace in the prompt leave only </think>"),
        ("<think>still thinking when the tokens ran out", "", "an unclosed trace: no answer was given"),
        ("<think>a</think> b </think> c", "c", "the answer follows the last closing tag"),
    ],
)
def test_split_reasoning(response, answer, why):
    assert split_reasoning(response)[0] == answer, why


def test_reasoning_is_stripped_before_scoring_unless_turned_off(tmp_path):
    bench = _write_jsonl(tmp_path / "b.jsonl", [{"key": 1, "prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}])
    answers = _write_jsonl(tmp_path / "a.jsonl", [{"key": 1, "response": "<think>hmm, well, ok</think>no commas"}])
    stripped = run(EvaluateConfig(output=tmp_path / "on", benchmark=str(bench), responses=[str(answers)]))
    kept = run(EvaluateConfig(output=tmp_path / "off", benchmark=str(bench), responses=[str(answers)], strip_thinking=False))
    assert stripped["models"]["a"]["prompt_level_strict_acc"] == 1.0
    assert kept["models"]["a"]["prompt_level_strict_acc"] == 0.0
    record = pq.read_table(tmp_path / "on" / "results.parquet").to_pylist()[0]
    assert record["response"] == "no commas" and record["reasoning"] == "<think>hmm, well, ok</think>"


def test_system_prompt_and_template_kwargs_reach_the_backend(tmp_path):
    backends: list[DummyBackend] = []

    def factory(model):
        backends.append(DummyBackend(model))
        return backends[-1]

    sampling = SamplingConfig(max_new_tokens=8, chat_template_kwargs={"enable_thinking": False})
    run(EvaluateConfig(output=tmp_path / "out", benchmark=str(BENCHMARK), models=["tiny-random"], limit=2, backend_factory=factory,
                       sampling=sampling, system_prompt="Be brief."))
    [(prompts, used)] = backends[0].calls
    assert all(p[0] == {"role": "system", "content": "Be brief."} and p[1]["role"] == "user" for p in prompts)
    assert used.chat_template_kwargs == {"enable_thinking": False}


def test_hf_rendering_passes_template_kwargs():
    from mapl_cli.generation.hf import render_prompts

    class Tokenizer:
        chat_template = "{{ messages }}"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt, **kwargs):
            self.kwargs = kwargs
            return "text"

        def __call__(self, text, add_special_tokens):
            return {"input_ids": [1, 2]}

    tokenizer = Tokenizer()
    assert render_prompts(tokenizer, [[{"role": "user", "content": "x"}]], {"enable_thinking": False}) == [[1, 2]]
    assert tokenizer.kwargs == {"enable_thinking": False}


def test_lm_eval_preset_and_explicit_overrides(tmp_path):
    plain, _ = _two_response_files(tmp_path)
    base = ["evaluate", "--benchmark", str(BENCHMARK), "--responses", str(plain), "--limit", "40"]
    result = runner.invoke(app, [*base, "--preset", "lm-eval", "--output", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "a/summary.json").read_text())["sampling"]["max_new_tokens"] == 1280
    result = runner.invoke(app, [*base, "--preset", "lm-eval", "--max-new-tokens", "64", "--output", str(tmp_path / "b")])
    assert json.loads((tmp_path / "b/summary.json").read_text())["sampling"]["max_new_tokens"] == 64
    result = runner.invoke(app, [*base, "--output", str(tmp_path / "c")])
    assert json.loads((tmp_path / "c/summary.json").read_text())["sampling"]["max_new_tokens"] == 256


@pytest.mark.parametrize("value", ["{not json", "[1, 2]"])
def test_bad_chat_template_kwargs_fail_with_one_line(tmp_path, value):
    plain, _ = _two_response_files(tmp_path)
    result = runner.invoke(app, ["evaluate", "--benchmark", str(BENCHMARK), "--responses", str(plain),
                                 "--chat-template-kwargs", value, "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--chat-template-kwargs" in result.output and "Traceback" not in result.output


# ---- IFBench's types are scored, never drawn ----------------------------------------------------------------


def test_check_only_types_are_never_drawn(tmp_path):
    from mapl_cli import instructions

    assert instructions.CHECK_ONLY and not set(instructions.CHECK_ONLY) & set(instructions.all_ids())
    held_out = sorted(instructions.CHECK_ONLY)[0]
    for args in (["synthesize", str(ROOT / "examples/prefs.jsonl"), "--output", str(tmp_path / "p")],
                 ["build-benchmark", str(ROOT / "examples/eval_prompts.jsonl"), "--output", str(tmp_path / "b.jsonl")]):
        result = runner.invoke(app, [*args, "--include", held_out])
        assert result.exit_code == 2 and "held-out" in result.output, result.output
    inst = instructions.get_instruction(held_out)
    assert inst.generate([("Some response.", True)], __import__("random").Random(0)) is None


def test_resume_finds_a_moved_benchmark_by_its_content(tmp_path):
    # the same benchmark bytes at another path (a moved checkout, another node) are the same benchmark
    import shutil

    first, moved = tmp_path / "a" / "bench.jsonl", tmp_path / "b" / "bench.jsonl"
    for path in (first, moved):
        path.parent.mkdir()
        shutil.copy(IFEVAL_ROWS, path)
    answers = _write_jsonl(tmp_path / "r.jsonl", [{"key": 1122, "response": "#a #b #c #d"}])
    out = tmp_path / "out"
    run(EvaluateConfig(output=out, benchmark=str(first), responses=[str(answers)]))
    again = run(EvaluateConfig(output=out, benchmark=str(moved), responses=[str(answers)], resume=True))
    assert again["models"]["r"]["n_prompts"] == 1
    moved.write_text(moved.read_text().replace("hashtags", "tags"))
    with pytest.raises(MaplError, match="different settings"):
        run(EvaluateConfig(output=out, benchmark=str(moved), responses=[str(answers)], resume=True))
