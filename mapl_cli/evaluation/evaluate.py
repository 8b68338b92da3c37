"""`mapl evaluate`: generate with one or several models (or read responses made elsewhere), score them with
the instruction registry, and write results.parquet, summary.json, report.md and charts.

    mapl evaluate --benchmark examples/eval_benchmark.jsonl --model smollm2-135m-instruct \
        --model out/dpo-mapl --max-new-tokens 256 --output out/eval
    mapl evaluate --benchmark ifeval_input_data.jsonl --responses my_model_responses.jsonl --output out/eval
    mapl evaluate --reward-model out/rm-bt --reward-model out/rm-mapl --pairs out/heldout --output out/eval-rm

With two or more models (or response files) on the same prompts, every model is compared with the first
(the baseline): paired bootstrap intervals for the four metrics and exact McNemar p-values (stats.py). With
a training manifest, accuracy is also split into instruction types seen and not seen in training.

Results are appended to DIR/results.jsonl as each chunk of prompts finishes (flushed to disk), so a crash
loses at most one chunk; `--resume` skips the (model, prompt) pairs already there. The parquet, summary and
report are rebuilt from that file at the end.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mapl_cli.benchmark import BenchmarkRow, parse_row, read_benchmark, shard_rows
from mapl_cli.errors import MaplError, raise_if_interrupted
from mapl_cli.evaluation.scoring import METRICS, prompt_verdict, score_row, summarize
from mapl_cli.generation.base import GenerationBackend, SamplingConfig
from mapl_cli.generation.preflight import check_device, preflight_model
from mapl_cli.jsonl import JsonlAppender, read_jsonl
from mapl_cli.runfolder import RunFolder
from mapl_cli.tracking import check_installed, open_trackers

RESULTS_JSONL = "results.jsonl"
SETTINGS_JSON = "settings.json"
OUTPUT_FILES = (RESULTS_JSONL, SETTINGS_JSON, "results.parquet", "summary.json", "report.md", "manifest.json",
                "accuracy.png", "accuracy_by_k.png", "reward_accuracy.png", "differences.png")

BackendFactory = Callable[[str], GenerationBackend]


@dataclass
class EvaluateConfig:
    """Everything `mapl evaluate` needs; the CLI module only fills this in."""

    output: Path
    benchmark: str | None = None
    models: list[str] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    reward_models: list[str] = field(default_factory=list)
    pairs: str | None = None
    backend: str = "auto"
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    batch_size: int = 16
    dtype: str = "auto"
    device: str | None = None
    tensor_parallel_size: int = 1
    lora_mode: str = "serve"
    limit: int | None = None
    #: (I, N): evaluate only the I-th of N contiguous slices of the benchmark (after --limit), for job arrays.
    shard: tuple[int, int] = (0, 1)
    #: Output folders of earlier (sharded) runs to combine into one report; nothing is generated.
    merge: list[str] = field(default_factory=list)
    chunk_size: int = 64
    #: A system message put before every benchmark prompt (None: the prompt alone, as IFEval does).
    system_prompt: str | None = None
    #: A Jinja chat template file that replaces each --model's own (None: the model's).
    chat_template: str | None = None
    #: Score the text after a reasoning trace (`<think>...</think>`), not the trace.
    strip_thinking: bool = True
    #: Bootstrap resamples for the paired comparisons (0: no intervals, no p-values).
    bootstrap: int = 10_000
    #: Manifests (synthesize or training) that say which instruction ids were trained on; empty: those of
    #: any --model that is a mapl training run.
    train_manifests: list[str] = field(default_factory=list)
    #: Reward models only: longest prompt+response in tokens (responses are cut at the end).
    max_length: int = 1024
    resume: bool = False
    force: bool = False
    #: Experiment trackers (`--report-to`, mapl_cli/tracking.py) that get the summary's metrics and tables.
    report_to: tuple[str, ...] = ()
    #: A progress bar on stderr while responses are generated.
    progress: bool = True
    #: Tests inject a factory (model name -> backend); None builds the backend named by `backend`.
    backend_factory: BackendFactory | None = None


def _console():
    from rich.console import Console

    return Console(stderr=True)


# ---- the output folder --------------------------------------------------------------------------------------


def check_output(config: EvaluateConfig) -> None:
    """Refuse an unusable --output before anything is read, loaded or generated."""
    out = config.output
    if out.exists() and not out.is_dir():
        raise MaplError(f"{out}: exists and is not a folder (--output takes a folder)")
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise MaplError(f"{out}: cannot be created ({parent} is a file)")
    if config.resume and config.force:
        raise MaplError("--resume and --force: choose one (continue the run in --output, or start it over)")
    if config.merge:
        if (out / RESULTS_JSONL).exists() and not config.force:
            raise MaplError(f"{out}: holds results already; pass --force to overwrite them")
    elif (out / RESULTS_JSONL).exists() and not (config.resume or config.force):
        raise MaplError(f"{out}: holds results from an earlier run; pass --resume to continue it or --force to start over")


def _folder(config: EvaluateConfig) -> RunFolder:
    return RunFolder(config.output, RESULTS_JSONL, SETTINGS_JSON, OUTPUT_FILES, "mapl evaluate", "answers")


def _read_journal(path: Path) -> dict[tuple[str, int], dict]:
    """The records already in results.jsonl, by (model, key)."""
    return {(record["model"], record["key"]): record for record in _read_records(path)}


def _read_records(path: Path) -> Iterator[dict]:
    # A crash can cut the last line short; everything before it is intact.
    for lineno, record in read_jsonl(path, None, skip_bad_lines=True, advice="start over with --force"):
        if not isinstance(record, dict) or not isinstance(record.get("model"), str) or "key" not in record:
            raise MaplError(f"{path}: line {lineno} is not a result written by mapl evaluate; start over with --force")
        yield record


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def split_reasoning(response: str) -> tuple[str, str]:
    """(answer, reasoning trace) of a response. The answer is the text after the last `</think>` (templates
    such as Qwen3's open the trace in the prompt, so the response may hold only the closing tag); a response
    that opens `<think>` and never closes it ran out of tokens while reasoning, and its answer is empty."""
    if THINK_CLOSE in response:
        reasoning, _, answer = response.rpartition(THINK_CLOSE)
        return answer.lstrip(), reasoning + THINK_CLOSE
    if response.lstrip().startswith(THINK_OPEN):
        return "", response
    return response, ""


def _record(label: str, source: str, row: BenchmarkRow, response: str, strip_thinking: bool = True) -> dict[str, Any]:
    reasoning = ""
    if strip_thinking:
        response, reasoning = split_reasoning(response)
    verdicts = score_row(row, response)
    return {
        "model": label,
        "model_source": source,
        "key": row.key,
        "prompt": row.prompt,
        "instruction_id_list": row.instruction_id_list,
        "kwargs": json.dumps(row.kwargs),
        "n_instructions": len(row.instruction_id_list),
        "response": response,
        "reasoning": reasoning,
        "strict": verdicts.strict,
        "loose": verdicts.loose,
        "prompt_strict": prompt_verdict(verdicts.strict),
        "prompt_loose": prompt_verdict(verdicts.loose),
    }


# ---- models and responses -----------------------------------------------------------------------------------


def _unique(labels: Sequence[str], taken: Sequence[str] = ()) -> list[str]:
    """The labels made unique, in order: a second `model` becomes `model#2`."""
    out: list[str] = []
    for label in labels:
        candidate, n = label, 2
        while candidate in out or candidate in taken:
            candidate, n = f"{label}#{n}", n + 1
        out.append(candidate)
    return out


def _labels(names: Sequence[str]) -> list[str]:
    """Report labels for `--model` values: a run folder's name, or the name itself."""
    from mapl_cli.generation.checkpoints import display_name

    return _unique([display_name(name) for name in names])


def _make_backend(config: EvaluateConfig, model: str) -> GenerationBackend:
    if config.backend_factory is not None:
        return config.backend_factory(model)
    from mapl_cli.generation import get_backend

    try:
        return get_backend(
            config.backend,
            model=model,
            batch_size=config.batch_size,
            dtype=config.dtype,
            device=config.device,
            tensor_parallel_size=config.tensor_parallel_size,
            lora_mode=config.lora_mode,
            seed=config.sampling.seed,
            chat_template=config.chat_template,
        )
    except MaplError:
        raise
    except (OSError, ValueError) as err:
        raise MaplError(f"model {model!r} cannot be loaded: {type(err).__name__}: {str(err).splitlines()[0]}") from None


def _chunks(rows: Sequence[BenchmarkRow], size: int) -> Iterator[Sequence[BenchmarkRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _generate_model(config, label, model, rows, done, writer, console) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    todo = [row for row in rows if (label, row.key) not in done]
    if not todo:
        console.print(f"[dim]{label}: all {len(rows)} prompts already answered, skipping[/dim]")
        return
    if len(todo) < len(rows):
        console.print(f"{label}: resuming, {len(rows) - len(todo)} of {len(rows)} prompts already answered")
    started = time.time()
    backend = _make_backend(config, model)
    console.print(f"{label}: loaded on {backend.name} in {time.time() - started:.1f} s")
    try:
        columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, disable=not config.progress) as bar:
            task = bar.add_task("generate", total=len(todo))
            for chunk in _chunks(todo, config.chunk_size):
                system = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
                messages = [[*system, {"role": "user", "content": row.prompt}] for row in chunk]
                responses = backend.generate(messages, config.sampling, progress=lambda n: bar.advance(task, n))
                records = [
                    _record(label, model, row, text, config.strip_thinking)
                    for row, text in zip(chunk, responses, strict=True)
                ]
                writer.write(records)
                done.update(((label, r["key"]), r) for r in records)
                raise_if_interrupted()
    finally:
        backend.close()


def read_responses(path: str, rows: Sequence[BenchmarkRow] | None) -> list[tuple[BenchmarkRow, str]]:
    """Match each {prompt, response} line of an IFEval response file to its benchmark row.

    Lines are matched by `key` when they have one, else by the exact prompt text. Without a benchmark, each
    line must carry its own instruction_id_list and kwargs. Two lines for the same benchmark row are an
    error (which one would be scored?).
    """
    file = Path(path)
    by_key = {row.key: row for row in rows or []}
    by_prompt = {row.prompt: row for row in rows or []}
    out = []
    seen: dict[Any, int] = {}
    for lineno, raw in read_jsonl(file, "responses file"):
        if not isinstance(raw, dict) or not isinstance(raw.get("response"), str):
            raise MaplError(f"{file}: line {lineno}: needs a string 'response'")
        if rows is None:
            row = parse_row(raw, lineno, str(file))
        elif isinstance(raw.get("key"), (int, str)) and not isinstance(raw["key"], bool) and raw["key"] in by_key:
            row = by_key[raw["key"]]
        elif isinstance(raw.get("prompt"), str) and raw["prompt"] in by_prompt:
            row = by_prompt[raw["prompt"]]
        else:
            raise MaplError(f"{file}: line {lineno}: its prompt (and key) match no benchmark row")
        if row.key in seen:
            raise MaplError(f"{file}: line {lineno}: a second response for benchmark key {row.key!r} (first on line {seen[row.key]})")
        seen[row.key] = lineno
        out.append((row, raw["response"]))
    if not out:
        raise MaplError(f"{file}: no responses")
    return out


# ---- the run ------------------------------------------------------------------------------------------------


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as --resume and --merge compare them: a benchmark known by its content hash is the same
    benchmark wherever it lies (a moved folder, another node of a job array)."""
    out = dict(settings)
    benchmark = out.get("benchmark")
    if isinstance(benchmark, dict) and benchmark.get("sha256"):
        out["benchmark"] = {k: v for k, v in benchmark.items() if k != "path"}
    return out


def _settings(config: EvaluateConfig, rows: Sequence[BenchmarkRow] | None) -> dict[str, Any]:
    from mapl_cli.manifest import input_record

    settings = {
        "benchmark": input_record(config.benchmark) if config.benchmark else None,
        "limit": config.limit,
        "shard": list(config.shard),
        "sampling": asdict(config.sampling),
        "system_prompt": config.system_prompt,
        "strip_thinking": config.strip_thinking,
        "n_prompts": len(rows) if rows is not None else None,
    }
    if config.chat_template:  # by content; absent without one, so runs made before the option still resume
        settings["chat_template_sha256"] = input_record(config.chat_template)["sha256"]
    return settings


def _write_outputs(
    config: EvaluateConfig, records: list[dict], labels: Sequence[str], sources: dict[str, str], extra: dict,
    seen: tuple[set[str], str] | None = None, out: Path | None = None, n_benchmark: int | None = None,
) -> dict:
    """results.parquet, summary.json, report.md and the charts in `out` (default: the output folder), each
    written whole or not at all. With `n_benchmark` (the prompts evaluated), each model's summary says how
    many of them it answered (`coverage`): a responses file may cover only some."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mapl_cli.evaluation import report
    from mapl_cli.evaluation.scoring import Verdicts, seen_unseen
    from mapl_cli.evaluation.stats import compare_all
    from mapl_cli.manifest import atomic_path, write_json_atomic

    out = config.output if out is None else out
    summary: dict[str, Any] = {
        "metrics": list(METRICS), "models": {}, "sampling": asdict(config.sampling),
        "system_prompt": config.system_prompt, "strip_thinking": config.strip_thinking, **extra,
    }
    if records:
        table = pa.Table.from_pylist(records)
        with atomic_path(out / "results.parquet") as tmp:
            pq.write_table(table, tmp)
    by_model = {label: [r for r in records if r["model"] == label] for label in labels}
    by_model = {label: mine for label, mine in by_model.items() if mine}
    for label, mine in by_model.items():
        items = [(r["instruction_id_list"], Verdicts(r["strict"], r["loose"])) for r in mine]
        summary["models"][label] = {"source": sources[label], **summarize(items)}
        if n_benchmark:
            summary["models"][label]["coverage"] = {
                "answered": len(mine), "benchmark_prompts": n_benchmark, "fraction": len(mine) / n_benchmark,
            }
        if seen is not None:
            summary["models"][label]["seen_unseen"] = seen_unseen(items, seen[0])
    if seen is not None:
        summary["seen_ids"] = {"ids": sorted(seen[0]), "from": seen[1]}
    if config.bootstrap > 0 and len(by_model) > 1:
        summary["comparisons"] = compare_all(by_model, resamples=config.bootstrap, seed=config.sampling.seed)
    write_json_atomic(out / "summary.json", summary)
    report.write_report(out, summary)
    return summary


def _seen_ids(config: EvaluateConfig) -> tuple[set[str], str] | None:
    """Instruction ids seen in training (from --train-manifest, else from --model training folders)."""
    from mapl_cli.evaluation.provenance import seen_from_models, seen_instruction_ids

    manifests = config.train_manifests or seen_from_models(config.models)
    if not manifests:
        return None
    ids: set[str] = set()
    sources = []
    for manifest in manifests:
        found, source = seen_instruction_ids(manifest)
        ids |= found
        sources.append(source)
    return ids, "; ".join(sources)


def merge_runs(config: EvaluateConfig, started: float, console: Any) -> dict[str, Any]:
    """Combine the results.jsonl of several output folders (the shards of one evaluation) into one report."""
    from mapl_cli.manifest import build_manifest, remove_stale_temporaries, temporary_path, write_json_atomic

    if config.models or config.responses or config.reward_models:
        raise MaplError("--merge combines finished runs; it cannot be mixed with --model, --responses or --reward-model")
    check_output(config)
    records: dict[tuple[str, int], dict] = {}
    settings = []
    n_prompts: list[int | None] = []
    for folder in config.merge:
        path = Path(folder) / RESULTS_JSONL
        if not path.is_file():
            raise MaplError(f"{folder}: no {RESULTS_JSONL}; not an output folder of mapl evaluate")
        if (Path(folder) / SETTINGS_JSON).exists():
            found = _folder(config).read_settings(Path(folder))
            settings.append({k: v for k, v in _comparable(found).items() if k not in ("shard", "n_prompts")})
            n_prompts.append(found.get("n_prompts"))
        for record in _read_records(path):
            records.setdefault((record["model"], record["key"]), record)
    if any(s != settings[0] for s in settings):
        raise MaplError("--merge: the folders were evaluated with different benchmarks or settings")
    if not records:
        raise MaplError("--merge: the folders hold no results")
    labels = list(dict.fromkeys(r["model"] for r in records.values()))
    ordered = sorted(records.values(), key=lambda r: (labels.index(r["model"]), r["key"]))
    sources = {r["model"]: r["model_source"] for r in ordered}
    seen = _seen_ids(config)
    known = len(n_prompts) == len(config.merge) and all(isinstance(n, int) for n in n_prompts)
    _folder(config).make()
    remove_stale_temporaries(config.output)
    work = temporary_path(config.output / "staging")  # the earlier files stay until the merge is complete
    work.mkdir()
    try:
        writer = JsonlAppender(work / RESULTS_JSONL)
        try:
            writer.write(ordered)
        finally:
            writer.close()
        summary = _write_outputs(config, ordered, labels, sources, {"merged_from": list(config.merge)}, seen,
                                 out=work, n_benchmark=sum(n_prompts) if known else None)
        counts = {label: sum(1 for r in ordered if r["model"] == label) for label in labels}
        write_json_atomic(work / "manifest.json", build_manifest(
            "evaluate", {"merge": list(config.merge)}, list(config.merge), counts, started, outputs={"dir": str(config.output)}))
        _folder(config).promote(work)
    except BaseException:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        raise
    from mapl_cli.evaluation.report import comparison_table

    sys.stdout.write(comparison_table(summary) + "\n")
    console.print(f"merged {len(config.merge)} folders into {config.output} ({len(ordered)} results)")
    return summary


def _check_config(config: EvaluateConfig) -> None:
    """The options on their own (the CLI has checked their ranges already; library callers get the same)."""
    if not (config.models or config.responses or config.reward_models):
        raise MaplError("nothing to evaluate: give --model, --responses, --reward-model or --merge")
    if config.reward_models and not config.pairs:
        raise MaplError("--reward-model needs --pairs (a pairs.parquet file or folder)")
    if config.models and not config.benchmark:
        raise MaplError("--model needs --benchmark (an IFEval-format jsonl file or hf://google/IFEval)")
    positive = {"--chunk-size": config.chunk_size, "--batch-size": config.batch_size,
                "--tensor-parallel-size": config.tensor_parallel_size, "--max-length": config.max_length,
                "--max-new-tokens": config.sampling.max_new_tokens}
    for flag, value in positive.items():
        if value < 1:
            raise MaplError(f"{flag} must be at least 1, got {value}")
    if config.limit is not None and config.limit < 1:
        raise MaplError(f"--limit must be at least 1, got {config.limit}")
    if config.chat_template is not None:
        if not config.models:  # a reward model renders with the template train-rm saved beside it
            raise MaplError("--chat-template applies to --model (a --reward-model uses the template it was trained with)")
        from mapl_cli.models import read_chat_template

        read_chat_template(config.chat_template)
    if config.bootstrap < 0:
        raise MaplError(f"--bootstrap must be 0 (off) or a number of resamples, got {config.bootstrap}")
    index, count = config.shard
    if count < 1 or not 0 <= index < count:
        raise MaplError(f"--shard: need 0 <= I < N, got {index}/{count}")


def run(config: EvaluateConfig) -> dict[str, Any]:
    """Run the evaluation described by `config`; returns the summary dict (also written to summary.json).

    Everything is checked before the output folder is touched: the options, the output folder, the
    benchmark, every model folder (files and headers), every reward model (that it is one), the responses
    files and training manifests. Results are journalled to results.jsonl chunk by chunk (`--resume`); with
    --force the new run is written beside the earlier one and replaces it only when it has finished."""
    started = time.time()
    console = _console()
    check_installed(config.report_to)  # a chosen tracker that is not installed: one line, before any work
    if config.merge:
        return _report(config, merge_runs(config, started, console))
    _check_config(config)
    check_output(config)
    rows = read_benchmark(config.benchmark, config.limit) if config.benchmark else None
    rows = shard_rows(rows, config.shard) if rows is not None else None
    if rows is not None and not rows:
        raise MaplError(f"--shard {config.shard[0]}/{config.shard[1]}: no benchmark prompts fall in this shard")
    if config.device is not None and (config.models or config.reward_models):
        check_device(config.device)
    for model in config.models:  # a model that cannot load fails before any generation
        preflight_model(model)
    table = None
    if config.reward_models:
        from mapl_cli.evaluation.reward import preflight_reward_model
        from mapl_cli.pairs import read_pairs

        for name in config.reward_models:
            preflight_reward_model(name)
        table = read_pairs(config.pairs)
    responses = [read_responses(path, rows) for path in config.responses]
    seen = _seen_ids(config)  # a bad manifest fails before any generation
    for path, pairs in zip(config.responses, responses, strict=True):
        if rows is not None and len(pairs) < len(rows):
            # scored on the covered prompts only (coverage in summary.json); comparisons use the prompts both
            # sides answered
            console.print(f"[yellow]warning:[/yellow] {path} answers {len(pairs)} of the {len(rows)} benchmark prompts")

    def body(done: dict, work: Path) -> dict[str, Any]:
        return _evaluate(config, rows, responses, table, seen, done, work, started, console)

    return _report(config, _folder(config).run(_settings(config, rows), config.resume, config.force, _read_journal,
                                               body, comparable=_comparable))


def _options(config: EvaluateConfig) -> dict[str, Any]:
    return {k: v for k, v in asdict(config).items() if k not in ("backend_factory", "output")}


def _report(config: EvaluateConfig, summary: dict[str, Any]) -> dict[str, Any]:
    """--report-to: the summary's metrics and tables, once, as one tracked run (files in OUTPUT/runs/)."""
    if config.report_to:
        from mapl_cli.evaluation.report import summary_metrics, summary_tables

        with open_trackers(config.report_to, config.output, _options(config)) as trackers:
            trackers.log(summary_metrics(summary), step=0)
            for name, (columns, rows) in summary_tables(summary).items():
                trackers.log_table(name, columns, rows)
    return summary


def _evaluate(config, rows, responses, table, seen, done, work, started, console) -> dict[str, Any]:
    from mapl_cli.manifest import build_manifest, write_json_atomic

    model_labels = _labels(config.models)
    response_labels = _unique([Path(p).stem for p in config.responses], taken=model_labels)
    sources = dict(zip(model_labels, config.models, strict=True)) | dict(zip(response_labels, config.responses, strict=True))

    writer = JsonlAppender(work / RESULTS_JSONL)
    try:
        for label, path, pairs in zip(response_labels, config.responses, responses, strict=True):
            todo = [(row, text) for row, text in pairs if (label, row.key) not in done]
            records = [_record(label, path, row, text, config.strip_thinking) for row, text in todo]
            writer.write(records)
            done.update(((label, r["key"]), r) for r in records)
        for label, model in zip(model_labels, config.models, strict=True):
            _generate_model(config, label, model, rows, done, writer, console)
    finally:
        writer.close()
    raise_if_interrupted()

    extra: dict[str, Any] = {}
    if config.reward_models:
        from mapl_cli.evaluation.reward import evaluate_reward_models

        scored = evaluate_reward_models(
            config.reward_models, table, batch_size=config.batch_size, device=config.device, console=console,
            max_length=config.max_length, resamples=config.bootstrap, seed=config.sampling.seed,
        )
        extra["reward_models"] = scored["models"]
        if scored["comparisons"]:
            extra["reward_comparisons"] = scored["comparisons"]
    labels = model_labels + response_labels
    records = [r for r in done.values() if r["model"] in set(labels)]
    records.sort(key=lambda r: (labels.index(r["model"]), r["key"]))
    summary = _write_outputs(config, records, labels, sources, extra, seen, out=work,
                             n_benchmark=len(rows) if rows is not None else None)
    inputs = [p for p in [config.benchmark, *config.responses, config.pairs, config.chat_template] if p]
    counts = {label: sum(1 for r in records if r["model"] == label) for label in labels}
    options = _options(config)
    write_json_atomic(
        work / "manifest.json",
        build_manifest("evaluate", options, inputs, counts, started, seed=config.sampling.seed, outputs={"dir": str(config.output)}),
    )
    _folder(config).promote(work)
    from mapl_cli.evaluation.report import comparison_table

    sys.stdout.write(comparison_table(summary) + "\n")
    written = ["report.md", "summary.json"] + (["results.parquet"] if records else [])
    console.print(f"wrote {', '.join(written)} in {config.output} ({time.time() - started:.0f} s)")
    return summary
