"""Two processes (torchrun, gloo, CPU) give the same loss curve and weights as one process with the same
global batch.

    pytest tests/test_distributed.py
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from mapl_cli.models import resolve_model
from tests.train_fixtures import write_pairs


def _train(args, cwd, env, nproc):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    cmd = (launcher if nproc > 1 else [sys.executable]) + ["-m", "mapl_cli.cli", *args]
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("stage", ["train-dpo", "train-rm"])
def test_two_gloo_processes_match_one_process(stage, tmp_path):
    pairs = write_pairs(tmp_path / "pairs.parquet", n_sources=8)
    cache = tmp_path / "cache"
    cache.mkdir()
    tiny = resolve_model("tiny-random")  # reuse the built model; reference log-probs go to the fresh cache
    (cache / tiny.name).symlink_to(tiny)
    env = {**os.environ, "MAPL_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    common = [stage, str(pairs), "--model", "tiny-random", "--max-steps", "3", "--lr", "1e-3", "--warmup-steps", "0",
              "--no-progress", "--inter-loss", "margin", "--lambda-intra", "0.5"]
    _train(common + ["--output", str(tmp_path / "one"), "--batch-size", "4"], tmp_path, env, 1)
    _train(common + ["--output", str(tmp_path / "two"), "--batch-size", "2"], tmp_path, env, 2)
    one = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len(one) == len(two) == 3
    for a, b in zip(one, two, strict=True):
        assert a["rows"] == b["rows"] == 4
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-6)
        assert a["rewards/accuracies"] == b["rewards/accuracies"]
    assert json.loads((tmp_path / "two" / "manifest.json").read_text())["counts"]["world_size"] == 2
    wa = load_file(str(tmp_path / "one" / "model" / "model.safetensors"))
    wb = load_file(str(tmp_path / "two" / "model" / "model.safetensors"))
    # Adam divides each gradient by its own running scale, so an element whose gradient is ~0 can move by a
    # sizeable fraction of lr on float noise alone (the two runs pack sequences into rows differently).
    # One Adam step moves an element by at most about lr = 1e-3; without the gradient all-reduce nearly every
    # element differs by that order, so atol = 1e-4 (a tenth of one step) still separates right from wrong.
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=0, atol=1e-4)
