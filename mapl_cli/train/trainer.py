"""The training loop shared by `mapl train-rm` and `mapl train-dpo`.

    mapl train-dpo out/pairs/pairs.parquet --model tiny-random --output out/dpo --max-steps 20
    torchrun --nproc-per-node 2 -m mapl_cli.cli train-rm pairs.parquet --output out/rm   # several processes

It reads top to bottom: read and validate the pairs (before any model loads), tokenise, build the model,
(DPO) precompute reference log-probs, then for every optimizer step take one global batch, split it into
micro-batches across gradient accumulation and processes, and step. The batch order is a pure function of
(seed, epoch) and the global batch size, so a resumed run and a run on N processes see the same batches.
Under several processes each holds a replica and gradients are summed with one all-reduce per step, or
(`--fsdp`) parameters, gradients and optimizer state are sharded (see `parallel.py`); each micro-batch's
loss is already divided by the loss weight of the whole global batch, so the sum is the global weighted mean.
"""

from __future__ import annotations

import gc
import math
import os
import shutil
import signal
import time
from dataclasses import asdict
from pathlib import Path

import torch

from mapl_cli.errors import MaplError
from mapl_cli.manifest import build_manifest, write_json_atomic
from mapl_cli.models import fingerprint, load_tokenizer, resolve_dtype
from mapl_cli.pairs import read_pairs
from mapl_cli.train import checkpoint, report
from mapl_cli.train.config import TrainConfig
from mapl_cli.train.data import batch_plan, encode_pairs, split_batch
from mapl_cli.train.losses import combine, row_weights
from mapl_cli.train.parallel import Parallel

OUTPUTS = ("model", "checkpoints", "metrics.jsonl", "eval_metrics.jsonl", "curves.png", "manifest.json")


class TrainingInterrupted(MaplError):
    """SIGINT/SIGTERM (or a test's stop request): a checkpoint was written; `--resume` continues."""

    exit_code = 130


def _check_output(out: Path, config: TrainConfig) -> None:
    if out.exists() and not out.is_dir():
        raise MaplError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not (config.force or config.resume):
        raise MaplError(f"{out}: output folder exists and is not empty; pass --force to overwrite or --resume to continue")


def _check_options(config: TrainConfig) -> None:
    positive = {"--batch-size": config.batch_size, "--grad-accum": config.grad_accum, "--epochs": config.epochs,
                "--max-length": config.max_length, "--max-prompt-length": config.max_prompt_length}
    for flag, value in positive.items():
        if value < 1:
            raise MaplError(f"{flag} must be at least 1, got {value}")
    if config.max_steps is not None and config.max_steps < 1:
        raise MaplError(f"--max-steps must be at least 1, got {config.max_steps}")
    if config.lambda_intra < 0 or config.lambda_inter < 0:
        raise MaplError("--lambda-intra and --lambda-inter must be non-negative")
    if config.merge_lora and not config.lora:
        raise MaplError("--merge-lora needs --lora-r > 0")
    if config.stage == "dpo" and config.beta <= 0:
        raise MaplError(f"--beta must be positive, got {config.beta}")


def _read_margins(path: str, column: str, pair_ids: list[str]) -> dict[str, float]:
    import pyarrow.parquet as pq

    file = Path(path) / "pairs.parquet" if Path(path).is_dir() else Path(path)
    names = pq.read_schema(file).names
    if column not in names:
        raise MaplError(f"{file}: --margin-column {column!r} is not a column (columns: {', '.join(names)})")
    data = pq.read_table(file, columns=["pair_id", column])
    values = data.column(column).to_pylist()
    for row, value in enumerate(values):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise MaplError(f"{file}: column {column!r} must hold finite numbers; row {row} has {value!r}")
    by_id = dict(zip(data.column("pair_id").to_pylist(), map(float, values), strict=True))
    return {pair_id: by_id[pair_id] for pair_id in pair_ids}


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between optimizer steps."""

    def __init__(self):
        self.signal: int | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# Options that decide which rows form each step's batch or what the weights mean: a resumed run must match.
RESUME_KEYS = ("stage", "model", "seed", "shuffle", "max_length", "max_prompt_length", "inter_loss", "lora_r",
               "max_steps", "epochs")


def _check_resume(found: Path, config: TrainConfig, global_batch: int) -> None:
    import json

    meta = json.loads((found / "meta.json").read_text())
    saved = meta.get("config", {})
    changed = [k for k in RESUME_KEYS if k in saved and saved[k] != getattr(config, k)]
    saved_batch = saved.get("batch_size", 0) * saved.get("grad_accum", 0) * meta.get("world_size", 1)
    if saved_batch and saved_batch != global_batch:
        changed.append(f"global batch ({saved_batch} -> {global_batch})")
    if changed:
        raise MaplError(f"cannot --resume from {found}: options changed since it was written: {', '.join(changed)}")


def _make_objective(config: TrainConfig, device, dtype, tokenizer, margins):
    from mapl_cli.train.objectives import DPOObjective, RMObjective

    if config.stage == "dpo":
        return DPOObjective(config, device, dtype, tokenizer)
    return RMObjective(config, device, dtype, tokenizer, margins)


def _setup_reference(objective, model, rows, config, par: Parallel, console) -> dict:
    """DPO: precompute and cache reference log-probs (freeing the reference), or keep a reference for the loop.
    Runs before the policy is sharded: the precompute pass shards rows, not weights."""
    if config.stage != "dpo":
        return {}
    if not config.precompute_ref:
        if config.ref_model or not config.lora:
            objective.ref_model = par.wrap(objective.load_reference(model))
        return {"reference": "in-loop " + ("adapters disabled" if objective.ref_model is None else "frozen copy")}
    from mapl_cli.train.reference import cache_path, precompute

    ref_name = config.ref_model or config.model
    path = cache_path(fingerprint(ref_name), objective.dtype)
    ref = objective.load_reference(model) if config.ref_model else model
    t0 = time.time()
    with objective.reference_context(ref):
        objective.ref_cache, computed = precompute(
            ref, rows, path, 2 * config.batch_size, par.device, objective.tokenizer.pad_token_id, par.rank, par.world,
            packing=config.packing,
        )
    if ref is not model:
        del ref
        gc.collect()
    if par.rank == 0:
        console.print(f"reference log-probs: {computed} computed, the rest from {path} ({time.time() - t0:.1f} s)")
    return {"reference": "precomputed", "reference_cache": str(path), "reference_computed": computed}


def _optimizer(model, config: TrainConfig, total_steps: int):
    from transformers import get_scheduler

    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.resolved_lr(),
    )
    name = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}[config.scheduler]
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=config.warmup_steps, num_training_steps=total_steps)
    return params, optimizer, scheduler


def _evaluate(objective, model, rows, config, par: Parallel) -> dict:
    """Metrics over all eval rows (no grad), sharded over processes."""
    kinds = torch.tensor([r.kind for r in rows])
    total_weight = float(row_weights(kinds, config.lambda_intra, config.lambda_inter).sum())
    by_length = sorted(range(len(rows)), key=lambda i: rows[i].length)
    order = by_length[par.rank :: par.world]
    batches = [order[s : s + config.batch_size] for s in range(0, len(order), config.batch_size)]
    sums = report.new_sums()
    with torch.no_grad():
        for micro in batches:
            out = objective.forward(model, [rows[i] for i in micro])
            part, _ = combine(out.loss, out.kinds, config.lambda_intra, config.lambda_inter, denominator=total_weight)
            report.accumulate(sums, out, float(part))
        for _ in range(par.pad_batches(len(rows), config.batch_size) - len(batches)):
            objective.forward(model, [rows[by_length[0]]])  # same forward count on every process (FSDP)
    return report.summarise(par.all_reduce(sums), config.stage == "dpo")


def _progress(enabled: bool, console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(), console=console, disable=not enabled,
    )


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


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


def run(config: TrainConfig, on_step=None) -> dict:
    """Train as configured; returns a summary. `on_step(step, record)` may return True to stop like SIGINT."""
    from rich.console import Console

    started = time.time()
    console = Console(stderr=True)
    out = Path(config.output)
    _check_options(config)
    # Inputs are validated before anything heavy loads.
    table = read_pairs(config.pairs)
    table, zero_weight = _drop_zero_weight_kinds(table, config)
    eval_table = read_pairs(config.eval_pairs) if config.eval_pairs else None
    margins = None
    if config.margin_column:
        if config.stage != "rm":
            raise MaplError("--margin-column applies to train-rm only")
        margins = _read_margins(config.pairs, config.margin_column, table.column("pair_id").to_pylist())
    _check_output(out, config)

    par = Parallel.from_env(config.fsdp)
    rank, world, device = par.rank, par.world, par.device
    if config.fsdp and world == 1:
        console.print("--fsdp: one process, nothing to shard; training the whole model here")
    torch.manual_seed(config.seed)
    dtype = resolve_dtype(config.dtype, device)
    tokenizer = load_tokenizer(config.model)
    with_base = config.inter_loss == "margin"
    rows, dropped = encode_pairs(table, tokenizer, config.max_length, config.max_prompt_length, with_base)
    eval_rows, eval_dropped = ([], {})
    if eval_table is not None:
        eval_rows, eval_dropped = encode_pairs(eval_table, tokenizer, config.max_length, config.max_prompt_length, with_base)
    if not rows:
        raise MaplError(f"{config.pairs}: no usable rows after truncation ({dropped})")
    global_batch = config.batch_size * config.grad_accum * world
    steps_per_epoch = len(batch_plan(rows, global_batch, config.seed, 0, config.shuffle))
    if steps_per_epoch == 0:
        raise MaplError(
            f"{len(rows)} usable rows are fewer than one global batch of {global_batch} "
            f"(--batch-size {config.batch_size} x --grad-accum {config.grad_accum} x {world} processes)"
        )
    total_steps = config.max_steps or config.epochs * steps_per_epoch

    if rank == 0:
        if config.force and not config.resume:
            for name in OUTPUTS:
                target = out / name
                shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)

    objective = _make_objective(config, device, dtype, tokenizer, margins)
    model = objective.build()
    model.train()
    par.broadcast_parameters(model)  # identical start on every process
    ref_info = _setup_reference(objective, model, rows + eval_rows, config, par, console)
    model = par.wrap(model)
    params, optimizer, scheduler = _optimizer(model, config, total_steps)

    ckpt_dir = out / "checkpoints"
    metrics_path, eval_path = out / "metrics.jsonl", out / "eval_metrics.jsonl"
    start_step = 0
    if config.resume and (found := checkpoint.latest(ckpt_dir)) is not None:
        _check_resume(found, config, global_batch)
        try:
            start_step = checkpoint.load(found, par, model, optimizer, scheduler)
        except ValueError as err:
            raise MaplError(f"cannot --resume: {err}") from None
        if rank == 0:
            console.print(f"resuming from {found} (step {start_step} of {total_steps})")
    if rank == 0:
        for path in (metrics_path, eval_path):
            report.truncate_jsonl(path, start_step) if start_step else path.unlink(missing_ok=True)

    meta = {"config": asdict(config), "world_size": world, "strategy": par.strategy, "total_steps": total_steps}

    def save_checkpoint(step: int) -> Path | None:
        return checkpoint.save(ckpt_dir, step, par, model, optimizer, scheduler, meta, config.keep_checkpoints)

    plans: dict[int, list[list[int]]] = {}
    memory: dict = {}
    last_saved = start_step if start_step else None
    step_time_total, steps_done = 0.0, 0
    with _StopFlag() as stop, _progress(config.progress and rank == 0, console) as bar:
        task = bar.add_task(f"train-{config.stage}", total=total_steps, completed=start_step, info="")
        for step in range(start_step, total_steps):
            t0 = time.time()
            epoch, position = divmod(step, steps_per_epoch)
            if epoch not in plans:
                plans[epoch] = batch_plan(rows, global_batch, config.seed, epoch, config.shuffle)
            batch = plans[epoch][position]
            weight = float(row_weights(torch.tensor([rows[i].kind for i in batch]), config.lambda_intra, config.lambda_inter).sum())
            micro_batches = split_batch(batch, rows, config.grad_accum * world)
            sums = report.new_sums()
            mine = micro_batches[rank * config.grad_accum : (rank + 1) * config.grad_accum]
            for n, micro in enumerate(mine):
                par.micro_batch(model, last=n == len(mine) - 1)
                out_rows = objective.forward(model, [rows[i] for i in micro])
                part, _ = combine(out_rows.loss, out_rows.kinds, config.lambda_intra, config.lambda_inter, denominator=weight)
                part.backward()
                report.accumulate(sums, out_rows, float(part.detach()))
            par.sync_gradients(params)
            grad_norm = par.clip(params, config.max_grad_norm)
            par.all_reduce(sums)
            loss = float(sums[report.INDEX["loss"]])
            if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                last = checkpoint.latest(ckpt_dir)
                raise MaplError(
                    f"non-finite {'loss' if not math.isfinite(loss) else 'gradient norm'} at step {step + 1}; "
                    f"stopped without updating the weights; last good checkpoint: {last or 'none'} "
                    "(try a lower --lr, --max-grad-norm, or --dtype float32)"
                )
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            if steps_done == 0:  # gradients and optimizer state exist now; the peak is refreshed at the end
                memory = par.memory(model, optimizer)
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            elapsed = time.time() - t0
            step_time_total += elapsed
            steps_done += 1
            record = {"step": step + 1, "epoch": round((step + 1) / steps_per_epoch, 4), "lr": lr,
                      **report.summarise(sums, config.stage == "dpo"), "grad_norm": grad_norm,
                      "seconds_per_step": round(elapsed, 4),
                      "tokens_per_second": round(float(sums[report.INDEX["tokens"]]) / elapsed, 2),
                      "elapsed_s": round(time.time() - started, 2)}
            if rank == 0:
                report.append_jsonl(metrics_path, record)
            bar.update(task, advance=1, info=f"loss {_fmt(record['loss'])} acc {_fmt(record['rewards/accuracies'])}")
            if eval_rows and config.eval_every and (step + 1) % config.eval_every == 0:
                evaluation = _evaluate(objective, model, eval_rows, config, par)
                if rank == 0:
                    report.append_jsonl(eval_path, {"step": step + 1, **evaluation})
            if config.save_every and (step + 1) % config.save_every == 0 and step + 1 < total_steps:
                save_checkpoint(step + 1)
                last_saved = step + 1
            want_stop = torch.tensor([1.0 if stop.signal is not None or (on_step and on_step(step + 1, record)) else 0.0])
            if float(par.all_reduce(want_stop)) > 0 and step + 1 < total_steps:
                path = save_checkpoint(step + 1) if last_saved != step + 1 else checkpoint.latest(ckpt_dir)
                par.barrier()  # no process exits (and gets the others killed) before rank 0 has written
                raise TrainingInterrupted(
                    f"interrupted at step {step + 1} of {total_steps}; checkpoint {path or ckpt_dir}; "
                    "continue with the same command and --resume"
                )

    final_eval = None
    if eval_rows:
        final_eval = _evaluate(objective, model, eval_rows, config, par)
        if rank == 0 and not (config.eval_every and total_steps % config.eval_every == 0):
            report.append_jsonl(eval_path, {"step": total_steps, **final_eval})
    if last_saved != total_steps:
        save_checkpoint(total_steps)
    if memory:
        memory.update({k: v for k, v in par.memory(model, optimizer).items() if k.startswith("peak")})
    summary = {}
    final = model
    if par.sharded:  # gather the full weights on rank 0 into an unsharded copy to write
        state = par.full_state(model)
        final = objective.build(device=torch.device("cpu"), state=state) if rank == 0 else None
        del state
    if rank == 0:
        model_dir = out / "model"
        tmp = out / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        objective.save_model(final, tmp)
        shutil.rmtree(model_dir, ignore_errors=True)
        os.replace(tmp, model_dir)
        metrics = report.read_jsonl(metrics_path)
        report.plot_curves(metrics, out / "curves.png", f"train-{config.stage}", report.read_jsonl(eval_path))
        last = metrics[-1] if metrics else {}
        counts = {
            "rows": table.num_rows, "rows_zero_weight_left_out": zero_weight, "rows_used": len(rows), "dropped": dropped, "eval_rows": len(eval_rows),
            "eval_dropped": eval_dropped, "steps": total_steps, "resumed_from_step": start_step,
            "steps_per_epoch": steps_per_epoch, "global_batch": global_batch, "world_size": world,
            "strategy": par.strategy,
        }
        outputs = {"model": str(model_dir), "metrics": str(metrics_path), "curves": str(out / "curves.png"),
                   "final": {k: last.get(k) for k in ("loss", "rewards/accuracies", "rewards/margins")},
                   "final_eval": final_eval,
                   "mean_seconds_per_step": round(step_time_total / steps_done, 4) if steps_done else None,
                   "memory_rank0": memory,
                   **ref_info}
        options = {**asdict(config), "lr": config.resolved_lr(), "dtype_resolved": str(dtype), "device": str(device)}
        inputs = [config.pairs] + ([config.eval_pairs] if config.eval_pairs else [])
        manifest = build_manifest(f"train-{config.stage}", options, inputs, counts, started, config.seed, outputs)
        write_json_atomic(out / "manifest.json", manifest)
        summary = {"output": str(out), "model": str(model_dir), "steps": total_steps, **outputs["final"]}
    par.barrier()
    return summary
