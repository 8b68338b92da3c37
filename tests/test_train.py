"""`mapl train-rm` and `mapl train-dpo` end to end on the tiny-random model (a few steps each, CPU)."""

import json
import os
import signal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from mapl_cli.cli import app
from mapl_cli.errors import MaplError
from mapl_cli.models import resolve_model
from mapl_cli.train import trainer
from mapl_cli.train.config import TrainConfig
from mapl_cli.train.trainer import TrainingInterrupted, run
from tests.train_fixtures import write_pairs

runner = CliRunner()
METRIC_KEYS = {
    "step", "loss", "lr", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
    "loss/standard", "loss/intra", "loss/inter", "accuracy/standard", "accuracy/intra", "accuracy/inter",
    "tokens_per_second",
}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return write_pairs(tmp_path_factory.mktemp("pairs") / "pairs.parquet", n_sources=4)


@pytest.fixture(autouse=True)
def private_ref_cache(monkeypatch, tmp_path):
    """Reference log-probs go to a per-test cache (the built-in model stays in the shared cache)."""
    monkeypatch.setattr("mapl_cli.train.reference.cache_dir", lambda: tmp_path / "cache")


def _config(stage, pairs, output, **kw):
    base = dict(model="tiny-random", batch_size=2, max_steps=3, lr=1e-3, warmup_steps=0, save_every=0,
                progress=False, seed=0)
    base.update(kw)
    return TrainConfig(stage=stage, pairs=str(pairs), output=str(output), **base)


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.parametrize("command", ["train-dpo", "train-rm"])
def test_cli_trains_and_writes_every_output(command, pairs, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, [command, str(pairs), "--model", "tiny-random", "--output", str(out),
                                 "--max-steps", "3", "--batch-size", "2", "--lr", "1e-3", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "written to" in result.output
    metrics = _lines(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    for m in metrics:
        assert METRIC_KEYS <= set(m) and m["loss"] > 0 and m["tokens_per_second"] > 0
    if command == "train-dpo":
        assert {"logps/chosen", "logps/rejected"} <= set(metrics[0])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == command and manifest["counts"]["steps"] == 3
    assert manifest["inputs"][0]["sha256"]
    assert manifest["counts"]["world_size"] == 1 and manifest["counts"]["strategy"] == "single"
    memory = manifest["outputs"]["memory_rank0"]  # full fine-tune in float32: AdamW keeps two moments
    assert memory["trainable_mb"] > 0 and memory["gradients_mb"] == memory["trainable_mb"]
    assert memory["optimizer_state_mb"] == pytest.approx(2 * memory["trainable_mb"], rel=0.01)
    assert memory["peak_mb"] > memory["trainable_mb"]
    assert (out / "curves.png").stat().st_size > 1000
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    loader = AutoModelForCausalLM if command == "train-dpo" else AutoModelForSequenceClassification
    model = loader.from_pretrained(out / "model")
    assert AutoTokenizer.from_pretrained(out / "model").chat_template
    assert sum(p.numel() for p in model.parameters()) > 0


def test_fsdp_in_one_process_trains_the_whole_model_and_says_so(pairs, tmp_path, capsys):
    summary = run(_config("rm", pairs, tmp_path / "out", max_steps=1, fsdp=True))
    assert summary["steps"] == 1
    assert "--fsdp: one process" in capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"]["strategy"] == "single"


def test_reward_head_round_trip_gives_identical_scores(pairs, tmp_path):
    """Train a few steps, then the saved folder reloads with the same head and gives the same scores, both
    through mapl's scoring and through plain transformers."""
    from transformers import AutoModelForSequenceClassification

    from mapl_cli.encoding.batch import packed_batch, padded_batch
    from mapl_cli.encoding.forward import last_token_rewards
    from mapl_cli.encoding.tokens import encode_pairs
    from mapl_cli.models import load_tokenizer
    from mapl_cli.pairs import read_pairs
    from mapl_cli.train.objectives import RMObjective

    config = _config("rm", pairs, tmp_path / "rm")
    tokenizer = load_tokenizer("tiny-random")
    objective = RMObjective(config, torch.device("cpu"), torch.float32, tokenizer)
    model = objective.build()
    head_before = model.score.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    rows, _ = encode_pairs(read_pairs(pairs), tokenizer)
    for _ in range(2):
        objective.forward(model, rows[:4]).loss.mean().backward()
        opt.step()
        opt.zero_grad()
    assert not torch.equal(model.score.weight, head_before)  # the head was trained
    sequences = [s for r in rows for s in r.sequences]
    padded, packed = padded_batch(sequences, tokenizer.pad_token_id), packed_batch(sequences, tokenizer.pad_token_id)
    with torch.no_grad():
        before = last_token_rewards(model, packed)
    objective.save_model(model, tmp_path / "saved")
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "saved")
    assert reloaded.config.num_labels == 1
    with torch.no_grad():
        after = last_token_rewards(reloaded, packed)
        after_padded = last_token_rewards(reloaded, padded)
        plain = reloaded(input_ids=padded.input_ids, attention_mask=padded.attention_mask).logits.squeeze(-1)
    assert torch.equal(before, after)
    torch.testing.assert_close(after_padded, after)
    torch.testing.assert_close(plain, after)


def test_response_logps_padded_and_packed_match_a_full_logits_computation(pairs):
    from mapl_cli.encoding.batch import packed_batch, padded_batch
    from mapl_cli.encoding.forward import response_logps
    from mapl_cli.encoding.tokens import Sequence, encode_pairs
    from mapl_cli.models import load_causal_lm
    from mapl_cli.pairs import read_pairs

    model, tokenizer = load_causal_lm("tiny-random", "float32", "cpu")
    rows, _ = encode_pairs(read_pairs(pairs), tokenizer)
    full = [s for r in rows[:3] for s in r.sequences]
    # Add short sequences (cut prompts and responses) so packing puts several in one row.
    sequences = full + [Sequence(s.prompt_ids[-6:], s.response_ids[: 2 + i]) for i, s in enumerate(full)]
    padded = padded_batch(sequences, tokenizer.pad_token_id)
    packed = packed_batch(sequences, tokenizer.pad_token_id)
    assert packed.input_ids.shape[0] < len(sequences)
    with torch.no_grad():
        fast_padded, _ = response_logps(model, padded)
        fast_packed, _ = response_logps(model, packed)
        ids = padded.input_ids
        logits = model(input_ids=ids, attention_mask=padded.attention_mask).logits.float().log_softmax(-1)
    for n, seq in enumerate(sequences):
        p, r = len(seq.prompt_ids), len(seq.response_ids)
        expected = logits[n, p - 1 : p + r - 1].gather(-1, ids[n, p : p + r, None]).sum()
        torch.testing.assert_close(fast_padded[n], expected, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(fast_packed[n], expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("stage", ["dpo", "rm"])
def test_resume_ends_with_the_same_weights(stage, pairs, tmp_path):
    full = _config(stage, pairs, tmp_path / "full", max_steps=4, save_every=2, scheduler="cosine", warmup_steps=1)
    run(full)
    cut = _config(stage, pairs, tmp_path / "cut", max_steps=4, save_every=2, scheduler="cosine", warmup_steps=1)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 3"):
        run(cut, on_step=lambda step, record: step == 3)
    assert (tmp_path / "cut" / "checkpoints" / "step-000003").exists()
    cut.resume = True
    run(cut)
    a = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert [m["loss"] for m in _lines(tmp_path / "full" / "metrics.jsonl")] == [
        m["loss"] for m in _lines(tmp_path / "cut" / "metrics.jsonl")
    ]
    manifest = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert manifest["counts"]["resumed_from_step"] == 3
    if stage == "dpo":  # the resumed run read every reference log-prob from the cache
        assert manifest["outputs"]["reference_computed"] == 0


def test_sigint_writes_a_checkpoint_before_exiting(pairs, tmp_path):
    def send_sigint(step, record):
        if step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return False

    with pytest.raises(TrainingInterrupted, match="interrupted at step 2"):
        run(_config("rm", pairs, tmp_path / "o", max_steps=4), on_step=send_sigint)
    assert (tmp_path / "o" / "checkpoints" / "step-000002" / "trainable.safetensors").exists()


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(pairs, tmp_path, monkeypatch):
    real = trainer.combine
    calls = {"n": 0}

    def poisoned(per_row, *args, **kw):
        calls["n"] += 1
        total, by_kind = real(per_row, *args, **kw)
        return (total * float("nan") if calls["n"] == 3 else total), by_kind

    monkeypatch.setattr(trainer, "combine", poisoned)
    with pytest.raises(MaplError, match=r"non-finite loss at step 3; .*step-000002"):
        run(_config("dpo", pairs, tmp_path / "o", max_steps=4, save_every=1))
    kept = sorted(p.name for p in (tmp_path / "o" / "checkpoints").iterdir())
    assert kept == ["step-000001", "step-000002"]
    assert len(_lines(tmp_path / "o" / "metrics.jsonl")) == 2


def test_lora_dpo_without_precompute_uses_the_base_as_reference_and_merges(pairs, tmp_path):
    out = tmp_path / "lora"
    run(_config("dpo", pairs, out, lora_r=4, precompute_ref=False, merge_lora=True, inter_loss="margin"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["outputs"]["reference"] == "in-loop adapters disabled"
    first = _lines(out / "metrics.jsonl")[0]
    assert first["rewards/chosen"] == 0.0  # LoRA B starts at zero: policy == reference at step 1
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out / "model")  # plain transformers, no peft
    assert not any("lora" in n for n in merged.state_dict())
    base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"))
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged.state_dict()[q], base.state_dict()[q])  # the adapters trained and merged


def test_lora_reward_model_saves_an_adapter_with_its_head(pairs, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "rm-lora"
    run(_config("rm", pairs, out, lora_r=4))
    assert (out / "model" / "adapter_config.json").exists()
    base = AutoModelForSequenceClassification.from_pretrained(resolve_model("tiny-random"), num_labels=1)
    model = PeftModel.from_pretrained(base, out / "model")
    trained = load_file(str(out / "checkpoints" / "step-000003" / "trainable.safetensors"))
    head = [k for k in trained if "score" in k]
    assert head, "the reward head is trainable under LoRA"
    state = dict(model.named_parameters())
    for name in head:
        assert torch.equal(state[name], trained[name]), name


def test_rm_with_eval_pairs_margin_column_and_centering(tmp_path):
    pairs = write_pairs(tmp_path / "p.parquet", n_sources=4, extra_columns={"margin": lambda rows: [0.5] * len(rows)})
    out = tmp_path / "rm"
    run(_config("rm", pairs, out, eval_pairs=str(pairs), eval_every=2, margin_column="margin", center_rewards=0.01,
                lambda_intra=0.5, inter_loss="margin"))
    evals = _lines(out / "eval_metrics.jsonl")
    assert [e["step"] for e in evals] == [2, 3] and evals[0]["rows"] == 12
    with pytest.raises(MaplError, match="--margin-column 'nope' is not a column"):
        run(_config("rm", pairs, tmp_path / "rm2", margin_column="nope"))


def _bad_table(tmp_path, name, table):
    path = tmp_path / name
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("case", ["missing", "wrong_type", "unknown_kind", "empty", "not_parquet"])
def test_bad_pairs_fail_in_one_line_before_any_model_loads(case, tmp_path, monkeypatch):
    def no_model(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("mapl_cli.train.trainer.load_tokenizer", no_model)
    good = pq.read_table(write_pairs(tmp_path / "good.parquet", n_sources=1))
    if case == "missing":
        path = _bad_table(tmp_path, "p.parquet", good.drop_columns(["response_rejected"]))
    elif case == "wrong_type":
        path = _bad_table(tmp_path, "p.parquet", good.set_column(
            good.schema.get_field_index("prompt_chosen"), "prompt_chosen", pa.array([1, 2, 3])))
    elif case == "unknown_kind":
        path = _bad_table(tmp_path, "p.parquet", good.set_column(1, "kind", pa.array(["standard", "bogus", "inter"])))
    elif case == "empty":
        path = _bad_table(tmp_path, "p.parquet", good.slice(0, 0))
    else:
        path = tmp_path / "p.parquet"
        path.write_text("prompt,chosen\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["train-dpo", str(path), "--model", "tiny-random", "--output", str(out)])
    assert result.exit_code == 2
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("mapl: error:") and str(path) in lines[0]
    assert not out.exists()


def test_existing_output_is_refused_without_force_or_resume(pairs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["train-rm", str(pairs), "--model", "tiny-random", "--output", str(out), "--max-steps", "1",
            "--batch-size", "2", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--force" in result.output
    result = runner.invoke(app, args + ["--force"])
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text() == "mine"  # --force replaces mapl outputs only


def test_too_few_rows_for_one_batch_is_a_clear_error(pairs, tmp_path):
    with pytest.raises(MaplError, match="fewer than one global batch"):
        run(_config("rm", pairs, tmp_path / "o", batch_size=64))


def test_resume_refuses_changed_batching(pairs, tmp_path):
    run(_config("rm", pairs, tmp_path / "o", max_steps=2))
    with pytest.raises(MaplError, match=r"cannot --resume .*global batch \(2 -> 4\)"):
        run(_config("rm", pairs, tmp_path / "o", max_steps=2, batch_size=4, resume=True))


def test_zero_lambdas_leave_intra_and_inter_rows_out_of_batches(tmp_path, monkeypatch):
    """With both lambdas 0 only standard rows take batch slots, so a baseline trains on as many standard
    rows per step as MAPL trains on rows of all kinds."""
    import json

    monkeypatch.setattr("mapl_cli.train.reference.cache_dir", lambda: tmp_path / "cache")
    pairs = write_pairs(tmp_path / "p.parquet", n_sources=4)
    run(TrainConfig(stage="dpo", pairs=str(pairs), output=tmp_path / "out", model="tiny-random", max_steps=2,
                    batch_size=2, lambda_intra=0.0, lambda_inter=0.0, progress=False))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["rows_zero_weight_left_out"]["intra"] > 0
    assert manifest["counts"]["rows_zero_weight_left_out"]["inter"] > 0
    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["accuracy/intra"] is None and r["accuracy/inter"] is None for r in records)


def test_run_checks_options_itself(pairs, tmp_path):
    """The Python entry point checks what the CLI checks, before anything is read or written."""
    with pytest.raises(MaplError, match=r"--lr must be a finite number, got nan"):
        run(_config("rm", pairs, tmp_path / "o", lr=float("nan")))
    with pytest.raises(MaplError, match=r"--scheduler must be one of"):
        run(_config("rm", pairs, tmp_path / "o", scheduler="cosine-restarts"))
    assert not (tmp_path / "o").exists()


def _to_legacy(folder):
    """Rewrite a checkpoint in the earlier layout: the trainer state pickled into trainer_state.pt."""
    from mapl_cli.train import checkpoint

    saved = checkpoint.read(folder)
    torch.save({"optimizer": saved.optimizer, "scheduler": saved.scheduler, "rng": saved.rng, "step": saved.step,
                "optimizer_layout": "by-name"}, folder / checkpoint.LEGACY_STATE)
    (folder / checkpoint.STATE_JSON).unlink()
    (folder / checkpoint.STATE_TENSORS).unlink()


@pytest.mark.slow  # two training runs and a resume, for checkpoints written by earlier versions
def test_earlier_pickled_checkpoint_still_resumes_to_the_same_weights(pairs, tmp_path):
    """A checkpoint of the earlier layout (trainer_state.pt) is read with weights_only=True and resumes
    exactly; no pickle is written any more."""
    full = _config("rm", pairs, tmp_path / "full", max_steps=3, save_every=1)
    run(full)
    cut = _config("rm", pairs, tmp_path / "cut", max_steps=3, save_every=1)
    with pytest.raises(TrainingInterrupted):
        run(cut, on_step=lambda step, record: step == 2)
    assert not list((tmp_path / "cut").rglob("*.pt"))
    _to_legacy(tmp_path / "cut" / "checkpoints" / "step-000002")
    cut.resume = True
    run(cut)
    a = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.slow  # three training runs and a resume, compared weight by weight
def test_extending_a_constant_schedule_run_ends_where_a_longer_run_ends(pairs, tmp_path):
    """--resume with a larger --max-steps continues a constant-schedule run (the schedule does not depend on
    the total); the result is the run that was that long from the start. A cosine run refuses."""
    longer = _config("dpo", pairs, tmp_path / "longer", max_steps=4, scheduler="constant", warmup_steps=1)
    run(longer)
    short = _config("dpo", pairs, tmp_path / "short", max_steps=2, scheduler="constant", warmup_steps=1)
    run(short)
    short.max_steps, short.resume = 4, True
    summary = run(short)
    assert summary["steps"] == 4
    a = load_file(str(tmp_path / "longer" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "short" / "model" / "model.safetensors"))
    for name in a:
        assert torch.equal(a[name], b[name]), name
    manifest = json.loads((tmp_path / "short" / "manifest.json").read_text())
    assert manifest["options"]["max_steps"] == 4 and manifest["counts"]["resumed_from_step"] == 2
    cosine = _config("dpo", pairs, tmp_path / "cosine", max_steps=2)
    run(cosine)
    cosine.max_steps, cosine.resume = 3, True
    with pytest.raises(MaplError, match=r"total steps \(2 -> 3\).*cosine schedule depends on the total"):
        run(cosine)


def test_non_finite_weights_after_an_update_are_never_written(pairs, tmp_path, monkeypatch):
    """A step whose loss and gradients are finite but whose update leaves a NaN in the weights stops the run
    before anything from that step is written; the previous checkpoint is kept and no model is written."""
    real_step = torch.optim.AdamW.step
    calls = {"n": 0}

    def poisoned(self, *args, **kw):
        out = real_step(self, *args, **kw)
        calls["n"] += 1
        if calls["n"] == 2:
            self.param_groups[0]["params"][0].data[0, 0] = float("nan")
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", poisoned)
    with pytest.raises(MaplError, match=r"weights became non-finite \(NaN or Inf\) at step 2.*step-000001"):
        run(_config("rm", pairs, tmp_path / "o", max_steps=3, save_every=1))
    out = tmp_path / "o"
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-000001"]
    assert len(_lines(out / "metrics.jsonl")) == 1 and not (out / "model").exists()


def test_pairs_contract_casts_layouts_but_never_numbers_to_text(tmp_path):
    """large_string and dictionary-encoded columns are the same strings and load; integers and booleans are
    not cast to "0"/"true"; identical sides fail unless the caller keeps them (training leaves them out)."""
    from mapl_cli.pairs import identical_rows, read_pairs

    good = pq.read_table(write_pairs(tmp_path / "good.parquet", n_sources=1))
    index = good.schema.get_field_index
    layouts = good.set_column(index("response_chosen"), "response_chosen", good.column("response_chosen").cast(pa.large_string()))
    layouts = layouts.set_column(index("kind"), "kind", layouts.column("kind").dictionary_encode())
    assert read_pairs(_bad_table(tmp_path, "layouts.parquet", layouts)).num_rows == 3
    for values in ([0, 1, 2], [True, False, True], [0.5, 1.5, 2.5]):
        path = _bad_table(tmp_path, "typed.parquet", good.set_column(index("response_rejected"), "response_rejected", pa.array(values)))
        with pytest.raises(MaplError, match=r"column 'response_rejected' has type \w+, expected string"):
            read_pairs(path)
    rows = good.to_pylist()
    rows[2]["prompt_rejected"], rows[2]["response_rejected"] = rows[2]["prompt_chosen"], rows[2]["response_chosen"]
    path = _bad_table(tmp_path, "same.parquet", pa.Table.from_pylist(rows, schema=good.schema))
    with pytest.raises(MaplError, match=r"row 2 has identical sides"):
        read_pairs(path)
    assert identical_rows(read_pairs(path, identical="keep")) == [2]
