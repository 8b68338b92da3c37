"""`mapl synthesize` on preference rows whose prompts already carry instructions (`mapl sample`'s prefs.parquet).

    .venv/bin/pytest tests/test_synth_onpolicy.py -q

New instructions are drawn only from types the prompt does not use and that conflict with none of its own;
the prompt's own instructions lead the intra and inter rows' instruction lists, with the registry's verdicts;
a file without the `instructions` column gives the output it always gave.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mapl_cli.cli import app
from mapl_cli.generation.base import DummyBackend
from mapl_cli.instructions import check_all, conflicts
from mapl_cli.pairs import read_pairs
from mapl_cli.prefs import normalise_row
from mapl_cli.sampling.run import SampleConfig
from mapl_cli.sampling.run import run as sample_run
from mapl_cli.synth.core import synthesize_row
from mapl_cli.synth.run import SynthConfig, resolve_instruction_ids

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "prefs.jsonl"
IDS = resolve_instruction_ids((), ())

CHOSEN = ("a title line <<notes>>\n\nhere is a plain lowercase answer with no commas at all and a few more words "
          "so that counts have room to move. it keeps going for a while and ends quietly.")
REJECTED = "Short, Loud, And Full Of Commas: Nope."


def _inst(inst_id: str, text: str, **kwargs) -> dict[str, str]:
    return {"id": inst_id, "kwargs": json.dumps(kwargs, sort_keys=True), "text": text}


CARRIED = [
    [_inst("punctuation:no_comma", "Do not use any commas."),
     _inst("change_case:english_lowercase", "Answer in lowercase only.")],
    [_inst("detectable_format:title", "Give it a title in double angular brackets, like <<title>>.")],
    [_inst("length_constraints:number_paragraphs", "Write exactly 2 paragraphs separated by ***.", num_paragraphs=2),
     _inst("keywords:existence", "Mention the words answer and quietly.", keywords=["answer", "quietly"]),
     _inst("language:response_language", "Answer in English.", language="en")],
]


def _pref_row(i: int, carried: list[dict] | None, **extra) -> dict:
    text = "Write a short note about the weather." + ("\n\n" + "\n".join(c["text"] for c in carried) if carried else "")
    row = {"id": f"p{i}", "prompt": [{"role": "user", "content": text}], "chosen": CHOSEN, "rejected": REJECTED}
    if carried is not None:
        row["instructions"] = carried
    row.update(extra)
    return row


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _registry_verdicts(response: str, instructions: list[dict]) -> list[bool]:
    kwargs = [json.loads(i["kwargs"]) or {} for i in instructions]
    return [bool(v) for v in check_all(response, [i["id"] for i in instructions], kwargs)]


@pytest.mark.parametrize("carried", CARRIED, ids=lambda c: "+".join(i["id"].split(":")[1] for i in c))
def test_new_instructions_never_repeat_or_conflict_and_carried_ones_lead_with_registry_verdicts(carried):
    made = 0
    for seed in range(40):
        # the file's verdicts are wrong on purpose: mapl computes its own
        raw = _pref_row(seed, carried, verdicts_chosen=[False] * len(carried), verdicts_rejected=[True] * len(carried))
        pref = normalise_row("mem", seed, raw, SynthConfig(input="mem", output=Path("x")).columns)
        rows, _ = synthesize_row(pref, SynthConfig(input="mem", output=Path("x"), seed=seed), IDS)
        assert rows[0]["kind"] == "standard" and rows[0]["instructions_chosen"] == []  # the standard row is unchanged
        for row in rows[1:]:
            made += 1
            for side in ("chosen", "rejected"):
                instructions = row[f"instructions_{side}"]
                assert instructions[: len(carried)] == carried
                added = instructions[len(carried):]
                assert added, "every intra and inter row adds instructions"
                assert not any(conflicts(a["id"], c["id"]) for a in added for c in carried)
                assert row[f"verdicts_{side}"] == _registry_verdicts(row[f"response_{side}"], instructions)
                # the carried texts are in the base prompt; only the added ones are appended to it
                base = row["base_prompt"][-1]["content"]
                assert row[f"prompt_{side}"][-1]["content"] == base + "\n\n" + "\n".join(a["text"] for a in added)
            if row["kind"] == "intra":
                own = row["verdicts_chosen"][: len(carried)]
                assert own == row["verdicts_rejected"][: len(carried)]  # same response, same carried verdicts
    assert made >= 40  # intra and inter rows were built for most seeds


def test_a_file_without_the_column_gives_the_output_it_always_gave(tmp_path):
    """No column, a null value and an empty list all mean a prompt without instructions: the same bytes."""
    rows = [json.loads(line) for line in EXAMPLES.read_text().splitlines() if line.strip()][:12]
    outputs = []
    for name, value in (("absent", None), ("null", "null"), ("empty", [])):
        variant = [r if value is None else {**r, "instructions": None if value == "null" else value} for r in rows]
        config = SynthConfig(input=str(_write_jsonl(tmp_path / f"{name}.jsonl", variant)), output=tmp_path / name,
                             progress=False, seed=5)
        from mapl_cli.synth.run import run

        run(config)
        outputs.append((tmp_path / name / "pairs.parquet").read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]


@pytest.mark.parametrize(("value", "message"), [
    ("be nice", "must be a list of {id, kwargs, text} instructions"),
    ([{"id": "no:such", "kwargs": "{}", "text": ""}], "unknown id 'no:such'"),
    ([{"id": "punctuation:no_comma", "kwargs": "[1]", "text": ""}], "kwargs must be a JSON object"),
    ([{"id": "length_constraints:number_words", "kwargs": "{}", "text": ""}], "needs argument 'num_words'"),
])
def test_a_bad_instructions_column_ends_with_one_line(tmp_path, value, message):
    path = _write_jsonl(tmp_path / "bad.jsonl", [_pref_row(0, None, instructions=value)])
    result = CliRunner().invoke(app, ["synthesize", str(path), "--output", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code != 0
    assert message in result.output and "row 0: column 'instructions'" in result.output


def _respond(messages, j):
    return [CHOSEN, REJECTED, "a middling answer, with one comma and no title", "Another Reply In Capitals"][j]


def test_synthesize_on_a_sample_prefs_file_end_to_end(tmp_path):
    bench = _write_jsonl(tmp_path / "bench.jsonl", [
        {"key": k, "prompt": f"Write a note number {k}.", "instruction_id_list": ids, "kwargs": [{}] * len(ids)}
        for k, ids in enumerate([["punctuation:no_comma", "change_case:english_lowercase"],
                                 ["detectable_format:title"], ["punctuation:no_comma"]])
    ])
    sample_run(SampleConfig(prompts=str(bench), output=tmp_path / "samp", progress=False,
                            backend_factory=lambda model: DummyBackend(model, respond_n=_respond)))
    prefs = pq.read_table(tmp_path / "samp" / "prefs.parquet").to_pylist()
    assert prefs and all(p["instructions"] for p in prefs)
    result = CliRunner().invoke(app, ["synthesize", str(tmp_path / "samp" / "prefs.parquet"),
                                      "--output", str(tmp_path / "syn"), "--quiet"])
    assert result.exit_code == 0, result.output
    pairs = read_pairs(tmp_path / "syn").to_pylist()
    by_id = {p["id"]: p for p in prefs}
    kinds = {r["kind"] for r in pairs}
    assert kinds == {"standard", "intra", "inter"}
    for row in pairs:
        carried = by_id[row["source_id"]]["instructions"]
        if row["kind"] == "standard":
            assert row["instructions_chosen"] == []
            continue
        assert row["instructions_chosen"][: len(carried)] == carried
        added = row["instructions_chosen"][len(carried):]
        assert not any(conflicts(a["id"], c["id"]) for a in added for c in carried)
        assert row["verdicts_rejected"] == _registry_verdicts(row["response_rejected"], row["instructions_rejected"])
    if any(r["kind"] == "inter" for r in pairs):  # the file's labels and mapl's agree on sample's own output
        inter = next(r for r in pairs if r["kind"] == "inter")
        source = by_id[inter["source_id"]]
        assert inter["verdicts_chosen"][: len(source["instructions"])] == source["verdicts_chosen"]
