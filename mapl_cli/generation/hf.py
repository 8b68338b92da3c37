"""The transformers backend: batched `model.generate` on CPU or GPU.

Prompts are rendered with the tokenizer's chat template, sorted by length (longest first) so each batch
holds prompts of similar length and wastes little padding, left-padded (decoder-only models continue from
the right edge), and generated with the KV cache. Generation stops at the chat template's end-of-turn token
as well as at EOS. Responses come back in the prompts' order.

    backend = HFBackend("smollm2-135m-instruct", batch_size=32)
    backend.generate([[{"role": "user", "content": "Write a haiku."}]], SamplingConfig(max_new_tokens=64))

`chat_template` (a Jinja file, `--chat-template`) replaces the tokenizer's template before anything is
rendered, so the end-of-turn token is read from it too.

`sample` draws n responses per prompt and runs each prompt's prefill once: one forward pass over the
batch's prompts fills the KV cache, the cache is repeated n times, and `generate` continues all n rows from
it. (`num_return_sequences=n` would copy the prompts before the prefill and run each n times.) Each prompt's
rows follow each other in the batch, so a batch holds batch_size prompts and batch_size * n sequences. The
torch generator is seeded once per call, so the same prompts and seed give the same samples.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from mapl_cli.errors import MaplError
from mapl_cli.generation.base import Completion, Messages, ProgressFn, SamplingConfig
from mapl_cli.generation.checkpoints import resolve_checkpoint

_KNOWN_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|eom_id|>")


def end_of_turn_ids(tokenizer: Any, generation_config: Any = None) -> list[int]:
    """Token ids that end an assistant turn: EOS, the generation config's EOS ids, and the token the chat
    template writes right after an assistant message."""
    ids: list[int] = []

    def add(value: Any) -> None:
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, int) and v >= 0 and v not in ids:
                ids.append(v)

    add(tokenizer.eos_token_id)
    if generation_config is not None:
        add(getattr(generation_config, "eos_token_id", None))
    vocab = tokenizer.get_vocab()
    for token in _KNOWN_END_OF_TURN:
        if token in vocab:
            add(vocab[token])
    if getattr(tokenizer, "chat_template", None):
        marker = "MAPLENDMARKER"
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}, {"role": "assistant", "content": marker}], tokenize=False
        )
        after = text.split(marker, 1)[-1]
        tail = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
        if tail and tail[0] in tokenizer.all_special_ids:
            add(tail[0])
    return ids


def render_prompts(
    tokenizer: Any, prompts: Sequence[Messages], template_kwargs: dict[str, Any] | None = None
) -> list[list[int]]:
    """Token ids of each prompt rendered with the chat template (given `template_kwargs`, for example
    enable_thinking) and the assistant-turn opener."""
    if not getattr(tokenizer, "chat_template", None):
        raise MaplError("the model's tokenizer has no chat template; mapl evaluate needs a chat/instruct model")
    out = []
    for messages in prompts:
        text = tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=True, **(template_kwargs or {})
        )
        out.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return out


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (an OOM shows up on the first batch)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class HFBackend:
    """Batched generation with transformers; see the module docstring."""

    name = "hf"

    def __init__(
        self,
        model: str,
        batch_size: int = 16,
        dtype: str = "auto",
        device: str | None = None,
        chat_template: str | None = None,
        **_: object,
    ):
        from mapl_cli.models import load_causal_lm

        checkpoint = resolve_checkpoint(model)
        lm, tokenizer = load_causal_lm(checkpoint.base, dtype=dtype, device=device, chat_template=chat_template)
        if checkpoint.adapter:
            from mapl_cli.models import merge_adapter_into

            lm = merge_adapter_into(lm, checkpoint.adapter)
        self._setup(lm, tokenizer, batch_size)

    @classmethod
    def from_loaded(cls, lm: Any, tokenizer: Any, batch_size: int = 16) -> HFBackend:
        """A backend around an already loaded model and tokenizer (benchmarks, tests)."""
        self = cls.__new__(cls)
        self._setup(lm, tokenizer, batch_size)
        return self

    def _setup(self, lm: Any, tokenizer: Any, batch_size: int) -> None:
        if batch_size < 1:
            raise MaplError(f"--batch-size must be at least 1, got {batch_size}")
        self.model = lm.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size
        self.stop_ids = end_of_turn_ids(tokenizer, getattr(lm, "generation_config", None))
        # the KV cache's keyword: `cache` in recent transformers, `past_key_values` before
        self._cache_name = "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"
        #: (prompt indices, padded prompt length) of each batch of the last call, for tests and stats.
        self.last_batches: list[tuple[list[int], int]] = []
        self.generated_tokens = 0

    def _decode(self, tokens: list[int]) -> tuple[str, int, bool]:
        """The text before the first stop token, how many tokens were generated (stop token included), and
        whether a stop token ended it (else the max_new_tokens limit did)."""
        for j, token in enumerate(tokens):
            if token in self.stop_ids:
                return self.tokenizer.decode(tokens[:j], skip_special_tokens=True), j + 1, True
        return self.tokenizer.decode(tokens, skip_special_tokens=True), len(tokens), False

    def generate(
        self, prompts: Sequence[Messages], sampling: SamplingConfig, progress: ProgressFn | None = None
    ) -> list[str]:
        return [samples[0].text for samples in self._run(prompts, sampling, 1, progress)]

    def sample(
        self, prompts: Sequence[Messages], sampling: SamplingConfig, n: int, progress: ProgressFn | None = None
    ) -> list[list[Completion]]:
        return self._run(prompts, sampling, n, progress)

    def _options(self, sampling: SamplingConfig, n: int) -> dict[str, Any]:
        import torch

        options: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens, "do_sample": not sampling.greedy}
        if not sampling.greedy:
            options.update(temperature=sampling.temperature, top_p=sampling.top_p)
            torch.manual_seed(sampling.seed)
        else:  # silence "temperature is set but do_sample is False" from the model's generation config
            options.update(temperature=None, top_p=None, top_k=None)
        return options

    def _run(
        self, prompts: Sequence[Messages], sampling: SamplingConfig, n: int, progress: ProgressFn | None
    ) -> list[list[Completion]]:
        """n completions per prompt, in the prompts' order."""
        import torch

        ids = render_prompts(self.tokenizer, prompts, sampling.chat_template_kwargs)
        out: list[list[Completion]] = [[] for _ in ids]
        self.last_batches = []
        device = next(self.model.parameters()).device
        options = self._options(sampling, n)
        for batch in length_sorted_batches([len(x) for x in ids], self.batch_size):
            padded = self.tokenizer.pad({"input_ids": [ids[i] for i in batch]}, padding=True, return_tensors="pt")
            width = padded["input_ids"].shape[1]
            self.last_batches.append((batch, width))
            input_ids, mask = padded["input_ids"].to(device), padded["attention_mask"].to(device)
            with torch.inference_mode():
                prefilled = {}
                if n > 1:
                    if width > 1:  # a one-token prompt has nothing to share
                        prefilled[self._cache_name] = self._shared_prefill(input_ids, mask, n)
                    input_ids, mask = input_ids.repeat_interleave(n, 0), mask.repeat_interleave(n, 0)
                generated = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=mask,
                    eos_token_id=self.stop_ids,
                    pad_token_id=self.tokenizer.pad_token_id,
                    use_cache=True,
                    **options,
                    **prefilled,
                )
            new_tokens = generated[:, width:].tolist()  # prompt i's n rows follow each other
            for row, tokens in enumerate(new_tokens):
                text, count, stopped = self._decode(tokens)
                out[batch[row // n]].append(Completion(text or "", "stop" if stopped else "length"))
                self.generated_tokens += count
            if progress is not None:
                progress(len(batch))
        return out

    def _shared_prefill(self, input_ids: Any, mask: Any, n: int) -> Any:
        """The KV cache of every prompt but its last token, computed once and repeated n times (row i's
        copies at i*n .. i*n+n-1). `generate` then feeds each row's last prompt token itself, so the first
        sampled token comes from logits it computed. Position ids follow the left padding as `generate`'s own."""
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=input_ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1], use_cache=True
        )
        cache = out[self._cache_name]
        cache.batch_repeat_interleave(n)
        return cache

    def close(self) -> None:
        import gc

        del self.model
        gc.collect()
