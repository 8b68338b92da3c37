"""Option values shared by several commands, parsed into plain Python values (no heavy imports)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from mapl_cli.errors import MaplError


def parse_ids(values: list[str] | None) -> tuple[str, ...]:
    """Instruction ids from repeated and/or comma-separated option values."""
    return tuple(v.strip() for value in values or [] for v in value.split(",") if v.strip())


def parse_shard(value: str) -> tuple[int, int]:
    """`I/N` as (I, N); the range is checked where the shard is used."""
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise MaplError(f"--shard: expected I/N such as 0/4, got '{value}'") from None
    return index, count


def most_compatible(ids: Sequence[str]) -> int:
    """The most instruction types from `ids` that can share one prompt: the size of a largest set with no
    two in IFEval's conflict table (an exact branch-and-bound search; the pools have at most a few dozen)."""
    from mapl_cli.instructions import conflicts

    pool = list(dict.fromkeys(ids))
    clash = {a: {b for b in pool if b != a and conflicts(a, b)} for a in pool}
    pool.sort(key=lambda a: len(clash[a]), reverse=True)  # decide the most constrained types first
    best = 0

    def grow(size: int, candidates: list[str]) -> None:
        nonlocal best
        if size + len(candidates) <= best:
            return
        if not candidates:
            best = size
            return
        first, rest = candidates[0], candidates[1:]
        grow(size + 1, [c for c in rest if c not in clash[first]])
        grow(size, rest)

    grow(0, pool)
    return best


def check_k_range(k_min: int, k_max: int, ids: Sequence[str]) -> None:
    """--k-min/--k-max can be met: 1 <= k-min <= k-max, and k-max no more than the most of `ids` that can
    share one prompt, so no prompt fails or is dropped for want of types."""
    if k_min < 1 or k_max < k_min:
        raise MaplError(f"--k-min/--k-max: need 1 <= k-min <= k-max, got {k_min} and {k_max}")
    most = most_compatible(ids)
    if k_max > most:
        raise MaplError(
            f"--k-max {k_max}: at most {most} of the {len(ids)} usable instruction types can share a prompt "
            "(after --include/--exclude and IFEval's conflict table); lower --k-max or widen --include"
        )


def at_least_zero(value: float | None) -> float | None:
    """A --temperature callback: a finite number >= 0."""
    import typer

    if value is not None and not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter(f"must be a finite number >= 0 (0 is greedy decoding), got {value}")
    return value


def probability(value: float | None) -> float | None:
    """A --top-p callback: a number in (0, 1]."""
    import typer

    if value is not None and not (math.isfinite(value) and 0 < value <= 1):
        raise typer.BadParameter(f"must be in (0, 1], got {value}")
    return value
