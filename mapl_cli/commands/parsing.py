"""Option values shared by several commands, parsed into plain Python values (no heavy imports)."""

from __future__ import annotations

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
