"""`mapl sample`: draw n responses per prompt from a model, label each against its prompt's instructions, and
write DIR/samples.parquet, DIR/prefs.parquet (synthesize's input format) and DIR/manifest.json.

    mapl sample examples/eval_benchmark.jsonl --model tiny-random --n 4 --max-new-tokens 32 --output out/samples
    mapl synthesize out/samples/prefs.parquet --output out/pairs

Prompts are generated in chunks of --chunk-size; each finished chunk is appended to DIR/samples.jsonl (one
line per prompt, flushed to disk), so a crash loses at most one chunk and `--resume` generates only the
chunks not there. Chunk boundaries are fixed by the prompt list, and each chunk's sampling seed is derived
from (--seed, its first prompt's key), so a resumed run writes what an uninterrupted one would. The two
Parquet files and the manifest are rebuilt from the journal at the end, each renamed into place whole; with
--force the new run is written in a staging folder beside the earlier one and replaces it when finished.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from mapl_cli.errors import MaplError, raise_if_interrupted
from mapl_cli.generation.base import Completion, SamplingBackend, SamplingConfig
from mapl_cli.runfolder import RunFolder
from mapl_cli.sampling.prompts import SamplePrompt

JOURNAL, SETTINGS = "samples.jsonl", "settings.json"
OUTPUT_FILES = (JOURNAL, SETTINGS, "samples.parquet", "prefs.parquet", "manifest.json")


@dataclass
class SampleConfig:
    """Everything `mapl sample` is asked to do; each option's default is written here only."""

    prompts: str
    output: Path
    model: str = "smollm2-135m-instruct"
    #: Responses sampled per prompt (at least 2: a pair needs two).
    n: int = 4
    backend: str = "auto"
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    chat_template_kwargs: dict[str, Any] | None = None
    #: A Jinja chat template file that replaces the model's own (None: the model's).
    chat_template: str | None = None
    #: Instructions drawn per base prompt or preference prompt; k_max None: the prompts must carry their own.
    k_min: int = 1
    k_max: int | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    pairs_per_prompt: int = 1
    batch_size: int = 16
    dtype: str = "auto"
    device: str | None = None
    tensor_parallel_size: int = 1
    limit: int | None = None
    shard: tuple[int, int] = (0, 1)
    chunk_size: int = 64
    resume: bool = False
    force: bool = False
    progress: bool = True
    #: Tests inject a factory (model name -> backend); None builds the backend named by `backend`.
    backend_factory: Callable[[str], SamplingBackend] | None = None

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
                              seed=self.seed, chat_template_kwargs=self.chat_template_kwargs)


def _console():
    from rich.console import Console

    return Console(stderr=True)


def check_config(config: SampleConfig) -> None:
    """The options on their own, one line for the first one out of range."""
    if config.n < 2:
        raise MaplError(f"--n {config.n}: a pair needs two responses per prompt; sample at least 2")
    if config.temperature <= 0:
        raise MaplError(f"--temperature {config.temperature}: greedy decoding gives n identical responses; sample with a temperature > 0")
    if not 0 < config.top_p <= 1:
        raise MaplError(f"--top-p must be in (0, 1], got {config.top_p}")
    positive = {"--pairs-per-prompt": config.pairs_per_prompt, "--max-new-tokens": config.max_new_tokens,
                "--batch-size": config.batch_size, "--chunk-size": config.chunk_size,
                "--tensor-parallel-size": config.tensor_parallel_size, "--limit": config.limit or 1}
    for flag, value in positive.items():
        if value < 1:
            raise MaplError(f"{flag} must be at least 1, got {value}")
    index, count = config.shard
    if count < 1 or not 0 <= index < count:
        raise MaplError(f"--shard: need 0 <= I < N, got {index}/{count}")
    if config.resume and config.force:
        raise MaplError("--resume and --force: choose one (continue the run in --output, or start it over)")
    out = config.output
    if out.exists() and not out.is_dir():
        raise MaplError(f"{out}: exists and is not a folder (--output takes a folder)")
    if (out / JOURNAL).exists() and not (config.resume or config.force):
        raise MaplError(f"{out}: holds samples from an earlier run; pass --resume to continue it or --force to start over")
    if config.chat_template is not None:
        from mapl_cli.models import read_chat_template

        read_chat_template(config.chat_template)


# ---- the output folder --------------------------------------------------------------------------------------


def _settings(config: SampleConfig, n_prompts: int) -> dict[str, Any]:
    """What a resumed run must share with the run it continues (the input by content, not by path)."""
    from mapl_cli.manifest import input_record

    record = input_record(config.prompts)
    options = _options(config)
    for name in ("resume", "force", "progress", "prompts"):
        options.pop(name)
    settings = {"prompts": record.get("sha256", record["path"]), "options": options, "n_prompts": n_prompts}
    if options.pop("chat_template"):  # by content; absent without one, so runs made before the option still resume
        settings["chat_template_sha256"] = input_record(config.chat_template)["sha256"]
    return settings


def _options(config: SampleConfig) -> dict[str, Any]:
    options = {k: v for k, v in asdict(config).items() if k not in ("backend_factory", "output")}
    return json.loads(json.dumps(options, default=str))  # tuples as lists, as they come back from JSON


def _folder(config: SampleConfig) -> RunFolder:
    return RunFolder(config.output, JOURNAL, SETTINGS, OUTPUT_FILES, "mapl sample", "samples")


def _read_journal(path: Path) -> dict[str, dict]:
    from mapl_cli.jsonl import read_jsonl

    done = {}
    # A crash can cut the last line short; everything before it is intact.
    for lineno, record in read_jsonl(path, None, skip_bad_lines=True, advice="start over with --force"):
        if not isinstance(record, dict) or not isinstance(record.get("key"), str) or not isinstance(record.get("samples"), list):
            raise MaplError(f"{path}: line {lineno} is not a record written by mapl sample; start over with --force")
        done[record["key"]] = record
    return done




# ---- generating ---------------------------------------------------------------------------------------------


def _make_backend(config: SampleConfig) -> SamplingBackend:
    if config.backend_factory is not None:
        return config.backend_factory(config.model)
    from mapl_cli.generation import get_backend

    try:
        return get_backend(config.backend, model=config.model, batch_size=config.batch_size, dtype=config.dtype,
                           device=config.device, tensor_parallel_size=config.tensor_parallel_size, seed=config.seed,
                           chat_template=config.chat_template)
    except MaplError:
        raise
    except (OSError, ValueError) as err:
        raise MaplError(f"model {config.model!r} cannot be loaded: {type(err).__name__}: {str(err).splitlines()[0]}") from None


def chunk_seed(seed: int, key: str) -> int:
    """The sampling seed of the chunk that starts with prompt `key`."""
    return int(hashlib.sha256(f"mapl-sample:{seed}:{key}".encode()).hexdigest()[:8], 16)


def _record(prompt: SamplePrompt, completions: Sequence[Completion]) -> dict[str, Any]:
    """One journal line: the prompt, its instructions and its labelled samples."""
    from mapl_cli.sampling.labels import label

    samples = []
    for completion in completions:
        verdicts = label(completion.text, prompt.instruction_ids, prompt.kwargs)
        samples.append({"response": completion.text, "finish_reason": completion.finish_reason,
                        "verdicts": verdicts, "n_satisfied": sum(verdicts)})
    return {"key": prompt.key, "prompt": prompt.messages, "base_prompt": prompt.base_prompt,
            "instructions": prompt.instructions(), "samples": samples}


def _generate(config: SampleConfig, prompts: Sequence[SamplePrompt], done: dict[str, dict], work: Path, console) -> None:
    """Sample the chunks not yet in the journal, appending each as it finishes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mapl_cli.jsonl import JsonlAppender

    chunks = [prompts[i : i + config.chunk_size] for i in range(0, len(prompts), config.chunk_size)]
    todo = [chunk for chunk in chunks if not all(p.key in done for p in chunk)]
    if not todo:
        console.print(f"[dim]all {len(prompts)} prompts already sampled[/dim]")
        return
    if done:
        console.print(f"resuming: {len(prompts) - sum(map(len, todo))} of {len(prompts)} prompts already sampled")
    started = time.time()
    backend = _make_backend(config)
    if not hasattr(backend, "sample"):
        raise MaplError(f"the {backend.name} backend cannot draw several samples per prompt")
    console.print(f"{config.model}: loaded on {backend.name} in {time.time() - started:.1f} s")
    writer = JsonlAppender(work / JOURNAL)
    try:
        with Progress(TextColumn("[bold]sample"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, disable=not config.progress) as bar:
            task = bar.add_task("sample", total=sum(map(len, todo)))
            for chunk in todo:
                sampling = replace(config.sampling(), seed=chunk_seed(config.seed, chunk[0].key))
                completions = backend.sample([p.messages for p in chunk], sampling, config.n,
                                             progress=lambda k: bar.advance(task, k))
                records = [_record(p, c) for p, c in zip(chunk, completions, strict=True)]
                writer.write(records)
                done.update((r["key"], r) for r in records)
                raise_if_interrupted()
    finally:
        writer.close()
        backend.close()


# ---- the outputs ---------------------------------------------------------------------------------------------


def _tables(config: SampleConfig, records: Sequence[dict]) -> tuple[list[dict], list[dict], dict[str, Any]]:
    """Rows of samples.parquet and prefs.parquet, and the counts for the manifest."""
    from mapl_cli.sampling.labels import choose_pairs

    samples, prefs, reasons, finish = [], [], Counter(), Counter()
    rates = []
    for record in records:
        items = record["samples"]
        for index, item in enumerate(items):
            n_instructions = len(item["verdicts"])
            samples.append({"key": record["key"], "sample_index": index, "prompt": record["prompt"],
                            "base_prompt": record["base_prompt"], "instructions": record["instructions"],
                            "response": item["response"], "verdicts": item["verdicts"],
                            "n_satisfied": item["n_satisfied"], "n_instructions": n_instructions,
                            "finish_reason": item["finish_reason"]})
            finish[item["finish_reason"]] += 1
            rates.append(item["n_satisfied"] / n_instructions if n_instructions else 0.0)
        responses = [item["response"] for item in items]
        pairs, reason = choose_pairs(record["key"], responses, [item["n_satisfied"] for item in items],
                                     config.pairs_per_prompt, config.seed)
        if reason:
            reasons[reason] += 1
        for i, j in pairs:
            prefs.append({"id": f"{record['key']}:{i}>{j}", "prompt": record["prompt"], "chosen": responses[i],
                          "rejected": responses[j], "key": record["key"], "instructions": record["instructions"],
                          "verdicts_chosen": items[i]["verdicts"], "verdicts_rejected": items[j]["verdicts"]})
    counts = {"prompts": len(records), "samples": len(samples), "pairs": len(prefs),
              "prompts_with_pairs": len({p["key"] for p in prefs}), "ties_dropped": reasons["all_tied"],
              "no_usable_pair": reasons["no_usable_pair"],
              "mean_satisfied_rate": round(sum(rates) / len(rates), 6) if rates else None,
              "finish_reasons": dict(sorted(finish.items()))}
    return samples, prefs, counts


def _write_tables(work: Path, samples: list[dict], prefs: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mapl_cli.manifest import atomic_path
    from mapl_cli.sampling.schema import PREFS_SCHEMA, SAMPLES_SCHEMA

    for name, rows, schema in (("samples.parquet", samples, SAMPLES_SCHEMA), ("prefs.parquet", prefs, PREFS_SCHEMA)):
        with atomic_path(work / name) as tmp:
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)


def _finish(config: SampleConfig, prompts: Sequence[SamplePrompt], kind: str, done: dict[str, dict],
            work: Path, started: float) -> dict[str, Any]:
    from mapl_cli.manifest import build_manifest, write_json_atomic

    records = [done[p.key] for p in prompts]
    samples, prefs, counts = _tables(config, records)
    _write_tables(work, samples, prefs)
    manifest = build_manifest("sample", {**_options(config), "input_kind": kind},
                              [p for p in (config.prompts, config.chat_template) if p], counts, started,
                              seed=config.seed, outputs={"samples": "samples.parquet", "prefs": "prefs.parquet"})
    write_json_atomic(work / "manifest.json", manifest)
    _folder(config).promote(work)
    return manifest


def run(config: SampleConfig) -> dict[str, Any]:
    """Sample, label and write; returns the manifest. Options, the output folder, the prompts and the model
    are all checked before the output folder is touched."""
    from mapl_cli.benchmark import shard_rows
    from mapl_cli.sampling.prompts import load_prompts

    started = time.time()
    console = _console()
    check_config(config)
    kind, prompts = load_prompts(config.prompts, config.k_min, config.k_max, config.include, config.exclude,
                                 config.seed, config.limit)
    prompts = shard_rows(prompts, config.shard)
    if not prompts:
        raise MaplError(f"--shard {config.shard[0]}/{config.shard[1]}: no prompts fall in this shard")
    if config.backend_factory is None:
        from mapl_cli.generation.preflight import check_device, preflight_model

        if config.device is not None:
            check_device(config.device)
        preflight_model(config.model)
    def body(done: dict[str, dict], work: Path) -> dict[str, Any]:
        _generate(config, prompts, done, work, console)
        raise_if_interrupted()
        return _finish(config, prompts, kind, done, work, started)

    manifest = _folder(config).run(_settings(config, len(prompts)), config.resume, config.force, _read_journal, body)
    c = manifest["counts"]
    console.print(f"wrote {c['samples']} samples of {c['prompts']} prompts and {c['pairs']} pairs "
                  f"({c['ties_dropped']} prompts tied) in {config.output} ({time.time() - started:.0f} s)")
    return manifest
