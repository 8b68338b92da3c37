"""Model cards (README.md in every trained model folder), the library versions in manifest.json, the command
that trains a model again, and --push-to-hub (its checks before training, and the upload, with a stand-in
for huggingface_hub's HfApi: there is no hub here)."""

import json
import shlex
import time
from dataclasses import asdict

import huggingface_hub
import pytest
from huggingface_hub import ModelCard
from typer.testing import CliRunner

from mapl_cli import hub
from mapl_cli.card import base_model_id, render_card
from mapl_cli.cli import app
from mapl_cli.errors import MaplError
from mapl_cli.manifest import file_sha256, library_versions
from mapl_cli.train.config import NOT_REPRODUCED, TrainConfig, command_line
from tests.train_fixtures import write_pairs

runner = CliRunner()
TRAIN = ["--model", "tiny-random", "--max-steps", "2", "--batch-size", "2", "--lr", "1e-3", "--no-progress"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return write_pairs(tmp_path_factory.mktemp("pairs") / "pairs.parquet", n_sources=4)  # 4 rows of each kind


@pytest.fixture(autouse=True)
def private_ref_cache(monkeypatch, tmp_path):
    monkeypatch.setattr("mapl_cli.train.reference.cache_dir", lambda: tmp_path / "cache")


class FakeApi:
    """Records what mapl asks of huggingface_hub's HfApi; `role` is the token's, `fail` makes uploads raise."""

    calls: list = []
    role = "write"
    fail = False

    def whoami(self, token=None):
        FakeApi.calls.append(("whoami", token))
        return {"name": "someone", "auth": {"accessToken": {"role": FakeApi.role}}}

    def create_repo(self, repo_id, repo_type=None, exist_ok=False):
        FakeApi.calls.append(("create_repo", repo_id, exist_ok))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, repo_id, folder_path, repo_type=None, commit_message=None):
        if FakeApi.fail:
            raise ConnectionError("connection reset by peer")
        from pathlib import Path

        FakeApi.calls.append(("upload_folder", repo_id, sorted(p.name for p in Path(folder_path).iterdir())))


@pytest.fixture
def fake_hub(monkeypatch):
    """A token, a hub that answers, and HfApi replaced."""
    FakeApi.calls, FakeApi.role, FakeApi.fail = [], "write", False
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "_api", FakeApi)  # not huggingface_hub.HfApi: a module imported meanwhile would keep it
    monkeypatch.setattr(hub, "reachable", lambda *a: True)
    return FakeApi


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))


def _card(out):
    return ModelCard.load(out / "model" / "README.md")


def test_train_dpo_writes_a_card_with_provenance_and_pushes_the_folder(pairs, tmp_path, fake_hub, monkeypatch):
    out = tmp_path / "dpo"
    result = runner.invoke(app, ["train-dpo", str(pairs), "--output", str(out), *TRAIN, "--lambda-intra", "0.5",
                                 "--eval-pairs", str(pairs), "--push-to-hub", "someone/tiny-dpo"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["versions"] == library_versions() and set(manifest["versions"]) == {
        "python", "torch", "transformers", "peft", "datasets", "mapl"}
    assert manifest["counts"]["rows_by_kind"] == {"standard": 4, "intra": 4, "inter": 4}
    card = _card(out)
    assert card.data.tags[:2] == ["mapl", "dpo"] and card.data.library_name == "transformers"
    assert card.data.base_model is None and card.data.license is None  # tiny-random: random weights, no hub id
    assert file_sha256(pairs) in card.text
    assert "| standard | 4 | 4 |" in card.text and "| intra | 4 | 4 |" in card.text
    assert "lambda_intra 0.5, lambda_inter 1" in card.text
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert f"| loss | {last['loss']:.4g} | {manifest['outputs']['final_eval']['loss']:.4g} |" in card.text
    assert manifest["reproduce"] in card.text and f"| torch | {manifest['versions']['torch']} |" in card.text
    # the upload: after training, the whole model folder with its card, to the repo (created if missing)
    assert ("create_repo", "someone/tiny-dpo", True) in fake_hub.calls
    [upload] = [c for c in fake_hub.calls if c[0] == "upload_folder"]
    assert upload[1] == "someone/tiny-dpo" and {"README.md", "config.json", "model.safetensors"} <= set(upload[2])
    assert "uploaded to https://huggingface.co/someone/tiny-dpo" in result.output
    _reproduces(manifest["reproduce"], TrainConfig(**{k: v for k, v in manifest["options"].items()
                                                      if k not in ("dtype_resolved", "device")}), monkeypatch)


def _reproduces(command: str, config: TrainConfig, monkeypatch) -> None:
    """`command` parses (through the real CLI) into `config`, up to the options it leaves out on purpose."""
    seen = []
    monkeypatch.setattr("mapl_cli.train.trainer.run", lambda c: seen.append(c) or {})
    words = shlex.split(command)
    assert words[0] == "mapl"
    result = runner.invoke(app, words[1:])
    assert result.exit_code == 0, result.output
    [parsed] = seen
    keep = [name for name in asdict(config) if name not in NOT_REPRODUCED]
    assert {k: asdict(parsed)[k] for k in keep} == {k: asdict(config)[k] for k in keep}


def test_a_lora_reward_model_adapter_gets_the_card_not_peft_s(pairs, tmp_path):
    out = tmp_path / "rm"
    result = runner.invoke(app, ["train-rm", str(pairs), "--output", str(out), *TRAIN, "--lora-r", "4"])
    assert result.exit_code == 0, result.output
    assert (out / "model" / "adapter_config.json").exists()
    card = _card(out)
    assert card.data.library_name == "peft" and card.data.pipeline_tag == "text-classification"
    assert card.data.tags == ["mapl", "reward-model", "preference-learning", "lora"]
    assert "LoRA r 4, alpha 8" in card.text and "AutoPeftModelForSequenceClassification" in card.text
    assert "Model Card for Model ID" not in card.text  # peft's own template was replaced
    assert not list((out / "model").glob(".*tmp*"))


@pytest.mark.parametrize("stage", ["dpo", "rm"])
def test_the_reproduce_command_parses_back_into_the_same_options(stage, tmp_path, monkeypatch):
    """Every kind of option (numbers, choices, --x/--no-x flags, paths, None) survives the round trip."""
    pairs = write_pairs(tmp_path / "p" / "pairs.parquet", n_sources=2)
    common = dict(epochs=3, batch_size=2, grad_accum=2, lr=2.5e-06, warmup_steps=0, scheduler="linear",
                  weight_decay=0.01, max_grad_norm=0.5, seed=7, max_length=256, max_prompt_length=128, shuffle=False,
                  packing=False, lambda_intra=0.0, lambda_inter=2.0, inter_loss="margin", dtype="float32",
                  gradient_checkpointing=True, lora_r=8, lora_alpha=4.0, lora_targets="q_proj,v_proj", merge_lora=True,
                  eval_pairs=str(pairs.parent), eval_every=5, save_every=0, progress=False, force=True)
    extra = dict(beta=0.3, sft_coef=0.2, precompute_ref=False) if stage == "dpo" else dict(center_rewards=0.1)
    config = TrainConfig(stage=stage, pairs=str(pairs), output=str(tmp_path / "out"), model="tiny-random",
                         **common, **extra)
    command = command_line(config)
    assert "--force" not in command and "--no-progress" not in command and "--no-shuffle" in command
    _reproduces(command, config, monkeypatch)
    defaults = command_line(TrainConfig(stage=stage, pairs=str(pairs), output="out o"))
    assert shlex.split(defaults)[1:] == [f"train-{stage}", str(pairs), "--output", "out o", "--model",
                                         "smollm2-135m-instruct"]


def test_front_matter_names_the_hub_origin_and_license():
    manifest = {"stage": "train-dpo", "mapl_version": "0", "counts": {}, "versions": {"mapl": "0"},
                "options": asdict(TrainConfig(stage="dpo", pairs="p.parquet", output="out/run"))}
    upstream = {"stage": "synthesize", "inputs": [{"path": "hf://my-org/prefs:train"}], "counts": {}}
    card = render_card(manifest, upstream=upstream)
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and card.data.license == "apache-2.0"
    assert card.data.datasets == ["my-org/prefs"] and "hf://my-org/prefs:train" in card.text
    assert ModelCard(str(card)).data.to_dict() == card.data.to_dict()  # what is written parses back
    manifest["options"].update(lora_r=4, merge_lora=True)  # merged LoRA weights: a plain transformers folder
    merged = render_card(manifest)
    assert merged.data.library_name == "transformers" and "lora" in merged.data.tags
    assert "LoRA r 4, alpha 8, targets `all-linear`, merged into the weights" in merged.text
    assert "reference: the starting model with the adapters disabled" in merged.text


def test_base_model_ids(tmp_path):
    snapshot = tmp_path / "hub" / "models--some-org--some-model" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    assert base_model_id("smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert base_model_id("some-org/some-model") == "some-org/some-model"
    assert base_model_id(str(snapshot)) == "some-org/some-model"  # a folder in the hub's download cache
    assert base_model_id(str(tmp_path)) is None and base_model_id("tiny-random") is None


def test_no_token_fails_before_training_in_one_line(pairs, tmp_path, no_token):
    out = tmp_path / "out"
    started = time.monotonic()
    result = runner.invoke(app, ["train-dpo", str(pairs), "--output", str(out), *TRAIN, "--push-to-hub", "me/m"])
    assert time.monotonic() - started < 5
    assert result.exit_code == 2
    assert "--push-to-hub me/m: no Hugging Face token; set HF_TOKEN or run `hf auth login`" in result.output
    assert not out.exists()


def test_hub_access_off_fails_before_training(pairs, tmp_path, fake_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    result = runner.invoke(app, ["train-rm", str(pairs), "--output", str(out), *TRAIN, "--push-to-hub", "me/m"])
    assert result.exit_code == 2 and "hub access is off (HF_HUB_OFFLINE is set)" in result.output
    assert not out.exists() and fake_hub.calls == []


@pytest.mark.parametrize("case, message", [
    ("bad id", "not a hub repo id"),
    ("unreachable", "did not answer within 2 s"),
    ("read-only", "the token is read-only"),
])
def test_push_checks(case, message, fake_hub, monkeypatch):
    if case == "unreachable":
        monkeypatch.setattr(hub, "reachable", lambda *a: False)
    if case == "read-only":
        fake_hub.role = "read"
    with pytest.raises(MaplError, match=message):
        hub.check_push("a//b" if case == "bad id" else "me/m")


def test_a_failed_upload_says_how_to_upload_by_hand(fake_hub, tmp_path):
    fake_hub.fail = True
    with pytest.raises(MaplError, match=r"upload failed \(ConnectionError: connection reset by peer\); the model is in "
                                        r".*: upload it with `hf upload me/m .*`, or run the same command again with --resume"):
        hub.push_folder(tmp_path, "me/m", "message")
