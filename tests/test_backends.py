"""Generation backends: lookup and auto selection, the transformers backend on a tiny model, and the vLLM
adapter against a fake `vllm` module (no GPU, no vLLM install) that records every call it receives."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from mapl_cli import generation as backends
from mapl_cli.errors import MaplError
from mapl_cli.generation.base import GenerationBackend, SamplingConfig
from mapl_cli.generation.hf import length_sorted_batches

USER = [{"role": "user", "content": "Say hi."}]


# ---- lookup ---------------------------------------------------------------------------------------------------


def test_dummy_backend_follows_the_interface_and_records_calls():
    backend = backends.get_backend("dummy", model="m")
    assert isinstance(backend, GenerationBackend)
    seen = []
    out = backend.generate([USER, [{"role": "user", "content": "B"}]], SamplingConfig(max_new_tokens=3), progress=seen.append)
    assert out == ["echo: Say hi.", "echo: B"]
    assert seen == [2] and backend.calls[0][1].max_new_tokens == 3


@pytest.mark.parametrize(
    ("importable", "gpu", "expected"),
    [(True, True, "vllm"), (True, False, "hf"), (False, True, "hf"), (False, False, "hf")],
)
def test_auto_takes_vllm_only_when_it_imports_and_a_gpu_is_present(monkeypatch, importable, gpu, expected):
    monkeypatch.setattr(backends, "vllm_importable", lambda: importable)
    monkeypatch.setattr(backends, "_gpu_available", lambda: gpu)
    assert backends.resolve_backend_name("auto") == expected


def test_explicit_names_pass_and_unknown_names_fail():
    assert backends.resolve_backend_name("hf") == "hf"
    with pytest.raises(MaplError, match="unknown backend"):
        backends.resolve_backend_name("tgi")


def test_core_modules_do_not_import_vllm():
    import mapl_cli.evaluation.evaluate  # noqa: F401

    assert "vllm" not in sys.modules
    assert backends.BACKENDS["vllm"].startswith("mapl_cli.generation.vllm:")


def test_length_sorted_batches_group_similar_lengths_longest_first():
    assert length_sorted_batches([3, 9, 1, 5, 7], 2) == [[1, 4], [3, 0], [2]]


# ---- transformers backend -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lively_backend():
    """A 2-layer random Llama with large weights (so greedy outputs differ from prompt to prompt) and the
    real SmolLM2 tokenizer and chat template from the built-in `tiny-random` folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from mapl_cli.generation.hf import HFBackend
    from mapl_cli.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model("tiny-random")))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, initializer_range=0.5, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    return HFBackend.from_loaded(LlamaForCausalLM(config), tokenizer, batch_size=3)


PROMPTS = [[{"role": "user", "content": f"prompt {'x ' * n}number {n}"}] for n in (3, 9, 1, 5, 7, 2, 8)]


def test_hf_batches_are_length_sorted_and_left_padded(lively_backend):
    lively_backend.generate(PROMPTS, SamplingConfig(max_new_tokens=2))
    batches = lively_backend.last_batches
    assert [idx for idx, _ in batches] == [[1, 6, 4], [3, 0, 5], [2]]  # longest prompts first, 3 per batch
    widths = [w for _, w in batches]
    assert widths == sorted(widths, reverse=True)
    assert lively_backend.tokenizer.padding_side == "left"


def test_hf_results_come_back_in_input_order_and_match_unbatched_generation(lively_backend):
    sampling = SamplingConfig(max_new_tokens=6)
    batched = lively_backend.generate(PROMPTS, sampling)
    one_by_one = [lively_backend.generate([p], sampling)[0] for p in PROMPTS]
    assert batched == one_by_one
    assert len(set(batched)) == len(PROMPTS)  # distinct outputs, so a shuffled order could not pass


def test_hf_sample_continues_from_one_shared_prefill_exactly_as_separate_generation(lively_backend):
    """`sample` runs each prompt's prefill once and repeats the KV cache n times; with greedy decoding every
    one of the n rows must then equal what a plain `generate` of that prompt gives (left padding included:
    the batches hold prompts of different lengths)."""
    sampling = SamplingConfig(max_new_tokens=6)
    samples = lively_backend.sample(PROMPTS, sampling, n=3)
    alone = lively_backend.generate(PROMPTS, sampling)
    assert [[c.text for c in row] for row in samples] == [[text] * 3 for text in alone]
    assert len(set(alone)) == len(PROMPTS)


def test_hf_stops_at_the_end_of_turn_token(lively_backend):
    tokenizer, model = lively_backend.tokenizer, lively_backend.model
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end in lively_backend.stop_ids
    calls = {"n": 0}

    def force_end_of_turn_from_third_step(module, inputs, output):
        calls["n"] += 1
        if calls["n"] >= 3:
            output[..., im_end] = 1e4
        return output

    free = lively_backend.generate(PROMPTS[:1], SamplingConfig(max_new_tokens=2))
    handle = model.lm_head.register_forward_hook(force_end_of_turn_from_third_step)
    try:
        before = lively_backend.generated_tokens
        out = lively_backend.generate(PROMPTS[:1], SamplingConfig(max_new_tokens=20))
        generated = lively_backend.generated_tokens - before
    finally:
        handle.remove()
    assert generated == 3  # two free tokens, then <|im_end|>, then nothing although 20 were allowed
    assert out == free and "<|im_end|>" not in out[0]


def test_hf_backend_builds_from_the_tiny_random_builtin():
    from mapl_cli.generation.hf import HFBackend

    backend = HFBackend("tiny-random", batch_size=2)
    out = backend.generate([USER, USER[:1]], SamplingConfig(max_new_tokens=3))
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    assert backend.tokenizer.convert_tokens_to_ids("<|im_end|>") in backend.stop_ids


# ---- vLLM adapter against a fake vllm -------------------------------------------------------------------------


class FakeVLLM:
    """Stands in for the `vllm` package: records constructor, SamplingParams and chat calls."""

    def __init__(self):
        self.llm_kwargs: list[dict] = []
        self.sampling: list[dict] = []
        self.chats: list[dict] = []
        fake = self

        class SamplingParams:
            def __init__(self, **kwargs):
                fake.sampling.append(kwargs)
                self.kwargs = kwargs

        class LLM:
            def __init__(self, **kwargs):
                fake.llm_kwargs.append(kwargs)

            def chat(self, messages, sampling_params=None, use_tqdm=True, lora_request=None, chat_template_kwargs=None):
                fake.chats.append({"messages": messages, "params": sampling_params, "lora_request": lora_request})
                return [
                    types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f"reply to {m[-1]['content']}")])
                    for m in messages
                ]

        class LoRARequest:
            def __init__(self, lora_name, lora_int_id, lora_path):
                self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path

        self.module = types.ModuleType("vllm")
        self.module.LLM, self.module.SamplingParams = LLM, SamplingParams
        self.lora = types.ModuleType("vllm.lora")
        self.request = types.ModuleType("vllm.lora.request")
        self.request.LoRARequest = LoRARequest
        self.module.lora = self.lora
        self.lora.request = self.request


@pytest.fixture
def fake_vllm(monkeypatch):
    fake = FakeVLLM()
    monkeypatch.setitem(sys.modules, "vllm", fake.module)
    monkeypatch.setitem(sys.modules, "vllm.lora", fake.lora)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", fake.request)
    return fake


def test_vllm_backend_builds_llm_and_sampling_params(fake_vllm, tmp_path):
    from mapl_cli.models import resolve_model

    backend = backends.get_backend("vllm", model="tiny-random", tensor_parallel_size=2, dtype="bfloat16", seed=7)
    assert backend.name == "vllm"
    assert fake_vllm.llm_kwargs == [
        {"model": str(resolve_model("tiny-random")), "tensor_parallel_size": 2, "dtype": "bfloat16", "seed": 7, "gpu_memory_utilization": 0.9}
    ]
    prompts = [USER, [{"role": "user", "content": "B"}]]
    out = backend.generate(prompts, SamplingConfig(max_new_tokens=11, temperature=0.7, top_p=0.9, seed=3))
    assert out == ["reply to Say hi.", "reply to B"]
    assert fake_vllm.sampling == [{"n": 1, "temperature": 0.7, "top_p": 0.9, "max_tokens": 11, "seed": 3}]
    assert fake_vllm.chats[0]["messages"] == prompts and fake_vllm.chats[0]["lora_request"] is None
    backend.generate(prompts, SamplingConfig(max_new_tokens=5))  # greedy: temperature 0, top_p 1
    assert fake_vllm.sampling[-1] == {"n": 1, "temperature": 0.0, "top_p": 1.0, "max_tokens": 5, "seed": 0}


def _write_adapter(folder: Path, base: str, rank: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base, "r": rank, "peft_type": "LORA"}))
    return folder


def test_vllm_serves_lora_adapters_through_lora_request(fake_vllm, tmp_path):
    from mapl_cli.models import resolve_model

    adapter = _write_adapter(tmp_path / "run" / "adapter", "tiny-random", rank=32)
    backend = backends.get_backend("vllm", model=str(tmp_path / "run"))
    kwargs = fake_vllm.llm_kwargs[0]
    assert kwargs["model"] == str(resolve_model("tiny-random"))
    assert kwargs["enable_lora"] is True and kwargs["max_lora_rank"] == 32 and kwargs["max_loras"] == 1
    backend.generate([USER], SamplingConfig(max_new_tokens=4))
    request = fake_vllm.chats[0]["lora_request"]
    assert request.lora_path == str(adapter.resolve()) and request.lora_int_id == 1


def test_vllm_merge_mode_loads_a_merged_folder_without_lora(fake_vllm, tmp_path):
    from peft import LoraConfig, get_peft_model

    from mapl_cli.models import load_causal_lm

    model, _ = load_causal_lm("tiny-random", device="cpu")
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    peft_model.save_pretrained(str(tmp_path / "adapter"))
    backend = backends.get_backend("vllm", model=str(tmp_path / "adapter"), lora_mode="merge")
    merged = Path(fake_vllm.llm_kwargs[0]["model"])
    assert "enable_lora" not in fake_vllm.llm_kwargs[0]
    assert (merged / "config.json").exists() and (merged / "tokenizer_config.json").exists()
    backend.close()
    assert not merged.exists()  # the temporary merged folder is removed


def test_vllm_backend_without_vllm_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(MaplError, match=r"mapl-cli\[vllm\]"):
        backends.get_backend("vllm", model="tiny-random")
