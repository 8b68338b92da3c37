"""`--report-to`: what reaches each tracker, read back from the tracker's own files.

TensorBoard is read back for real (train-dpo's every metrics.jsonl and eval_metrics.jsonl value at its step,
the options as HParams; evaluate's summary). W&B runs offline (WANDB_MODE=offline) and its run file is
decoded record by record; trackio writes its local SQLite store, pointed at tmp_path. Both are skipped
where they are not installed; a chosen backend that is missing fails in one line before anything is read.
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mapl_cli import tracking
from mapl_cli.cli import app
from mapl_cli.errors import MaplError
from mapl_cli.evaluation.scoring import METRICS
from tests.test_architecture import STAGES, _imported_packages
from tests.train_fixtures import write_pairs

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = ROOT / "examples" / "eval_benchmark.jsonl"
runner = CliRunner()


@pytest.fixture(autouse=True)
def private_ref_cache(monkeypatch, tmp_path):
    """Reference log-probs go to a per-test cache (the built-in model stays in the shared cache)."""
    monkeypatch.setattr("mapl_cli.train.reference.cache_dir", lambda: tmp_path / "cache")


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _responses(tmp_path: Path, name: str, shift: int, n: int = 12) -> Path:
    """A responses file for the first `n` benchmark prompts; `shift` picks other reference responses."""
    from mapl_cli.benchmark import read_benchmark

    texts = [json.loads(x)["response"] for x in (ROOT / "tests/assets/eval_reference_responses.jsonl").read_text().splitlines()]
    path = tmp_path / f"{name}.jsonl"
    rows = read_benchmark(BENCHMARK)[:n]
    path.write_text("".join(json.dumps({"key": r.key, "response": texts[(i + shift) % len(texts)]}) + "\n" for i, r in enumerate(rows)))
    return path


def _evaluate_args(tmp_path: Path, out: Path, *report_to: str) -> list[str]:
    args = ["evaluate", "--benchmark", str(BENCHMARK), "--responses", str(_responses(tmp_path, "base", 0)),
            "--responses", str(_responses(tmp_path, "tuned", 3)), "--bootstrap", "200", "--output", str(out)]
    return args + [x for name in report_to for x in ("--report-to", name)]


# ---- choosing backends ---------------------------------------------------------------------------------------


def test_none_alone_means_none_and_repeats_collapse():
    assert tracking.chosen(None) == () and tracking.chosen([tracking.ReportTo.none]) == ()
    assert tracking.chosen(["wandb", "tensorboard", "wandb"]) == ("wandb", "tensorboard")
    with pytest.raises(MaplError, match="none cannot be combined"):
        tracking.chosen(["none", "wandb"])
    with pytest.raises(MaplError, match="must be one of none, tensorboard, wandb, trackio, got 'mlflow'"):
        tracking.chosen(["mlflow"])


@pytest.mark.parametrize("backend", list(tracking.BACKENDS))
def test_a_backend_that_is_not_installed_fails_in_one_line_before_anything_is_read(backend, monkeypatch, tmp_path):
    """The pairs file does not exist: the tracker's line comes first, so it is checked before any input."""
    monkeypatch.setitem(sys.modules, backend, None)  # what an absent package looks like to the import system
    out = tmp_path / "out"
    result = runner.invoke(app, ["train-dpo", str(tmp_path / "missing.parquet"), "--model", "tiny-random",
                                 "--output", str(out), "--report-to", backend])
    assert result.exit_code == 2
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert lines == [f"mapl: error: --report-to {backend}: the {backend} package is not installed; "
                     f"pip install 'mapl-cli[{backend}]'"]
    assert not out.exists()


def test_evaluate_checks_the_backend_before_reading_the_benchmark(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "trackio", None)
    result = runner.invoke(app, ["evaluate", "--benchmark", str(tmp_path / "none.jsonl"), "--responses",
                                 str(tmp_path / "r.jsonl"), "--output", str(tmp_path / "o"), "--report-to", "trackio"])
    assert result.exit_code == 2
    assert result.output.strip() == "mapl: error: --report-to trackio: the trackio package is not installed; pip install 'mapl-cli[trackio]'"


def test_mixing_none_with_a_backend_is_one_line(tmp_path):
    result = runner.invoke(app, ["train-rm", str(tmp_path / "p.parquet"), "--output", str(tmp_path / "o"),
                                 "--report-to", "none", "--report-to", "wandb"])
    assert result.exit_code == 2 and result.output.startswith("mapl: error: --report-to none cannot be combined")


def test_a_resumed_run_may_change_report_to(tmp_path):
    from mapl_cli.train import workspace
    from mapl_cli.train.config import RESUME_FIXED, TrainConfig

    assert "report_to" not in RESUME_FIXED
    saved = TrainConfig(stage="dpo", pairs="p", output="o", report_to=())
    meta = {"config": json.loads(json.dumps(asdict(saved))), "world_size": 1}
    ws = workspace.Workspace(tmp_path, tmp_path, False, tmp_path / "checkpoints" / "step-1", meta)
    now = TrainConfig(stage="dpo", pairs="p", output="o", report_to=("tensorboard", "wandb"))
    data = {"pairs_sha256": "a", "eval_pairs_sha256": None}
    workspace.check_same_run(ws, now, data, "torch.float32", 4)  # no error
    with pytest.raises(MaplError, match="--beta"):
        workspace.check_same_run(ws, TrainConfig(stage="dpo", pairs="p", output="o", beta=0.5), data, "torch.float32", 4)


def test_tracking_is_a_shared_layer():
    used = _imported_packages("tracking")
    assert not {f: u & (set(STAGES) | {"commands", "cli"}) for f, u in used.items() if u & (set(STAGES) | {"commands", "cli"})}


# ---- the fan-out, with a recording tracker --------------------------------------------------------------------


class Recorder:
    def __init__(self, folder, name, options, fail_close=False):
        self.options, self.logged, self.tables, self.closed, self.fail_close = options, [], [], None, fail_close

    def log(self, metrics, step):
        self.logged.append((step, metrics))

    def log_table(self, name, columns, rows, step):
        self.tables.append((name, columns, rows, step))

    def close(self, failed=False):
        self.closed = failed
        if self.fail_close:
            raise RuntimeError("disk full")


def test_only_finite_numbers_are_logged_and_closing_never_fails_a_finished_run(capsys):
    good, bad = Recorder(None, "", {}), Recorder(None, "", {}, fail_close=True)
    trackers = tracking.Trackers([good, bad])
    trackers.log({"step": 3, "loss": 0.5, "loss/inter": None, "kind": "x", "flag": True, "n": 2, "x": float("nan")}, 3, prefix="eval/")
    assert good.logged == [(3, {"eval/loss": 0.5, "eval/n": 2})]
    trackers.close()
    assert good.closed is False and bad.closed is False and not trackers
    assert "closing the Recorder failed: disk full" in capsys.readouterr().err


def test_a_tracker_that_cannot_start_closes_the_others_and_fails_in_one_line(monkeypatch, tmp_path):
    started = []

    def ok(folder, name, options):
        started.append(Recorder(folder, name, options))
        return started[-1]

    def broken(folder, name, options):
        raise RuntimeError("api_key not configured\n(no-tty)")

    monkeypatch.setattr(tracking, "check_installed", lambda names: None)
    monkeypatch.setitem(tracking.TRACKERS, "tensorboard", ok)
    monkeypatch.setitem(tracking.TRACKERS, "wandb", broken)
    with pytest.raises(MaplError) as err:
        tracking.open_trackers(["tensorboard", "wandb"], tmp_path / "out", {"lr": 1e-3})
    assert str(err.value) == "--report-to wandb: cannot start a run (api_key not configured (no-tty))"
    assert started[0].closed is True and started[0].options == {"lr": 1e-3}


def test_each_launch_gets_its_own_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(tracking.time, "strftime", lambda fmt: "20250301-120000")
    first, name = tracking.run_folder(tmp_path / "dpo")
    first.mkdir(parents=True)
    second, name2 = tracking.run_folder(tmp_path / "dpo")
    assert (first.name, second.name) == ("20250301-120000", "20250301-120000-2")
    assert (name, name2) == ("dpo-20250301-120000", "dpo-20250301-120000-2")


def test_wandb_is_offline_unless_a_key_or_a_mode_is_set(monkeypatch, tmp_path):
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert tracking.wandb_mode() == "offline"
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    netrc.chmod(0o600)
    assert tracking.wandb_mode() is None  # `wandb login` was run: W&B decides (online)
    netrc.unlink()
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracking.wandb_mode() is None


# ---- TensorBoard, read back -------------------------------------------------------------------------------------


def _events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = list(folder.glob("runs/*/events.out.tfevents.*"))
    assert len(found) == 1, found
    events = EventAccumulator(str(found[0].parent), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def _scalars(events) -> dict[str, dict[int, float]]:
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def _hparams(events) -> dict:
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}


def test_train_dpo_sends_every_metric_and_the_options_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    pairs = write_pairs(tmp_path / "pairs.parquet", n_sources=4)
    out = tmp_path / "dpo"
    result = runner.invoke(app, ["train-dpo", str(pairs), "--model", "tiny-random", "--output", str(out),
                                 "--max-steps", "2", "--batch-size", "2", "--lr", "1e-3", "--warmup-steps", "0",
                                 "--eval-pairs", str(pairs), "--eval-every", "1", "--no-progress",
                                 "--report-to", "tensorboard"])
    assert result.exit_code == 0, result.output
    events = _events(out)
    scalars = _scalars(events)
    expected = {}
    for prefix, path in (("", out / "metrics.jsonl"), ("eval/", out / "eval_metrics.jsonl")):
        for record in _lines(path):
            for key, value in record.items():
                if key != "step" and value is not None:
                    expected.setdefault(prefix + key, {})[record["step"]] = value
    assert {"loss", "lr", "rewards/margins", "logps/chosen", "grad_norm", "eval/loss", "eval/rewards/accuracies"} <= set(expected)
    assert set(scalars) == set(expected)
    for tag, by_step in expected.items():
        assert scalars[tag] == pytest.approx(by_step, rel=1e-6, abs=1e-6), tag  # event files hold float32
    hparams = _hparams(events)
    manifest = json.loads((out / "manifest.json").read_text())["options"]
    assert hparams["stage"] == "dpo" and hparams["beta"] == pytest.approx(0.1) and hparams["max_steps"] == 2
    assert hparams["lr"] == pytest.approx(manifest["lr"]) and hparams["dtype_resolved"] == manifest["dtype_resolved"]
    assert hparams["report_to"] == '["tensorboard"]' and hparams["eval_pairs"] == str(pairs)
    assert hparams["ref_model"] == "null"  # None as text: HParams take only numbers, strings and booleans
    options = events.Tensors("options/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"inter_loss": "pair"' in options


def test_evaluate_sends_its_summary_and_comparison_table_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "eval"
    result = runner.invoke(app, _evaluate_args(tmp_path, out, "tensorboard"))
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    events = _events(out)
    scalars = _scalars(events)
    for model in ("base", "tuned"):
        for metric in METRICS:
            assert scalars[f"{model}/{metric}"] == {0: pytest.approx(summary["models"][model][metric])}
        for k, entry in summary["models"][model]["by_num_instructions"].items():
            assert scalars[f"{model}/k{k}/prompt_level_strict_acc"][0] == pytest.approx(entry["prompt_level_strict_acc"])
    diff = summary["comparisons"]["tuned"]["prompt_level_strict_acc"]["diff"]
    assert scalars["tuned/diff/prompt_level_strict_acc"][0] == pytest.approx(diff)
    table = events.Tensors("comparison/text_summary")[0].tensor_proto.string_val[0].decode()
    assert table.splitlines()[0] == "| model | prompts | " + " | ".join(METRICS) + " |"
    assert "| tuned | 12 |" in table
    assert "differences/text_summary" in events.Tags()["tensors"]
    assert _hparams(events)["bootstrap"] == 200


# ---- W&B offline and trackio's local store ---------------------------------------------------------------------


def _wandb_records(path: Path):
    """The records of a .wandb file: a 7-byte header, then LevelDB-log chunks (crc, length, type) in 32 KiB
    blocks, each whole record a protobuf `Record`."""
    from wandb.proto import wandb_internal_pb2

    data, block, pos, payload = path.read_bytes(), 32768, 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # the block's tail is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        payload, pos = payload + data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # FULL or LAST
            yield wandb_internal_pb2.Record.FromString(payload)
            payload = b""


def test_wandb_offline_run_holds_the_metrics_tables_and_options(monkeypatch, tmp_path):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    options = {"stage": "dpo", "beta": 0.1, "ref_model": None, "report_to": ("wandb",)}
    with tracking.open_trackers(["wandb"], tmp_path / "dpo", options) as trackers:
        trackers.log({"step": 1, "loss": 0.69, "rewards/margins": 0.01, "loss/inter": None}, 1)
        trackers.log({"step": 2, "loss": 0.5, "rewards/margins": 0.2}, 2)
        trackers.log({"loss": 0.4}, 2, prefix="eval/")
        trackers.log_table("comparison", ["model", "acc"], [["base", 0.25], ["tuned", 0.5]], step=2)
    found = list((tmp_path / "dpo" / "runs").glob("*/wandb/offline-run-*/run-*.wandb"))
    assert len(found) == 1
    for _ in range(300):  # wandb's service process may still be writing the file when finish() returns
        records = list(_wandb_records(found[0]))
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            break
        time.sleep(0.1)
    history = [{item.key or "/".join(item.nested_key): item.value_json for item in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    rows = {int(h["_step"]): {k: json.loads(v) for k, v in h.items() if not k.startswith("_")} for h in history}
    assert rows[1] == {"loss": 0.69, "rewards/margins": 0.01}
    assert {k: v for k, v in rows[2].items() if not k.startswith("comparison/")} == {"loss": 0.5, "rewards/margins": 0.2, "eval/loss": 0.4}
    assert rows[2]["comparison/_type"] == "table-file" and rows[2]["comparison/nrows"] == 2
    (table,) = found[0].parent.glob("files/media/table/comparison_*.table.json")
    assert json.loads(table.read_text()) == {"columns": ["model", "acc"], "data": [["base", 0.25], ["tuned", 0.5]]}
    config = next(r.run.config for r in records if r.WhichOneof("record_type") == "run")
    values = {item.key: json.loads(item.value_json) for item in config.update}
    assert {k: values[k] for k in options} == {"stage": "dpo", "beta": 0.1, "ref_model": None, "report_to": ["wandb"]}
    exit_code = [r.exit.exit_code for r in records if r.WhichOneof("record_type") == "exit"]
    assert exit_code == [0]


def test_evaluate_sends_its_summary_to_trackio_and_keeps_stdout_for_the_table(tmp_path):
    """In a process of its own: trackio reads TRACKIO_DIR when it is imported."""
    pytest.importorskip("trackio")
    out = tmp_path / "eval"
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "TRACKIO_PROJECT": "mapl-test"}
    result = subprocess.run([sys.executable, "-m", "mapl_cli.cli", *_evaluate_args(tmp_path, out, "trackio")],
                            capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Trackio" not in result.stdout and result.stdout.lstrip().startswith("| model | prompts |")
    summary = json.loads((out / "summary.json").read_text())
    db = sqlite3.connect(tmp_path / "trackio" / "mapl-test.db")
    logged = [(step, json.loads(metrics)) for step, metrics in db.execute("select step, metrics from metrics order by id")]
    flat = {k: v for step, metrics in logged for k, v in metrics.items() if step == 0}
    assert flat["tuned/prompt_level_loose_acc"] == pytest.approx(summary["models"]["tuned"]["prompt_level_loose_acc"])
    assert flat["base/n_prompts"] == 12
    assert [row["model"] for row in flat["comparison"]["_value"]] == ["base", "tuned"]
    (run_name, config), = db.execute("select run_name, config from configs").fetchall()
    assert run_name.startswith("eval-") and json.loads(config)["report_to"] == ["trackio"]
    assert not (out / "runs").exists()  # trackio keeps its own store
