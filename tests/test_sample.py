"""`mapl sample`: n responses per prompt, labelled by the instruction registry, and the preference pairs they
give, in synthesize's input format.

    .venv/bin/pytest tests/test_sample.py -q

The CLI test runs sample -> synthesize -> train-dpo -> evaluate on tiny-random; labelling, pair choice, resume and the
one-line errors use the dummy backend with hand-written responses; the hf backend's sampling is checked for
determinism, and the vLLM path against a fake `vllm` module.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mapl_cli.cli import app
from mapl_cli.errors import Interrupted
from mapl_cli.generation.base import Completion, DummyBackend, SamplingConfig
from mapl_cli.instructions import check_all
from mapl_cli.sampling.labels import ALL_TIED, choose_pairs
from mapl_cli.sampling.run import SampleConfig, run

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = ROOT / "examples" / "eval_benchmark.jsonl"
BASE_PROMPTS = ROOT / "examples" / "eval_prompts.jsonl"
PREFS = ROOT / "examples" / "prefs.jsonl"
USER = [{"role": "user", "content": "Say hi."}]


def mapl(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---- the whole loop through the CLI --------------------------------------------------------------------------


def test_sample_then_synthesize_then_train_dpo_then_evaluate_on_tiny_random(tmp_path):
    out = tmp_path / "samples"
    result = mapl("sample", BENCHMARK, "--model", "tiny-random", "--backend", "hf", "--n", 4, "--max-new-tokens", 8,
                  "--limit", 16, "--batch-size", 8, "--output", out, "--quiet")
    assert result.exit_code == 0, result.output
    samples = pq.read_table(out / "samples.parquet").to_pylist()
    prefs = pq.read_table(out / "prefs.parquet").to_pylist()
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert len(samples) == 64 and counts["samples"] == 64 and counts["prompts"] == 16
    assert sorted({s["sample_index"] for s in samples}) == [0, 1, 2, 3]
    assert {s["finish_reason"] for s in samples} <= {"stop", "length"}
    assert counts["pairs"] == len(prefs) > 0 and counts["ties_dropped"] + len(prefs) == 16
    for s in samples:  # every verdict is the registry's
        ids = [i["id"] for i in s["instructions"]]
        kwargs = [json.loads(i["kwargs"]) for i in s["instructions"]]
        expected = check_all(s["response"], ids, kwargs) if s["response"].strip() else [False] * len(ids)
        assert s["verdicts"] == expected and s["n_satisfied"] == sum(expected)
    for p in prefs:
        assert sum(p["verdicts_chosen"]) > sum(p["verdicts_rejected"])

    assert mapl("synthesize", out / "prefs.parquet", "--output", tmp_path / "syn", "--quiet").exit_code == 0
    pairs = pq.read_table(tmp_path / "syn" / "pairs.parquet")
    assert pairs.column("kind").to_pylist().count("standard") == len(prefs)
    result = mapl("train-dpo", tmp_path / "syn", "--output", tmp_path / "dpo", "--model", "tiny-random",
                  "--max-steps", 2, "--batch-size", 2, "--warmup-steps", 0, "--max-length", 256, "--no-progress")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "dpo" / "model" / "config.json").exists()

    # the policy trained on its own samples is scored on prompts it was not sampled on (rows 17-20)
    held_out = _write_jsonl(tmp_path / "held_out.jsonl", [json.loads(line) for line in BENCHMARK.read_text().splitlines()[16:20]])
    result = mapl("evaluate", "--benchmark", held_out, "--model", tmp_path / "dpo", "--backend", "hf", "--device", "cpu",
                  "--max-new-tokens", 8, "--batch-size", 4, "--bootstrap", 0, "--output", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    [scores] = summary["models"].values()
    assert scores["n_prompts"] == 4 and all(0 <= scores[m] <= 1 for m in summary["metrics"])
    trained = {i["id"] for r in pairs.to_pylist() if r["kind"] != "standard"
               for i in r["instructions_chosen"] + r["instructions_rejected"]}  # fmt: skip
    assert set(summary["seen_ids"]["ids"]) == trained  # read back from train-dpo's manifest and its pairs


# ---- labels and pairs, with hand-written responses -----------------------------------------------------------

#: Two instructions (no commas; all lowercase); the number each response satisfies, worked out by hand.
HAND = {0: ("all lowercase and no comma here", 2), 1: ("Has Capitals, and a comma", 0),
        2: ("lowercase, with a comma", 1), 3: ("", 0)}


def _hand_benchmark(tmp_path: Path) -> Path:
    rows = [{"key": 1, "prompt": "Write something.", "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"], "kwargs": [{}, {}]},
            {"key": 2, "prompt": "Tie me.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}]  # fmt: skip
    return _write_jsonl(tmp_path / "bench.jsonl", rows)


def _hand(messages, j):
    if messages[-1]["content"].startswith("Tie"):
        return Completion(f"no comma {j}", "length")
    return HAND[j][0]


def test_labels_are_the_registrys_and_pairs_go_from_most_to_fewest_satisfied(tmp_path):
    config = SampleConfig(prompts=str(_hand_benchmark(tmp_path)), output=tmp_path / "out", pairs_per_prompt=3,
                          progress=False, backend_factory=lambda model: DummyBackend(model, respond_n=_hand))
    manifest = run(config)
    samples = pq.read_table(tmp_path / "out" / "samples.parquet").to_pylist()
    first = [s for s in samples if s["key"] == "1"]
    assert [s["n_satisfied"] for s in first] == [HAND[j][1] for j in range(4)]
    assert first[0]["verdicts"] == [True, True] and first[2]["verdicts"] == [False, True]
    assert first[3]["verdicts"] == [False, False]  # an empty response satisfies nothing
    assert [s["finish_reason"] for s in samples if s["key"] == "2"] == ["length"] * 4
    prefs = pq.read_table(tmp_path / "out" / "prefs.parquet").to_pylist()
    # widest margin first (2 vs 0), then the margin-1 pairs; the empty response is never a side
    assert [(p["chosen"], p["rejected"]) for p in prefs][0] == (HAND[0][0], HAND[1][0])
    assert {(p["chosen"], p["rejected"]) for p in prefs[1:]} == {(HAND[0][0], HAND[2][0]), (HAND[2][0], HAND[1][0])}
    counts = manifest["counts"]
    assert counts["pairs"] == 3 and counts["ties_dropped"] == 1 and counts["prompts"] == 2
    assert counts["mean_satisfied_rate"] == pytest.approx((1 + 0 + 0.5 + 0 + 4 * 1) / 8)


def test_ties_inside_the_top_and_bottom_groups_are_broken_by_the_seed():
    responses, satisfied = ["a", "b", "c", "d"], [1, 1, 0, 0]
    picks = {choose_pairs("k", responses, satisfied, 1, seed)[0][0] for seed in range(20)}
    assert picks <= {(0, 2), (0, 3), (1, 2), (1, 3)} and len(picks) > 1
    assert choose_pairs("k", responses, satisfied, 1, 5) == choose_pairs("k", responses, satisfied, 1, 5)
    assert choose_pairs("k", responses, [2, 2, 2, 2], 1, 0) == ([], ALL_TIED)


def test_base_prompts_get_the_instructions_build_benchmark_draws(tmp_path):
    from mapl_cli.benchmark import build_rows, read_base_prompts

    config = SampleConfig(prompts=str(BASE_PROMPTS), output=tmp_path / "out", k_min=1, k_max=3, seed=4, limit=5,
                          n=2, progress=False, backend_factory=lambda model: DummyBackend(model))
    run(config)
    samples = pq.read_table(tmp_path / "out" / "samples.parquet").to_pylist()
    expected = build_rows(read_base_prompts(BASE_PROMPTS)[:5], k_min=1, k_max=3, seed=4)
    got = {s["key"]: s for s in samples if s["sample_index"] == 0}
    for row in expected:
        assert got[str(row.key)]["prompt"] == [{"role": "user", "content": row.prompt}]
        assert [i["id"] for i in got[str(row.key)]["instructions"]] == row.instruction_id_list
        assert all(i["text"] and i["text"] in row.prompt for i in got[str(row.key)]["instructions"])
        assert got[str(row.key)]["base_prompt"][0]["content"] in row.prompt


# ---- backends ------------------------------------------------------------------------------------------------


def test_hf_sampling_is_deterministic_for_a_seed():
    from mapl_cli.generation.hf import HFBackend

    backend = HFBackend("tiny-random", batch_size=2)
    prompts = [USER, [{"role": "user", "content": "A longer prompt, to pad the batch."}], USER]
    sampling = SamplingConfig(max_new_tokens=6, temperature=1.0, seed=3)
    first = backend.sample(prompts, sampling, n=3)
    assert [len(samples) for samples in first] == [3, 3, 3]
    assert backend.sample(prompts, sampling, n=3) == first
    assert backend.sample(prompts, SamplingConfig(max_new_tokens=6, temperature=1.0, seed=4), n=3) != first
    assert all(c.finish_reason in ("stop", "length") for samples in first for c in samples)
    assert len({c.text for c in first[0]}) > 1  # n different samples, not one repeated
    assert isinstance(backend.generate(prompts, SamplingConfig(max_new_tokens=3))[0], str)


@pytest.fixture
def fake_vllm(monkeypatch):
    """A `vllm` module whose chat returns n outputs per prompt, each with a finish reason."""
    seen = types.SimpleNamespace(sampling=[])

    class SamplingParams:
        def __init__(self, **kwargs):
            seen.sampling.append(kwargs)
            self.n = kwargs["n"]

    class LLM:
        def __init__(self, **kwargs):
            pass

        def chat(self, messages, sampling_params=None, use_tqdm=True, lora_request=None, chat_template_kwargs=None):
            reasons = ["stop", "length", None]
            return [types.SimpleNamespace(outputs=[
                types.SimpleNamespace(text=f"{m[-1]['content']} {j}", finish_reason=reasons[j % 3])
                for j in range(sampling_params.n)]) for m in messages]  # fmt: skip

    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = LLM, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    return seen


def test_vllm_samples_n_per_prompt_through_sampling_params(fake_vllm):
    from mapl_cli.generation import get_backend

    backend = get_backend("vllm", model="tiny-random")
    out = backend.sample([USER, [{"role": "user", "content": "B"}]], SamplingConfig(max_new_tokens=7, temperature=0.8, seed=5), n=3)
    assert fake_vllm.sampling == [{"n": 3, "temperature": 0.8, "top_p": 1.0, "max_tokens": 7, "seed": 5}]
    assert [[c.text for c in s] for s in out] == [["Say hi. 0", "Say hi. 1", "Say hi. 2"], ["B 0", "B 1", "B 2"]]
    assert [c.finish_reason for c in out[0]] == ["stop", "length", "stop"]


# ---- resume, shards, errors ----------------------------------------------------------------------------------


def test_resume_after_an_interruption_writes_what_an_uninterrupted_run_writes(tmp_path):
    def config(out, factory, **extra):
        return SampleConfig(prompts=str(BENCHMARK), output=out, limit=5, chunk_size=2, progress=False,
                            backend_factory=factory, **extra)

    run(config(tmp_path / "whole", lambda model: DummyBackend(model)))

    class Breaks(DummyBackend):
        def sample(self, prompts, sampling, n, progress=None):
            if len(self.calls) == 1:  # the second chunk
                raise KeyboardInterrupt
            return super().sample(prompts, sampling, n, progress)

    with pytest.raises(Interrupted, match="--resume continues"):
        run(config(tmp_path / "cut", lambda model: Breaks(model)))
    assert not (tmp_path / "cut" / "samples.parquet").exists()
    assert len((tmp_path / "cut" / "samples.jsonl").read_text().splitlines()) == 2
    again = DummyBackend()
    run(config(tmp_path / "cut", lambda model: again, resume=True))
    assert sum(len(prompts) for prompts, _ in again.calls) == 3  # only the chunks not journalled
    for name in ("samples.parquet", "prefs.parquet"):
        assert pq.read_table(tmp_path / "cut" / name).equals(pq.read_table(tmp_path / "whole" / name))
    with pytest.raises(Exception, match="different settings"):
        run(config(tmp_path / "cut", lambda model: DummyBackend(model), resume=True, n=3))


def test_shards_are_contiguous_slices(tmp_path):
    keys = []
    for index in range(2):
        run(SampleConfig(prompts=str(BENCHMARK), output=tmp_path / str(index), limit=5, shard=(index, 2),
                         progress=False, backend_factory=lambda model: DummyBackend(model)))
        keys += [s["key"] for s in pq.read_table(tmp_path / str(index) / "samples.parquet").to_pylist() if s["sample_index"] == 0]
    assert keys == ["1", "2", "3", "4", "5"]


@pytest.mark.parametrize(
    ("prompts", "extra", "message"),
    [
        ("empty", [], "no prompts"),
        (BASE_PROMPTS, [], "prompts carry no instructions; give --k-min/--k-max"),
        (PREFS, [], "prompts carry no instructions; give --k-min/--k-max"),
        (BENCHMARK, ["--n", "1"], "--n 1: a pair needs two responses"),
        (BENCHMARK, ["--k-max", "2"], "carry their instructions already"),
    ],
)
def test_bad_inputs_end_with_one_line(tmp_path, prompts, extra, message):
    if prompts == "empty":
        prompts = tmp_path / "empty.jsonl"
        prompts.write_text("")
    result = mapl("sample", prompts, "--model", "tiny-random", "--output", tmp_path / "out", *extra)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "out").exists()


def test_a_preference_files_prompts_get_instructions_on_their_last_user_turn(tmp_path):
    run(SampleConfig(prompts=str(PREFS), output=tmp_path / "out", k_min=2, k_max=2, limit=3, n=2, progress=False,
                     backend_factory=lambda model: DummyBackend(model)))
    samples = [s for s in pq.read_table(tmp_path / "out" / "samples.parquet").to_pylist() if s["sample_index"] == 0]
    originals = [json.loads(line) for line in PREFS.read_text().splitlines()[:3]]
    assert [s["key"] for s in samples] == [row["id"] for row in originals]
    for sample, row in zip(samples, originals, strict=True):
        assert sample["base_prompt"] == [{"role": "user", "content": row["prompt"]}]
        assert sample["prompt"][-1]["content"].startswith(row["prompt"].rstrip() + "\n\n")
        assert len(sample["instructions"]) == 2


def test_a_failed_force_run_leaves_the_earlier_run_as_it_was(tmp_path):
    from mapl_cli.errors import MaplError

    out = tmp_path / "out"
    run(SampleConfig(prompts=str(BENCHMARK), output=out, limit=4, chunk_size=2, progress=False,
                     backend_factory=lambda model: DummyBackend(model)))
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    class Fails(DummyBackend):
        def sample(self, prompts, sampling, n, progress=None):
            if self.calls:
                raise MaplError("the disk is full")
            return super().sample(prompts, sampling, n, progress)

    with pytest.raises(MaplError, match="disk is full"):
        run(SampleConfig(prompts=str(BENCHMARK), output=out, limit=4, chunk_size=2, n=3, force=True,
                         progress=False, backend_factory=lambda model: Fails(model)))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging folder, nothing changed
    run(SampleConfig(prompts=str(BENCHMARK), output=out, limit=4, n=3, force=True, progress=False,
                     backend_factory=lambda model: DummyBackend(model)))
    assert pq.read_table(out / "samples.parquet").num_rows == 12
    assert sorted(p.name for p in out.iterdir()) == sorted(before)
