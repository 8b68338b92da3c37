"""`mapl synthesize`: turn preference rows into MAPL training pairs.

    mapl synthesize examples/prefs.jsonl --output out/pairs
    mapl synthesize hf://my-org/prefs:train --output out/pairs --workers 8 --shard 3/16

Writes OUTPUT/pairs.parquet (standard, intra and inter rows) and OUTPUT/manifest.json. Each flag sets the
`SynthConfig` field of the same name (synth/run.py), whose defaults are the flags' defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mapl_cli.commands.parsing import parse_ids, parse_shard
from mapl_cli.errors import MaplError
from mapl_cli.prefs import Columns
from mapl_cli.synth.run import SynthConfig

_COLUMNS = Columns()  # the default column names


def _choices(value: str, allowed: tuple[str, ...], flag: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    for item in items:
        if item not in allowed:
            raise MaplError(f"{flag}: unknown value '{item}' (choose from {', '.join(allowed)})")
    return items


def command(
    input: Annotated[str, typer.Argument(help="Preference rows: a .parquet, .jsonl or .json file, or hf://name[:split].", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder; pairs.parquet and manifest.json are written there.", show_default=False)],
    seed: Annotated[int, typer.Option(help="Random seed; the same input, options and seed give a byte-identical file.")] = SynthConfig.seed,
    k_min: Annotated[int, typer.Option(min=1, help="Fewest instructions added to a prompt.")] = SynthConfig.k_min,
    k_max: Annotated[int, typer.Option(min=1, help="Most instructions added to a prompt (k is drawn uniformly from k-min..k-max); no more than the usable instruction types that can share a prompt.")] = SynthConfig.k_max,
    conditions: Annotated[str, typer.Option(help="Intra-sample conditions to draw from, comma-separated: all_vs_notall (y meets every instruction of x_w, not all of x_l), some_vs_none (y meets some of x_w, none of x_l). Each intra pair draws one uniformly.")] = ",".join(SynthConfig.conditions),
    anchors: Annotated[str, typer.Option(help="Responses to build intra-sample pairs around, comma-separated: chosen, rejected.")] = ",".join(SynthConfig.anchors),
    intra_per_response: Annotated[int, typer.Option(min=0, help="Intra-sample pairs built per anchor response (0 disables intra pairs).")] = SynthConfig.intra_per_response,
    inter_per_pair: Annotated[int, typer.Option(min=0, help="Inter-sample pairs built per preference row (0 disables inter pairs).")] = SynthConfig.inter_per_pair,
    include: Annotated[list[str] | None, typer.Option(help="Use only these instruction ids (repeat or comma-separate), e.g. punctuation:no_comma.")] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Never use these instruction ids (repeat or comma-separate), e.g. to hold types out for evaluation.")] = None,
    no_standard: Annotated[bool, typer.Option("--no-standard", help="Do not copy the original pairs into the output as standard rows.")] = not SynthConfig.standard,
    shard: Annotated[str, typer.Option(help="Process only shard I of N (0-based contiguous split of the input rows), for Slurm job arrays; the N outputs concatenated in order equal the unsharded output.")] = "/".join(map(str, SynthConfig.shard)),
    workers: Annotated[int, typer.Option(min=0, help="Worker processes; 0 means one per CPU core. The output does not depend on this.")] = SynthConfig.workers,
    limit: Annotated[int | None, typer.Option(min=1, help="Process at most this many input rows (of this shard).", show_default=False)] = SynthConfig.limit,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing OUTPUT/pairs.parquet.")] = SynthConfig.force,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="Skip and count unusable input rows instead of stopping at the first one.")] = SynthConfig.skip_invalid,
    prompt_column: Annotated[str, typer.Option(help="Input column holding the prompt (a string or a list of {role, content} messages).")] = _COLUMNS.prompt,
    chosen_column: Annotated[str, typer.Option(help="Input column holding the preferred response.")] = _COLUMNS.chosen,
    rejected_column: Annotated[str, typer.Option(help="Input column holding the dispreferred response.")] = _COLUMNS.rejected,
    id_column: Annotated[str, typer.Option(help="Input column with a row id; rows without one get a content hash as source_id.")] = _COLUMNS.id,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = not SynthConfig.progress,
) -> None:
    """Turn preference rows (prompt, chosen, rejected) into MAPL pairs: standard, intra-sample and inter-sample."""
    from mapl_cli.pairs import ANCHORS, CONDITIONS
    from mapl_cli.synth.run import run

    config = SynthConfig(
        input=input,
        output=output,
        seed=seed,
        k_min=k_min,
        k_max=k_max,
        conditions=_choices(conditions, CONDITIONS, "--conditions"),
        anchors=_choices(anchors, ANCHORS, "--anchors"),
        intra_per_response=intra_per_response,
        inter_per_pair=inter_per_pair,
        include=parse_ids(include),
        exclude=parse_ids(exclude),
        standard=not no_standard,
        shard=parse_shard(shard),
        workers=workers,
        limit=limit,
        force=force,
        skip_invalid=skip_invalid,
        columns=Columns(prompt=prompt_column, chosen=chosen_column, rejected=rejected_column, id=id_column),
        progress=not quiet,
    )
    # Checked in this order before the output folder is touched or the input read: each option, the
    # instruction ids with --k-max, then the output folder.
    manifest = run(config)
    counts = manifest["counts"]
    kinds = ", ".join(f"{k} {v}" for k, v in counts["kept_by_kind"].items())
    typer.echo(f"{output / 'pairs.parquet'}: {counts['rows_written']} rows ({kinds}) from {counts['source_rows_read']} source rows in {manifest['wall_seconds']:.1f} s")
