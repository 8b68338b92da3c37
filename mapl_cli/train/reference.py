"""Reference log-probs for DPO, computed once in a no-grad pass and cached on disk.

The cache is a Parquet file per (reference model fingerprint, dtype) under `$MAPL_CACHE/ref-logps/`,
keyed by a hash of each sequence's prompt and response tokens, so later runs on the same pairs, `--resume`
and evaluation passes reuse it; the reference model is freed before training starts. Sequences that share a
prompt (a standard or inter row's chosen and rejected) are computed side by side with the prompt once
(`batch.shared_batch`); the values are those of separate sequences to float32 rounding, so one cache serves
both layouts.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from mapl_cli.encoding.batch import attention_ratio_of, group_by_prompt, make_batch, unit_size
from mapl_cli.encoding.forward import can_share_prompts, response_logps
from mapl_cli.encoding.tokens import EncodedRow, Sequence, sequence_key
from mapl_cli.models import _file_lock, cache_dir
from mapl_cli.train.checkpoint import WriteError


def cache_path(fingerprint: str, dtype: torch.dtype) -> Path:
    """The cache file of a reference model in `dtype`; called where the log-probs will be computed, so
    values computed under CUDA or CPU autocast (the trainer's mixed precision) get a file of their own."""
    safe = fingerprint.replace("/", "--")
    name = str(dtype).replace("torch.", "")
    for device_type in ("cuda", "cpu"):
        if torch.is_autocast_enabled(device_type):
            name += "-autocast-" + str(torch.get_autocast_dtype(device_type)).replace("torch.", "")
            break
    return cache_dir() / "ref-logps" / f"{safe}-{name}.parquet"


def read_cache(path: Path) -> dict[str, float]:
    """The cached log-probs; a cache file that cannot be read, or entries that are not finite log-probs, are
    ignored (recomputed and written again) rather than trusted."""
    if not path.exists():
        return {}
    try:
        table = pq.read_table(path, columns=["key", "logp"])
        pairs = zip(table.column("key").to_pylist(), table.column("logp").to_pylist(), strict=True)
    except (pa.ArrowException, OSError, KeyError, ValueError):
        return {}
    return {k: v for k, v in pairs if isinstance(k, str) and isinstance(v, float) and math.isfinite(v)}


def write_cache(path: Path, new: dict[str, float]) -> None:
    """Merge `new` into the cache file (under a lock, atomically); a failed write leaves no partial file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(path.with_suffix(".lock")):
            merged = read_cache(path)
            merged.update(new)
            table = pa.table({"key": list(merged), "logp": pa.array(list(merged.values()), pa.float64())})
            pq.write_table(table, tmp)
            os.replace(tmp, path)
    except (OSError, pa.ArrowException) as err:
        tmp.unlink(missing_ok=True)
        raise WriteError(f"{path}: cannot write the reference log-prob cache ({err.strerror if isinstance(err, OSError) and err.strerror else err})") from None


@torch.no_grad()
def compute_logps(
    model, sequences: list[Sequence], batch_size: int, device, pad_id: int, progress=None, packing: bool = True
) -> list[float]:
    """Summed response log-probs of `sequences` (length-sorted batches, no grad). With shared prompts, the
    sequences of one prompt are kept next to each other (ordered by the length of their shared unit), so they
    fall into the same batch."""
    share = can_share_prompts(model)
    if share:
        groups = sorted(group_by_prompt(sequences), key=lambda members: unit_size(sequences, members))
        order = [i for members in groups for i in members]
    else:
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    ratio = attention_ratio_of(getattr(model, "config", None))
    out = [0.0] * len(sequences)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = make_batch([sequences[i] for i in chunk], pad_id, packing, ratio, share).to(device)
        logps, _ = response_logps(model, batch)
        for i, value in zip(chunk, logps.double().cpu().tolist(), strict=True):
            out[i] = value
        if progress is not None:
            progress(len(chunk))
    return out


def shard_keys(missing: dict[str, Sequence], rank: int, world: int) -> list[str]:
    """This process's share of the sequences to compute, split by prompt rather than by sequence, so that the
    sequences sharing a prompt (a row's chosen and rejected) are computed together, by one process."""
    keys = sorted(missing)
    by_prompt = group_by_prompt([missing[k] for k in keys])
    return [keys[i] for members in by_prompt[rank::world] for i in members]


def precompute(
    model, rows: list[EncodedRow], path: Path, batch_size: int, device, pad_id: int, rank: int = 0, world: int = 1,
    progress=None, packing: bool = True,
) -> tuple[dict[str, float], int]:
    """Reference log-probs for every sequence of `rows`: read from the cache, computing (sharded across
    processes) only the missing ones. Returns (key -> logp, number computed now)."""
    cached = read_cache(path)
    missing: dict[str, Sequence] = {}
    for row in rows:
        for key, seq in zip(row.keys, row.sequences, strict=True):
            if key not in cached:
                missing[key] = seq
    keys = sorted(missing)
    mine = shard_keys(missing, rank, world)
    values = compute_logps(model, [missing[k] for k in mine], batch_size, device, pad_id, progress, packing)
    new = dict(zip(mine, values, strict=True))
    if world > 1:
        import torch.distributed as dist

        gathered: list[dict] = [None] * world  # type: ignore[list-item]
        dist.all_gather_object(gathered, new)
        new = {k: v for part in gathered for k, v in part.items()}
    if new and rank == 0:
        write_cache(path, new)
    cached.update(new)
    return cached, len(keys)


def lookup(cache: dict[str, float], sequences: list[Sequence]) -> torch.Tensor:
    return torch.tensor([cache[sequence_key(s)] for s in sequences], dtype=torch.float64)
