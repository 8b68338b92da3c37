"""Check a local model folder before a run trusts it: config readable, weight files present, readable and
well-formed (safetensors headers parsed without loading a tensor), adapter folders pointing at a base.

Every stage calls this before it deletes, writes or loads anything, so a corrupt or truncated model ends
the run with one line naming the file and the cause, instead of a traceback minutes later.

    from mapl_cli.modelcheck import check_model_folder
    check_model_folder("out/dpo/model")          # MaplError('out/dpo/model/model.safetensors: ...')
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from mapl_cli.errors import MaplError

#: safetensors' header is an 8-byte little-endian length, then that many bytes of JSON (at most 100 MB).
_MAX_HEADER = 100 * 1024 * 1024
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MaplError(f"{path}: missing ({what})") from None
    except IsADirectoryError:
        raise MaplError(f"{path}: is a folder, expected {what}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise MaplError(f"{path}: cannot be read ({type(err).__name__}: {err})") from None
    except (json.JSONDecodeError, RecursionError) as err:
        raise MaplError(f"{path}: not valid JSON ({what}): {getattr(err, 'msg', type(err).__name__)}") from None


def check_safetensors(path: Path) -> None:
    """Parse a .safetensors header and check that every tensor's byte range lies inside the file."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise MaplError(f"{path}: truncated safetensors file ({size} bytes)")
            (length,) = struct.unpack("<Q", head)
            if length > min(_MAX_HEADER, size - 8):
                raise MaplError(f"{path}: not a safetensors file (header length {length} in a {size}-byte file)")
            header = json.loads(handle.read(length))
    except MaplError:
        raise
    except OSError as err:
        raise MaplError(f"{path}: cannot be read ({type(err).__name__}: {err})") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise MaplError(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise MaplError(f"{path}: not a safetensors file (its header is not an object)")
    data = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = entry["data_offsets"]
            count = 1
            for dim in entry["shape"]:
                count *= int(dim)
            width = _DTYPE_BYTES[entry["dtype"]]
        except (KeyError, TypeError, ValueError):
            raise MaplError(f"{path}: malformed safetensors entry {name!r}") from None
        if not 0 <= begin <= end <= data or end - begin != count * width:
            raise MaplError(f"{path}: tensor {name!r} lies outside the file (truncated or corrupt)")


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        mapping = _read_json(index, "the weights index")
        names = sorted(set((mapping.get("weight_map") or {}).values())) if isinstance(mapping, dict) else []
        if not names:
            raise MaplError(f"{index}: lists no weight files")
        return [folder / name for name in names]
    found = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    return found


def check_model_folder(folder: str | Path, what: str = "model") -> None:
    """MaplError (one line) unless `folder` looks like a loadable Hugging Face model or LoRA adapter folder."""
    folder = Path(folder)
    if not folder.exists():
        raise MaplError(f"{folder}: no such {what} folder")
    if not folder.is_dir():
        raise MaplError(f"{folder}: is a file, expected a {what} folder")
    if (folder / "adapter_config.json").exists():
        config = _read_json(folder / "adapter_config.json", "the LoRA adapter config")
        if not isinstance(config, dict) or not config.get("base_model_name_or_path"):
            raise MaplError(f"{folder / 'adapter_config.json'}: names no base model")
        weights = [p for p in (folder / "adapter_model.safetensors", folder / "adapter_model.bin") if p.exists()]
        if not weights:
            raise MaplError(f"{folder}: a LoRA adapter folder without adapter_model.safetensors")
    else:
        config = _read_json(folder / "config.json", "the model config")
        if not isinstance(config, dict) or "model_type" not in config:
            raise MaplError(f"{folder / 'config.json'}: not a model config (no model_type)")
        weights = _weight_files(folder)
        if not weights:
            raise MaplError(f"{folder}: no weight files (*.safetensors or *.bin)")
    for file in weights:
        if not file.is_file():
            raise MaplError(f"{file}: missing ({what} weights)")
        if file.suffix == ".safetensors":
            check_safetensors(file)
        elif file.stat().st_size == 0:
            raise MaplError(f"{file}: empty weight file")
