"""Shared prompts: a standard or inter row's chosen and rejected laid out as [prompt | chosen | rejected] under
a 4D mask give the log-probs, rewards, losses and gradients of two separate sequences, to float32 rounding.

    .venv/bin/pytest -q tests/test_shared_prompt.py                # tiny-random
    .venv/bin/pytest -q -m slow tests/test_shared_prompt.py        # + the embedded SmolLM2
"""

import copy
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from mapl_cli.encoding.batch import make_batch, packed_batch, padded_batch, shared_batch
from mapl_cli.encoding.forward import can_share_prompts, last_token_rewards, response_index, response_logps
from mapl_cli.encoding.tokens import Sequence, encode_pairs
from mapl_cli.pairs import PAIRS_SCHEMA, read_pairs
from mapl_cli.train.config import TrainConfig
from tests.train_fixtures import make_rows

# Summed log-probs are sums of up to ~100 float32 terms of size ~10: float32 rounding is well under 1e-4.
TOL = {"rtol": 1e-5, "atol": 1e-4}


@pytest.fixture(autouse=True)
def private_ref_cache(monkeypatch, tmp_path):
    monkeypatch.setattr("mapl_cli.train.reference.cache_dir", lambda: tmp_path / "cache")
    monkeypatch.delenv("MAPL_SHARE_PROMPTS", raising=False)


def _varied_rows(n_sources: int = 4) -> list[dict]:
    """The fixture's standard, intra and inter rows, with prompts and responses of different lengths (row i's
    prompt grows by 2i words on both sides; responses by 3i and 5(i % 3) words), intra rows keeping one
    response on both sides."""
    rows = make_rows(n_sources)
    for i, row in enumerate(rows):
        pad = " please" * (2 * i)
        for side in ("prompt_chosen", "prompt_rejected"):
            row[side] = [{**m, "content": m["content"] + pad} for m in row[side]]
        row["response_chosen"] += " more" * (3 * i)
        row["response_rejected"] = row["response_chosen"] if row["kind"] == "intra" else (
            row["response_rejected"] + " less" * (5 * (i % 3)))
        row["pair_id"] = f"p{i}"
    return rows


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    path = tmp_path_factory.mktemp("pairs") / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(_varied_rows(), schema=PAIRS_SCHEMA), path)
    return path


@pytest.fixture(scope="module")
def tiny():
    from mapl_cli.models import load_causal_lm

    return load_causal_lm("tiny-random", "float32", "cpu")


def _sequences(pairs, tokenizer, with_base=False):
    rows, _ = encode_pairs(read_pairs(pairs), tokenizer, with_base=with_base)
    return rows, [s for r in rows for s in r.sequences]


# ------------------------------------------------------------------------------------------------ layout


def test_shared_batch_lays_out_each_prompt_once_with_restarting_positions():
    """Sequences ([1, 2], [3, 4]) and ([1, 2], [5]) share prompt [1, 2]; ([6], [7]) is alone. Units: sizes
    2+2+1 = 5 and 1+1 = 2; without packing one per row, width 5. Row 0 = 1 2 3 4 5 with positions
    0 1 2 3 2 (the second response restarts at the prompt length 2); row 1 = 6 7 then padding."""
    seqs = [Sequence([1, 2], [3, 4]), Sequence([1, 2], [5]), Sequence([6], [7])]
    b = shared_batch(seqs, pad_id=0, packing=False)
    assert b.input_ids.tolist() == [[1, 2, 3, 4, 5], [6, 7, 0, 0, 0]]
    assert b.position_ids[0].tolist() == [0, 1, 2, 3, 2] and b.position_ids[1, :2].tolist() == [0, 1]
    assert b.row.tolist() == [0, 0, 1] and b.offset.tolist() == [0, 0, 0]
    assert b.response_columns.tolist() == [2, 4, 1]
    assert b.real_tokens == 4 + 3 + 2 and b.forward_tokens == 7 and b.shared
    mask = b.attention_mask[0, 0].int().tolist()
    assert mask == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],  # chosen sees the prompt and itself
        [1, 1, 1, 1, 0],
        [1, 1, 0, 0, 1],  # rejected sees the prompt and itself, not the chosen tokens
    ]
    assert b.attention_mask[1, 0, 2:].any(-1).all()  # padding attends to padding: no empty softmax row


def test_shared_units_pack_several_to_a_row():
    seqs = [Sequence([1, 2], [3]), Sequence([1, 2], [4]), Sequence([5], [6, 7, 8]), Sequence([9], [10])]
    b = shared_batch(seqs, pad_id=0, packing=True)  # unit sizes 4, 4, 2; capacity 4
    assert b.input_ids.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 0, 0]]
    b = shared_batch(seqs, pad_id=0, packing=True, attention_ratio=0.0)  # attention free: everything in one row
    assert b.input_ids.shape[0] == 1
    mask = b.attention_mask[0, 0]
    cols = {int(t): c for c, t in enumerate(b.input_ids[0].tolist())}
    assert not mask[cols[4], cols[3]] and mask[cols[4], cols[2]]  # rejected: prompt yes, chosen no
    assert not mask[cols[6], cols[2]]  # no attention across units


def test_first_rejected_token_is_predicted_from_the_last_prompt_token():
    """[1 2 | 3 4 | 5]: chosen 3, 4 are predicted at columns 1, 2; rejected 5 at column 1 (the prompt's last
    token), not at column 3 (the chosen's last token), which sits just left of it."""
    b = shared_batch([Sequence([1, 2], [3, 4]), Sequence([1, 2], [5])], pad_id=0, packing=False)
    rows, cols, targets = response_index(b)
    assert cols.tolist() == [1, 2, 1] and targets.tolist() == [2, 3, 4] and rows.tolist() == [0, 0, 0]


def test_without_a_shared_prompt_the_layout_is_the_separate_one():
    seqs = [Sequence([1, 2], [3]), Sequence([4], [5, 6])]  # intra-like: two prompts
    for packing, plain in ((True, packed_batch(seqs, 0)), (False, padded_batch(seqs, 0))):
        b = make_batch(seqs, 0, packing, share_prompts=True)
        assert not b.shared and torch.equal(b.input_ids, plain.input_ids)


def test_sharing_is_chosen_where_it_is_estimated_cheaper():
    """Prompt 2, responses 200 and 200. Separate: 2 rows of 202; shared: 1 unit of 402. Without an attention
    term the costs are 404 and 402 cells: shared. With attention_ratio 0.01: separate 2 x 202 x (1 + 2.02) =
    1220, shared 402 x (1 + 4.02) = 2018 (attention over the wider row outweighs the 2 tokens saved): separate.
    A long prompt (400) turns it round: separate 2 x 600 x 7 = 8400, shared 800 x 9 = 7200."""
    short = [Sequence([1, 2], [3] * 200), Sequence([1, 2], [4] * 200)]
    assert make_batch(short, 0, True, None, share_prompts=True).shared
    assert not make_batch(short, 0, True, 0.01, share_prompts=True).shared
    assert not make_batch(short, 0, False, 0.01, share_prompts=True).shared
    long = [Sequence([1] * 400, [3] * 200), Sequence([1] * 400, [4] * 200)]
    assert make_batch(long, 0, True, 0.01, share_prompts=True).shared


def test_flash_attention_and_the_environment_switch_turn_sharing_off(tiny, monkeypatch):
    model, _ = tiny
    assert can_share_prompts(model)
    monkeypatch.setenv("MAPL_SHARE_PROMPTS", "0")
    assert not can_share_prompts(model)
    monkeypatch.delenv("MAPL_SHARE_PROMPTS")
    flash = copy.copy(model)
    flash.config = copy.copy(model.config)
    flash.config._attn_implementation = "flash_attention_2"
    assert not can_share_prompts(flash)


# --------------------------------------------------------------------------------------- equal numbers


def _full_logits_logps(model, sequences, pad_id):
    """Each sequence on its own, through the plain transformers forward (all logits), summed over its response."""
    batch = padded_batch(sequences, pad_id)
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float().log_softmax(-1)
    out = []
    for n, seq in enumerate(sequences):
        p, r = len(seq.prompt_ids), len(seq.response_ids)
        out.append(logits[n, p - 1 : p + r - 1].gather(-1, batch.input_ids[n, p : p + r, None]).sum())
    return torch.stack(out)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("packing", [True, False])
def test_logps_equal_separate_sequences(tiny, pairs, packing, attention):
    model, tokenizer = tiny
    model.set_attn_implementation(attention)
    try:
        _, sequences = _sequences(pairs, tokenizer, with_base=True)
        pad = tokenizer.pad_token_id
        shared = make_batch(sequences, pad, packing, 1e-3, share_prompts=True)
        separate = make_batch(sequences, pad, packing, 1e-3)
        assert shared.shared and shared.forward_tokens < 0.8 * separate.forward_tokens
        with torch.no_grad():
            a, n_a = response_logps(model, shared)
            b, n_b = response_logps(model, separate)
        torch.testing.assert_close(a, b, **TOL)
        if attention == "sdpa":  # and both equal the plain transformers forward (all logits, one sequence a row)
            torch.testing.assert_close(a, _full_logits_logps(model, sequences, pad), **TOL)
        assert torch.equal(n_a, n_b) and shared.real_tokens == separate.real_tokens
    finally:
        model.set_attn_implementation("sdpa")


def _reward_model(tokenizer):
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from mapl_cli.models import resolve_model

    torch.manual_seed(0)
    hf_logging.set_verbosity_error()  # "score.weight newly initialised": expected
    model = AutoModelForSequenceClassification.from_pretrained(str(resolve_model("tiny-random")), num_labels=1)
    hf_logging.set_verbosity_warning()
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.eval()


@pytest.mark.parametrize("packing", [True, False])
def test_rewards_equal_separate_sequences(tiny, pairs, packing):
    _, tokenizer = tiny
    model = _reward_model(tokenizer)
    _, sequences = _sequences(pairs, tokenizer)
    pad = tokenizer.pad_token_id
    with torch.no_grad():
        a = last_token_rewards(model, make_batch(sequences, pad, packing, 1e-3, share_prompts=True))
        b = last_token_rewards(model, make_batch(sequences, pad, packing, 1e-3))
        padded = padded_batch(sequences, pad)
        plain = model(input_ids=padded.input_ids, attention_mask=padded.attention_mask).logits.squeeze(-1)
    assert a.std() > 0  # distinct sequences, distinct rewards: the head reads real positions
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a, plain, rtol=1e-5, atol=1e-5)


def test_evaluate_reward_margins_equal_separate_sequences(tiny, pairs, monkeypatch):
    """`mapl evaluate --rm`'s pair margins: standard and inter rows scored with their prompt once give the
    margins of separate sequences (and the shared layout is really taken)."""
    import mapl_cli.encoding.batch as batch_module
    import mapl_cli.evaluation.reward as reward

    _, tokenizer = tiny
    model = _reward_model(tokenizer)
    table = read_pairs(pairs)
    laid_out, original = [], batch_module.make_batch

    def spy(*args, **kwargs):  # pair_margins imports make_batch from the module when called
        batch = original(*args, **kwargs)
        laid_out.append(batch.shared)
        return batch

    monkeypatch.setattr(batch_module, "make_batch", spy)
    shared = reward.pair_margins(model, tokenizer, table, "cpu", batch_size=4)
    assert any(laid_out)
    monkeypatch.setenv("MAPL_SHARE_PROMPTS", "0")
    laid_out.clear()
    separate = reward.pair_margins(model, tokenizer, table, "cpu", batch_size=4)
    assert laid_out and not any(laid_out)
    assert shared.keys() == separate.keys() and len(shared) == table.num_rows
    keys = sorted(shared)
    torch.testing.assert_close(torch.tensor([shared[k] for k in keys]), torch.tensor([separate[k] for k in keys]),
                               rtol=1e-5, atol=1e-5)


def _objective(stage, pairs, tokenizer, **kw):
    from mapl_cli.train.objectives import make_objective

    config = TrainConfig(stage=stage, pairs=str(pairs), output="unused", model="tiny-random", precompute_ref=False,
                         **kw)
    return make_objective(config, torch.device("cpu"), torch.float32, tokenizer), config


def _perturb(model, part: str, scale: float = 1e-2) -> None:
    """Seeded noise on the weights whose name holds `part`, so that a policy and its reference (or a LoRA
    policy with adapters on and off) differ and DPO scores are not all zero."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if part in name:
                p.add_(scale * torch.randn(p.shape, generator=gen))


def _forward_with_grads(objective, model, rows):
    model.zero_grad(set_to_none=True)
    out = objective.forward(model, rows)
    out.loss.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads


@pytest.mark.parametrize("stage,extra", [
    ("dpo", {}), ("dpo", {"lora_r": 4}), ("dpo", {"inter_loss": "margin", "sft_coef": 0.5, "gradient_checkpointing": True}),
    ("rm", {}), ("rm", {"lora_r": 4, "packing": False}), ("rm", {"inter_loss": "margin", "center_rewards": 0.1}),
])
def test_objective_losses_and_gradients_equal(tiny, pairs, stage, extra, monkeypatch):
    from mapl_cli.train.objectives import _batch

    _, tokenizer = tiny
    objective, config = _objective(stage, pairs, tokenizer, **extra)
    model = objective.build()
    if stage == "dpo" and config.lora:  # the reference is the policy with its adapters off
        _perturb(model, "lora_B")
    elif stage == "dpo":  # an in-loop reference: a perturbed copy of the policy
        objective.ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        _perturb(objective.ref_model, "q_proj")
    rows, sequences = _sequences(pairs, tokenizer, with_base=config.inter_loss == "margin")
    assert _batch(model, sequences, config, tokenizer.pad_token_id, "cpu").shared
    shared, g_shared = _forward_with_grads(objective, model, rows)
    monkeypatch.setenv("MAPL_SHARE_PROMPTS", "0")
    assert not _batch(model, sequences, config, tokenizer.pad_token_id, "cpu").shared
    separate, g_separate = _forward_with_grads(objective, model, rows)
    assert shared.s_chosen.abs().max() > 1e-4  # scores that are not all zero
    # A DPO score is beta * (two summed log-probs less two): with the log-probs equal to 1e-4 (TOL), scores and
    # losses (whose slope is under 1) are equal to 2 * beta * 1e-4 = 2e-5; rewards directly to float32 rounding.
    for name in ("loss", "preference", "s_chosen", "s_rejected", "logps_chosen", "logps_rejected"):
        a, b = getattr(shared, name), getattr(separate, name)
        if a is not None:
            tol = TOL if name.startswith("logps") else {"rtol": 1e-5, "atol": 2e-5}
            torch.testing.assert_close(a, b, **tol, msg=lambda m, name=name: f"{name}: {m}")
    assert shared.tokens == separate.tokens
    # Gradients: equal to float32 rounding, measured on each tensor as a whole (an entry that is a near-cancelling
    # sum, e.g. an embedding row, may differ in its last digits relative to its own size).
    assert g_shared.keys() == g_separate.keys() and g_shared
    for name, g in g_shared.items():
        assert (g - g_separate[name]).norm() <= 1e-5 * g_separate[name].norm() + 1e-8, name


def test_reference_precompute_equals_separate_and_keeps_a_row_on_one_process(tiny, pairs, tmp_path, monkeypatch):
    from mapl_cli.train.reference import precompute, shard_keys

    model, tokenizer = tiny
    rows, _ = _sequences(pairs, tokenizer)
    pad = tokenizer.pad_token_id
    shared, computed = precompute(model, rows, tmp_path / "a.parquet", 4, "cpu", pad)
    monkeypatch.setenv("MAPL_SHARE_PROMPTS", "0")
    separate, _ = precompute(model, rows, tmp_path / "b.parquet", 4, "cpu", pad)
    assert computed == len(shared) == len(separate)
    keys = sorted(shared)
    torch.testing.assert_close(torch.tensor([shared[k] for k in keys]), torch.tensor([separate[k] for k in keys]),
                               **TOL)
    # Under two processes each computes a share, split by prompt: a row's two sequences go to one process.
    missing = {k: s for r in rows for k, s in zip(r.keys, r.sequences, strict=True)}
    halves = [shard_keys(missing, rank, 2) for rank in (0, 1)]
    assert sorted(halves[0] + halves[1]) == sorted(missing) and halves[0] and halves[1]
    for row in rows:
        if row.sequences[0].prompt_ids == row.sequences[1].prompt_ids:
            assert sum(set(row.keys) <= set(half) for half in halves) == 1


def _metrics(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("stage", ["dpo", "rm"])
def test_training_runs_with_and_without_shared_prompts_match(pairs, tmp_path, monkeypatch, stage):
    """Three steps each way, same seed and batches: the same metrics to float32 rounding. DPO's first-step
    accuracy is left out: the policy is the reference then, every score is 0 up to rounding, and whether
    s_chosen > s_rejected is decided by that rounding."""
    from mapl_cli.train.trainer import run

    def train(name):
        config = TrainConfig(stage=stage, pairs=str(pairs), output=str(tmp_path / name), model="tiny-random",
                             batch_size=4, max_steps=3, lr=1e-3, warmup_steps=0, save_every=0, progress=False)
        run(config)
        return _metrics(tmp_path / name / "metrics.jsonl")

    shared = train("shared")
    monkeypatch.setenv("MAPL_SHARE_PROMPTS", "0")
    separate = train("separate")
    keys = ["loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "grad_norm", "loss/standard", "loss/inter"]
    keys += ["logps/chosen", "logps/rejected"] if stage == "dpo" else []
    for a, b in zip(shared, separate, strict=True):
        assert a["tokens"] == b["tokens"]
        if stage == "rm" or a["step"] > 1:
            assert a["rewards/accuracies"] == b["rewards/accuracies"]
        for key in keys:
            if a[key] is not None:
                assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), (a["step"], key)


@pytest.mark.slow
def test_embedded_model_logps_rewards_and_losses_equal_separate_sequences(pairs, monkeypatch):
    """The same equalities on SmolLM2-135M-Instruct (30 layers, grouped-query attention, float32): log-probs,
    DPO losses (against a perturbed copy as reference), reward-model rewards and losses."""
    from mapl_cli.models import load_tokenizer
    from mapl_cli.train.objectives import make_objective

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    rows, sequences = _sequences(pairs, tokenizer)
    outputs = {}
    for stage in ("dpo", "rm"):
        config = TrainConfig(stage=stage, pairs=str(pairs), output="unused", precompute_ref=False)
        objective = make_objective(config, torch.device("cpu"), torch.float32, tokenizer)
        model = objective.build().eval()
        if stage == "dpo":
            objective.ref_model = copy.deepcopy(model).requires_grad_(False)
            _perturb(objective.ref_model, "layers.0.self_attn.q_proj")
        with torch.no_grad():
            for share in ("1", "0"):
                monkeypatch.setenv("MAPL_SHARE_PROMPTS", share)
                outputs[stage, share] = objective.forward(model, rows)
        del model, objective
    for stage in ("dpo", "rm"):
        shared, separate = outputs[stage, "1"], outputs[stage, "0"]
        assert shared.s_chosen.abs().max() > 1e-3
        for name in ("loss", "s_chosen", "s_rejected", "logps_chosen", "logps_rejected"):
            a, b = getattr(shared, name), getattr(separate, name)
            if a is not None:
                tol = TOL if name.startswith("logps") else {"rtol": 1e-5, "atol": 2e-5}
                torch.testing.assert_close(a, b, **tol, msg=lambda m, name=name: f"{stage} {name}: {m}")
