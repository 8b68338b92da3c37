"""Every option of `mapl train-dpo`, `mapl train-rm` and `mapl evaluate` reaches its field of the config the
command builds. Each option is given a value unlike its default and the whole config is compared, so an
option that lands nowhere, or in the wrong field, fails; so does an option added to a command but not to the
tables below."""

from __future__ import annotations

import inspect
from dataclasses import asdict, fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mapl_cli.cli import app
from mapl_cli.commands import evaluate as evaluate_cmd
from mapl_cli.commands import train_dpo, train_rm
from mapl_cli.evaluation.evaluate import EvaluateConfig
from mapl_cli.generation.base import SamplingConfig
from mapl_cli.train.config import TrainConfig

runner = CliRunner()
TEMPLATE = Path(__file__).parent / "assets" / "chat_template_tiny.jinja"  # --chat-template must name a file

#: Options of both training commands: parameter (= TrainConfig field) -> (arguments, the field's value).
TRAIN_OPTIONS = {
    "model": (["--model", "tiny-random"], "tiny-random"),
    "eval_pairs": (["--eval-pairs", "held/out.parquet"], "held/out.parquet"),
    "epochs": (["--epochs", "3"], 3),
    "max_steps": (["--max-steps", "7"], 7),
    "batch_size": (["--batch-size", "5"], 5),
    "grad_accum": (["--grad-accum", "2"], 2),
    "lr": (["--lr", "0.003"], 0.003),
    "warmup_steps": (["--warmup-steps", "4"], 4),
    "scheduler": (["--scheduler", "linear"], "linear"),
    "weight_decay": (["--weight-decay", "0.01"], 0.01),
    "max_grad_norm": (["--max-grad-norm", "0.5"], 0.5),
    "seed": (["--seed", "9"], 9),
    "max_length": (["--max-length", "300"], 300),
    "max_prompt_length": (["--max-prompt-length", "200"], 200),
    "shuffle": (["--no-shuffle"], False),
    "packing": (["--no-packing"], False),
    "chat_template": (["--chat-template", str(TEMPLATE)], str(TEMPLATE)),
    "lambda_intra": (["--lambda-intra", "0.5"], 0.5),
    "lambda_inter": (["--lambda-inter", "2"], 2.0),
    "inter_loss": (["--inter-loss", "margin"], "margin"),
    "dtype": (["--dtype", "bfloat16"], "bfloat16"),
    "gradient_checkpointing": (["--gradient-checkpointing"], True),
    "lora_r": (["--lora-r", "4"], 4),
    "lora_alpha": (["--lora-alpha", "16"], 16.0),
    "lora_targets": (["--lora-targets", "q_proj,v_proj"], "q_proj,v_proj"),
    "merge_lora": (["--merge-lora"], True),
    "fsdp": (["--fsdp"], True),
    "eval_every": (["--eval-every", "3"], 3),
    "save_every": (["--save-every", "6"], 6),
    "resume": (["--resume"], True),
    "force": (["--force"], True),
    "progress": (["--no-progress"], False),
    "report_to": (["--report-to", "tensorboard", "--report-to", "wandb"], ("tensorboard", "wandb")),
    "push_to_hub": (["--push-to-hub", "my-org/my-model"], "my-org/my-model"),
}
STAGE_OPTIONS = {
    "dpo": {
        "beta": (["--beta", "0.2"], 0.2),
        "sft_coef": (["--sft-coef", "0.1"], 0.1),
        "ref_model": (["--ref-model", "ref/folder"], "ref/folder"),
        "precompute_ref": (["--no-precompute-ref"], False),
    },
    "rm": {
        "margin_column": (["--margin-column", "m"], "m"),
        "center_rewards": (["--center-rewards", "0.01"], 0.01),
    },
}
TRAIN_COMMANDS = {"dpo": train_dpo.command, "rm": train_rm.command}


def _train_configs(monkeypatch) -> list[TrainConfig]:
    """The configs the training commands pass to the trainer (which then does nothing)."""
    configs: list[TrainConfig] = []
    monkeypatch.setattr("mapl_cli.train.trainer.run", lambda config: configs.append(config) or {})
    return configs


@pytest.mark.parametrize("stage", ["dpo", "rm"])
def test_every_train_option_reaches_its_config_field(monkeypatch, tmp_path, stage):
    options = {**TRAIN_OPTIONS, **STAGE_OPTIONS[stage]}
    assert set(inspect.signature(TRAIN_COMMANDS[stage]).parameters) == {"pairs", "output", *options}, \
        "an option of the command is missing from this test's tables (or a table names one it lacks)"
    other = "rm" if stage == "dpo" else "dpo"
    assert {f.name for f in fields(TrainConfig)} - {"stage", "pairs", "output", *options} == {"keep_checkpoints", *STAGE_OPTIONS[other]}
    pairs, output = str(tmp_path / "pairs.parquet"), str(tmp_path / "out")
    defaults = asdict(TrainConfig(stage=stage, pairs=pairs, output=output))
    for name, (_, value) in options.items():
        assert value != defaults[name], f"--{name}: the test value is the default"
    configs = _train_configs(monkeypatch)

    result = runner.invoke(app, [f"train-{stage}", pairs, "--output", output])
    assert result.exit_code == 0, result.output
    assert asdict(configs[-1]) == defaults  # the command's defaults are TrainConfig's

    given = [arg for args, _ in options.values() for arg in args]
    result = runner.invoke(app, [f"train-{stage}", pairs, "--output", output, *given])
    assert result.exit_code == 0, result.output
    assert asdict(configs[-1]) == {**defaults, **{name: value for name, (_, value) in options.items()}}


def test_train_option_out_of_range_is_one_line_before_training(monkeypatch, tmp_path):
    configs = _train_configs(monkeypatch)
    result = runner.invoke(app, ["train-dpo", str(tmp_path / "p.parquet"), "--output", str(tmp_path / "o"), "--beta", "0"])
    assert result.exit_code != 0 and not configs
    assert result.output.strip().splitlines() == ["mapl: error: --beta must be greater than 0, got 0.0"]


#: Options of `mapl evaluate`: parameter -> (arguments, {EvaluateConfig field: value}); sampling settings are
#: the fields of EvaluateConfig.sampling. --force and --preset are checked on their own (with --resume, and
#: with the explicit sampling options, they would be refused or overridden).
EVALUATE_OPTIONS = {
    "benchmark": (["--benchmark", "bench.jsonl"], {"benchmark": "bench.jsonl"}),
    "model": (["--model", "a", "-m", "b"], {"models": ["a", "b"]}),
    "responses": (["--responses", "r1.jsonl", "--responses", "r2.jsonl"], {"responses": ["r1.jsonl", "r2.jsonl"]}),
    "reward_model": (["--reward-model", "rm"], {"reward_models": ["rm"]}),
    "pairs": (["--pairs", "pairs.parquet"], {"pairs": "pairs.parquet"}),
    "backend": (["--backend", "hf"], {"backend": "hf"}),
    "max_new_tokens": (["--max-new-tokens", "32"], {"sampling.max_new_tokens": 32}),
    "temperature": (["--temperature", "0.7"], {"sampling.temperature": 0.7}),
    "top_p": (["--top-p", "0.9"], {"sampling.top_p": 0.9}),
    "seed": (["--seed", "5"], {"sampling.seed": 5}),
    "chat_template_kwargs": (["--chat-template-kwargs", '{"enable_thinking": false}'],
                             {"sampling.chat_template_kwargs": {"enable_thinking": False}}),
    "system_prompt": (["--system-prompt", "Be brief."], {"system_prompt": "Be brief."}),
    "strip_thinking": (["--no-strip-thinking"], {"strip_thinking": False}),
    "chat_template": (["--chat-template", "tmpl.jinja"], {"chat_template": "tmpl.jinja"}),
    "bootstrap": (["--bootstrap", "50"], {"bootstrap": 50}),
    "train_manifest": (["--train-manifest", "m.json"], {"train_manifests": ["m.json"]}),
    "batch_size": (["--batch-size", "3"], {"batch_size": 3}),
    "dtype": (["--dtype", "float16"], {"dtype": "float16"}),
    "device": (["--device", "cpu"], {"device": "cpu"}),
    "tensor_parallel_size": (["--tensor-parallel-size", "2"], {"tensor_parallel_size": 2}),
    "lora_mode": (["--lora-mode", "merge"], {"lora_mode": "merge"}),
    "max_length": (["--max-length", "512"], {"max_length": 512}),
    "limit": (["--limit", "7"], {"limit": 7}),
    "shard": (["--shard", "1/3"], {"shard": (1, 3)}),
    "merge": (["--merge", "s0", "--merge", "s1"], {"merge": ["s0", "s1"]}),
    "chunk_size": (["--chunk-size", "8"], {"chunk_size": 8}),
    "resume": (["--resume"], {"resume": True}),
    "report_to": (["--report-to", "trackio", "--report-to", "trackio"], {"report_to": ("trackio",)}),
    "progress": (["--no-progress"], {"progress": False}),
}
EVALUATE_ALONE = {
    "force": (["--force"], {"force": True}),
    "preset": (["--preset", "lm-eval"], {"sampling.max_new_tokens": 1280}),
}


def _flat(config: EvaluateConfig) -> dict:
    """The config's fields, with the sampling settings as sampling.NAME."""
    values = asdict(config)
    sampling = values.pop("sampling")
    return {**values, **{f"sampling.{name}": value for name, value in sampling.items()}}


def test_every_evaluate_option_reaches_its_config_field(monkeypatch, tmp_path):
    assert set(inspect.signature(evaluate_cmd.command).parameters) == {"output", *EVALUATE_OPTIONS, *EVALUATE_ALONE}, \
        "an option of the command is missing from this test's tables (or a table names one it lacks)"
    output = tmp_path / "out"
    defaults = _flat(EvaluateConfig(output=output, sampling=SamplingConfig()))
    for name, (_, expected) in {**EVALUATE_OPTIONS, **EVALUATE_ALONE}.items():
        for field, value in expected.items():
            assert value != defaults[field], f"--{name}: the test value is the default"
    configs: list[EvaluateConfig] = []
    monkeypatch.setattr("mapl_cli.evaluation.evaluate.run", configs.append)

    def evaluate(options: dict) -> dict:
        given = [arg for args, _ in options.values() for arg in args]
        result = runner.invoke(app, ["evaluate", "--output", str(output), *given])
        assert result.exit_code == 0, result.output
        return _flat(configs[-1])

    assert evaluate({}) == defaults  # the command's defaults are EvaluateConfig's
    assert evaluate(EVALUATE_OPTIONS) == {**defaults, **{f: v for _, expected in EVALUATE_OPTIONS.values() for f, v in expected.items()}}
    for name, (args, expected) in EVALUATE_ALONE.items():
        assert evaluate({name: (args, expected)}) == {**defaults, **expected}, name
    reached = {field.split(".")[0] for _, expected in {**EVALUATE_OPTIONS, **EVALUATE_ALONE}.values() for field in expected}
    assert {f.name for f in fields(EvaluateConfig)} - reached == {"output", "backend_factory"}


def test_training_offers_every_dtype_but_float16(tmp_path):
    from mapl_cli.errors import MaplError
    from mapl_cli.models import Dtype
    from mapl_cli.train.config import check_options

    config = TrainConfig(stage="rm", pairs="p.parquet", output="o", dtype=Dtype.float16.value)
    with pytest.raises(MaplError, match=r"^--dtype must be one of auto, float32, bfloat16, bf16-mixed, got 'float16'$"):
        check_options(config)
    result = runner.invoke(app, ["train-rm", str(tmp_path / "p.parquet"), "--output", str(tmp_path / "o"), "--dtype", "float16"])
    assert result.exit_code == 2 and "float16" in result.output
