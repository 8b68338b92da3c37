"""`mapl synthesize`: preference rows in, DIR/pairs.parquet and DIR/manifest.json out.

    mapl synthesize examples/prefs.jsonl --output out/pairs --seed 0 --workers 2

Streams: input is read in batches and output written in row groups, so memory stays flat with input
size. Work is spread over `--workers` processes with a bounded window of batches in flight; results are
taken back in input order, and every row has its own seeded generator, so the file is byte-identical
whatever the worker count. Output goes to a temporary file that is renamed into place at the end.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mapl_cli.errors import InvalidRowError, MaplError
from mapl_cli.manifest import build_manifest, write_json_atomic
from mapl_cli.prefs import Columns, PrefSource, normalise_row

ROW_GROUP_ROWS = 8192  # output rows per Parquet row group: fixed, so bytes do not depend on batching
BATCH_ROWS = 256  # source rows per unit of work sent to a worker


@dataclass
class SynthConfig:
    input: str
    output: Path
    seed: int = 0
    k_min: int = 2
    k_max: int = 4
    conditions: tuple[str, ...] = ("all_vs_notall", "some_vs_none")
    anchors: tuple[str, ...] = ("chosen", "rejected")
    intra_per_response: int = 1
    inter_per_pair: int = 1
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    standard: bool = True
    shard: tuple[int, int] = (0, 1)
    workers: int = 0  # 0: one per CPU core (a single process for inputs of one or two batches)
    limit: int | None = None
    force: bool = False
    skip_invalid: bool = False
    columns: Columns = field(default_factory=Columns)
    progress: bool = True
    batch_rows: int = BATCH_ROWS


@dataclass
class _Stats:
    read: int = 0
    invalid: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    kept_kind: Counter = field(default_factory=Counter)
    kept_condition: Counter = field(default_factory=Counter)
    kept_anchor: Counter = field(default_factory=Counter)
    kept_instruction: Counter = field(default_factory=Counter)

    def add(self, rows: list[dict], invalid: Counter, dropped: Counter, read: int) -> None:
        self.read += read
        self.invalid.update(invalid)
        self.dropped.update(dropped)
        for row in rows:
            self.kept_kind[row["kind"]] += 1
            if row["kind"] == "intra":
                self.kept_condition[row["condition"]] += 1
                self.kept_anchor[row["anchor"]] += 1
            for inst in row["instructions_chosen"]:
                self.kept_instruction[inst["id"]] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_rows_read": self.read,
            "source_rows_invalid": sum(self.invalid.values()),
            "invalid_by_reason": dict(sorted(self.invalid.items())),
            "rows_written": sum(self.kept_kind.values()),
            "kept_by_kind": dict(sorted(self.kept_kind.items())),
            "kept_intra_by_condition": dict(sorted(self.kept_condition.items())),
            "kept_intra_by_anchor": dict(sorted(self.kept_anchor.items())),
            "kept_instructions_by_id": dict(sorted(self.kept_instruction.items())),
            "dropped_by_reason": dict(sorted(self.dropped.items())),
        }


def resolve_instruction_ids(include: tuple[str, ...], exclude: tuple[str, ...]) -> tuple[str, ...]:
    """The instruction ids synthesis may use; unknown ids end the run with one line."""
    from mapl_cli.instructions import all_ids, get_instruction, require_drawable

    require_drawable(include)  # unknown or check-only ids end the run with one line
    for inst_id in exclude:
        get_instruction(inst_id)
    ids = list(include) if include else all_ids()
    ids = sorted(set(ids) - set(exclude))
    if not ids:
        raise MaplError("--include/--exclude leave no instruction types to use")
    return tuple(ids)


# -- worker side ---------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(opts, spec: str, columns: Columns, skip_invalid: bool) -> None:
    _WORKER.update(opts=opts, spec=spec, columns=columns, skip_invalid=skip_invalid)


def _process_batch(batch: list[tuple[int, Any]]) -> tuple[list[dict], Counter, Counter, int]:
    from mapl_cli.synth.core import synthesize_row

    opts, spec, columns = _WORKER["opts"], _WORKER["spec"], _WORKER["columns"]
    rows: list[dict] = []
    invalid: Counter = Counter()
    dropped: Counter = Counter()
    for index, raw in batch:
        try:
            pref = normalise_row(spec, index, raw, columns)
        except InvalidRowError as err:
            if not _WORKER["skip_invalid"]:
                raise
            invalid[err.reason] += 1
            continue
        new_rows, new_dropped = synthesize_row(pref, opts)
        rows.extend(new_rows)
        dropped.update(new_dropped)
    return rows, invalid, dropped, len(batch)


def _warm_registry() -> None:
    """Run every instruction type once so lazily imported helpers (the treebank word tokenizer,
    langdetect's profiles) load in the driver before workers fork and share them, instead of each worker
    paying seconds of imports."""
    import random

    from mapl_cli.instructions import REGISTRY

    sample = "A Warm-up Answer, with words.\n\nIt has TWO paragraphs and a list:\n* one\n* two"
    for inst in REGISTRY.values():
        inst.generate([(sample, True)], random.Random(0))


def _results(batches: Iterator, workers: int, init_args: tuple) -> Iterator[tuple]:
    """Process batches in order; with several workers keep a bounded window in flight (Pool.imap would
    read the whole input ahead, which breaks the flat-memory promise)."""
    if workers <= 1:
        _init_worker(*init_args)
        for batch in batches:
            yield _process_batch(batch)
        return
    _warm_registry()
    ctx = mp.get_context("fork") if sys.platform.startswith("linux") else mp.get_context()
    with ctx.Pool(workers, initializer=_init_worker, initargs=init_args) as pool:
        window: deque = deque()
        for batch in batches:
            window.append(pool.apply_async(_process_batch, (batch,)))
            if len(window) >= 2 * workers:
                yield window.popleft().get()
        while window:
            yield window.popleft().get()


# -- driver side ---------------------------------------------------------------------------------------
def _shard_range(total: int, shard: tuple[int, int]) -> tuple[int, int]:
    index, count = shard
    return total * index // count, total * (index + 1) // count


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("synthesize"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} rows/s"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


def run(config: SynthConfig) -> dict[str, Any]:
    """Synthesize MAPL pairs; returns the manifest written beside pairs.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mapl_cli.pairs import PAIRS_SCHEMA
    from mapl_cli.synth.core import SynthOptions

    started = time.time()
    _check_options(config)
    instruction_ids = resolve_instruction_ids(config.include, config.exclude)
    source = PrefSource(config.input, config.columns)
    total = source.num_rows()
    start, stop = _shard_range(total, config.shard)
    if config.limit is not None:
        stop = min(stop, start + config.limit)
    opts = SynthOptions(
        seed=config.seed, k_min=config.k_min, k_max=config.k_max, conditions=config.conditions, anchors=config.anchors,
        intra_per_response=config.intra_per_response, inter_per_pair=config.inter_per_pair,
        instruction_ids=instruction_ids, standard=config.standard,
    )

    out_dir = Path(config.output)
    target = out_dir / "pairs.parquet"
    if target.exists() and not config.force:
        raise MaplError(f"{target}: already exists (pass --force to overwrite)")
    created_dir = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / ".pairs.parquet.tmp"
    stats = _Stats()
    try:
        writer = pq.ParquetWriter(tmp, PAIRS_SCHEMA, compression="zstd")
        buffer: list[dict] = []
        with writer, _progress(config.progress) as bar:
            task = bar.add_task("synthesize", total=stop - start, rate="-")
            batches = source.batches(config.batch_rows, start, stop)
            init = (opts, source.spec, config.columns, config.skip_invalid)
            for rows, invalid, dropped, read in _results(batches, _workers(config.workers, stop - start, config.batch_rows), init):
                stats.add(rows, invalid, dropped, read)
                buffer.extend(rows)
                while len(buffer) >= ROW_GROUP_ROWS:
                    writer.write_table(pa.Table.from_pylist(buffer[:ROW_GROUP_ROWS], schema=PAIRS_SCHEMA))
                    del buffer[:ROW_GROUP_ROWS]
                elapsed = max(time.time() - started, 1e-9)
                bar.update(task, advance=read, rate=f"{stats.read / elapsed:,.0f}")
            if buffer:
                writer.write_table(pa.Table.from_pylist(buffer, schema=PAIRS_SCHEMA))
        if stats.read - sum(stats.invalid.values()) == 0:
            raise MaplError(f"{config.input}: no usable preference rows")
        counts = stats.as_dict()
        counts.update(input_rows_total=total, shard_rows=[start, stop])
        manifest = build_manifest(
            "synthesize", _options_record(config, instruction_ids), [config.input], counts, started,
            seed=config.seed, outputs={"pairs": "pairs.parquet", "schema_version": PAIRS_SCHEMA.metadata[b"mapl.schema_version"].decode()},
        )
        os.replace(tmp, target)
        write_json_atomic(out_dir / "manifest.json", manifest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        if created_dir and not any(out_dir.iterdir()):
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return manifest


def _workers(asked: int, rows: int, batch_rows: int) -> int:
    """Worker processes to use: `asked`, or with 0 one per CPU core (at most 8) when the input spans more
    than two batches; the output is the same either way."""
    if asked:
        return asked
    if rows <= 2 * batch_rows:
        return 1
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _check_options(config: SynthConfig) -> None:
    if config.k_min < 1 or config.k_max < config.k_min:
        raise MaplError(f"--k-min/--k-max: need 1 <= k-min <= k-max, got {config.k_min} and {config.k_max}")
    index, count = config.shard
    if count < 1 or not 0 <= index < count:
        raise MaplError(f"--shard: expected I/N with 0 <= I < N, got {index}/{count}")
    if config.workers < 0:
        raise MaplError("--workers must be 0 (one per CPU core) or more")
    if config.limit is not None and config.limit < 1:
        raise MaplError("--limit must be at least 1")
    if config.intra_per_response < 0 or config.inter_per_pair < 0:
        raise MaplError("--intra-per-response and --inter-per-pair must be 0 or more")
    if not config.conditions and config.intra_per_response and config.anchors:
        raise MaplError("--conditions: give at least one condition")


def _options_record(config: SynthConfig, instruction_ids: tuple[str, ...]) -> dict[str, Any]:
    record = asdict(config)
    record["output"] = str(config.output)
    record["shard"] = f"{config.shard[0]}/{config.shard[1]}"
    record["instruction_ids"] = list(instruction_ids)
    record.pop("progress", None)
    record.pop("batch_rows", None)
    return record
