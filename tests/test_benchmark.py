"""Benchmarks: reading IFEval-format rows with validation, and `mapl build-benchmark`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mapl_cli.benchmark import build_rows, read_base_prompts, read_benchmark
from mapl_cli.cli import app
from mapl_cli.errors import MaplError

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "examples" / "eval_prompts.jsonl"
SHIPPED = ROOT / "examples" / "eval_benchmark.jsonl"
runner = CliRunner()


def _build(tmp_path: Path, *args: str, name: str = "bench.jsonl") -> Path:
    out = tmp_path / name
    result = runner.invoke(app, ["build-benchmark", str(PROMPTS), "--output", str(out), *args])
    assert result.exit_code == 0, result.output
    return out


def test_build_is_deterministic_and_seed_dependent(tmp_path):
    a = _build(tmp_path, "--seed", "3", name="a.jsonl")
    b = _build(tmp_path, "--seed", "3", name="b.jsonl")
    c = _build(tmp_path, "--seed", "4", name="c.jsonl")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_shipped_benchmark_is_the_build_of_the_shipped_prompts(tmp_path):
    assert _build(tmp_path).read_bytes() == SHIPPED.read_bytes()
    assert len(read_base_prompts(PROMPTS)) >= 100


def test_rows_respect_k_range_are_conflict_free_and_valid_for_the_reference(tmp_path):
    from tests.nltk_offline import install

    install()  # the reference looks for NLTK's punkt_tab when imported, and would try to download it
    registry = pytest.importorskip("lm_eval.tasks.ifeval.instructions_registry")
    rows = read_benchmark(_build(tmp_path, "--k-min", "2", "--k-max", "5"))  # read_benchmark validates kwargs
    ks = {len(r.instruction_id_list) for r in rows}
    assert ks == {2, 3, 4, 5}
    for row in rows:
        ids = row.instruction_id_list
        assert len(set(ids)) == len(ids)
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:  # IFEval's own conflict table, independent of mapl's registry
                assert b not in registry.INSTRUCTION_CONFLICTS[a] and a not in registry.INSTRUCTION_CONFLICTS[b], (row.key, a, b)
        for iid, kwargs in zip(ids, row.kwargs, strict=True):
            checker = registry.INSTRUCTION_DICT[iid](iid)
            checker.build_description(**kwargs)  # the reference accepts every argument set
            assert checker.get_instruction_args() in (None, {}) or set(kwargs) == set(checker.get_instruction_args())


def test_include_and_exclude(tmp_path):
    only = ["punctuation:no_comma", "detectable_format:title", "startend:end_checker"]
    rows = read_benchmark(_build(tmp_path, "--include", ",".join(only), "--k-max", "3", name="inc.jsonl"))
    assert {i for r in rows for i in r.instruction_id_list} == set(only)
    rows = read_benchmark(_build(tmp_path, "--exclude", "punctuation:no_comma", "--exclude", "language:response_language", name="exc.jsonl"))
    used = {i for r in rows for i in r.instruction_id_list}
    assert "punctuation:no_comma" not in used and "language:response_language" not in used
    assert len(used) >= 20


def test_a_row_does_not_change_when_other_prompts_are_removed():
    prompts = read_base_prompts(PROMPTS)
    full = {r.key: r for r in build_rows(prompts, seed=1)}
    half = build_rows(prompts[::2], seed=1)
    assert all(full[r.key] == r for r in half)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--k-min", "4", "--k-max", "3"], "k-min"),
        (["--include", "punctuation:no_coma"], "did you mean 'punctuation:no_comma'"),
        # checked before any prompt is read: one type cannot fill a prompt of 2
        (["--include", "punctuation:no_comma", "--k-min", "2", "--k-max", "2"], "--k-max 2: at most 1 of the 1 usable"),
        # IFEval's conflict table lets at most 15 of its 25 types share a prompt
        (["--k-max", "16"], "--k-max 16: at most 15 of the 25 usable"),
        (["--include", "detectable_format:json_format,punctuation:no_comma", "--k-max", "2"], "at most 1 of the 2"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_build_bad_options_fail_with_one_line(tmp_path, args, message):
    result = runner.invoke(app, ["build-benchmark", str(PROMPTS), "--output", str(tmp_path / "x.jsonl"), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.jsonl").exists()


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "b.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


GOOD = {"key": 7, "prompt": "Write a poem.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({**GOOD, "instruction_id_list": ["punctuation:no_commas"]}, r"row 2 \(key 7\): unknown instruction id 'punctuation:no_commas'"),
        ({**GOOD, "instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": "ten", "relation": "at least"}]},
         r"row 2 \(key 7\): malformed kwargs: .*'num_words' must be an integer"),
        ({**GOOD, "instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": 10, "relation": "about"}]},
         r"row 2 \(key 7\): malformed kwargs: .*'relation'"),
        ({**GOOD, "instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": 10}]}, r"missing argument 'relation'"),
        ({**GOOD, "kwargs": [{"num_words": 10}]}, r"takes no argument 'num_words'"),
        ({**GOOD, "kwargs": [{}, {}]}, r"row 2 \(key 7\): 'kwargs' must be a list with one object per instruction"),
        ({**GOOD, "prompt": " "}, r"row 2 \(key 7\): 'prompt' must be a non-empty string"),
    ],
)
def test_bad_benchmark_rows_fail_naming_the_row(tmp_path, row, message):
    path = _write(tmp_path, [{**GOOD, "key": 1}, row])
    with pytest.raises(MaplError, match=message) as info:
        read_benchmark(path)
    assert "\n" not in str(info.value)


def test_ifeval_hub_copy_null_placeholders_are_accepted(tmp_path):
    # The HF copy of IFEval lists every argument name in every kwargs dict, most of them null.
    nulls = dict.fromkeys(["num_words", "relation", "keywords", "language", "end_phrase"])
    row = {"key": 1000, "prompt": "Write.", "instruction_id_list": ["length_constraints:number_words", "punctuation:no_comma"],
           "kwargs": [{**nulls, "num_words": 300, "relation": "less than"}, nulls]}
    [parsed] = read_benchmark(_write(tmp_path, [row]))
    assert parsed.kwargs == [{"num_words": 300, "relation": "less than"}, {}]


def test_duplicate_keys_and_bad_json_are_rejected(tmp_path):
    with pytest.raises(MaplError, match="duplicate key 7"):
        read_benchmark(_write(tmp_path, [GOOD, GOOD]))
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{not json\n")
    with pytest.raises(MaplError, match="line 2: not valid JSON"):
        read_benchmark(path)


def test_hub_benchmark_offline_says_how_to_use_a_local_copy(tmp_path):
    import os
    import subprocess
    import sys

    # A fresh process, so the offline switch is read when huggingface_hub is first imported.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "mapl_cli", "evaluate", "--benchmark", "hf://google/IFEval", "--responses", "r.jsonl", "--output", str(tmp_path / "o")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "hf://google/IFEval" in line and "pass its local path instead" in line


def test_every_ifeval_id_is_in_the_registry_and_draws_arguments_it_accepts():
    import random

    from mapl_cli.benchmark import instruction_pool, validate_kwargs
    from mapl_cli.instructions import REGISTRY

    assert len(REGISTRY) == 25 and instruction_pool() == list(REGISTRY)
    rng = random.Random(0)
    for iid, instruction in REGISTRY.items():
        validate_kwargs(iid, instruction.draw("Base prompt.", rng))


@pytest.mark.parametrize(
    "instruction_id, kwargs, message",
    [
        ("keywords:frequency", {"keyword": "river", "frequency": 0, "relation": "at least"},
         "keywords:frequency argument 'frequency' must be an integer >= 1, got 0"),
        ("keywords:frequency", {"keyword": "river", "frequency": True, "relation": "at least"},
         "keywords:frequency argument 'frequency' must be an integer >= 1, got True"),
        ("keywords:frequency", {"keyword": " ", "frequency": 2, "relation": "at least"},
         "keywords:frequency argument 'keyword' must be a non-empty string, got ' '"),
        ("keywords:existence", {"keywords": []}, "keywords:existence argument 'keywords' must be a non-empty list of strings, got []"),
        ("length_constraints:number_words", {"num_words": 50, "relation": "at most"},
         "length_constraints:number_words argument 'relation' must be one of ('less than', 'at least'), got 'at most'"),
        ("keywords:letter_frequency", {"letter": "ab", "let_frequency": 2, "let_relation": "less than"},
         "keywords:letter_frequency argument 'letter' must be a single character, got 'ab'"),
        ("punctuation:no_comma", {"count": 1}, "punctuation:no_comma takes no argument 'count' (it takes: none)"),
        ("detectable_format:multiple_sections", {"num_sections": 3},
         "detectable_format:multiple_sections is missing argument 'section_spliter'"),
        ("count:word_count_range", {"min_words": "x", "max_words": 5},
         "kwargs {'min_words': 'x', 'max_words': 5} rejected by count:word_count_range: instruction "
         "'count:word_count_range': argument 'min_words' must be an integer, got 'x'"),
    ],
)
def test_each_instruction_type_judges_its_benchmark_arguments(instruction_id, kwargs, message):
    from mapl_cli.benchmark import validate_kwargs

    with pytest.raises(ValueError) as info:
        validate_kwargs(instruction_id, kwargs)
    assert str(info.value) == message


def test_null_placeholders_are_dropped_and_unscored_types_keep_their_arguments():
    from mapl_cli.benchmark import validate_kwargs
    from mapl_cli.instructions import CHECK_ONLY

    args = {"num_words": 300, "relation": "less than", "keywords": None}
    assert validate_kwargs("length_constraints:number_words", args) == {"num_words": 300, "relation": "less than"}
    unscored = next(i for i, inst in CHECK_ONLY.items() if inst.not_scored)
    assert validate_kwargs(unscored, {"anything": object}) == {"anything": object}  # never checked, never read


def test_check_only_types_draw_no_benchmark_arguments():
    import random

    from mapl_cli.instructions import get_instruction

    with pytest.raises(MaplError, match="build-benchmark cannot choose arguments for 'count:word_count_range'"):
        get_instruction("count:word_count_range").draw("Base prompt.", random.Random(0))


def test_build_benchmark_draws_from_ifevals_ids_in_ifevals_order():
    """The default pool's order fixes what a seed gives (a shuffle of it picks each prompt's types): it is the
    order of IFEval's own registry, which `REGISTRY` follows."""
    from mapl_cli.benchmark import instruction_pool
    from tests.nltk_offline import install

    install()  # the reference looks for punkt_tab when imported and would download it
    registry = pytest.importorskip("lm_eval.tasks.ifeval.instructions_registry")
    assert instruction_pool() == list(registry.INSTRUCTION_DICT)
