"""`mapl export PAIRS --format trl --output FILE`: the rows that share one prompt on both sides as a TRL
preference dataset (explicit prompt, conversational), checked with TRL's own readers."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mapl_cli.cli import app
from mapl_cli.errors import MaplError
from mapl_cli.export import export, manifest_path
from mapl_cli.pairs import PAIRS_SCHEMA
from tests.train_fixtures import make_rows

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """synthesize's output for the tiny preference file (a multi-turn prompt among its rows)."""
    out = tmp_path_factory.mktemp("pairs")
    result = runner.invoke(app, ["synthesize", str(ROOT / "tests" / "assets" / "prefs_tiny.jsonl"), "--output",
                                 str(out), "--seed", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def _expected(pairs: Path) -> list[dict]:
    """The TRL rows the pairs table should give, worked out here from its columns."""
    return [
        {"prompt": r["prompt_chosen"], "chosen": [{"role": "assistant", "content": r["response_chosen"]}],
         "rejected": [{"role": "assistant", "content": r["response_rejected"]}]}
        for r in pq.read_table(pairs / "pairs.parquet").to_pylist() if r["kind"] in ("standard", "inter")
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_export_writes_standard_and_inter_rows_and_counts_the_intra_ones(pairs, tmp_path, suffix):
    out = tmp_path / "trl" / f"prefs{suffix}"
    result = runner.invoke(app, ["export", str(pairs), "--format", "trl", "--output", str(out)])
    assert result.exit_code == 0, result.output
    kinds = pq.read_table(pairs / "pairs.parquet").column("kind").to_pylist()
    n = {k: kinds.count(k) for k in ("standard", "intra", "inter")}
    assert n["intra"] > 0 and n["inter"] > 0
    assert result.output.strip() == (
        f"{out}: wrote {n['standard'] + n['inter']} rows ({n['standard']} standard, {n['inter']} inter); left out "
        f"{n['intra']} intra rows (one response under two prompts has no TRL form)")
    if suffix == ".jsonl":
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    else:
        rows = pq.read_table(out).to_pylist()
    assert rows == _expected(pairs)
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["stage"] == "export" and manifest["counts"] == {
        "rows": len(rows), "written": {"standard": n["standard"], "inter": n["inter"]}, "left_out": {"intra": n["intra"]}}
    assert manifest["inputs"][0]["path"] == str((pairs / "pairs.parquet").resolve())
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name, out.name + ".manifest.json"]  # nothing half-written


@pytest.mark.parametrize(("suffix", "loader"), [(".jsonl", "json"), (".parquet", "parquet")])
def test_trl_reads_the_export_as_a_conversational_preference_dataset(pairs, tmp_path, suffix, loader):
    import datasets
    from trl.data_utils import is_conversational, maybe_apply_chat_template, maybe_extract_prompt

    from mapl_cli.models import load_tokenizer

    out = tmp_path / f"prefs{suffix}"
    export(pairs, out)
    dataset = datasets.load_dataset(loader, data_files=str(out), split="train")
    assert dataset.column_names == ["prompt", "chosen", "rejected"] and dataset.num_rows == len(_expected(pairs))
    tokenizer = load_tokenizer("tiny-random")
    for row, expected in zip(dataset, _expected(pairs), strict=True):
        assert row == expected and is_conversational(row)
        assert maybe_extract_prompt(row) == row  # an explicit prompt: TRL extracts nothing
        text = maybe_apply_chat_template(row, tokenizer)
        assert text["prompt"].endswith("<|im_start|>assistant\n")
        assert text["chosen"] == expected["chosen"][0]["content"] + "<|im_end|>\n"


def test_mapl_reads_its_export_back_as_preference_rows(pairs, tmp_path):
    """TRL's explicit conversational format is one synthesize reads: the export round-trips."""
    from mapl_cli.prefs import Columns, normalise_row

    out = tmp_path / "prefs.jsonl"
    export(pairs, out)
    for index, (line, expected) in enumerate(zip(out.read_text().splitlines(), _expected(pairs), strict=True)):
        row = normalise_row(str(out), index, json.loads(line), Columns())
        assert (row.prompt, row.chosen, row.rejected) == (
            expected["prompt"], expected["chosen"][0]["content"], expected["rejected"][0]["content"])


def test_an_existing_file_is_replaced_only_with_force(pairs, tmp_path):
    out = tmp_path / "prefs.jsonl"
    out.write_text("old\n")
    result = runner.invoke(app, ["export", str(pairs), "--output", str(out)])
    assert result.exit_code == 2 and result.output.strip() == f"mapl: error: --output {out}: exists; pass --force to replace it"
    assert out.read_text() == "old\n"
    result = runner.invoke(app, ["export", str(pairs), "--output", str(out), "--force"])
    assert result.exit_code == 0 and len(out.read_text().splitlines()) == len(_expected(pairs))


@pytest.mark.parametrize(
    ("name", "message"),
    [("prefs.csv", "name a .jsonl or .parquet file (the suffix chooses the format)"),
     ("folder.jsonl", "is a folder; name the file to write")],
)
def test_a_bad_output_is_one_line(pairs, tmp_path, name, message):
    (tmp_path / "folder.jsonl").mkdir()
    result = runner.invoke(app, ["export", str(pairs), "--output", str(tmp_path / name)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"mapl: error: --output {tmp_path / name}: {message}"]


def test_bad_pairs_and_a_table_of_intra_rows_only_are_one_line(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path / "none.parquet"), "--output", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2 and "no such file" in result.output
    intra = [r for r in make_rows(2) if r["kind"] == "intra"]
    path = tmp_path / "intra.parquet"
    pq.write_table(pa.Table.from_pylist(intra, schema=PAIRS_SCHEMA), path)
    with pytest.raises(MaplError, match=r"no row shares one prompt on both sides \(2 intra rows\); nothing to write"):
        export(path, tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists()


def test_a_failed_write_leaves_no_file(pairs, tmp_path, monkeypatch):
    def broken(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError):
        export(pairs, tmp_path / "prefs.parquet")
    assert list(tmp_path.iterdir()) == []
