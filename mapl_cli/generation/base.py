"""The generation interface every backend follows, and a dummy backend for tests.

A backend turns chat prompts (lists of {role, content} messages) and one set of sampling settings into one
response string per prompt, in input order. Batching, padding and stop tokens are the backend's business.
A backend that can also `sample` (every backend here) returns n `Completion`s per prompt, each with why it
ended: the stop token ("stop") or the --max-new-tokens limit ("length"); `mapl sample` uses it.

    from mapl_cli.generation import get_backend
    backend = get_backend("hf", model="tiny-random")
    responses = backend.generate([[{"role": "user", "content": "Hi"}]], SamplingConfig(max_new_tokens=8))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

Messages = list[dict[str, str]]
#: Called with the number of prompts just finished (for progress bars).
ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class SamplingConfig:
    """Generation settings shared by every backend. temperature 0 means greedy decoding.

    `chat_template_kwargs` go to the chat template when prompts are rendered (for example
    `{"enable_thinking": False}` for templates that read it)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    chat_template_kwargs: dict[str, Any] | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


#: Why a completion ended: a stop token, or the max_new_tokens limit.
FINISH_REASONS = ("stop", "length")


@dataclass(frozen=True)
class Completion:
    """One sampled response and why it ended (one of FINISH_REASONS)."""

    text: str
    finish_reason: str


@runtime_checkable
class GenerationBackend(Protocol):
    """Chat prompts and sampling settings in, responses out (same order as the prompts)."""

    name: str

    def generate(
        self, prompts: Sequence[Messages], sampling: SamplingConfig, progress: ProgressFn | None = None
    ) -> list[str]: ...

    def close(self) -> None:
        """Free the model's memory (the evaluator calls it before loading the next model)."""
        ...


@runtime_checkable
class SamplingBackend(GenerationBackend, Protocol):
    """A backend that also draws n responses per prompt: `out[i][j]` is prompt i's j-th sample. For a given
    sampling seed the same prompts (in the same order) give the same samples."""

    def sample(
        self, prompts: Sequence[Messages], sampling: SamplingConfig, n: int, progress: ProgressFn | None = None
    ) -> list[list[Completion]]: ...


class DummyBackend:
    """A backend without a model: `respond(messages) -> str` makes each response, and `respond_n(messages, j)`
    (a string, or a Completion to set the finish reason) the j-th sample of `sample`; every call is recorded.

    The default reply echoes the last user message, and the default j-th sample is that echo with `#j` and the
    seed, so tests can predict them.
    """

    name = "dummy"

    def __init__(
        self,
        model: str = "dummy",
        respond: Callable[[Messages], str] | None = None,
        respond_n: Callable[[Messages, int], str | Completion] | None = None,
        **_: object,
    ):
        self.model = model
        self.respond = respond or (lambda messages: f"echo: {messages[-1]['content']}")
        self.respond_n = respond_n
        self.calls: list[tuple[list[Messages], SamplingConfig]] = []
        self.closed = False

    def generate(
        self, prompts: Sequence[Messages], sampling: SamplingConfig, progress: ProgressFn | None = None
    ) -> list[str]:
        self.calls.append((list(prompts), sampling))
        out = [self.respond(messages) for messages in prompts]
        if progress is not None:
            progress(len(out))
        return out

    def sample(
        self, prompts: Sequence[Messages], sampling: SamplingConfig, n: int, progress: ProgressFn | None = None
    ) -> list[list[Completion]]:
        self.calls.append((list(prompts), sampling))
        out = []
        for messages in prompts:
            made = [
                self.respond_n(messages, j) if self.respond_n else f"{self.respond(messages)} #{j} seed {sampling.seed}"
                for j in range(n)
            ]
            out.append([m if isinstance(m, Completion) else Completion(m, "stop") for m in made])
        if progress is not None:
            progress(len(out))
        return out

    def close(self) -> None:
        self.closed = True
