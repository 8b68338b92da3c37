"""`mapl synthesize`: preference rows in, DIR/pairs.parquet and DIR/manifest.json out.

    mapl synthesize examples/prefs.jsonl --output out/pairs --seed 0 --workers 2

Streams: input is read in batches and output written in row groups, so memory stays flat with input
size. Work is spread over `--workers` processes with a bounded window of batches in flight; results are
taken back in input order, and every row has its own seeded generator, so the file is byte-identical
whatever the worker count. Output goes to a temporary file that is renamed into place at the end.

Failure behaviour: options (with --k-max against the types that can share a prompt), the output folder and
then the input are checked before anything is written. pairs.parquet and manifest.json are written to
temporary files named after this process and renamed into place together, so an earlier output survives
a failed, interrupted (Ctrl-C, SIGTERM: exit 130, one line) or killed run; a killed run's temporary files
are removed by the next run into the folder. A run asked for intra or inter pairs that builds none of
either fails (nothing is written) with the main drop reasons; one that builds none of one asked-for kind
warns. Rows whose chosen and rejected are the same text are invalid (`identical_responses`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import multiprocessing as mp
import os
import shutil
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mapl_cli.commands.parsing import check_k_range
from mapl_cli.errors import (
    Interrupted,
    InvalidRowError,
    MaplError,
    forget_signals,
    naming,
    raise_if_interrupted,
    signal_name,
)
from mapl_cli.manifest import atomic_path, build_manifest, remove_stale_temporaries
from mapl_cli.pairs import ANCHORS, CONDITIONS
from mapl_cli.prefs import Columns, PrefSource, normalise_row

ROW_GROUP_ROWS = 8192  # output rows per Parquet row group: fixed, so bytes do not depend on batching
BATCH_ROWS = 256  # source rows per unit of work sent to a worker


@dataclass
class SynthConfig:
    """Everything `mapl synthesize` is asked to do, with each option's default written here only: every flag
    of the command sets the field of the same name (--no-standard sets `standard`, --no-progress `progress`, the
    --*-column flags `columns`), and the flags' defaults are these. Worker processes get this object as it
    is; manifest.json records it under `options`, less `progress` and `batch_rows`, plus the instruction ids
    that --include/--exclude leave."""

    input: str
    output: Path
    seed: int = 0
    k_min: int = 2
    k_max: int = 4
    conditions: tuple[str, ...] = CONDITIONS
    anchors: tuple[str, ...] = ANCHORS
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


_HELD = {signal.SIGINT, signal.SIGTERM}

#: Synthesis makes millions of short-lived objects and next to no reference cycles: collecting the youngest
#: generation every 20,000 allocations instead of Python's 700 saves about 5% of the time.
_GC_THRESHOLDS = (20_000, 20, 20)


@contextlib.contextmanager
def _fewer_collections():
    """`_GC_THRESHOLDS` while synthesizing in this process; the previous thresholds afterwards."""
    saved = gc.get_threshold()
    gc.set_threshold(*_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*saved)


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT and SIGTERM while the pool forks its workers: a worker starts with them blocked and
    unblocks them once it ignores Ctrl-C (`_init_worker`); the driver gets a held one when the pool is up."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)


def _init_worker(config: SynthConfig, instruction_ids: tuple[str, ...]) -> None:
    # Ctrl-C reaches every process of the terminal's group: the driver alone reports it and ends the pool
    # (whose SIGTERM then ends a worker quietly), instead of one traceback per worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    forget_signals()
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)
    gc.set_threshold(*_GC_THRESHOLDS)
    _set_worker_state(config, instruction_ids)


def _set_worker_state(config: SynthConfig, instruction_ids: tuple[str, ...]) -> None:
    _WORKER.update(config=config, instruction_ids=instruction_ids)


def _process_batch(batch: list[tuple[int, Any]]) -> tuple[list[dict], Counter, Counter, int]:
    from mapl_cli.synth.core import synthesize_row

    config, instruction_ids = _WORKER["config"], _WORKER["instruction_ids"]
    rows: list[dict] = []
    invalid: Counter = Counter()
    dropped: Counter = Counter()
    for index, raw in batch:
        raise_if_interrupted()  # a signal remembered in a finalizer (errors.on_signal); workers ignore SIGINT
        try:
            pref = normalise_row(str(config.input), index, raw, config.columns)
        except InvalidRowError as err:
            if not config.skip_invalid:
                raise
            invalid[err.reason] += 1
            continue
        new_rows, new_dropped = synthesize_row(pref, config, instruction_ids)
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
        _set_worker_state(*init_args)
        with _fewer_collections():
            for batch in batches:
                yield _process_batch(batch)
        return
    _warm_registry()
    raise_if_interrupted()
    ctx = mp.get_context("fork") if sys.platform.startswith("linux") else mp.get_context()
    with contextlib.ExitStack() as stack:
        # Objects so far (imports, warmed caches) move out of the collector's reach: forked workers then
        # share their pages instead of copying the ones a collection would touch (Python's gc docs).
        gc.freeze()
        stack.callback(gc.unfreeze)
        with _signals_held():  # the pool is ended on the way out even if a held signal lands at the unblock
            pool = stack.enter_context(ctx.Pool(workers, initializer=_init_worker, initargs=init_args))
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
    """Synthesize MAPL pairs; returns the manifest written beside pairs.parquet.

    Everything that can be checked is checked before the output folder is touched; OUTPUT/pairs.parquet
    and manifest.json are replaced together at the end, so a failed or interrupted run leaves an earlier
    output as it was (and no temporary file: a killed run's are removed by the next run)."""
    started = time.time()
    _check_options(config)
    instruction_ids = resolve_instruction_ids(config.include, config.exclude)
    check_k_range(config.k_min, config.k_max, instruction_ids)
    out_dir = Path(config.output)
    target = out_dir / "pairs.parquet"
    _check_output(out_dir, target, config.force)
    source = PrefSource(config.input, config.columns)
    total = source.num_rows()
    if total == 0:
        raise MaplError(f"{config.input}: no rows")
    start, stop = _shard_range(total, config.shard)
    if stop == start:
        raise MaplError(f"--shard {config.shard[0]}/{config.shard[1]}: no rows in this shard ({total} rows in all)")
    if config.limit is not None:
        stop = min(stop, start + config.limit)
    created_dir = not out_dir.exists()
    try:
        with naming(out_dir):
            out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MaplError(f"{out_dir}: cannot create the output folder ({err.strerror or err})") from None
    remove_stale_temporaries(out_dir, legacy=(".pairs.parquet.tmp", ".manifest.json.tmp"))
    try:
        manifest = _write(config, source, (start, stop, total), instruction_ids, target, started)
    except KeyboardInterrupt as err:
        kept = "an earlier pairs.parquet there is unchanged" if target.exists() else "nothing was written"
        raise Interrupted(f"synthesize interrupted ({signal_name(err)}); {kept}") from None
    finally:
        if created_dir and out_dir.is_dir() and not any(out_dir.iterdir()):
            shutil.rmtree(out_dir, ignore_errors=True)
    return manifest


def _write(config: SynthConfig, source: PrefSource, span: tuple[int, int, int], instruction_ids: tuple[str, ...],
           target: Path, started: float) -> dict[str, Any]:
    """Stream the pairs into temporary files beside `target` and rename them into place at the end."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mapl_cli.pairs import PAIRS_SCHEMA

    start, stop, total = span
    stats = _Stats()
    with atomic_path(target) as tmp:  # pairs.parquet and manifest.json are renamed into place together
        try:
            writer = pq.ParquetWriter(tmp, PAIRS_SCHEMA, compression="zstd")
        except OSError as err:
            raise MaplError(f"{target.parent}: cannot write there ({err.strerror or err})") from None
        buffer: list[dict] = []
        with writer, _progress(config.progress) as bar:
            task = bar.add_task("synthesize", total=stop - start, rate="-")
            batches = source.batches(config.batch_rows, start, stop)
            init = (config, instruction_ids)
            workers = _workers(config.workers, stop - start, config.batch_rows)
            for rows, invalid, dropped, read in _results(batches, workers, init):
                raise_if_interrupted()
                stats.add(rows, invalid, dropped, read)
                buffer.extend(rows)
                while len(buffer) >= ROW_GROUP_ROWS:
                    writer.write_table(pa.Table.from_pylist(buffer[:ROW_GROUP_ROWS], schema=PAIRS_SCHEMA))
                    del buffer[:ROW_GROUP_ROWS]
                elapsed = max(time.time() - started, 1e-9)
                bar.update(task, advance=read, rate=f"{stats.read / elapsed:,.0f}")
            if buffer:
                writer.write_table(pa.Table.from_pylist(buffer, schema=PAIRS_SCHEMA))
        raise_if_interrupted()
        if stats.read - sum(stats.invalid.values()) == 0:
            raise MaplError(f"{config.input}: no usable preference rows")
        _check_kinds(config, stats)
        counts = stats.as_dict()
        counts.update(input_rows_total=total, shard_rows=[start, stop])
        manifest = build_manifest(
            "synthesize", _options_record(config, instruction_ids), [config.input], counts, started,
            seed=config.seed, outputs={"pairs": "pairs.parquet", "schema_version": PAIRS_SCHEMA.metadata[b"mapl.schema_version"].decode()},
        )
        with atomic_path(target.parent / "manifest.json") as manifest_tmp:
            manifest_tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    return manifest


def _check_output(out_dir: Path, target: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise MaplError(f"{out_dir}: exists and is not a folder (--output takes a folder)")
    if target.is_dir():
        raise MaplError(f"{target}: is a folder, expected the pairs file")
    if target.exists() and not force:
        raise MaplError(f"{target}: already exists (pass --force to overwrite)")
    parent = next((p for p in (out_dir, *out_dir.parents) if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise MaplError(f"{out_dir}: cannot be created ({parent} is a file)")


def _check_kinds(config: SynthConfig, stats: _Stats) -> None:
    """No run that was asked for MAPL pairs ends with none: fail (nothing is written) when every intra and
    inter candidate was dropped; warn when one asked-for kind got none."""
    asked = {"intra": bool(config.intra_per_response and config.anchors), "inter": bool(config.inter_per_pair)}
    got = {kind: stats.kept_kind.get(kind, 0) for kind in asked}
    reasons = ", ".join(f"{reason} {n}" for reason, n in stats.dropped.most_common(3))
    if any(asked.values()) and not any(got.values()):
        raise MaplError(
            f"no intra or inter pair could be built from {stats.read - sum(stats.invalid.values())} rows "
            f"(dropped: {reasons or 'none'}); widen --include, lower --k-min, or check the responses"
        )
    for kind, wanted in asked.items():
        if wanted and not got[kind]:
            sys.stderr.write(f"warning: no {kind} pair could be built (dropped: {reasons}); the output has none\n")


def _workers(asked: int, rows: int, batch_rows: int) -> int:
    """Worker processes to use: `asked` (no more than there are batches), or with 0 one per CPU core (at
    most 8) when the input spans more than two batches; the output is the same either way."""
    if asked:
        return min(asked, max(1, -(-rows // batch_rows)))
    if rows <= 2 * batch_rows:
        return 1
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _check_options(config: SynthConfig) -> None:
    """Every option on its own, before any file is read or written (the CLI calls this first)."""
    if config.k_min < 1 or config.k_max < config.k_min:
        raise MaplError(f"--k-min/--k-max: need 1 <= k-min <= k-max, got {config.k_min} and {config.k_max}")
    index, count = config.shard
    if count < 1 or not 0 <= index < count:
        raise MaplError(f"--shard: expected I/N with 0 <= I < N, got {index}/{count}")
    if config.workers < 0:
        raise MaplError(f"--workers must be 0 (one per CPU core) or more, got {config.workers}")
    if config.limit is not None and config.limit < 1:
        raise MaplError(f"--limit must be at least 1, got {config.limit}")
    if config.intra_per_response < 0:
        raise MaplError(f"--intra-per-response must be 0 or more, got {config.intra_per_response}")
    if config.inter_per_pair < 0:
        raise MaplError(f"--inter-per-pair must be 0 or more, got {config.inter_per_pair}")
    if not config.conditions and config.intra_per_response and config.anchors:
        raise MaplError("--conditions: give at least one condition")
    intra = config.intra_per_response > 0 and bool(config.anchors)
    if not (config.standard or intra or config.inter_per_pair):
        raise MaplError("nothing to write: --no-standard with no intra pairs (--intra-per-response 0 or no "
                        "--anchors) and no inter pairs (--inter-per-pair 0)")
    columns = config.columns
    named = [("--prompt-column", columns.prompt), ("--chosen-column", columns.chosen), ("--rejected-column", columns.rejected)]
    for flag, name in named:
        if not name.strip():
            raise MaplError(f"{flag}: give a column name")
    for i, (flag, name) in enumerate(named):
        for other_flag, other in named[i + 1 :]:
            if name == other:
                raise MaplError(f"{flag} and {other_flag} name the same column {name!r}")


def _options_record(config: SynthConfig, instruction_ids: tuple[str, ...]) -> dict[str, Any]:
    record = asdict(config)
    record["output"] = str(config.output)
    record["shard"] = f"{config.shard[0]}/{config.shard[1]}"
    record["instruction_ids"] = list(instruction_ids)
    record.pop("progress", None)
    record.pop("batch_rows", None)
    return record
