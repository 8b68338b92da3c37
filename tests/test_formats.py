"""Data formats people already have: TRL's implicit-prompt preference rows and multi-turn prompts read by
synthesize and sample, and `--chat-template FILE` in training, evaluation and sampling.

The two committed inputs hold the same six preference rows (one with an earlier exchange before its question):
tests/assets/prefs_implicit_tiny.jsonl in TRL's implicit-prompt format (`chosen` and `rejected` whole
conversations), tests/assets/prefs_multiturn_tiny.jsonl with explicit conversational prompts. The Parquet
forms are written from them in the tests.
"""

from __future__ import annotations

import hashlib
import json
import types
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mapl_cli.cli import app
from mapl_cli.errors import InvalidRowError, MaplError
from mapl_cli.prefs import Columns, PrefSource, normalise_row

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "tests" / "assets"
IMPLICIT = ASSETS / "prefs_implicit_tiny.jsonl"
MULTITURN = ASSETS / "prefs_multiturn_tiny.jsonl"
TEMPLATE = ASSETS / "chat_template_tiny.jinja"
runner = CliRunner()


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _as_parquet(path: Path, out: Path) -> Path:
    pq.write_table(pa.Table.from_pylist(_rows(path)), out)
    return out


def _synthesize(source: Path, out: Path, *extra: str) -> pa.Table:
    result = runner.invoke(app, ["synthesize", str(source), "--output", str(out), "--seed", "3", "--quiet", *extra])
    assert result.exit_code == 0, result.output
    return pq.read_table(out / "pairs.parquet")


def _fails(rows: list[dict], tmp_path: Path) -> str:
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(app, ["synthesize", str(path), "--output", str(tmp_path / "o"), "--quiet"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mapl: error: "), result.output
    return lines[0]


# ---- TRL's implicit-prompt format and multi-turn prompts ------------------------------------------------------


def test_implicit_and_explicit_multi_turn_inputs_give_the_same_pairs_in_jsonl_and_parquet(tmp_path):
    """The same rows in four files (two formats, two file types) give one pairs table, byte for byte."""
    sources = [IMPLICIT, MULTITURN, _as_parquet(IMPLICIT, tmp_path / "implicit.parquet"),
               _as_parquet(MULTITURN, tmp_path / "multiturn.parquet")]
    tables = [_synthesize(source, tmp_path / f"out{i}") for i, source in enumerate(sources)]
    assert all(table.equals(tables[0]) for table in tables[1:])
    digests = {hashlib.sha256((tmp_path / f"out{i}" / "pairs.parquet").read_bytes()).hexdigest() for i in range(4)}
    assert len(digests) == 1
    assert set(tables[0].column("kind").to_pylist()) == {"standard", "intra", "inter"}


def test_a_multi_turn_prompt_keeps_its_turns_and_instructions_go_into_the_last_user_turn(tmp_path):
    table = _synthesize(IMPLICIT, tmp_path / "out").to_pylist()
    history = _rows(IMPLICIT)[0]["chosen"][:4]  # system, user, assistant, user: the prompt of row tiny-001
    rows = [r for r in table if r["source_id"] == "tiny-001"]
    assert {r["kind"] for r in rows} == {"standard", "intra", "inter"}
    for row in rows:
        assert row["base_prompt"] == history
        for side in ("chosen", "rejected"):
            prompt = row[f"prompt_{side}"]
            assert prompt[:3] == history[:3] and prompt[3]["role"] == "user"  # earlier turns untouched
            texts = [i["text"] for i in row[f"instructions_{side}"]]
            assert prompt[3]["content"] == history[3]["content"] + ("\n\n" + "\n".join(texts) if texts else "")


def test_the_implicit_prompt_is_the_one_trl_extracts():
    from trl.data_utils import extract_prompt

    columns = Columns()
    for index, raw in enumerate(_rows(IMPLICIT)):
        row = normalise_row(str(IMPLICIT), index, raw, columns)
        trl = extract_prompt({"chosen": raw["chosen"], "rejected": raw["rejected"]})
        assert row.prompt == trl["prompt"]
        assert [{"role": "assistant", "content": row.chosen}] == trl["chosen"]
        assert [{"role": "assistant", "content": row.rejected}] == trl["rejected"]
        assert row.source_id == raw["id"]


USER = {"role": "user", "content": "Name a colour."}
SYSTEM = {"role": "system", "content": "Be brief."}
RED, BLUE = {"role": "assistant", "content": "Red."}, {"role": "assistant", "content": "Blue, I think."}
GOOD = {"chosen": [USER, RED], "rejected": [USER, BLUE]}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"chosen": [USER, RED, USER, RED], "rejected": [USER, BLUE]},
         "row 1: column 'chosen': after the 1 message (user) both conversations share, it must have exactly "
         "one assistant message, and has 3 messages (assistant, user, assistant)"),
        ({"chosen": [USER, RED], "rejected": [USER, RED, USER]},
         "row 1: column 'chosen': after the 2 messages (user, assistant) both conversations share, it must have "
         "exactly one assistant message, and has no message"),
        ({"chosen": [USER, BLUE], "rejected": [USER, RED, USER]},
         "row 1: column 'rejected': after the 1 message (user) both conversations share, it must have "
         "exactly one assistant message, and has 2 messages (assistant, user)"),
        ({"chosen": [USER, RED], "rejected": [USER, RED]}, "row 1: columns 'chosen' and 'rejected' hold the same conversation"),
        ({"chosen": [RED], "rejected": [BLUE]}, "row 1: the prompt 'chosen' and 'rejected' share: the message list has no user turn"),
        ({"chosen": [SYSTEM, RED], "rejected": [SYSTEM, BLUE]}, "row 1: the prompt 'chosen' and 'rejected' share: the message list has no user turn"),
        ({"chosen": [USER, RED, RED], "rejected": [USER, RED, BLUE]}, "the last message is an assistant turn"),
        ({"chosen": [USER, {"role": "assistant", "content": " "}], "rejected": [USER, BLUE]}, "row 1: column 'chosen' is empty"),
        ({"chosen": [USER, {"role": "assistant"}], "rejected": [USER, BLUE]}, "row 1: column 'chosen': message 1 is not a {role, content} object"),
        ({"chosen": "Red.", "rejected": "Blue."}, "row 1: missing column 'prompt' (without one, 'chosen' and 'rejected' must be whole conversations"),
        ({"chosen": [USER, RED], "rejected": "Blue."}, "row 1: missing column 'prompt'"),
    ],
)
def test_a_bad_implicit_row_fails_in_one_line_naming_the_row(bad, message, tmp_path):
    assert message in _fails([GOOD, bad], tmp_path)


def test_an_explicit_prompt_ending_with_an_assistant_turn_is_refused(tmp_path):
    line = _fails([{"prompt": [USER], "chosen": "Red.", "rejected": "Blue."},
                   {"prompt": [USER, RED], "chosen": "Green.", "rejected": "Blue."}], tmp_path)
    assert "row 1: column 'prompt': the last message is an assistant turn" in line


def test_skip_invalid_counts_bad_implicit_rows(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [GOOD, {"chosen": [USER, RED, USER], "rejected": [USER, BLUE]}]))
    result = runner.invoke(app, ["synthesize", str(path), "--output", str(tmp_path / "o"), "--quiet", "--skip-invalid"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert "bad_implicit_prompt" in json.dumps(manifest["counts"])


def test_parquet_without_a_prompt_column_needs_conversations(tmp_path):
    strings = tmp_path / "strings.parquet"
    pq.write_table(pa.table({"chosen": ["Red."], "rejected": ["Blue."]}), strings)
    with pytest.raises(MaplError, match=r"missing column 'prompt' \(columns: chosen, rejected; remap with --prompt-column\)"):
        list(PrefSource(strings).batches(8))
    conversations = _as_parquet(IMPLICIT, tmp_path / "implicit.parquet")
    assert sum(len(batch) for batch in PrefSource(conversations).batches(4)) == 6


def test_a_row_with_a_prompt_column_is_read_as_before():
    """A `prompt` column, even beside conversation-shaped responses, is the prompt (no extraction)."""
    raw = {"prompt": "Name a colour.", "chosen": [RED], "rejected": "Blue, I think."}
    row = normalise_row("x", 0, raw, Columns())
    assert (row.prompt, row.chosen, row.rejected) == ([USER], "Red.", "Blue, I think.")
    with pytest.raises(InvalidRowError, match="one-message assistant list"):
        normalise_row("x", 0, {"prompt": "Name a colour.", "chosen": [USER, RED], "rejected": "B"}, Columns())


@pytest.mark.parametrize("make", [lambda p, tmp: p, lambda p, tmp: _as_parquet(p, tmp / "prefs.parquet")])
def test_sample_reads_implicit_prompts_as_synthesize_does(make, tmp_path):
    """`mapl sample` with a preference file: the implicit rows give the multi-turn prompts, instructions drawn
    into the last user turn."""
    from mapl_cli.sampling.prompts import load_prompts

    kind, implicit = load_prompts(str(make(IMPLICIT, tmp_path)), k_min=1, k_max=2, seed=5)
    _, explicit = load_prompts(str(MULTITURN), k_min=1, k_max=2, seed=5)
    assert kind == "preferences" and implicit == explicit and len(implicit) == 6
    first = implicit[0]
    history = _rows(IMPLICIT)[0]["chosen"][:4]
    assert first.key == "tiny-001" and first.base_prompt == history
    assert first.messages[:3] == history[:3] and first.messages[3]["content"].startswith(history[3]["content"])
    assert first.messages[3]["content"] != history[3]["content"]


# ---- --chat-template ------------------------------------------------------------------------------------------


def test_the_template_file_replaces_the_models_own():
    from mapl_cli.models import load_tokenizer

    own = load_tokenizer("tiny-random")
    tokenizer = load_tokenizer("tiny-random", TEMPLATE)
    assert tokenizer.chat_template == TEMPLATE.read_text() != own.chat_template
    text = tokenizer.apply_chat_template([USER], tokenize=False, add_generation_prompt=True)
    assert text == "<|user|>\nName a colour.<|im_end|>\n<|assistant|>\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"^--chat-template .*missing\.jinja: no such file$"),
        ("", r"^--chat-template .*: the file is empty$"),
        (b"\xff\xfe{{", r"^--chat-template .*: not a UTF-8 text file$"),
        ("{% for m in messages %}{{ m.content }", r"^--chat-template .*: does not render a conversation \(TemplateSyntaxError: "),
        ("{{ raise_exception('no user turns here') }}", r"^--chat-template .*: does not render a conversation \(TemplateError: no user turns here\)$"),
        ("{{ messages[0].content.nope() }}", r"^--chat-template .*: does not render a conversation \("),
        ("just some text", r"^--chat-template .*: renders a conversation without its messages' content$"),
    ],
)
def test_a_bad_template_file_is_one_line(content, message, tmp_path):
    from mapl_cli.models import load_tokenizer

    path = tmp_path / ("missing.jinja" if content is None else "t.jinja")
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(MaplError, match=message):
        load_tokenizer("tiny-random", path)


def _pairs_table():
    from mapl_cli.pairs import PAIRS_SCHEMA
    from tests.train_fixtures import make_rows

    return pa.Table.from_pylist(make_rows(2), schema=PAIRS_SCHEMA)


def test_the_template_changes_the_tokens_and_so_the_reference_cache_keys():
    """The reference log-prob cache is keyed by each sequence's tokens: another template, other keys."""
    from mapl_cli.encoding.tokens import encode_pairs
    from mapl_cli.models import load_tokenizer

    table = _pairs_table()
    own, _ = encode_pairs(table, load_tokenizer("tiny-random"))
    other, _ = encode_pairs(table, load_tokenizer("tiny-random", TEMPLATE))
    assert len(own) == len(other) == table.num_rows
    assert all(set(a.keys).isdisjoint(b.keys) for a, b in zip(own, other, strict=True))
    again, _ = encode_pairs(table, load_tokenizer("tiny-random", TEMPLATE))
    assert [r.keys for r in again] == [r.keys for r in other]


def test_the_prefix_check_runs_against_the_given_template(tmp_path):
    from mapl_cli.encoding.tokens import encode_pairs
    from mapl_cli.models import load_tokenizer

    # The generation prompt says "ASSISTANT:", the rendered assistant turn "<|assistant|>": not a prefix.
    path = tmp_path / "t.jinja"
    path.write_text("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|im_end|>{% endfor %}"
                    "{% if add_generation_prompt %}ASSISTANT:{% endif %}")
    with pytest.raises(MaplError, match="the rendered prompt .* is not a prefix"):
        encode_pairs(_pairs_table(), load_tokenizer("tiny-random", path))


def test_train_dpo_trains_with_the_template_saves_it_and_records_its_sha256(tmp_path, monkeypatch):
    from mapl_cli.models import load_tokenizer
    from tests.train_fixtures import write_pairs

    monkeypatch.setattr("mapl_cli.train.reference.cache_dir", lambda: tmp_path / "cache")
    pairs, out = write_pairs(tmp_path / "pairs.parquet", n_sources=2), tmp_path / "dpo"
    result = runner.invoke(app, ["train-dpo", str(pairs), "--model", "tiny-random", "--output", str(out),
                                 "--max-steps", "1", "--batch-size", "2", "--no-progress", "--chat-template", str(TEMPLATE)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["chat_template"] == str(TEMPLATE)
    record = [i for i in manifest["inputs"] if i["path"] == str(TEMPLATE.resolve())]
    assert record and record[0]["sha256"] == hashlib.sha256(TEMPLATE.read_bytes()).hexdigest()
    assert load_tokenizer(str(out / "model")).chat_template == TEMPLATE.read_text()  # the model carries it on


def test_train_with_a_missing_template_fails_before_the_output_exists(tmp_path):
    from tests.train_fixtures import write_pairs

    pairs, out = write_pairs(tmp_path / "pairs.parquet", n_sources=2), tmp_path / "rm"
    result = runner.invoke(app, ["train-rm", str(pairs), "--model", "tiny-random", "--output", str(out),
                                 "--chat-template", str(tmp_path / "nope.jinja")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"mapl: error: --chat-template {tmp_path / 'nope.jinja'}: no such file"]
    assert not out.exists()


def test_the_hf_backend_renders_prompts_with_the_template():
    from mapl_cli.generation import get_backend
    from mapl_cli.generation.hf import render_prompts

    backend = get_backend("hf", model="tiny-random", chat_template=str(TEMPLATE), device="cpu", dtype="float32")
    [ids] = render_prompts(backend.tokenizer, [[USER]])
    assert backend.tokenizer.decode(ids) == "<|user|>\nName a colour.<|im_end|>\n<|assistant|>\n"
    assert backend.tokenizer.convert_tokens_to_ids("<|im_end|>") in backend.stop_ids


@pytest.fixture
def fake_vllm(monkeypatch):
    """A stand-in `vllm` module whose LLM records the keyword arguments of every chat call."""
    calls: list[dict] = []

    class LLM:
        def __init__(self, **kwargs):
            pass

        def chat(self, messages, **kwargs):
            calls.append(kwargs)
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text="ok", finish_reason="stop")]) for _ in messages]

    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = LLM, lambda **kwargs: kwargs
    monkeypatch.setitem(__import__("sys").modules, "vllm", module)
    return calls


def test_the_vllm_backend_passes_the_template_text_to_every_chat_call(fake_vllm):
    from mapl_cli.generation import SamplingConfig, get_backend

    backend = get_backend("vllm", model="tiny-random", chat_template=str(TEMPLATE))
    assert backend.generate([[USER]], SamplingConfig(max_new_tokens=4)) == ["ok"]
    backend.sample([[USER]], SamplingConfig(max_new_tokens=4, temperature=1.0), 2)
    assert [call["chat_template"] for call in fake_vllm] == [TEMPLATE.read_text()] * 2
    get_backend("vllm", model="tiny-random").generate([[USER]], SamplingConfig(max_new_tokens=4))
    assert "chat_template" not in fake_vllm[-1]  # without the option, vLLM uses the model's own


def test_the_vllm_backend_checks_the_template_before_the_engine_starts(fake_vllm, tmp_path):
    from mapl_cli.generation import get_backend

    path = tmp_path / "t.jinja"
    path.write_text("{% if %}")
    with pytest.raises(MaplError, match="does not render a conversation"):
        get_backend("vllm", model="tiny-random", chat_template=str(path))


def test_evaluate_generates_with_the_template_and_records_it(tmp_path):
    out = tmp_path / "eval"
    args = ["evaluate", "--benchmark", str(ROOT / "examples" / "eval_benchmark.jsonl"), "--model", "tiny-random",
            "--limit", "2", "--max-new-tokens", "4", "--backend", "hf", "--bootstrap", "0", "--output", str(out),
            "--chat-template", str(TEMPLATE)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    digest = hashlib.sha256(TEMPLATE.read_bytes()).hexdigest()
    assert json.loads((out / "settings.json").read_text())["chat_template_sha256"] == digest
    manifest = json.loads((out / "manifest.json").read_text())
    assert digest in [i["sha256"] for i in manifest["inputs"]] and manifest["options"]["chat_template"] == str(TEMPLATE)
    changed = tmp_path / "changed.jinja"
    changed.write_text(TEMPLATE.read_text() + "\n")
    result = runner.invoke(app, [*args[:-1], str(changed), "--resume"])
    assert result.exit_code == 2 and "--resume with different settings (chat_template_sha256" in result.output


def test_evaluate_refuses_a_template_without_a_model(tmp_path):
    result = runner.invoke(app, ["evaluate", "--reward-model", "rm", "--pairs", "p.parquet", "--output",
                                 str(tmp_path / "o"), "--chat-template", str(TEMPLATE)])
    assert result.exit_code == 2
    assert "--chat-template applies to --model" in result.output


def test_sample_builds_its_backend_with_the_template_and_records_it(tmp_path, monkeypatch):
    from mapl_cli.generation.base import DummyBackend
    from mapl_cli.sampling.run import SampleConfig, run

    built: list[dict] = []

    def fake_get_backend(name, model, **options):
        built.append(options)
        return DummyBackend(model)

    monkeypatch.setattr("mapl_cli.generation.get_backend", fake_get_backend)
    manifest = run(SampleConfig(prompts=str(ROOT / "examples" / "eval_benchmark.jsonl"), output=tmp_path / "s",
                                model="tiny-random", n=2, limit=2, progress=False, chat_template=str(TEMPLATE)))
    assert built and built[0]["chat_template"] == str(TEMPLATE)
    digest = hashlib.sha256(TEMPLATE.read_bytes()).hexdigest()
    assert digest in [i["sha256"] for i in manifest["inputs"]]
    assert json.loads((tmp_path / "s" / "settings.json").read_text())["chat_template_sha256"] == digest
    with pytest.raises(MaplError, match="no such file"):
        run(SampleConfig(prompts=str(ROOT / "examples" / "eval_benchmark.jsonl"), output=tmp_path / "s2",
                         model="tiny-random", n=2, chat_template=str(tmp_path / "nope.jinja")))
