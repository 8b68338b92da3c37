"""Hostile input for `mapl train-rm` and `mapl train-dpo`, run through the CLI as a user runs it: bad options,
bad models, bad pairs, output folders in every state, `--force` over a finished run, `--resume` with changed
options, crafted checkpoints, a full disk and Ctrl-C. Each case checks the exit status, exactly one
`mapl: error:` line naming the problem, no traceback, and the output folder before and after.

    pytest tests/test_hostile_train.py

Two finished runs (one per command, tiny-random with LoRA rank 2, 2 steps, a checkpoint at each step) are
made once per module; a case that needs one works on its own copy.
"""

import json
import os
import shutil
import signal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file, save_file

from mapl_cli.models import resolve_model
from tests.hostile import (
    assert_one_line_error,
    file_size_limit,
    leftovers,
    run_and_signal,
    run_mapl,
    snapshot,
)
from tests.train_fixtures import write_pairs

# about 50 training runs, each a fresh `mapl` process (half of the whole suite's time): the slow tier
# (make test-slow); tests/test_train.py keeps the one-line errors and refusals in the fast tier
pytestmark = pytest.mark.slow

COMMON = ["--model", "tiny-random", "--batch-size", "2", "--lr", "1e-3", "--warmup-steps", "0", "--no-progress"]
FINISHED = ["--lora-r", "2", "--max-steps", "2", "--save-every", "1"]  # the options the finished runs used


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile-train")


@pytest.fixture(scope="module")
def env(root):
    """A private cache (reference log-probs) that reuses the built tiny-random model."""
    cache = root / "cache"
    cache.mkdir()
    tiny = resolve_model("tiny-random")
    (cache / tiny.name).symlink_to(tiny)
    return {"MAPL_CACHE": str(cache), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def pairs(root):
    return write_pairs(root / "pairs.parquet", n_sources=2)  # 6 rows: 3 steps of 2 per epoch


@pytest.fixture(scope="module")
def finished(root, env, pairs):
    """{"dpo": folder, "rm": folder}: finished runs, made once."""
    runs = {}
    for stage in ("dpo", "rm"):
        out = root / f"finished-{stage}"
        result = run_mapl([f"train-{stage}", str(pairs), *COMMON, *FINISHED, "--output", str(out)], env=env)
        assert result.code == 0, result.stderr[-3000:]
        runs[stage] = out
    return runs


@pytest.fixture(scope="module")
def bad_models(root):
    """Copies of the tiny-random folder, each broken in one way."""
    tiny = resolve_model("tiny-random")
    folders = {}
    for name in ("truncated", "config", "tokenizer"):
        folder = root / f"model-{name}"
        shutil.copytree(tiny, folder)
        folders[name] = folder
    weights = folders["truncated"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (folders["config"] / "config.json").write_text("{not json")
    (folders["tokenizer"] / "tokenizer.json").write_text("garbage{")
    return folders


def _copy(run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out, snapshot(out)


def _assert_unchanged(out, before):
    """The folder holds exactly what it held before, nothing partial, and no staging folder beside it."""
    assert snapshot(out) == before
    assert leftovers(out) == []
    assert not (out.parent / f".{out.name}.mapl-force").exists()


def _train(stage, pairs, out, *extra):
    return [f"train-{stage}", str(pairs), *COMMON, "--output", str(out), *extra]


# --- options: checked before anything is read, loaded or replaced (here: --force over a finished run) -------

OPTION_CASES = [
    ("dpo", ["--lr", "nan"], "--lr"),
    ("dpo", ["--lr", "0"], "--lr"),
    ("rm", ["--lr", "-1e-5"], "--lr"),
    ("rm", ["--lr", "1e39"], "--lr"),
    ("rm", ["--weight-decay", "inf"], "--weight-decay"),
    ("dpo", ["--max-grad-norm", "-1"], "--max-grad-norm"),
    ("rm", ["--warmup-steps", "-1"], "--warmup-steps"),
    ("dpo", ["--lora-r", "-2"], "--lora-r"),
    ("rm", ["--batch-size", "0"], "--batch-size"),
    ("dpo", ["--grad-accum", "0"], "--grad-accum"),
    ("rm", ["--max-steps", "0"], "--max-steps"),
    ("dpo", ["--epochs", "0"], "--epochs"),
    ("rm", ["--max-length", "0"], "--max-length"),
    ("dpo", ["--beta", "0"], "--beta"),
    ("dpo", ["--beta", "nan"], "--beta"),
    ("rm", ["--lambda-intra", "-1"], "--lambda-intra"),
    ("dpo", ["--lambda-inter", "inf"], "--lambda-inter"),
    ("rm", ["--save-every", "-1"], "--save-every"),
    ("dpo", ["--eval-every", "-5"], "--eval-every"),
    ("rm", ["--seed", "-1"], "--seed"),
    ("dpo", ["--lora-r", "4", "--lora-alpha", "0"], "--lora-alpha"),
    ("rm", ["--merge-lora"], "--merge-lora"),
    ("dpo", ["--sft-coef", "-0.5"], "--sft-coef"),
    ("rm", ["--center-rewards", "nan"], "--center-rewards"),
]


@pytest.mark.parametrize(("stage", "args", "fragment"), OPTION_CASES, ids=[" ".join(c[1]) for c in OPTION_CASES])
def test_bad_option_is_one_line_and_force_keeps_the_old_run(stage, args, fragment, finished, pairs, env, tmp_path):
    out, before = _copy(finished[stage], tmp_path)
    result = run_mapl(_train(stage, pairs, out, "--force", *args), env=env)
    _assert_unchanged(out, before)
    assert_one_line_error(result, fragment, code=2)


# --- models: checked before anything is replaced ------------------------------------------------------------

MODEL_CASES = ["missing", "a_file", "truncated", "config", "tokenizer", "adapter", "ref_truncated"]


@pytest.mark.parametrize("case", MODEL_CASES)
def test_bad_model_is_one_line_and_force_keeps_the_old_run(case, finished, bad_models, pairs, env, tmp_path):
    stage = "dpo"
    out, before = _copy(finished[stage], tmp_path)
    model, fragments = {
        "missing": (["--model", str(tmp_path / "nope")], ["--model", "no such"]),
        "a_file": (["--model", str(pairs)], ["--model", "is a file"]),
        "truncated": (["--model", str(bad_models["truncated"])], ["--model", "model.safetensors"]),
        "config": (["--model", str(bad_models["config"])], ["--model", "config.json", "not valid JSON"]),
        "tokenizer": (["--model", str(bad_models["tokenizer"])], ["--model", "cannot be loaded"]),
        "adapter": (["--model", str(out / "model")], ["--model", "no config.json"]),  # a LoRA adapter folder
        "ref_truncated": (["--ref-model", str(bad_models["truncated"])], ["--ref-model", "model.safetensors"]),
    }[case]
    result = run_mapl(_train(stage, pairs, out, "--force", *FINISHED, *model), env=env)
    _assert_unchanged(out, before)
    assert_one_line_error(result, *fragments, code=2)


# --- pairs: the contract, checked before any model loads ---------------------------------------------------


def _pairs_variant(tmp_path, pairs, case):
    table = pq.read_table(pairs)
    rows = table.to_pylist()
    column = table.schema.get_field_index
    if case == "folder":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty", ["a folder without pairs.parquet"]
    if case == "not_parquet":
        path = tmp_path / "p.parquet"
        path.write_text("prompt,chosen\nhi,there\n")
        return path, ["not a readable Parquet file"]
    if case == "missing":
        return tmp_path / "nope.parquet", ["no such file"]
    if case == "int_response":
        table = table.set_column(column("response_chosen"), "response_chosen", pa.array(range(len(rows))))
        expected = ["response_chosen", "int64", "expected string"]
    elif case == "bool_response":
        table = table.set_column(column("response_rejected"), "response_rejected", pa.array([True] * len(rows)))
        expected = ["response_rejected", "bool"]
    elif case == "no_user_turn":
        rows[3]["prompt_rejected"] = [{"role": "system", "content": "Be brief."}]
        table = pa.Table.from_pylist(rows, schema=table.schema)
        expected = ["prompt_rejected", "no user turn", "row 3"]
    elif case == "null_content":
        rows[1]["prompt_chosen"] = [{"role": "user", "content": None}]
        table = pa.Table.from_pylist(rows, schema=table.schema)
        expected = ["prompt_chosen", "row 1"]
    else:  # every row identical on both sides
        for row in rows:
            row["prompt_rejected"], row["response_rejected"] = row["prompt_chosen"], row["response_chosen"]
        table = pa.Table.from_pylist(rows, schema=table.schema)
        expected = ["identical"]
    path = tmp_path / "p.parquet"
    pq.write_table(table, path)
    return path, [str(path), *expected]


# the contract is shared: each case runs under one of the two commands
PAIRS_CASES = [("rm", "folder"), ("dpo", "not_parquet"), ("rm", "missing"), ("dpo", "int_response"),
               ("rm", "bool_response"), ("dpo", "no_user_turn"), ("rm", "null_content"), ("dpo", "all_identical")]


@pytest.mark.parametrize(("stage", "case"), PAIRS_CASES)
def test_bad_pairs_are_one_line_and_create_nothing(stage, case, pairs, env, tmp_path):
    path, fragments = _pairs_variant(tmp_path, pairs, case)
    out = tmp_path / "out"
    result = run_mapl(_train(stage, path, out, "--max-steps", "1"), env=env)
    assert_one_line_error(result, *fragments, code=2)
    assert not out.exists()


def test_rows_with_identical_sides_are_left_out_counted_and_said(pairs, env, tmp_path):
    table = pq.read_table(pairs)
    rows = table.to_pylist()
    rows[0]["prompt_rejected"], rows[0]["response_rejected"] = rows[0]["prompt_chosen"], rows[0]["response_chosen"]
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    out = tmp_path / "out"
    result = run_mapl(_train("rm", path, out, "--max-steps", "1"), env=env)
    assert result.code == 0, result.stderr[-2000:]
    assert "mapl: warning:" in result.stderr and "identical sides" in result.stderr
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["rows_identical_left_out"] == 1 and counts["rows_used"] == len(rows) - 1


# --- the output folder --------------------------------------------------------------------------------------


def test_output_that_is_a_file_is_refused_and_kept(pairs, env, tmp_path):
    out = tmp_path / "out"
    out.write_text("mine")
    result = run_mapl(_train("rm", pairs, out, "--max-steps", "1", "--force"), env=env)
    assert_one_line_error(result, str(out), "not a folder", code=2)
    assert out.read_text() == "mine"


def test_output_under_a_file_is_refused(pairs, env, tmp_path):
    (tmp_path / "file").write_text("mine")
    result = run_mapl(_train("dpo", pairs, tmp_path / "file" / "out", "--max-steps", "1"), env=env)
    assert_one_line_error(result, "not a folder", code=2)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
def test_output_in_a_read_only_folder_is_refused(pairs, env, tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        result = run_mapl(_train("rm", pairs, parent / "out", "--max-steps", "1"), env=env)
    finally:
        parent.chmod(0o755)
    assert_one_line_error(result, "not writable", code=2)
    assert not (parent / "out").exists()


def test_non_empty_output_without_force_or_resume_is_refused(finished, pairs, env, tmp_path):
    out, before = _copy(finished["rm"], tmp_path)
    result = run_mapl(_train("rm", pairs, out, *FINISHED), env=env)
    assert_one_line_error(result, "--force", "--resume", code=2)
    _assert_unchanged(out, before)


def test_resume_of_a_finished_run_without_checkpoints_is_refused(finished, pairs, env, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished["rm"], out)
    shutil.rmtree(out / "checkpoints")
    before = snapshot(out)
    result = run_mapl(_train("rm", pairs, out, *FINISHED, "--resume"), env=env)
    assert_one_line_error(result, "nothing to --resume", "--force", code=2)
    _assert_unchanged(out, before)


# --- --force: the old run survives every failure of the new one ---------------------------------------------


@pytest.mark.parametrize("case", ["lora_targets", "non_finite", "full_disk"])
def test_force_run_that_fails_after_loading_keeps_the_old_run(case, finished, pairs, env, tmp_path):
    out, before = _copy(finished["dpo"], tmp_path)
    extra, fragments, limit, code = {
        # fails when the model has loaded
        "lora_targets": (["--lora-r", "2", "--lora-targets", "nope"], ["--lora-targets"], None, 2),
        # the first update sends every touched weight to +-3e37: the second step's loss overflows
        "non_finite": (["--lr", "3e37", "--save-every", "1"], ["non-finite", "step 2"], None, 2),
        # a full fine-tune's first checkpoint (~40 MB) does not fit
        "full_disk": (["--save-every", "1"], ["cannot write the checkpoint", "File too large"], 1_000_000, 1),
    }[case]
    args = _train("dpo", pairs, out, "--force", "--max-steps", "2", *extra)
    result = run_mapl(args, env=env, preexec_fn=file_size_limit(limit) if limit else None)
    _assert_unchanged(out, before)
    assert_one_line_error(result, *fragments, str(out), "unchanged", code=code)


def test_force_replaces_the_old_run_only_when_it_finishes(finished, pairs, env, tmp_path):
    out, before = _copy(finished["rm"], tmp_path)
    (out / "notes.txt").write_text("mine")
    result = run_mapl(_train("rm", pairs, out, "--force", "--max-steps", "1", "--lora-r", "4"), env=env)
    assert result.code == 0, result.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["lora_r"] == 4 and manifest["outputs"]["model"] == str(out / "model")
    assert (out / "notes.txt").read_text() == "mine"
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-000001"]  # the old ones are gone
    assert leftovers(out) == [] and not (tmp_path / ".run.mapl-force").exists()


def test_interrupted_force_run_keeps_the_old_run_and_resume_finishes_it(finished, pairs, env, tmp_path):
    out, before = _copy(finished["dpo"], tmp_path)
    staging = tmp_path / ".run.mapl-force"
    args = _train("dpo", pairs, out, "--force", "--max-steps", "500", "--save-every", "0", "--scheduler", "constant")
    result = run_and_signal(args, signal.SIGINT, when=lambda: (staging / "metrics.jsonl").exists(), env=env)
    _assert_unchanged_but_staging(out, before, staging)
    assert_one_line_error(result, "interrupted at step", str(out), "unchanged", "--resume", code=130)
    done = len((staging / "metrics.jsonl").read_text().splitlines())
    # a constant schedule may be extended or shortened on resume (not below the checkpoint's step)
    args = _train("dpo", pairs, out, "--resume", "--max-steps", str(done + 1), "--save-every", "0", "--scheduler", "constant")
    result = run_mapl(args, env=env)
    assert result.code == 0, result.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["resumed_from_step"] == done and manifest["counts"]["steps"] == done + 1
    assert manifest["options"]["scheduler"] == "constant" and not staging.exists() and leftovers(out) == []


def _assert_unchanged_but_staging(out, before, staging):
    assert snapshot(out) == before and leftovers(out) == []
    assert (staging / "checkpoints").is_dir() and leftovers(staging / "checkpoints") == []


# --- --resume: the same run or nothing ----------------------------------------------------------------------

RESUME_CASES = [
    ("dpo", ["--lr", "2e-3"], ["--lr (0.001 -> 0.002)"]),
    ("dpo", ["--beta", "0.2"], ["--beta"]),
    ("rm", ["--lambda-intra", "0.5"], ["--lambda-intra"]),
    ("rm", ["--seed", "1", "--max-length", "512"], ["--seed", "--max-length"]),
    ("dpo", ["--inter-loss", "margin"], ["--inter-loss"]),
    ("dpo", ["--lora-alpha", "8"], ["--lora-alpha"]),
    ("rm", ["--batch-size", "1"], ["global batch (2 -> 1)"]),
    ("dpo", ["--max-steps", "4"], ["cosine", "total steps (2 -> 4)"]),
    ("rm", ["--scheduler", "constant", "--warmup-steps", "1"], ["--scheduler", "--warmup-steps"]),
    ("dpo", ["--dtype", "bf16-mixed"], ["written: --dtype ('auto' -> 'bf16-mixed') (run with"]),  # --dtype named once
]


@pytest.mark.parametrize(("stage", "args", "fragments"), RESUME_CASES, ids=[" ".join(c[1]) for c in RESUME_CASES])
def test_resume_with_changed_options_is_refused_and_touches_nothing(stage, args, fragments, finished, pairs, env, tmp_path):
    out, before = _copy(finished[stage], tmp_path)
    shutil.rmtree(out / "model")  # an unfinished run, so only the options can stop it
    before = snapshot(out)
    result = run_mapl(_train(stage, pairs, out, *FINISHED, "--resume", *args), env=env)
    assert_one_line_error(result, "cannot --resume", *fragments, code=2)
    _assert_unchanged(out, before)


def test_resume_with_other_pairs_model_or_command_is_refused(finished, pairs, env, tmp_path):
    out, before = _copy(finished["dpo"], tmp_path)
    other = write_pairs(tmp_path / "other.parquet", n_sources=3)
    model = tmp_path / "tiny-copy"
    shutil.copytree(resolve_model("tiny-random"), model)
    for args, fragments in [
        (_train("dpo", other, out, *FINISHED, "--resume"), ["the pairs (sha256"]),
        (_train("dpo", pairs, out, *FINISHED, "--resume", "--model", str(model)), ["--model ('tiny-random' ->"]),
        (_train("rm", pairs, out, *FINISHED, "--resume"), ["the command (train-dpo -> train-rm)"]),
    ]:
        assert_one_line_error(run_mapl(args, env=env), "cannot --resume", *fragments, code=2)
        _assert_unchanged(out, before)


def test_resume_of_a_finished_run_changes_nothing(finished, pairs, env, tmp_path):
    out, before = _copy(finished["rm"], tmp_path)
    result = run_mapl(_train("rm", pairs, out, *FINISHED, "--resume", "--save-every", "5", "--eval-every", "3"), env=env)
    assert result.code == 0 and "already finished (2 steps); nothing to do" in result.stderr, result.stderr[-2000:]
    _assert_unchanged(out, before)  # the manifest is not rewritten with options that did not produce it


# --- crafted and damaged checkpoints ------------------------------------------------------------------------


class _RunsCode:
    """Unpickling this calls os.system: what a crafted trainer_state.pt could do with weights_only=False."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


CHECKPOINT_CASES = ["pickle_runs_code", "state_json", "weights_truncated", "weights_nan", "meta_json"]


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_crafted_or_damaged_checkpoint_is_refused_in_one_line(case, finished, pairs, env, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished["dpo"], out)
    shutil.rmtree(out / "model")
    step = out / "checkpoints" / "step-000002"
    marker = tmp_path / "code-ran"
    if case == "pickle_runs_code":  # an old-format checkpoint whose pickle runs a command
        (step / "trainer_state.json").unlink(missing_ok=True)
        (step / "trainer_state.safetensors").unlink(missing_ok=True)
        torch.save({"step": 2, "optimizer": _RunsCode(f"touch {marker}")}, step / "trainer_state.pt")
        fragments = ["trainer_state.pt", "refused", "could run code"]
    elif case == "state_json":
        (step / "trainer_state.json").write_text('{"format": 2, "step": ')
        fragments = ["trainer_state.json"]
    elif case == "weights_truncated":
        weights = step / "trainable.safetensors"
        weights.write_bytes(weights.read_bytes()[:-100])
        fragments = ["trainable.safetensors"]
    elif case == "weights_nan":
        weights = load_file(str(step / "trainable.safetensors"))
        name = next(iter(weights))
        weights[name][0] = float("nan")
        save_file(weights, str(step / "trainable.safetensors"))
        fragments = ["trainable.safetensors", "NaN"]
    else:
        (step / "meta.json").write_text("\x00\x01")
        fragments = ["meta.json"]
    before = snapshot(out)
    result = run_mapl(_train("dpo", pairs, out, *FINISHED, "--resume"), env=env)
    assert not marker.exists(), "the checkpoint ran code"
    assert_one_line_error(result, *fragments, code=2)
    _assert_unchanged(out, before)


# --- a full disk and Ctrl-C on a fresh run -------------------------------------------------------------------


def test_full_disk_at_the_first_checkpoint_leaves_nothing(pairs, env, tmp_path):
    out = tmp_path / "out"
    args = _train("dpo", pairs, out, "--max-steps", "2", "--save-every", "1")
    result = run_mapl(args, env=env, preexec_fn=file_size_limit(1_000_000))
    assert_one_line_error(result, str(out / "checkpoints" / "step-000001"), "File too large", code=1)
    assert not out.exists()


def test_full_disk_at_the_model_write_keeps_the_checkpoint_and_no_partial_model(pairs, env, tmp_path):
    out = tmp_path / "out"
    # LoRA checkpoints are small; the merged model (~13 MB) is not
    args = _train("rm", pairs, out, "--max-steps", "1", "--lora-r", "2", "--merge-lora")
    result = run_mapl(args, env=env, preexec_fn=file_size_limit(2_000_000))
    assert_one_line_error(result, str(out / "model"), "File too large", "--resume", code=1)
    assert leftovers(out) == [] and not (out / "model").exists()
    assert (out / "checkpoints" / "step-000001" / "trainer_state.json").exists()


def test_ctrl_c_leaves_a_checkpoint_and_one_line(pairs, env, tmp_path):
    out = tmp_path / "out"
    args = _train("rm", pairs, out, "--max-steps", "500", "--save-every", "0")
    result = run_and_signal(args, signal.SIGINT, when=lambda: (out / "metrics.jsonl").exists(), env=env)
    assert_one_line_error(result, "interrupted at step", "--resume", code=130)
    assert len(list((out / "checkpoints").glob("step-*"))) == 1 and leftovers(out) == []
