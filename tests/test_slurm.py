"""The sbatch scripts in examples/slurm run end to end under a stand-in Slurm: `srun` runs its command here,
`scontrol show hostnames` names this machine, and two CPU processes stand for two GPUs.

    pytest tests/test_slurm.py
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mapl_cli.models import resolve_model
from tests.train_fixtures import write_pairs

# two training processes per script run: the slow tier (make test-slow)
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake_slurm(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/bash\nexec "$@"\n')
    (bin_dir / "scontrol").write_text('#!/bin/bash\n[ "$1 $2" = "show hostnames" ] && echo localhost\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    cache = tmp_path / "cache"
    cache.mkdir()
    tiny = resolve_model("tiny-random")
    (cache / tiny.name).symlink_to(tiny)
    env = {
        **os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "SLURM_GPUS_ON_NODE": "2", "SLURM_NNODES": "1", "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "localhost",
        "MODEL": "tiny-random", "MAPL_CACHE": str(cache), "OMP_NUM_THREADS": "1", "MASTER_PORT": str(_free_port()),
    }
    return env


def _sbatch(script, pairs, out, env, cwd, *options):
    result = subprocess.run(["bash", str(ROOT / "examples" / "slurm" / script), str(pairs), str(out), *options],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "manifest.json").read_text())


def test_dpo_script_trains_on_two_processes_and_a_requeue_resumes(fake_slurm, tmp_path):
    pairs = write_pairs(tmp_path / "pairs.parquet", n_sources=8)
    out = tmp_path / "dpo"
    # the script's own options stay (beta, lambdas); the extra ones override batch size and length
    manifest = _sbatch("train_dpo.sbatch", pairs, out, fake_slurm, tmp_path,
                       "--batch-size", "1", "--grad-accum", "1", "--max-steps", "2", "--save-every", "1")
    assert manifest["counts"]["world_size"] == 2
    assert manifest["counts"]["strategy"] == "replicas"
    assert manifest["counts"]["global_batch"] == 2
    assert manifest["options"]["beta"] == 0.1 and manifest["options"]["resume"] is True
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    # The job requeued after it finished: --resume finds the run finished, trains no further step and
    # rewrites nothing (the manifest still describes the run that produced the model).
    before = (out / "manifest.json").read_bytes()
    again = _sbatch("train_dpo.sbatch", pairs, out, fake_slurm, tmp_path,
                    "--batch-size", "1", "--grad-accum", "1", "--max-steps", "2", "--save-every", "1")
    assert (out / "manifest.json").read_bytes() == before and again == manifest
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_multi_node_rm_script_with_fsdp(fake_slurm, tmp_path):
    pairs = write_pairs(tmp_path / "pairs.parquet", n_sources=8)
    out = tmp_path / "rm"
    manifest = _sbatch("train_rm.sbatch", pairs, out, fake_slurm, tmp_path,
                       "--batch-size", "2", "--max-steps", "2", "--fsdp")
    assert manifest["counts"]["world_size"] == 2
    assert manifest["counts"]["strategy"] == "fsdp"
    assert manifest["options"]["lr"] == 1e-5
    assert (out / "model" / "model.safetensors").exists()
