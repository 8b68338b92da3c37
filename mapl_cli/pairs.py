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
PROMPT_COLUMNS = ("prompt_chosen", "prompt_rejected", "base_prompt")


def _holds(src: pa.DataType, dst: pa.DataType) -> bool:
    """Whether a column of type `src` holds what `dst` declares, up to its physical layout (large, view or
    dictionary-encoded variants): a cast between such types never changes a value. An integer or boolean
    column does not hold strings (a cast would turn 0 into "0" and True into "true")."""
    if pa.types.is_null(src):
        return True
    if pa.types.is_dictionary(src):
        return _holds(src.value_type, dst)
    if pa.types.is_string(dst):
        return pa.types.is_string(src) or pa.types.is_large_string(src) or pa.types.is_string_view(src)
    if pa.types.is_list(dst):
        lists = (pa.types.is_list, pa.types.is_large_list, pa.types.is_list_view, pa.types.is_large_list_view,
                 pa.types.is_fixed_size_list)
        return any(is_list(src) for is_list in lists) and _holds(src.value_type, dst.value_type)
    if pa.types.is_struct(dst):
        if not pa.types.is_struct(src) or sorted(f.name for f in src) != sorted(f.name for f in dst):
            return False
        return all(_holds(src.field(f.name).type, f.type) for f in dst)
    return src.equals(dst)


def _check_messages(path, name: str, column: list, required: bool) -> None:
    """Every prompt a non-empty list of messages with a role and content, and at least one user turn."""
    for row, messages in enumerate(column):
        if not messages:
            if required:
                raise MaplError(f"{path}: column '{name}' is an empty message list at row {row}")
            continue
        for message in messages:
            if message is None or message["role"] is None or message["content"] is None:
                raise MaplError(f"{path}: column '{name}' has a message without a role or content at row {row}")
        if not any(m["role"] == "user" for m in messages):
            roles = ", ".join(sorted({m["role"] for m in messages}))
            raise MaplError(f"{path}: column '{name}' has no user turn at row {row} (roles: {roles})")


def identical_rows(table: pa.Table) -> list[int]:
    """Rows whose two sides are the same (same prompt and same response): their loss has zero gradient."""
    columns = [table.column(n).to_pylist() for n in ("prompt_chosen", "prompt_rejected", "response_chosen", "response_rejected")]
    return [row for row, (pc, pr, rc, rr) in enumerate(zip(*columns, strict=True)) if pc == pr and rc == rr]


def validate_pairs(table: pa.Table, path: str | Path = "<table>", identical: str = "error") -> pa.Table:
    """Check `table` against the pairs contract and return it cast to `PAIRS_SCHEMA`.

    Raises MaplError naming the file, column and (where it applies) the row. Optional columns that are
    missing (for example `base_prompt` in a hand-made file) are added as nulls. A column is cast only between
    layouts of the same type (large_string to string, say), never from numbers or booleans to strings.
    Rows whose two sides are identical fail with `identical="error"`; `identical="keep"` leaves them to the
    caller (see `identical_rows`).
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
                if not _holds(column.type, field.type):
                    raise MaplError(f"{path}: column '{field.name}' has type {column.type}, expected {field.type}")
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
    for name in PROMPT_COLUMNS:
        _check_messages(path, name, table.column(name).to_pylist(), required=name in REQUIRED_NON_NULL)
    for name in ("response_chosen", "response_rejected"):
        for row, text in enumerate(table.column(name).to_pylist()):
            if not text.strip():
                raise MaplError(f"{path}: column '{name}' is empty at row {row}")
    if identical == "error" and (same := identical_rows(table)):
        raise MaplError(
            f"{path}: row {same[0]} has identical sides (prompt_chosen == prompt_rejected and response_chosen == "
            f"response_rejected: nothing to prefer){f', as do {len(same) - 1} more rows' if len(same) > 1 else ''}"
        )
    return table


def read_pairs(path: str | Path, identical: str = "error") -> pa.Table:
    """Read and validate a pairs.parquet file (or a directory holding one); see `validate_pairs`."""
    path = Path(path)
    if path.is_dir():
        if not (path / "pairs.parquet").is_file():
            raise MaplError(f"{path}: a folder without pairs.parquet")
        path = path / "pairs.parquet"
    if not path.exists():
        raise MaplError(f"{path}: no such file")
    if not path.is_file():
        raise MaplError(f"{path}: not a regular file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        cause = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise MaplError(f"{path}: not a readable Parquet file ({cause})") from None
    return validate_pairs(table, path, identical)
