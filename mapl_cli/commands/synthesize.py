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
INPUT, INSTRUCTIONS, PAIRS, OUTPUT = "Input", "Instructions", "Pairs", "Output"  # the --help panels


def _choices(value: str, allowed: tuple[str, ...], flag: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    for item in items:
        if item not in allowed:
            raise MaplError(f"{flag}: unknown value '{item}' (choose from {', '.join(allowed)})")
    return items


def command(
    input: Annotated[str, typer.Argument(rich_help_panel=INPUT, show_default=False, help=(
        "Preference rows (prompt, chosen, rejected): a .parquet, .jsonl or .json file, or hf://name[:split]."))],
    *,
    # Input
    prompt_column: Annotated[str, typer.Option(metavar="<column>", rich_help_panel=INPUT, help=(
        "Input column holding the prompt: a string or a list of {role, content} messages."))] = _COLUMNS.prompt,
    chosen_column: Annotated[str, typer.Option(metavar="<column>", rich_help_panel=INPUT, help=(
        "Input column holding the preferred response."))] = _COLUMNS.chosen,
    rejected_column: Annotated[str, typer.Option(metavar="<column>", rich_help_panel=INPUT, help=(
        "Input column holding the dispreferred response."))] = _COLUMNS.rejected,
    id_column: Annotated[str, typer.Option(metavar="<column>", rich_help_panel=INPUT, help=(
        "Input column holding a row id; rows without one get a content hash as their source_id."))] = _COLUMNS.id,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", rich_help_panel=INPUT, help=(
        "Skip and count unusable input rows instead of stopping at the first one."))] = SynthConfig.skip_invalid,
    limit: Annotated[int | None, typer.Option(min=1, rich_help_panel=INPUT, show_default=False, help=(
        "Process at most N input rows of this shard (counted after --shard splits them)."))] = SynthConfig.limit,
    shard: Annotated[str, typer.Option(metavar="I/N", rich_help_panel=INPUT, help=(
        "Process only the I-th of N contiguous slices of the input rows (0-based), for Slurm job arrays; the "
        "N outputs concatenated in order equal the unsharded output."))] = "/".join(map(str, SynthConfig.shard)),
    # Instructions
    k_min: Annotated[int, typer.Option(min=1, rich_help_panel=INSTRUCTIONS, help=(
        "Fewest instructions added to a prompt."))] = SynthConfig.k_min,
    k_max: Annotated[int, typer.Option(min=1, rich_help_panel=INSTRUCTIONS, help=(
        "Most instructions added to a prompt (k is drawn uniformly from k-min..k-max); no more than the usable "
        "instruction types that can share a prompt."))] = SynthConfig.k_max,
    include: Annotated[list[str] | None, typer.Option(metavar="<id>", rich_help_panel=INSTRUCTIONS, show_default=False, help=(
        "Use only these instruction ids (repeat the option or comma-separate), for example "
        "punctuation:no_comma."))] = None,
    exclude: Annotated[list[str] | None, typer.Option(metavar="<id>", rich_help_panel=INSTRUCTIONS, show_default=False, help=(
        "Never use these instruction ids (repeat the option or comma-separate), for example to hold types out "
        "for evaluation."))] = None,
    # Pairs
    conditions: Annotated[str, typer.Option(metavar="<names>", rich_help_panel=PAIRS, help=(
        "Intra-sample conditions to draw from, comma-separated: all_vs_notall (y meets every instruction of "
        "x_w, not all of x_l) and some_vs_none (y meets some of x_w, none of x_l). Each intra pair draws one "
        "uniformly."))] = ",".join(SynthConfig.conditions),
    anchors: Annotated[str, typer.Option(metavar="<names>", rich_help_panel=PAIRS, help=(
        "Responses to build intra-sample pairs around, comma-separated: chosen and rejected."))] = ",".join(SynthConfig.anchors),
    intra_per_response: Annotated[int, typer.Option(min=0, rich_help_panel=PAIRS, help=(
        "Intra-sample pairs built per anchor response; 0 builds none."))] = SynthConfig.intra_per_response,
    inter_per_pair: Annotated[int, typer.Option(min=0, rich_help_panel=PAIRS, help=(
        "Inter-sample pairs built per preference row; 0 builds none."))] = SynthConfig.inter_per_pair,
    no_standard: Annotated[bool, typer.Option("--no-standard", rich_help_panel=PAIRS, help=(
        "Leave the original pairs out of the output instead of copying them in as standard rows."))] = not SynthConfig.standard,
    seed: Annotated[int, typer.Option(rich_help_panel=PAIRS, help=(
        "Random seed; the same input, options and seed give a byte-identical pairs file."))] = SynthConfig.seed,
    # Output
    output: Annotated[Path, typer.Option("--output", "-o", rich_help_panel=OUTPUT, show_default=False, help=(
        "Output folder for pairs.parquet and manifest.json."))],
    force: Annotated[bool, typer.Option("--force", rich_help_panel=OUTPUT, help=(
        "Replace an existing pairs.parquet in --output."))] = SynthConfig.force,
    workers: Annotated[int, typer.Option(min=0, rich_help_panel=OUTPUT, help=(
        "Worker processes that build the pairs; 0 starts one per CPU core. The output does not depend on "
        "this."))] = SynthConfig.workers,
    # --quiet and -q: the old spellings of --no-progress, still accepted (help does not show them)
    progress: Annotated[bool, typer.Option("--progress/--no-progress", " /--quiet", " /-q", rich_help_panel=OUTPUT, help=(
        "Show a progress bar on stderr."))] = SynthConfig.progress,
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
        progress=progress,
    )
    # Checked in this order before the output folder is touched or the input read: each option, the
    # instruction ids with --k-max, then the output folder.
    manifest = run(config)
    counts = manifest["counts"]
    kinds = ", ".join(f"{k} {v}" for k, v in counts["kept_by_kind"].items())
    typer.echo(f"{output / 'pairs.parquet'}: {counts['rows_written']} rows ({kinds}) from {counts['source_rows_read']} source rows in {manifest['wall_seconds']:.1f} s")
