"""`--config FILE` and `--print-config` (mapl_cli/commands/config_file.py): a flag on the command line beats
the file, the file beats the option's default, whatever the option's kind (int, float, flag pair, choice,
list, positional argument); a bad file or key ends with one line naming the file and the key; and
examples/configs/ reproduces every command line of examples/demo.sh.

The precedence tests give a flag the value that is also the option's default: tools that decide "was this
flag given?" by comparing with the default (TRL's config-file handling did) let the file win there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mapl_cli.cli import main

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "examples" / "configs"


@pytest.fixture
def mapl(capsys, monkeypatch):
    """Run the console script in this process: (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["mapl", *map(str, args)])
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            main()
            code = 0
        except SystemExit as exit:
            code = exit.code or 0
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _write(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def _printed(out: str) -> dict:
    """--print-config's output as a dict (its first line is a comment)."""
    assert out.startswith("# mapl "), out[:200]
    return yaml.safe_load(out)


@pytest.fixture
def train_configs(monkeypatch):
    """The TrainConfig each train-dpo run would train with (the trainer itself does nothing)."""
    configs = []
    monkeypatch.setattr("mapl_cli.train.trainer.run", lambda config: configs.append(config) or {})
    return configs


# --- precedence ------------------------------------------------------------------------------------------

TRAIN_FILE = {  # one option of each kind, none at its default
    "max-steps": 7,              # int
    "beta": 0.25,                # float
    "lambda_intra": 0,           # float, spelt with '_'
    "precompute-ref": False,     # --precompute-ref/--no-precompute-ref
    "gradient-checkpointing": True,
    "inter-loss": "margin",      # choice (enum)
    "lr": "5e-4",                # YAML 1.1 reads 5e-4 as text; it is converted as the flag would be
}


def test_file_values_reach_the_command_and_defaults_fill_the_rest(tmp_path, mapl, train_configs):
    config = _write(tmp_path / "dpo.yaml", {"pairs": "p.parquet", "output": str(tmp_path / "o"), **TRAIN_FILE})
    code, _, err = mapl("train-dpo", "--config", config)
    assert code == 0, err
    got = train_configs[-1]
    assert (got.pairs, got.max_steps, got.beta, got.lambda_intra, got.precompute_ref, got.gradient_checkpointing,
            got.inter_loss, got.lr) == ("p.parquet", 7, 0.25, 0.0, False, True, "margin", 5e-4)
    assert (got.batch_size, got.lambda_inter, got.scheduler, got.shuffle) == (4, 1.0, "cosine", True)  # defaults


def test_flags_override_the_file_even_when_they_equal_the_default(tmp_path, mapl, train_configs):
    config = _write(tmp_path / "dpo.yaml", {"pairs": "p.parquet", "output": str(tmp_path / "o"), **TRAIN_FILE})
    code, _, err = mapl(
        "train-dpo", "other.parquet", "--config", config,
        "--max-steps", "3", "--beta", "0.1", "--lambda-intra", "1", "--precompute-ref",
        "--no-gradient-checkpointing", "--inter-loss", "pair", "--lr", "1e-3",
    )
    assert code == 0, err
    got = train_configs[-1]
    assert (got.pairs, got.max_steps, got.beta, got.lambda_intra, got.precompute_ref, got.gradient_checkpointing,
            got.inter_loss, got.lr) == ("other.parquet", 3, 0.1, 1.0, True, False, "pair", 1e-3)


def test_flag_before_or_after_config_wins(tmp_path, mapl, train_configs):
    config = _write(tmp_path / "dpo.yaml", {"pairs": "p.parquet", "output": str(tmp_path / "o"), "max-steps": 7})
    assert mapl("train-dpo", "--max-steps", "2", "--config", config)[0] == 0
    assert train_configs[-1].max_steps == 2


@pytest.fixture
def evaluate_configs(monkeypatch):
    configs = []
    monkeypatch.setattr("mapl_cli.evaluation.evaluate.run", configs.append)
    return configs


def test_list_options_from_the_file_and_replaced_by_flags(tmp_path, mapl, evaluate_configs):
    config = _write(tmp_path / "eval.yaml", {"output": str(tmp_path / "o"), "model": ["a", "b"], "merge": "s0"})
    assert mapl("evaluate", "--config", config)[0] == 0
    assert (evaluate_configs[-1].models, evaluate_configs[-1].merge) == (["a", "b"], ["s0"])  # one value: a list of one
    assert mapl("evaluate", "--config", config, "-m", "c")[0] == 0
    assert evaluate_configs[-1].models == ["c"]  # the flags replace the file's list, they do not add to it


def test_null_leaves_the_default(tmp_path, mapl, evaluate_configs):
    config = _write(tmp_path / "eval.yaml", "output: o\nmax-new-tokens: null\nbackend: ~\n")
    assert mapl("evaluate", "--config", config)[0] == 0
    assert (evaluate_configs[-1].sampling.max_new_tokens, evaluate_configs[-1].backend) == (256, "auto")


def test_json_file_is_read_like_yaml(tmp_path, mapl):
    data = {"output": "o", "k_min": 2, "include": ["punctuation:no_comma", "change_case:english_lowercase"], "force": True}
    as_json = _write(tmp_path / "c.json", json.dumps(data, indent="\t"))  # tabs: not YAML, still JSON
    as_yaml = _write(tmp_path / "c.yaml", data)
    printed = [_printed(mapl("synthesize", "in.jsonl", "--config", f, "--print-config")[1]) for f in (as_json, as_yaml)]
    assert printed[0] == printed[1]
    assert (printed[0]["k-min"], printed[0]["include"], printed[0]["force"]) == (2, data["include"], True)


# --- --print-config ------------------------------------------------------------------------------------

def test_print_config_shows_the_merge_and_runs_nothing(tmp_path, mapl, train_configs):
    out_dir = tmp_path / "o"
    config = _write(tmp_path / "dpo.yaml", {"pairs": "p.parquet", "output": str(out_dir), **TRAIN_FILE})
    code, out, err = mapl("train-dpo", "--config", config, "--beta", "0.5", "--print-config")
    assert (code, err) == (0, "")
    printed = _printed(out)
    assert printed["beta"] == 0.5 and printed["max-steps"] == 7 and printed["inter-loss"] == "margin"
    assert printed["precompute-ref"] is False and printed["batch-size"] == 4 and printed["lr"] == 5e-4
    assert list(printed)[0] == "pairs" and "output" in printed and "config" not in printed and "print-config" not in printed
    assert not train_configs and not out_dir.exists()


def test_printed_config_reads_back_to_the_same_options(tmp_path, mapl):
    first = _write(tmp_path / "a.yaml", {"output": str(tmp_path / "o"), "model": ["x"], "temperature": 0.5})
    out = mapl("evaluate", "--config", first, "--preset", "lm-eval", "--print-config")[1]
    again = mapl("evaluate", "--config", _write(tmp_path / "b.yaml", out), "--print-config")[1]
    assert _printed(again) == _printed(out)


def test_print_config_of_a_real_command_writes_no_output(tmp_path, mapl):
    out_dir = tmp_path / "pairs"
    code, out, _ = mapl("synthesize", ROOT / "examples" / "prefs.jsonl", "--output", out_dir, "--print-config")
    assert code == 0 and _printed(out)["output"] == str(out_dir) and not out_dir.exists()


# --- errors: one line naming the file and the key ------------------------------------------------------

BAD = [
    ("train-dpo", "lambdaintra: 0\n", "unknown key 'lambdaintra' for 'mapl train-dpo' (did you mean 'lambda-intra'?)"),
    ("train-dpo", "margin-column: m\n", "key 'margin-column' is an option of 'mapl train-rm', not of 'mapl train-dpo'"),
    ("evaluate", "include: x\n", "key 'include' is an option of 'mapl build-benchmark', 'mapl sample' and 'mapl synthesize', not of 'mapl evaluate'"),
    ("train-dpo", "no-shuffle: true\n", "key 'no-shuffle' for 'mapl train-dpo': --no-shuffle is 'shuffle: false' in a config file"),
    ("train-dpo", "max-steps: ten\n", "key 'max-steps': "),
    ("train-dpo", "max-steps: 2.5\n", "key 'max-steps': "),
    ("train-dpo", "max-steps: true\n", "key 'max-steps': expected a value, not true or false"),
    ("train-dpo", "beta: high\n", "key 'beta': "),
    ("train-dpo", "shuffle: 1\n", "key 'shuffle': expected true or false, got 1"),
    ("train-dpo", "inter-loss: hinge\n", "key 'inter-loss': "),
    ("train-dpo", "model: [a, b]\n", "key 'model': expected one value, not a list"),
    ("train-dpo", "model: {name: a}\n", "key 'model': expected a single value or a list, not a mapping"),
    ("synthesize", "k-min: 0\n", "key 'k-min': "),
    ("evaluate", "temperature: -1\n", "key 'temperature': must be a finite number >= 0"),
    ("train-dpo", "max-steps: 2\nmax_steps: 3\n", "key 'max_steps' is given twice (also as 'max-steps')"),
    ("train-dpo", "config: other.yaml\n", "key 'config' cannot be set in a config file"),
    ("train-dpo", "seed: [0\n", "not valid YAML (line 2, column 1: "),
    ("train-dpo", "- seed\n", "expected a mapping of option names to values, got a list"),
    ("train-dpo", "1: 2\n", "key 1 is not an option name"),
]


@pytest.mark.parametrize("command, text, message", BAD, ids=[f"{c}:{t.strip()}" for c, t, _ in BAD])
def test_a_bad_file_or_key_is_one_line_naming_both(tmp_path, mapl, train_configs, command, text, message):
    config = _write(tmp_path / "bad.yaml", text)
    positional = [] if command == "evaluate" else ["p"]  # evaluate takes no positional argument
    code, out, err = mapl(command, *positional, "--output", tmp_path / "o", "--config", config)
    assert code == 2 and out == "" and not train_configs
    [line] = err.splitlines()
    assert line.startswith(f"mapl: error: {config}: {message}"), line


@pytest.mark.parametrize("name, text, message", [
    ("missing.yaml", None, "no such config file"),
    ("bad.json", '{"seed": 1,}', "not valid JSON (line 1: "),
    ("binary.yaml", b"\xff\xfe\x00", "cannot read the config file"),
])
def test_an_unreadable_file_is_one_line(tmp_path, mapl, name, text, message):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    code, _, err = mapl("build-benchmark", "p.jsonl", "--output", tmp_path / "o", "--config", path)
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith(f"mapl: error: {path}: {message}"), err


def test_an_empty_file_sets_nothing(tmp_path, mapl):
    empty = _write(tmp_path / "empty.yaml", "# nothing yet\n")
    plain = mapl("train-rm", "p", "-o", "o", "--print-config")[1]
    assert _printed(mapl("train-rm", "p", "-o", "o", "--config", empty, "--print-config")[1]) == _printed(plain)


# --- the same files from a config as from flags ----------------------------------------------------------

def test_synthesize_from_a_config_writes_what_the_flags_write(tmp_path, mapl):
    flags = ["--seed", "3", "--k-max", "3", "--conditions", "some_vs_none", "--exclude", "punctuation:no_comma",
             "--exclude", "change_case:english_lowercase,detectable_format:title", "--limit", "4", "--workers", "1", "--no-progress"]
    prefs = ROOT / "examples" / "prefs.jsonl"
    assert mapl("synthesize", prefs, "--output", tmp_path / "by-flags", *flags)[0] == 0
    config = _write(tmp_path / "synth.yaml", {
        "input": str(prefs), "output": str(tmp_path / "by-file"), "seed": 3, "k-max": 3, "conditions": "some_vs_none",
        "exclude": ["punctuation:no_comma", "change_case:english_lowercase,detectable_format:title"],
        "limit": 4, "workers": 1, "progress": False,
    })
    code, _, err = mapl("synthesize", "--config", config)
    assert code == 0, err
    a, b = tmp_path / "by-flags", tmp_path / "by-file"
    assert (a / "pairs.parquet").read_bytes() == (b / "pairs.parquet").read_bytes()
    options = [json.loads((d / "manifest.json").read_text())["options"] for d in (a, b)]
    assert [{k: v for k, v in o.items() if k != "output"} for o in options][0] == \
        {k: v for k, v in options[1].items() if k != "output"}
    assert options[1]["seed"] == 3 and options[1]["conditions"] == ["some_vs_none"]  # the resolved options


def test_the_build_benchmark_config_rebuilds_the_demo_benchmark(tmp_path, mapl, monkeypatch):
    monkeypatch.chdir(ROOT)  # the example files name paths from the repository root
    out = tmp_path / "bench.jsonl"
    code, _, err = mapl("build-benchmark", "--config", CONFIGS / "build-benchmark.yaml", "--output", out)
    assert code == 0, err
    assert out.read_bytes() == (ROOT / "examples" / "eval_benchmark.jsonl").read_bytes()


# --- examples/configs reproduce examples/demo.sh ---------------------------------------------------------

def _demo_command_lines(tmp_path: Path) -> list[list[str]]:
    """Every `mapl` command line examples/demo.sh runs (with its default knobs), from a stand-in `mapl`."""
    log, bin_dir = tmp_path / "calls", tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "mapl"
    fake.write_text(f"#!/usr/bin/env bash\nprintf '%s\\x1f' \"$@\" >> '{log}'\necho >> '{log}'\n")
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAPL_DEMO_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    subprocess.run(["bash", "examples/demo.sh", "demo"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
    here = str(ROOT / "examples")
    return [[arg.replace(here, "examples") for arg in line.split("\x1f")[:-1]] for line in log.read_text().splitlines()]


def test_example_configs_reproduce_every_demo_command(tmp_path, mapl, monkeypatch):
    calls = _demo_command_lines(tmp_path)
    monkeypatch.chdir(ROOT)
    demo = sorted(json.dumps(_printed(mapl(*args, "--print-config")[1]), sort_keys=True) for args in calls)
    files = {"synthesize": "synthesize", "train-dpo-standard": "train-dpo", "train-dpo-mapl": "train-dpo", "evaluate": "evaluate"}
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted([*files, "build-benchmark"])
    from_files = sorted(
        json.dumps(_printed(mapl(command, "--config", CONFIGS / f"{name}.yaml", "--print-config")[1]), sort_keys=True)
        for name, command in files.items()
    )
    assert len(calls) == 4 and from_files == demo


# --- help --------------------------------------------------------------------------------------------------

def test_every_command_offers_config_and_print_config(mapl):
    from mapl_cli.cli import app

    for name in sorted(c.name for c in app.registered_commands):
        code, out, _ = mapl(name, "--help")
        assert code == 0 and "--config" in out and "--print-config" in out and "--output" in out, name


def test_a_command_with_its_own_config_parameter_is_refused():
    from mapl_cli.commands.config_file import with_config

    def command(config: str = "x") -> None:
        """A command that already has a `config` parameter."""

    with pytest.raises(TypeError, match="config"):
        with_config(command)
