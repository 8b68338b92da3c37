"""bench/train.py: the headline is mapl's end-to-end speed-up over TRL's faster setting, at no more memory;
every run is one full epoch; losses are checked against both TRL settings.

    pytest tests/test_bench_train.py            # the summary logic, on made-up runs
    pytest -m slow tests/test_bench_train.py    # the bench itself on tiny-random, every DPO run (about a minute)
"""

import importlib.util
import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_train", ROOT / "bench" / "train.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

ARGS = Namespace(steps=3, check_steps=3, tolerance=2e-3)
LOSSES = [0.6931, 0.65, 0.56]


def _raw(end_to_end: float, steps=(4.0, 2.0, 2.0), rss: float = 1000.0, losses=LOSSES) -> dict:
    """A worker's result as launch() returns it: 100 tokens per step."""
    return {"step_seconds": list(steps), "tokens": [100] * len(steps), "losses": list(losses),
            "logps_chosen": [-50.0] * len(steps), "wall_s": end_to_end - 1, "end_to_end_s": end_to_end,
            "peak_rss_mb": rss, "load_average_1min": [0.0, 0.0], "phases": {}}


def test_dpo_runs_trl_in_both_reference_settings_and_rm_once():
    assert [r for r, _, _ in bench.plan("dpo", False)] == ["mapl", "trl_ref_inline", "trl_ref_precomputed"]
    assert bench.plan("dpo", True)[1] == ("mapl_ref_inline", "mapl", "inline")
    assert bench.plan("dpo", False)[2] == ("trl_ref_precomputed", "trl", "precomputed")
    assert [r for r, _, _ in bench.plan("rm", True)] == ["mapl", "trl"]


def test_headline_is_end_to_end_against_the_faster_trl_setting():
    raw = {"mapl": _raw(50.0, rss=600.0), "trl_ref_inline": _raw(200.0, steps=(9.0, 8.0, 8.0), rss=1200.0),
           "trl_ref_precomputed": _raw(160.0, steps=(7.0, 8.0, 8.0), rss=800.0)}
    r = bench.stage_report("dpo", raw, ARGS)
    assert r["trl_best"] == "trl_ref_precomputed"
    assert r["end_to_end_ratio"] == 3.2  # 160 / 50, not 200 / 50
    assert r["memory_ratio"] == 0.75  # against the faster setting's 800 MB
    assert r["throughput_ratio"] == 4.0  # steps 2 on: 200 tokens in 4 s against 200 in 16 s
    assert r["meets_target"] and r["loss_agrees"]
    assert r["versus"]["mapl"]["trl_ref_inline"]["end_to_end_ratio"] == 4.0
    assert r["runs"]["mapl"]["setup_s"] == 42.0  # end to end less the 8 s of steps


def test_target_needs_no_more_memory_than_trl():
    raw = {"mapl": _raw(50.0, rss=900.0), "trl": _raw(110.0, rss=800.0)}
    r = bench.stage_report("rm", raw, ARGS)
    assert r["end_to_end_ratio"] == 2.2 and not r["meets_target"]


def test_a_loss_curve_that_disagrees_with_either_trl_setting_is_flagged():
    off = [LOSSES[0], LOSSES[1] + 0.01, LOSSES[2]]
    raw = {"mapl": _raw(50.0), "trl_ref_inline": _raw(200.0), "trl_ref_precomputed": _raw(160.0, losses=off)}
    r = bench.stage_report("dpo", raw, ARGS)
    assert not r["loss_agrees"]
    assert r["versus"]["mapl"]["trl_ref_inline"]["loss_agrees"]
    assert r["versus"]["mapl"]["trl_ref_precomputed"]["loss_max_abs_diff_first_steps"] == pytest.approx(0.01)


def test_bf16_runs_every_configuration_again_and_each_tool_is_taken_at_its_best():
    """--bf16 repeats every run in bfloat16 mixed precision. The float32 headline stays mapl against TRL's
    faster float32 setting; "each at its best" takes the fastest run of each tool, whatever the precision.
    Losses are compared only within one precision (bf16 rounding is not a disagreement)."""
    assert [r for r, _, _ in bench.plan("rm", False, bf16=True)] == ["mapl", "trl", "mapl_bf16", "trl_bf16"]
    assert bench.plan("dpo", False, bf16=True)[3] == ("mapl_bf16", "mapl", "precomputed")
    assert bench.precision_of("trl_ref_inline_bf16") == "bf16" and bench.precision_of("mapl") == "fp32"
    off = [x + 0.01 for x in LOSSES]  # bf16 rounding: 10x the tolerance, against the float32 runs
    raw = {"mapl": _raw(50.0, rss=600.0), "trl": _raw(110.0, rss=800.0),
           "mapl_bf16": _raw(30.0, rss=650.0, losses=off), "trl_bf16": _raw(90.0, rss=820.0, losses=off)}
    r = bench.stage_report("rm", raw, ARGS)
    assert r["trl_best"] == "trl" and r["end_to_end_ratio"] == 2.2  # float32 against float32
    best = r["each_at_its_best"]
    assert (best["mapl"], best["trl"], best["end_to_end_ratio"]) == ("mapl_bf16", "trl_bf16", 3.0)
    assert best["meets_target"] and r["loss_agrees"]
    assert r["versus"]["mapl"]["trl_bf16"]["loss_agrees"] is None
    assert r["versus"]["mapl_bf16"]["trl_bf16"]["loss_agrees"] is True
    raw["trl_bf16"] = _raw(90.0, rss=820.0)  # bf16 runs that disagree with each other are flagged
    assert not bench.stage_report("rm", raw, ARGS)["loss_agrees"]


def test_a_run_that_is_not_one_full_epoch_is_refused():
    raw = {"mapl": _raw(50.0), "trl": _raw(110.0, steps=(4.0, 2.0))}
    with pytest.raises(SystemExit, match="one epoch of 3 steps"):
        bench.stage_report("rm", raw, ARGS)


@pytest.mark.slow
def test_bench_runs_every_dpo_setting_end_to_end_on_tiny_random(tmp_path):
    out = tmp_path / "train.json"
    cmd = [sys.executable, str(ROOT / "bench" / "train.py"), "--model", "tiny-random", "--steps", "2",
           "--batch-size", "2", "--stages", "dpo", "--mapl-ref-inline", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "process start to saved model" in proc.stdout
    r = json.loads(out.read_text())["stages"]["dpo"]
    assert set(r["runs"]) == {"mapl", "mapl_ref_inline", "trl_ref_inline", "trl_ref_precomputed"}
    assert r["trl_best"] in ("trl_ref_inline", "trl_ref_precomputed") and r["loss_agrees"]
    for name, run in r["runs"].items():
        assert run["steps"] == 2
        assert run["end_to_end_s"] > run["wall_s"] > run["train_s"] > 0, name
    # the reference passes outside the steps are timed, and inside the end-to-end time
    assert 0 < r["runs"]["mapl"]["phases"]["reference_s"] < r["runs"]["mapl"]["setup_s"]
    trl = r["runs"]["trl_ref_precomputed"]["phases"]
    assert 0 < trl["reference_s"] <= trl["init_s"]
    assert "reference_s" not in r["runs"]["trl_ref_inline"]["phases"]
