"""What a training run reads before any model loads: the pairs (and eval pairs) checked against the contract,
the rows that cannot train left out and counted, the `--margin-column` values, and the data's sha256 (which
`--resume` compares).

    inputs = read_inputs(config)     # MaplError (one line) on anything unusable
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mapl_cli.errors import MaplError
from mapl_cli.pairs import identical_rows, read_pairs
from mapl_cli.train.config import TrainConfig


@dataclass
class Inputs:
    table: object  # pyarrow.Table of the rows to train on
    eval_table: object | None
    margins: dict[str, float] | None
    counts: dict = field(default_factory=dict)  # rows left out, by reason (for manifest.json)
    data: dict = field(default_factory=dict)  # pairs_sha256, eval_pairs_sha256


def pairs_file(path: str) -> Path:
    return Path(path) / "pairs.parquet" if Path(path).is_dir() else Path(path)


def _without_identical(table, path: str):
    """Leave out rows whose two sides are the same (same prompt and response): nothing to prefer, a zero
    gradient, yet they would take batch slots and count as wrong in accuracy. Said on stderr, counted."""
    same = identical_rows(table)
    if not same:
        return table, 0
    if len(same) == table.num_rows:
        raise MaplError(f"{path}: every row has identical sides (prompt_chosen == prompt_rejected and "
                        "response_chosen == response_rejected): nothing to train on")
    keep = sorted(set(range(table.num_rows)) - set(same))
    rows = f"{len(same)} row{'s' if len(same) > 1 else ''}"
    sys.stderr.write(f"mapl: warning: {path}: {rows} with identical sides left out (nothing to prefer), first at "
                     f"row {same[0]}; counted in manifest.json (counts.rows_identical_left_out)\n")
    return table.take(keep), len(same)


def _drop_zero_weight_kinds(table, config: TrainConfig):
    """Leave out rows of a kind whose lambda is 0: they would add nothing to the loss, yet take batch slots
    (with both lambdas 0, batches then hold standard rows only, exactly as plain BT / DPO)."""
    import pyarrow.compute as pc

    dropped = {kind: 0 for kind in ("intra", "inter")}
    for kind, weight in (("intra", config.lambda_intra), ("inter", config.lambda_inter)):
        if weight == 0:
            mask = pc.equal(table.column("kind"), kind)
            dropped[kind] = int(pc.sum(mask).as_py() or 0)
            table = table.filter(pc.invert(mask))
    if table.num_rows == 0:
        raise MaplError(f"{config.pairs}: no rows of a kind with non-zero weight (check --lambda-intra/--lambda-inter)")
    return table, {k: v for k, v in dropped.items() if v}


def _read_margins(path: str, column: str, pair_ids: list[str]) -> dict[str, float]:
    import pyarrow.parquet as pq

    file = pairs_file(path)
    names = pq.read_schema(file).names
    if column not in names:
        raise MaplError(f"{file}: --margin-column {column!r} is not a column (columns: {', '.join(names)})")
    data = pq.read_table(file, columns=["pair_id", column])
    values = data.column(column).to_pylist()
    by_id: dict[str, float] = {}
    for row, (pair_id, value) in enumerate(zip(data.column("pair_id").to_pylist(), values, strict=True)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise MaplError(f"{file}: column {column!r} must hold finite numbers; row {row} has {value!r}")
        if by_id.setdefault(pair_id, float(value)) != float(value):
            raise MaplError(f"{file}: pair_id {pair_id!r} appears twice with different {column!r} values (row {row})")
    return {pair_id: by_id[pair_id] for pair_id in pair_ids}


def read_inputs(config: TrainConfig) -> Inputs:
    from mapl_cli.manifest import file_sha256

    table = read_pairs(config.pairs, identical="keep")
    table, identical = _without_identical(table, config.pairs)
    table, zero_weight = _drop_zero_weight_kinds(table, config)
    eval_table, eval_identical = None, 0
    if config.eval_pairs:
        eval_table = read_pairs(config.eval_pairs, identical="keep")
        eval_table, eval_identical = _without_identical(eval_table, config.eval_pairs)
    margins = None
    if config.margin_column:
        margins = _read_margins(config.pairs, config.margin_column, table.column("pair_id").to_pylist())
    counts = {"rows_zero_weight_left_out": zero_weight, "rows_identical_left_out": identical,
              "eval_rows_identical_left_out": eval_identical}
    data = {"pairs_sha256": file_sha256(pairs_file(config.pairs)),
            "eval_pairs_sha256": file_sha256(pairs_file(config.eval_pairs)) if config.eval_pairs else None}
    return Inputs(table, eval_table, margins, counts, data)
