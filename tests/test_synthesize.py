"""`mapl synthesize`: the pairs contract, determinism, sharding, validation and failure behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mapl_cli.cli import app
from mapl_cli.instructions import REGISTRY
from mapl_cli.pairs import PAIRS_SCHEMA, read_pairs
from mapl_cli.synth.run import SynthConfig, run

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "assets" / "prefs_tiny.jsonl"
EXAMPLES = ROOT / "examples" / "prefs.jsonl"
runner = CliRunner()


def _synth(tmp_path: Path, name: str = "out", **kwargs) -> tuple[pa.Table, dict]:
    config = SynthConfig(input=str(kwargs.pop("input", TINY)), output=tmp_path / name, progress=False, **kwargs)
    manifest = run(config)
    return pq.read_table(tmp_path / name / "pairs.parquet"), manifest


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _row(i: int = 0, **overrides) -> dict:
    row = {
        "prompt": f"Write a few words about topic {i}.",
        "chosen": "Here is a careful answer about the topic. It has two sentences and some detail, written plainly.",
        "rejected": "no idea lol, whatever",
    }
    row.update(overrides)
    return row


def test_examples_give_all_three_kinds_with_valid_schema(tmp_path):
    table, manifest = _synth(tmp_path, input=EXAMPLES)
    assert table.schema.equals(PAIRS_SCHEMA, check_metadata=False)
    assert table.schema.metadata[b"mapl.schema_version"] == b"1"
    kinds = set(table.column("kind").to_pylist())
    assert kinds == {"standard", "intra", "inter"}
    counts = manifest["counts"]
    assert counts["source_rows_read"] == sum(1 for line in EXAMPLES.read_text().splitlines() if line.strip())
    assert counts["kept_by_kind"]["standard"] == counts["source_rows_read"]
    # most rows should yield intra and inter pairs; a collapse here means the generators stopped working
    assert counts["kept_by_kind"]["intra"] >= 1.5 * counts["source_rows_read"]
    assert counts["kept_by_kind"]["inter"] >= 0.8 * counts["source_rows_read"]
    assert set(counts["kept_intra_by_condition"]) == {"all_vs_notall", "some_vs_none"}
    assert set(counts["kept_intra_by_anchor"]) == {"chosen", "rejected"}
    read_pairs(tmp_path / "out")  # the contract reader accepts what synthesize writes
    saved = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert saved["stage"] == "synthesize" and saved["seed"] == 0
    assert saved["inputs"][0]["sha256"]
    assert saved["options"]["k_min"] == 2 and saved["options"]["k_max"] == 4


def test_every_written_row_holds_its_verdicts(tmp_path):
    table, _ = _synth(tmp_path, input=EXAMPLES)
    for row in table.to_pylist():
        kind = row["kind"]
        if kind == "standard":
            assert row["prompt_chosen"] == row["prompt_rejected"] == row["base_prompt"]
            assert row["instructions_chosen"] == []
            continue
        for side in ("chosen", "rejected"):
            response = row[f"response_{side}"]
            verdicts = [REGISTRY[i["id"]].check(response, json.loads(i["kwargs"])) for i in row[f"instructions_{side}"]]
            assert verdicts == row[f"verdicts_{side}"]
            # every instruction's text is in its prompt's last user turn
            last_user = [m for m in row[f"prompt_{side}"] if m["role"] == "user"][-1]["content"]
            assert all(i["text"] in last_user for i in row[f"instructions_{side}"])
        k = len(row["instructions_chosen"])
        assert 2 <= k <= 4
        if kind == "intra":
            assert row["response_chosen"] == row["response_rejected"]
            assert [i["id"] for i in row["instructions_chosen"]] == [i["id"] for i in row["instructions_rejected"]]
            w, lo = row["verdicts_chosen"], row["verdicts_rejected"]
            if row["condition"] == "all_vs_notall":
                assert all(w) and not all(lo)
            else:
                assert row["condition"] == "some_vs_none" and any(w) and not any(lo)
            assert row["anchor"] in ("chosen", "rejected")
        else:
            assert kind == "inter" and row["prompt_chosen"] == row["prompt_rejected"]
            assert all(row["verdicts_chosen"]) and not all(row["verdicts_rejected"])


def test_output_is_byte_identical_across_workers_and_runs(tmp_path):
    _synth(tmp_path, "a", input=EXAMPLES, workers=1, batch_rows=7)
    _synth(tmp_path, "b", input=EXAMPLES, workers=2, batch_rows=5)
    _synth(tmp_path, "c", input=EXAMPLES, workers=1)
    a = (tmp_path / "a" / "pairs.parquet").read_bytes()
    assert a == (tmp_path / "b" / "pairs.parquet").read_bytes()
    assert a == (tmp_path / "c" / "pairs.parquet").read_bytes()


def test_seed_changes_output(tmp_path):
    a, _ = _synth(tmp_path, "a", seed=0)
    b, _ = _synth(tmp_path, "b", seed=1)
    assert a.column("pair_id").to_pylist() != b.column("pair_id").to_pylist()


def test_shards_concatenate_to_the_unsharded_output(tmp_path):
    whole, _ = _synth(tmp_path, "whole", input=EXAMPLES)
    parts = [_synth(tmp_path, f"s{i}", input=EXAMPLES, shard=(i, 3))[0] for i in range(3)]
    assert pa.concat_tables(parts).to_pylist() == whole.to_pylist()


def test_options_shape_the_output(tmp_path):
    table, manifest = _synth(tmp_path, "a", standard=False, anchors=("chosen",), conditions=("some_vs_none",), inter_per_pair=0, k_min=1, k_max=1)
    rows = table.to_pylist()
    assert rows and all(r["kind"] == "intra" and r["anchor"] == "chosen" and r["condition"] == "some_vs_none" for r in rows)
    assert all(len(r["instructions_chosen"]) == 1 for r in rows)
    table, _ = _synth(tmp_path, "b", include=("punctuation:no_comma", "length_constraints:number_words", "keywords:existence", "startend:end_checker"))
    used = {i["id"] for r in table.to_pylist() for i in r["instructions_chosen"]}
    assert used and used <= {"punctuation:no_comma", "length_constraints:number_words", "keywords:existence", "startend:end_checker"}
    table, _ = _synth(tmp_path, "c", input=EXAMPLES, exclude=("length_constraints:number_words",))
    used = {i["id"] for r in table.to_pylist() for i in r["instructions_chosen"]}
    assert "length_constraints:number_words" not in used
    table, manifest = _synth(tmp_path, "d", input=EXAMPLES, limit=5, intra_per_response=2)
    assert manifest["counts"]["source_rows_read"] == 5
    assert manifest["counts"]["kept_by_kind"]["intra"] > 10


def test_conversational_rows_keep_their_messages(tmp_path):
    rows = [
        {
            "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Describe autumn in a few sentences."}],
            "chosen": [{"role": "assistant", "content": "Autumn brings cool air, red leaves and early dusk. Apples ripen and the first fires are lit. It is a season of harvest and quiet."}],
            "rejected": [{"role": "assistant", "content": "Its a season."}],
        }
    ]
    table, _ = _synth(tmp_path, input=_write_jsonl(tmp_path / "conv.jsonl", rows))
    for row in table.to_pylist():
        assert row["prompt_chosen"][0] == {"role": "system", "content": "Be brief."}
        assert row["base_prompt"][1]["content"] == "Describe autumn in a few sentences."
        assert row["prompt_chosen"][1]["content"].startswith("Describe autumn in a few sentences.")


def test_parquet_and_json_inputs_and_column_remapping(tmp_path):
    rows = [{"q": r["prompt"], "good": r["chosen"], "bad": r["rejected"]} for r in (_row(i) for i in range(4))]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    (tmp_path / "in.json").write_text(json.dumps(rows))
    from mapl_cli.prefs import Columns

    columns = Columns(prompt="q", chosen="good", rejected="bad")
    a, _ = _synth(tmp_path, "a", input=tmp_path / "in.parquet", columns=columns)
    b, _ = _synth(tmp_path, "b", input=tmp_path / "in.json", columns=columns)
    assert a.to_pylist() == b.to_pylist()
    assert a.num_rows >= 4


def _cli(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize(
    "rows, message",
    [
        ([_row(0), _row(1, prompt="  ")], "row 1: column 'prompt' is empty"),
        ([_row(0, chosen=None)], "row 0: column 'chosen' is null"),
        ([_row(0, rejected="")], "row 0: column 'rejected' is empty"),
        ([_row(0, chosen=3)], "row 0: column 'chosen' must be a string"),
        ([_row(0, prompt=[{"role": "system", "content": "hi"}])], "the message list has no user turn"),
        ([{"prompt": "x", "chosen": "y"}], "row 0: missing column 'rejected'"),
    ],
)
def test_bad_rows_fail_with_one_line_naming_the_row(tmp_path, rows, message):
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    result = _cli("synthesize", str(path), "--output", str(tmp_path / "out"), "-q")
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_skip_invalid_counts_reasons(tmp_path):
    same = "The same answer, word for word."
    rows = [_row(0), _row(1, prompt=""), _row(2, chosen=None), _row(3), _row(4, chosen=same, rejected=same + "\n")]
    path = _write_jsonl(tmp_path / "mixed.jsonl", rows)
    with open(path, "a") as handle:
        handle.write("{not json\n")
        handle.write("[" * 100_000 + "]" * 100_000 + "\n")  # JSON nested too deeply for the parser
    _, manifest = _synth(tmp_path, input=path, skip_invalid=True)
    counts = manifest["counts"]
    assert counts["source_rows_read"] == 7
    assert counts["invalid_by_reason"] == {"bad_json": 2, "empty_prompt": 1, "identical_responses": 1, "null_response": 1}
    assert counts["kept_by_kind"]["standard"] == 2


def test_a_kind_that_gets_no_pair_is_warned_about(tmp_path, capsys):
    # JSON format never fits prose, so no intra pair; inter pairs need only the chosen side to fit
    _, manifest = _synth(tmp_path, include=("detectable_format:json_format", "punctuation:no_comma"), k_min=1, k_max=1,
                         intra_per_response=1, inter_per_pair=3)
    kinds = manifest["counts"]["kept_by_kind"]
    assert kinds.get("intra", 0) == 0 and kinds["inter"] > 0
    assert "warning: no intra pair could be built" in capsys.readouterr().err


def test_k_max_is_checked_against_the_types_that_can_share_a_prompt():
    from mapl_cli.commands.parsing import most_compatible
    from mapl_cli.instructions import all_ids

    assert most_compatible(all_ids()) == 15  # IFEval's conflict table: 10 of its 25 types clash with others
    assert most_compatible(["punctuation:no_comma"]) == 1
    assert most_compatible(["detectable_format:json_format", "punctuation:no_comma"]) == 1  # json clashes
    assert most_compatible(["punctuation:no_comma", "startend:quotation", "detectable_format:title"]) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.jsonl"], "missing.jsonl: no such file"),
        (["{tiny}", "--include", "punctuation:no_commas"], "unknown instruction id 'punctuation:no_commas'"),
        (["{tiny}", "--conditions", "all"], "--conditions: unknown value 'all'"),
        (["{tiny}", "--shard", "3/3"], "--shard"),
        (["{tiny}", "--k-min", "3", "--k-max", "2"], "--k-min/--k-max"),
        (["{tiny}", "--prompt-column", "question"], "missing column 'question'"),
        (["{dir}"], "is a directory"),
        (["{txt}"], "unsupported input type '.txt'"),
    ],
)
def test_bad_invocations_fail_with_one_line(tmp_path, args, message):
    (tmp_path / "notes.txt").write_text("hello")
    args = [a.format(tiny=TINY, dir=tmp_path, txt=tmp_path / "notes.txt") for a in args]
    result = _cli("synthesize", *args, "--output", str(tmp_path / "out"), "-q")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_existing_output_is_refused_without_force(tmp_path):
    out = str(tmp_path / "out")
    assert _cli("synthesize", str(TINY), "--output", out, "-q").exit_code == 0
    first = (tmp_path / "out" / "pairs.parquet").read_bytes()
    result = _cli("synthesize", str(TINY), "--output", out, "-q", "--seed", "5")
    assert result.exit_code == 2 and "already exists" in result.output
    assert (tmp_path / "out" / "pairs.parquet").read_bytes() == first
    assert _cli("synthesize", str(TINY), "--output", out, "-q", "--seed", "5", "--force").exit_code == 0
    assert (tmp_path / "out" / "pairs.parquet").read_bytes() != first
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.json", "pairs.parquet"]


@pytest.mark.slow  # imports datasets and waits for the hub client to give up offline
def test_hf_input_offline_fails_clearly(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    result = _cli("synthesize", "hf://no-such-org/no-such-dataset:train", "--output", str(tmp_path / "out"), "-q")
    assert result.exit_code == 2
    assert "could not load the dataset" in result.output and "export it to .parquet or .jsonl" in result.output


def test_cli_prints_a_summary(tmp_path):
    result = _cli("synthesize", str(TINY), "--output", str(tmp_path / "out"), "-q")
    assert result.exit_code == 0, result.output
    assert "pairs.parquet" in result.output and "standard" in result.output
