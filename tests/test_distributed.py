"""Two processes (gloo, CPU) give the same loss curve and weights as one process with the same global batch:
replicas and FSDP, under torchrun and `accelerate launch`; an FSDP run resumes to the same weights.

    pytest tests/test_distributed.py
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from mapl_cli.models import resolve_model
from tests.train_fixtures import write_pairs

# several processes (torchrun, accelerate launch) per case: the slow tier (make test-slow)
pytestmark = pytest.mark.slow

LAUNCHERS = {
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"],
    "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes=2",
                   "--num_machines=1", "--mixed_precision=no", "--dynamo_backend=no"],
    "accelerate-fsdp": [sys.executable, "-m", "accelerate.commands.launch", "--use_fsdp", "--num_processes=2",
                        "--num_machines=1", "--mixed_precision=no", "--dynamo_backend=no"],
}


def _run(args, cwd, env, launcher=None):
    cmd = (LAUNCHERS[launcher] if launcher else [sys.executable]) + ["-m", "mapl_cli.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _train(args, cwd, env, launcher=None):
    result = _run(args, cwd, env, launcher)
    assert result.returncode == 0, result.stderr[-3000:]


def _metrics(folder):
    return [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]


def _weights(folder):
    return load_file(str(next((folder / "model").glob("*.safetensors"))))


def _assert_same_weights(a, b, atol=1e-4):
    wa, wb = _weights(a), _weights(b)
    assert sorted(wa) == sorted(wb)
    # Adam divides each gradient by its own running scale, so an element whose gradient is ~0 can move by a
    # sizeable fraction of lr on float noise alone (the runs pack sequences into rows differently). One Adam
    # step moves an element by at most about lr = 1e-3; without the gradient reduction nearly every element
    # differs by that order, so atol = 1e-4 (a tenth of one step) still separates right from wrong.
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=0, atol=atol)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    pairs = write_pairs(root / "pairs.parquet", n_sources=8)
    # 9 eval rows: the two processes get 5 and 4, so under FSDP one runs an extra (discarded) forward
    write_pairs(root / "eval.parquet", n_sources=3)
    cache = root / "cache"
    cache.mkdir()
    tiny = resolve_model("tiny-random")  # reuse the built model; reference log-probs go to the fresh cache
    (cache / tiny.name).symlink_to(tiny)
    env = {**os.environ, "MAPL_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return root, pairs, env


def _common(stage, pairs):
    return [stage, str(pairs), "--model", "tiny-random", "--max-steps", "3", "--lr", "1e-3", "--warmup-steps", "0",
            "--no-progress", "--inter-loss", "margin", "--lambda-intra", "0.5", "--eval-pairs", str(pairs.with_name("eval.parquet"))]


_BASELINES: dict = {}


def _one_process(stage, workdir, extra=()):
    """The single-process run with global batch 4, shared by the tests that compare against it."""
    root, pairs, env = workdir
    key = (stage, tuple(extra))
    if key not in _BASELINES:
        out = root / f"one-{stage}-{len(_BASELINES)}"
        _train(_common(stage, pairs) + ["--output", str(out), "--batch-size", "4", *extra], root, env)
        _BASELINES[key] = out
    return _BASELINES[key]


CASES = [
    ("train-dpo", "torchrun", []),
    ("train-rm", "torchrun", []),
    ("train-dpo", "torchrun", ["--fsdp"]),
    ("train-rm", "torchrun", ["--fsdp"]),
    ("train-rm", "accelerate", []),
    ("train-dpo", "accelerate-fsdp", []),
]


@pytest.mark.parametrize(("stage", "launcher", "flags"), CASES, ids=[f"{s}-{lch}{''.join(f)}" for s, lch, f in CASES])
def test_two_processes_match_one_process(stage, launcher, flags, workdir):
    root, pairs, env = workdir
    one = _one_process(stage, workdir)
    two = root / f"two-{stage}-{launcher}{''.join(flags)}"
    # batch 1 x grad accum 2 x 2 processes = the same global batch of 4
    _train(_common(stage, pairs) + ["--output", str(two), "--batch-size", "1", "--grad-accum", "2", *flags],
           root, env, launcher)
    a, b = _metrics(one), _metrics(two)
    assert len(a) == len(b) == 3
    for x, y in zip(a, b, strict=True):
        assert x["rows"] == y["rows"] == 4
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-5, abs=1e-6)
        assert x["grad_norm"] == pytest.approx(y["grad_norm"], rel=1e-4)
        assert x["rewards/accuracies"] == y["rewards/accuracies"]
    ea = json.loads((one / "eval_metrics.jsonl").read_text().splitlines()[-1])
    eb = json.loads((two / "eval_metrics.jsonl").read_text().splitlines()[-1])
    assert ea["loss"] == pytest.approx(eb["loss"], rel=1e-5)
    counts = json.loads((two / "manifest.json").read_text())["counts"]
    assert counts["world_size"] == 2
    assert counts["strategy"] == ("fsdp" if "--fsdp" in flags or launcher.endswith("fsdp") else "replicas")
    _assert_same_weights(one, two)
    # each process holds all (replicas) or half (FSDP) of the weights, gradients and AdamW moments
    mem_one = json.loads((one / "manifest.json").read_text())["outputs"]["memory_rank0"]
    mem_two = json.loads((two / "manifest.json").read_text())["outputs"]["memory_rank0"]
    share = 0.5 if counts["strategy"] == "fsdp" else 1.0
    for key in ("trainable_mb", "gradients_mb", "optimizer_state_mb"):
        assert mem_two[key] == pytest.approx(share * mem_one[key], rel=0.02), key
    config = json.loads((two / "model" / "config.json").read_text())
    assert config["architectures"] == [json.loads((one / "model" / "config.json").read_text())["architectures"][0]]


def test_fsdp_lora_with_the_base_as_reference_matches_one_process(workdir):
    """LoRA under FSDP (frozen and trainable weights in one shard group), reference = adapters disabled."""
    root, pairs, env = workdir
    extra = ["--lora-r", "4", "--no-precompute-ref", "--gradient-checkpointing"]
    one = _one_process("train-dpo", workdir, extra)
    two = root / "two-lora-fsdp"
    _train(_common("train-dpo", pairs) + ["--output", str(two), "--batch-size", "2", "--fsdp", *extra], root, env, "torchrun")
    for x, y in zip(_metrics(one), _metrics(two), strict=True):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-5, abs=1e-6)
    assert (two / "model" / "adapter_model.safetensors").exists()
    _assert_same_weights(one, two)


def test_fsdp_run_resumes_to_the_same_weights(workdir):
    """Checkpoints gathered from FSDP shards load back into shards, or into one plain process: losing the
    last step and resuming from the step-2 checkpoint (weights, optimizer moments, scheduler) ends where the
    uninterrupted run ended."""
    root, pairs, env = workdir
    full = root / "fsdp-full"
    args = _common("train-dpo", pairs) + ["--save-every", "1"]
    _train(args + ["--output", str(full), "--batch-size", "2", "--fsdp"], root, env, "torchrun")
    for name, extra, launcher, atol in [("fsdp-resumed", ["--batch-size", "2", "--fsdp"], "torchrun", 1e-6),
                                        ("one-resumed", ["--batch-size", "4"], None, 1e-4)]:
        resumed = root / name
        shutil.copytree(full, resumed)
        shutil.rmtree(resumed / "checkpoints" / "step-000003")
        shutil.rmtree(resumed / "model")
        _train(args + extra + ["--output", str(resumed), "--resume"], root, env, launcher)
        manifest = json.loads((resumed / "manifest.json").read_text())
        assert manifest["counts"]["resumed_from_step"] == 2
        assert [m["loss"] for m in _metrics(resumed)] == pytest.approx([m["loss"] for m in _metrics(full)], rel=1e-5)
        _assert_same_weights(full, resumed, atol=atol)
