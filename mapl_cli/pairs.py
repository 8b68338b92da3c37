"""The pairs table: the one contract between `mapl synthesize` and the trainers.

Each row says (prompt_chosen, response_chosen) is preferred to (prompt_rejected, response_rejected).
Columns and their meaning are listed in README.md ("Output columns"); the schema version is stored in the
Parquet file's metadata under `mapl.schema_version`.

    from mapl_cli.pairs import read_pairs
    table = read_pairs("out/pairs/pairs.parquet")     # validated pyarrow.Table
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mapl_cli.errors import MaplError

SCHEMA_VERSION = "1"
KINDS = ("standard", "intra", "inter")
CONDITIONS = ("all_vs_notall", "some_vs_none")
ANCHORS = ("chosen", "rejected")

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)
INSTRUCTION = pa.struct([("id", pa.string()), ("kwargs", pa.string()), ("text", pa.string())])
INSTRUCTIONS = pa.list_(INSTRUCTION)

PAIRS_SCHEMA = pa.schema(
    [
        ("pair_id", pa.string()),
        ("kind", pa.string()),
        ("source_id", pa.string()),
        ("prompt_chosen", MESSAGES),
        ("prompt_rejected", MESSAGES),
        ("response_chosen", pa.string()),
        ("response_rejected", pa.string()),
        ("base_prompt", MESSAGES),
        ("instructions_chosen", INSTRUCTIONS),
        ("instructions_rejected", INSTRUCTIONS),
        ("verdicts_chosen", pa.list_(pa.bool_())),
        ("verdicts_rejected", pa.list_(pa.bool_())),
        ("condition", pa.string()),
        ("anchor", pa.string()),
    ],
    metadata={"mapl.schema_version": SCHEMA_VERSION},
)

REQUIRED_NON_NULL = ("pair_id", "kind", "prompt_chosen", "prompt_rejected", "response_chosen", "response_rejected")


def validate_pairs(table: pa.Table, path: str | Path = "<table>") -> pa.Table:
    """Check `table` against the pairs contract and return it cast to `PAIRS_SCHEMA`.

    Raises MaplError naming the file, column and (where it applies) the row. Optional columns that are
    missing (for example `base_prompt` in a hand-made file) are added as nulls.
    """
    if table.num_rows == 0:
        raise MaplError(f"{path}: the pairs table is empty")
    for name in REQUIRED_NON_NULL:
        if name not in table.column_names:
            raise MaplError(f"{path}: not a pairs table: missing column '{name}'")
    columns = []
    for field in PAIRS_SCHEMA:
        if field.name in table.column_names:
            column = table.column(field.name)
            if not column.type.equals(field.type):
                try:
                    column = column.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                    raise MaplError(
                        f"{path}: column '{field.name}' has type {column.type}, expected {field.type}"
                    ) from None
        else:
            column = pa.nulls(table.num_rows, field.type)
        columns.append(column)
    table = pa.Table.from_arrays(columns, schema=PAIRS_SCHEMA)
    for name in REQUIRED_NON_NULL:
        column = table.column(name)
        if column.null_count:
            row = column.is_null().to_pylist().index(True)
            raise MaplError(f"{path}: column '{name}' is null at row {row}")
    kinds = table.column("kind").to_pylist()
    for row, kind in enumerate(kinds):
        if kind not in KINDS:
            raise MaplError(f"{path}: column 'kind' has unknown value {kind!r} at row {row} (expected one of {', '.join(KINDS)})")
    for name in ("prompt_chosen", "prompt_rejected"):
        for row, messages in enumerate(table.column(name).to_pylist()):
            if not messages:
                raise MaplError(f"{path}: column '{name}' is an empty message list at row {row}")
    for name in ("response_chosen", "response_rejected"):
        for row, text in enumerate(table.column(name).to_pylist()):
            if not text.strip():
                raise MaplError(f"{path}: column '{name}' is empty at row {row}")
    return table


def read_pairs(path: str | Path) -> pa.Table:
    """Read and validate a pairs.parquet file (or a directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "pairs.parquet"
    if not path.exists():
        raise MaplError(f"{path}: no such file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise MaplError(f"{path}: not a readable Parquet file ({err})") from None
    return validate_pairs(table, path)
