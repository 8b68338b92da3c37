"""Generation backends, looked up by name from lazy "module:Class" strings, and where a `--model` value
points (`checkpoints.py`). Below the stages: evaluation generates through it, and so can any later stage.

The core never imports vLLM: `generation/vllm.py` is imported only when the vllm backend is asked for (or
`auto` finds vLLM importable and a GPU present).

    backend = get_backend("auto", model="smollm2-135m-instruct", batch_size=16)
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from mapl_cli.errors import MaplError
from mapl_cli.generation.base import (
    Completion,
    DummyBackend,
    GenerationBackend,
    SamplingBackend,
    SamplingConfig,
)

BACKENDS: dict[str, str] = {
    "hf": "mapl_cli.generation.hf:HFBackend",
    "vllm": "mapl_cli.generation.vllm:VLLMBackend",
    "dummy": "mapl_cli.generation.base:DummyBackend",
}

__all__ = [
    "BACKENDS", "Completion", "DummyBackend", "GenerationBackend", "SamplingBackend", "SamplingConfig", "get_backend",
    "resolve_backend_name",
]


def _gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def vllm_importable() -> bool:
    """Whether `import vllm` would find the package (without importing it)."""
    return importlib.util.find_spec("vllm") is not None


def resolve_backend_name(name: str) -> str:
    """`auto` becomes `vllm` when vLLM is installed and a GPU is present, else `hf`; other names pass."""
    if name != "auto":
        if name not in BACKENDS:
            raise MaplError(f"unknown backend {name!r} (choose from auto, {', '.join(BACKENDS)})")
        return name
    return "vllm" if vllm_importable() and _gpu_available() else "hf"


def backend_class(name: str) -> type:
    """Import and return the class registered under `name` (after `auto` is resolved)."""
    module_name, _, class_name = BACKENDS[resolve_backend_name(name)].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def get_backend(name: str, model: str, **options: Any) -> GenerationBackend:
    """Build the backend `name` for `model`; options the backend does not take are ignored by it."""
    return backend_class(name)(model=model, **options)
