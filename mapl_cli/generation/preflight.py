"""A `--model` checked before anything is generated or written: its folders (files and headers), its config,
and the `--device` it is to run on. Used by every stage that generates (evaluate, sample) and by
evaluate's reward-model checks.

    preflight_model("out/dpo-mapl")      # MaplError "model 'out/dpo-mapl' cannot be loaded: ..." if not
"""

from __future__ import annotations

from pathlib import Path

from mapl_cli.errors import MaplError


def check_folders(name: str, checkpoint) -> None:
    """check_model_folder for every local folder `name` stands for: a LoRA adapter and its base, or the
    model folder (for a mapl run folder, its model/); built-in names are checked in their cache folder.
    Hub ids are not local folders and are left to the loader's error."""
    from mapl_cli.modelcheck import check_model_folder
    from mapl_cli.models import resolve_model

    if checkpoint.adapter:
        check_model_folder(checkpoint.adapter, "LoRA adapter")
    base = resolve_model(checkpoint.base)
    if isinstance(base, Path) or Path(base).is_dir():
        check_model_folder(base, "base model" if checkpoint.adapter else "model")


def check_device(device: str) -> None:
    """--device names a torch device that exists here."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as err:
        raise MaplError(f"--device {device!r}: not a torch device ({str(err).splitlines()[0]})") from None
    if parsed.type == "cuda" and (not torch.cuda.is_available() or (parsed.index or 0) >= torch.cuda.device_count()):
        raise MaplError(f"--device {device}: no such CUDA device here ({torch.cuda.device_count()} visible)")


def preflight_model(name: str) -> None:
    """Fail before any generation if `name` cannot be found, its files are damaged or its config cannot be
    read."""
    from mapl_cli.generation.checkpoints import resolve_checkpoint

    try:
        checkpoint = resolve_checkpoint(name)
        check_folders(name, checkpoint)
        from transformers import AutoConfig

        from mapl_cli.models import resolve_model

        AutoConfig.from_pretrained(str(resolve_model(checkpoint.base)))
    except MaplError as err:
        raise MaplError(f"model {name!r} cannot be loaded: {err}") from None
    except Exception as err:  # noqa: BLE001 - missing files, bad config, offline hub: one line for the user
        raise MaplError(f"model {name!r} cannot be loaded: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
