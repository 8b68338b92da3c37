"""A hub id or an `hf://` input with no reachable hub fails within 5 s with the usual one-line message
(mapl_cli/hub.py): before, huggingface_hub's retries took 20-55 s unless HF_HUB_OFFLINE=1 was set.

The hub here is a "black hole": a local socket that accepts connections and never answers, which is what a
firewalled cluster node sees (no refusal, just silence), pointed at through HF_ENDPOINT. Without the probe a
lookup there waits out huggingface_hub's timeouts and retries (minutes); with it, the process goes offline
after `hub.PROBE_SECONDS`.
"""

import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from mapl_cli import hub
from mapl_cli.errors import MaplError

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = ROOT / "examples" / "eval_benchmark.jsonl"


@pytest.fixture
def black_hole():
    """http://127.0.0.1:PORT: connections are accepted (by the kernel's backlog) and never answered."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


@pytest.fixture
def answering():
    """http://127.0.0.1:PORT: a server that answers every request at once (a reachable hub)."""

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def online(monkeypatch, tmp_path):
    """Hub access on as far as the environment says (the test session itself may be offline), an empty
    hub cache, a fresh probe; everything use_hub/go_offline change is put back afterwards."""
    import datasets.config
    import huggingface_hub.constants as constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
    monkeypatch.setattr(hub, "_probed", {})
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))

    def point_at(url: str) -> None:
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.setattr(constants, "ENDPOINT", url)

    return point_at


def test_a_silent_hub_is_given_up_after_the_probe_limit(online, black_hole):
    online(black_hole)
    started = time.monotonic()
    assert hub.reachable() is False
    assert time.monotonic() - started < hub.PROBE_SECONDS + 1.5
    started = time.monotonic()
    assert hub.reachable() is False and time.monotonic() - started < 0.1  # asked once per process


def test_a_hanging_name_lookup_cannot_hold_the_probe(online, monkeypatch):
    """No request timeout covers DNS; the probe's own thread limit does."""
    import huggingface_hub.utils

    class Stuck:
        def head(self, url, timeout):
            time.sleep(30)

    monkeypatch.setattr(huggingface_hub.utils, "get_session", lambda: Stuck())
    started = time.monotonic()
    assert hub.reachable() is False
    assert time.monotonic() - started < hub.PROBE_SECONDS + 1.5


def test_an_answering_hub_keeps_the_process_online(online, answering):
    online(answering)
    hub.use_hub()
    assert hub.reachable() is True and not hub.offline()
    assert "HF_HUB_OFFLINE" not in os.environ


def test_going_offline_reaches_libraries_already_imported(online, black_hole):
    import datasets.config
    import huggingface_hub.constants as constants

    online(black_hole)
    hub.use_hub()
    assert os.environ["HF_HUB_OFFLINE"] == "1" and constants.HF_HUB_OFFLINE is True
    assert datasets.config.HF_HUB_OFFLINE is True and hub.offline()


def test_offline_by_the_environment_skips_the_probe(online, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "reachable", lambda *a: pytest.fail("probed although HF_HUB_OFFLINE=1"))
    hub.use_hub()
    assert constants.HF_HUB_OFFLINE is True  # set after huggingface_hub was imported: now it agrees


def test_a_hub_model_id_fails_within_5_s(online, black_hole):
    from transformers import AutoTokenizer  # noqa: F401 - imported before the clock starts

    from mapl_cli.models import load_tokenizer

    online(black_hole)
    started = time.monotonic()
    with pytest.raises(MaplError, match="not a built-in name .* the hub could not provide it"):
        load_tokenizer("some-org/some-model")
    assert time.monotonic() - started < 5


def test_an_hf_preference_input_fails_within_5_s(online, black_hole):
    import datasets  # noqa: F401 - imported before the clock starts

    from mapl_cli.prefs import PrefSource

    online(black_hole)
    started = time.monotonic()
    with pytest.raises(MaplError, match="could not load the dataset .*export it to .parquet or .jsonl"):
        PrefSource("hf://no-such-org/no-such-dataset:train").num_rows()
    assert time.monotonic() - started < 5


def test_an_hf_benchmark_fails_within_5_s(online, black_hole):
    import datasets  # noqa: F401

    from mapl_cli.benchmark import read_benchmark

    online(black_hole)
    started = time.monotonic()
    with pytest.raises(MaplError, match="cannot load hf://google/IFEval .*pass its local path instead"):
        read_benchmark("hf://google/IFEval")
    assert time.monotonic() - started < 5


def test_evaluate_with_a_hub_model_and_no_hub_ends_in_one_line_quickly(black_hole, tmp_path):
    """The whole command in a fresh process: interpreter start, imports, the probe, the one-line error.
    Before the probe this waited out huggingface_hub's timeouts and retries against the silent endpoint."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT=black_hole, HF_HOME=str(tmp_path / "hf-home"))
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mapl_cli", "evaluate", "--benchmark", str(BENCHMARK), "--model", "some-org/some-model",
         "--output", str(tmp_path / "out"), "--limit", "2"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("mapl: error: model 'some-org/some-model' cannot be loaded")
    assert elapsed < 15, f"{elapsed:.1f} s (the probe gives up after {hub.PROBE_SECONDS} s; imports take the rest)"
    assert not (tmp_path / "out").exists()


def test_a_cached_hub_model_still_loads_when_the_hub_is_silent(online, black_hole, tmp_path):
    """Offline is not failure: a model in the hub's download cache loads as with HF_HUB_OFFLINE=1."""
    import shutil

    import huggingface_hub.constants as constants
    from transformers import AutoTokenizer  # noqa: F401

    from mapl_cli.models import load_tokenizer, resolve_model

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = Path(constants.HF_HUB_CACHE) / "models--some-org--cached-tiny"
    shutil.copytree(resolve_model("tiny-random"), repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    online(black_hole)
    started = time.monotonic()
    tokenizer = load_tokenizer("some-org/cached-tiny")
    assert tokenizer.chat_template and time.monotonic() - started < 5
    assert hub.offline()
