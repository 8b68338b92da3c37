"""Which rows each optimizer step sees: length-grouped global batches and their micro-batches.

    plan = batch_plan(rows, global_batch=8, seed=0, epoch=0)   # list of lists of row indices
    micro = split_batch(plan[0], rows, parts=2)
"""

from __future__ import annotations

import random

from mapl_cli.encoding.tokens import EncodedRow


def batch_plan(rows: list[EncodedRow], global_batch: int, seed: int, epoch: int, shuffle: bool = True) -> list[list[int]]:
    """Global batches of row indices for one epoch. Depends only on (rows, seed, epoch, global batch), never on
    the number of processes, so a resumed or distributed run walks through the same batches.

    With `shuffle`: a seeded shuffle; within windows of 32 batches, rows are ordered by their length rank
    *within their kind* (so each batch holds rows of similar length, and every kind in the window's
    proportion: sorting on raw length would put the longer-prompt intra/inter rows in batches of their own,
    where the weighted mean cancels lambda_intra/lambda_inter); then the batches are shuffled again.
    `shuffle=False` keeps the file order. The last incomplete batch is dropped so every optimizer step sees
    the same number of rows."""
    if not shuffle:
        order = list(range(len(rows) - len(rows) % global_batch))
        return [order[i : i + global_batch] for i in range(0, len(order), global_batch)]
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(rows)))
    rng.shuffle(order)
    by_kind: dict[int, list[int]] = {}
    for i in sorted(order, key=lambda i: rows[i].length):  # stable: equal lengths keep the shuffled order
        by_kind.setdefault(rows[i].kind, []).append(i)
    quantile = {i: (rank + 0.5) / len(members) for members in by_kind.values() for rank, i in enumerate(members)}
    window = global_batch * 32
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: quantile[i])
        batches.extend(chunk[i : i + global_batch] for i in range(0, len(chunk), global_batch))
    batches = [b for b in batches if len(b) == global_batch]
    rng.shuffle(batches)
    return batches


def split_batch(indices: list[int], rows: list[EncodedRow], parts: int) -> list[list[int]]:
    """Split one global batch into `parts` equal micro-batches of similar lengths (sorted by length first)."""
    ordered = sorted(indices, key=lambda i: rows[i].length)
    size = len(ordered) // parts
    return [ordered[p * size : (p + 1) * size] for p in range(parts)]
