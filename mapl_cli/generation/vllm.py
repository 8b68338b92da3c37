"""The vLLM backend (optional extra: pip install 'mapl-cli[vllm]'). The only module that imports vllm.

vllm is imported when the backend is constructed, never at module import, so `mapl --help` and the
transformers path work without it. LoRA checkpoints from `mapl train-dpo --lora-r` are either served through
vLLM's LoRA support (`lora_mode="serve"`, the default: one base model, the adapter applied per request) or
merged into the base weights first (`lora_mode="merge"`, written to a temporary folder).

A `chat_template` file (`--chat-template`) is passed to every `LLM.chat` call in place of the model's own.

    backend = VLLMBackend("out/dpo-mapl", tensor_parallel_size=2)
    backend.generate(prompts, SamplingConfig(max_new_tokens=512))
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mapl_cli.errors import MaplError
from mapl_cli.generation.base import Completion, Messages, ProgressFn, SamplingConfig
from mapl_cli.generation.checkpoints import Checkpoint, resolve_checkpoint


def _local_model_path(name: str) -> str:
    """Built-in names (`smollm2-135m-instruct`, `tiny-random`) become their cached folders; others pass."""
    from mapl_cli.models import resolve_model

    return str(resolve_model(name))


def merge_adapter(checkpoint: Checkpoint, out_dir: str | Path) -> str:
    """Merge the LoRA adapter into its base model and save the result (with tokenizer) in `out_dir`."""
    from mapl_cli.models import load_causal_lm, merge_adapter_into

    model, tokenizer = load_causal_lm(checkpoint.base, dtype="auto", device="cpu")
    merged = merge_adapter_into(model, checkpoint.adapter)
    merged.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return str(out_dir)


def _checked_template(weights: str, chat_template: str) -> str:
    """The text of the --chat-template file, once it has rendered a conversation with the model's tokenizer."""
    from mapl_cli.models import load_tokenizer

    return load_tokenizer(weights, chat_template).chat_template


class VLLMBackend:
    """Generation through `vllm.LLM.chat`; see the module docstring."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        lora_mode: str = "serve",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        seed: int = 0,
        chat_template: str | None = None,
        **_: object,
    ):
        try:
            import vllm
        except ImportError as err:
            raise MaplError(f"the vllm backend needs vLLM: pip install 'mapl-cli[vllm]' ({err})") from None
        if lora_mode not in ("serve", "merge"):
            raise MaplError(f"lora_mode must be 'serve' or 'merge', got {lora_mode!r}")
        checkpoint = resolve_checkpoint(model)
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.lora_request = None
        options: dict[str, Any] = {
            "tensor_parallel_size": tensor_parallel_size,
            "dtype": dtype,
            "seed": seed,
            "gpu_memory_utilization": gpu_memory_utilization,
        }
        if max_model_len:
            options["max_model_len"] = max_model_len
        if checkpoint.adapter and lora_mode == "merge":
            self._tmp = tempfile.TemporaryDirectory(prefix="mapl-merged-")
            weights = merge_adapter(checkpoint, self._tmp.name)
        elif checkpoint.adapter:
            from vllm.lora.request import LoRARequest

            weights = _local_model_path(checkpoint.base)
            rank = json.loads((Path(checkpoint.adapter) / "adapter_config.json").read_text()).get("r", 16)
            options.update(enable_lora=True, max_lora_rank=max(8, int(rank)), max_loras=1)
            self.lora_request = LoRARequest("mapl-adapter", 1, str(Path(checkpoint.adapter).resolve()))
        else:
            weights = _local_model_path(checkpoint.base)
        # The template text goes with every chat call; it is checked first on the model's own tokenizer, as the
        # hf backend and training check it, so a broken file fails before the engine starts.
        self.chat_template = _checked_template(weights, chat_template) if chat_template else None
        self._vllm = vllm
        self.llm = vllm.LLM(model=weights, **options)

    def generate(
        self, prompts: Sequence[Messages], sampling: SamplingConfig, progress: ProgressFn | None = None
    ) -> list[str]:
        return [out.outputs[0].text for out in self._chat(prompts, sampling, 1, progress)]

    def sample(
        self, prompts: Sequence[Messages], sampling: SamplingConfig, n: int, progress: ProgressFn | None = None
    ) -> list[list[Completion]]:
        """n samples per prompt from one request each (`SamplingParams(n=n)`: vLLM shares the prompt's prefill
        and KV cache among them); vLLM's finish reason is "stop" or "length"."""
        outputs = self._chat(prompts, sampling, n, progress)
        return [
            [Completion(o.text, "length" if o.finish_reason == "length" else "stop") for o in out.outputs[:n]]
            for out in outputs
        ]

    def _chat(self, prompts: Sequence[Messages], sampling: SamplingConfig, n: int, progress: ProgressFn | None) -> list:
        params = self._vllm.SamplingParams(
            n=n,
            temperature=sampling.temperature if not sampling.greedy else 0.0,
            top_p=sampling.top_p if not sampling.greedy else 1.0,
            max_tokens=sampling.max_new_tokens,
            seed=sampling.seed,
        )
        # vLLM schedules all requests itself (continuous batching); no manual batching or sorting here.
        outputs = self.llm.chat(
            [list(m) for m in prompts], sampling_params=params, use_tqdm=False, lora_request=self.lora_request,
            chat_template_kwargs=sampling.chat_template_kwargs,
            **({"chat_template": self.chat_template} if self.chat_template else {}),
        )
        if len(outputs) != len(prompts):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
        if progress is not None:
            progress(len(prompts))
        return outputs

    def close(self) -> None:
        del self.llm
        if self._tmp is not None:
            self._tmp.cleanup()
