"""`mapl export`: a pairs table in another library's format (TRL's preference datasets).

    mapl export out/pairs --format trl --output out/trl/prefs.jsonl
    mapl export out/pairs/pairs.parquet --format trl --output prefs.parquet --force

Writes FILE (.jsonl or .parquet, by its suffix) and FILE.manifest.json; says on stderr how many rows it
wrote and how many intra rows it left out (one response under two prompts has no TRL form).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


class Format(str, Enum):
    trl = "trl"


def command(
    pairs: Annotated[Path, typer.Argument(rich_help_panel="Input", show_default=False, help=(
        "The pairs table written by `mapl synthesize`: a pairs.parquet file, or the folder holding one."))],
    *,
    output: Annotated[Path, typer.Option("--output", "-o", rich_help_panel="Output", show_default=False, help=(
        "The file to write, .jsonl or .parquet (the suffix chooses); FILE.manifest.json is written beside it."))],
    format: Annotated[Format, typer.Option("--format", rich_help_panel="Output", help=(
        "The format to write. trl: TRL's conversational preference format with explicit prompts ({prompt, "
        "chosen, rejected} as message lists), for DPOTrainer and RewardTrainer; standard and inter rows "
        "only."))] = Format.trl,
    force: Annotated[bool, typer.Option("--force", rich_help_panel="Output", help=(
        "Replace the --output file if it exists."))] = False,
) -> None:
    """Write the rows of a pairs table that share one prompt on both sides as a TRL preference dataset."""
    from mapl_cli.export import export

    manifest = export(pairs, output, format.value, force)
    written, left_out = manifest["counts"]["written"], manifest["counts"]["left_out"]
    what = "intra rows" if set(left_out) <= {"intra"} else "rows whose two prompts differ"
    typer.echo(
        f"{output}: wrote {manifest['counts']['rows']} rows ({written.get('standard', 0)} standard, "
        f"{written.get('inter', 0)} inter); left out {sum(left_out.values())} {what} "
        "(one response under two prompts has no TRL form)",
        err=True,
    )
