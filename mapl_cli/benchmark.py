"""IFEval-format benchmarks: reading them with validation, and building multi-instruction ones.

A benchmark is a jsonl file of rows {key, prompt, instruction_id_list, kwargs}, IFEval's own format, so the
real IFEval file (google/IFEval) and the sets `mapl build-benchmark` writes are read by the same code.

    mapl build-benchmark examples/eval_prompts.jsonl --output examples/eval_benchmark.jsonl --k-min 1 --k-max 6
    rows = read_benchmark("examples/eval_benchmark.jsonl")
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mapl_cli.errors import MaplError
from mapl_cli.jsonl import read_jsonl


@dataclass(frozen=True)
class BenchmarkRow:
    """One prompt with its instructions; `kwargs[i]` holds the arguments of `instruction_id_list[i]` with
    IFEval's null placeholders removed."""

    #: IFEval's keys are integers, IFBench's are strings; one benchmark uses one kind.
    key: int | str
    prompt: str
    instruction_id_list: list[str]
    kwargs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "prompt": self.prompt, "instruction_id_list": self.instruction_id_list, "kwargs": self.kwargs}


def clean_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Drop IFEval's null placeholders (the HF copy of IFEval lists every argument name, most as null)."""
    return {k: v for k, v in kwargs.items() if v is not None}


def validate_kwargs(instruction_id: str, kwargs: Any) -> dict[str, Any]:
    """The cleaned arguments of one instruction, or ValueError saying what is wrong with them (the type's
    own `validate`: IFEval's types require every argument they read, each a meaningful value; IFBench's
    check-only types leave it to their checker)."""
    from mapl_cli.instructions import get_instruction

    instruction = get_instruction(instruction_id)  # MaplError for an unknown id
    if not isinstance(kwargs, dict):
        raise ValueError(f"kwargs for {instruction_id} must be an object, got {type(kwargs).__name__}")
    return instruction.validate(clean_kwargs(kwargs))


def parse_row(raw: Any, index: int, source: str) -> BenchmarkRow:
    """Validate one raw row; any problem raises MaplError naming the file, row and key."""
    where = f"{source}: row {index}"
    if not isinstance(raw, dict):
        raise MaplError(f"{where}: expected a JSON object")
    key = raw.get("key", index)
    if isinstance(key, bool) or not (isinstance(key, int) or (isinstance(key, str) and key.strip())):
        raise MaplError(f"{where}: 'key' must be an integer or a non-empty string, got {key!r}")
    where = f"{source}: row {index} (key {key})"
    prompt, ids, kwargs = raw.get("prompt"), raw.get("instruction_id_list"), raw.get("kwargs")
    if not isinstance(prompt, str) or not prompt.strip():
        raise MaplError(f"{where}: 'prompt' must be a non-empty string")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise MaplError(f"{where}: 'instruction_id_list' must be a non-empty list of instruction ids")
    if kwargs is None:
        kwargs = [{} for _ in ids]
    if not isinstance(kwargs, list) or len(kwargs) != len(ids):
        raise MaplError(f"{where}: 'kwargs' must be a list with one object per instruction ({len(ids)})")
    cleaned = []
    for instruction_id, args in zip(ids, kwargs, strict=True):
        try:
            cleaned.append(validate_kwargs(instruction_id, args))
        except MaplError as err:
            raise MaplError(f"{where}: {err}") from None
        except ValueError as err:
            raise MaplError(f"{where}: malformed kwargs: {err}") from None
    return BenchmarkRow(key=key, prompt=prompt, instruction_id_list=list(ids), kwargs=cleaned)


def _read_hub(spec: str) -> list[tuple[int, Any]]:
    name, _, split = spec[len("hf://") :].partition(":")
    from mapl_cli.hub import use_hub

    use_hub()  # before datasets is imported: an unreachable hub fails at once, not after retries
    try:
        import datasets

        data = datasets.load_dataset(name, split=split or "train")
    except Exception as err:  # noqa: BLE001 - offline, unknown dataset, no permission: one message
        raise MaplError(
            f"cannot load {spec} from the Hugging Face hub ({type(err).__name__}); offline, download "
            f"input_data.jsonl from https://huggingface.co/datasets/{name} on a connected machine and pass "
            "its local path instead"
        ) from None
    return [(i + 1, dict(row)) for i, row in enumerate(data)]


def read_benchmark(source: str | Path, limit: int | None = None) -> list[BenchmarkRow]:
    """Read and validate a benchmark: a local IFEval-format jsonl file or `hf://google/IFEval[:split]`."""
    text = str(source)
    if text.startswith("hf://"):
        raw_rows = _read_hub(text)
    else:
        raw_rows = list(read_jsonl(Path(text), "benchmark file"))
    if not raw_rows:
        raise MaplError(f"{text}: the benchmark has no rows")
    rows, seen = [], set()
    for index, raw in raw_rows[: limit if limit else None]:
        row = parse_row(raw, index, text)
        if row.key in seen:
            raise MaplError(f"{text}: row {index}: duplicate key {row.key!r}")
        if rows and type(row.key) is not type(rows[0].key):
            raise MaplError(f"{text}: row {index}: key {row.key!r} is not of the same kind (integer or string) as the first row's")
        seen.add(row.key)
        rows.append(row)
    return rows


Row = TypeVar("Row")


def shard_rows(rows: Sequence[Row], shard: tuple[int, int]) -> list[Row]:
    """The I-th of N contiguous slices (`--shard I/N`); the N slices in order are the whole list."""
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise MaplError(f"--shard: need 0 <= I < N, got {index}/{count}")
    return list(rows[index * len(rows) // count : (index + 1) * len(rows) // count])


# ---- building a multi-instruction benchmark ----------------------------------------------------------------


def _pick_ids(pool: Sequence[str], k: int, rng: random.Random, conflicts: Callable[[str, str], bool]) -> list[str] | None:
    """k mutually conflict-free ids from `pool`, or None if 200 shuffles found none."""
    for _ in range(200):
        order = list(pool)
        rng.shuffle(order)
        chosen: list[str] = []
        for candidate in order:
            if all(not conflicts(candidate, c) and not conflicts(c, candidate) for c in chosen):
                chosen.append(candidate)
                if len(chosen) == k:
                    return chosen
    return None


def instruction_pool(include: Iterable[str] = (), exclude: Iterable[str] = ()) -> list[str]:
    """The ids build-benchmark draws from: IFEval's 25 in its order (or `include`), minus `exclude`; all must
    exist."""
    from mapl_cli.instructions import REGISTRY, get_instruction, require_drawable

    include, exclude = list(include), list(exclude)
    require_drawable(include)
    for instruction_id in exclude:
        get_instruction(instruction_id)
    pool = [i for i in (include or list(REGISTRY)) if i not in set(exclude)]
    if not pool:
        raise MaplError("no instruction ids left after --include/--exclude")
    return pool


def build_rows(
    prompts: Sequence[tuple[int, str]],
    k_min: int = 1,
    k_max: int = 6,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    seed: int = 0,
) -> list[BenchmarkRow]:
    """One benchmark row per (key, base prompt). Each row's draws use an rng seeded by (seed, key), so a row
    does not change when other prompts are added or removed."""
    if not 1 <= k_min <= k_max:
        raise MaplError(f"need 1 <= --k-min <= --k-max, got {k_min} and {k_max}")
    pool = instruction_pool(include, exclude)
    return [draw_row(key, base, pool, k_min, k_max, seed)[0] for key, base in prompts]


def draw_row(
    key: int | str, base: str, pool: Sequence[str], k_min: int, k_max: int, seed: int
) -> tuple[BenchmarkRow, list[str]]:
    """The benchmark row build-benchmark makes for one base prompt (k conflict-free instructions from `pool`
    appended one per line, drawn from an rng seeded by (seed, key)), and each instruction's text."""
    from mapl_cli.instructions import conflicts, get_instruction

    rng = random.Random(f"mapl-benchmark:{seed}:{key}")
    k = rng.randint(k_min, k_max)
    ids = _pick_ids(pool, k, rng, conflicts)
    if ids is None:
        raise MaplError(f"cannot find {k} conflict-free instructions among {len(pool)} ids for prompt key {key}; widen --include or lower --k-max")
    kwargs = [get_instruction(i).draw(base, rng) for i in ids]
    lines = [get_instruction(i).describe(a, rng) for i, a in zip(ids, kwargs, strict=True)]
    row = BenchmarkRow(key=key, prompt=base.rstrip() + "\n\n" + "\n".join(lines), instruction_id_list=ids, kwargs=kwargs)
    return row, lines


def read_base_prompts(path: str | Path) -> list[tuple[int, str]]:
    """(key, prompt) pairs from a jsonl file of {"key", "prompt"} rows (key defaults to the row number)."""
    path = Path(path)
    out, seen = [], set()
    for index, (lineno, raw) in enumerate(read_jsonl(path)):
        prompt = raw.get("prompt") if isinstance(raw, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            raise MaplError(f"{path}: line {lineno}: needs a non-empty string 'prompt'")
        key = raw.get("key", index)
        if not isinstance(key, int) or isinstance(key, bool) or key in seen:
            raise MaplError(f"{path}: line {lineno}: 'key' must be a unique integer, got {key!r}")
        seen.add(key)
        out.append((key, prompt))
    if not out:
        raise MaplError(f"{path}: no prompts")
    return out


def check_benchmark_output(path: Path, force: bool) -> None:
    """Where build-benchmark will write: refused before anything is read when it cannot be used."""
    if path.is_dir():
        raise MaplError(f"{path}: is a folder; --output takes the benchmark file to write")
    if path.exists() and not force:
        raise MaplError(f"{path}: exists; pass --force to overwrite it")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise MaplError(f"{path}: cannot be created ({parent} is a file)")


def write_benchmark(rows: Sequence[BenchmarkRow], path: str | Path) -> None:
    """Write the rows as jsonl, atomically: `path` is the old file or the whole new one, never a part."""
    from mapl_cli.manifest import atomic_path

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MaplError(f"{path.parent}: cannot create the folder ({err.strerror or err})") from None
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")
