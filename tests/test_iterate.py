"""examples/iterate.sh end to end on tiny-random at toy size (slow tier: about 80 s on 2 cores): two rounds
of sample -> synthesize -> train-dpo for the standard and MAPL chains, each round evaluated."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"MAPL_ITER_MODEL": "tiny-random", "MAPL_ITER_SAMPLE_PROMPTS": "60", "MAPL_ITER_N": "6",
         "MAPL_ITER_SAMPLE_TOKENS": "32", "MAPL_ITER_STEPS": "2", "MAPL_ITER_BATCH": "2",
         "MAPL_ITER_EVAL_PROMPTS": "6", "MAPL_ITER_EVAL_TOKENS": "16", "MAPL_ITER_LR": "1e-3"}  # fmt: skip


@pytest.mark.slow
def test_iterate_runs_two_rounds_and_each_round_samples_from_the_last_rounds_policy(tmp_path):
    env = {**os.environ, **SIZES, "MAPL_CACHE": str(tmp_path / "cache"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = tmp_path / "iter"
    result = subprocess.run(["bash", str(ROOT / "examples" / "iterate.sh"), str(out)], env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    for round_ in (1, 2):
        summary = json.loads((out / f"round{round_}" / "eval" / "summary.json").read_text())
        assert list(summary["models"]) == ["dpo-standard", "dpo-mapl"]
        assert all(m["n_prompts"] == 6 for m in summary["models"].values())
    for chain in ("standard", "mapl"):
        options = json.loads((out / "round2" / chain / "samples" / "manifest.json").read_text())["options"]
        assert options["model"] == str(out / "round1" / f"dpo-{chain}" / "model")
        trained = json.loads((out / "round2" / f"dpo-{chain}" / "manifest.json").read_text())["options"]
        assert trained["model"] == str(out / "round1" / f"dpo-{chain}" / "model")
        assert (trained["lambda_intra"], trained["lambda_inter"]) == ((0.0, 0.0) if chain == "standard" else (1.0, 1.0))
