"""Hostile input for the data and evaluation commands (synthesize, build-benchmark, evaluate), run through the
CLI as a user runs it (a real process each, tests/hostile.py): malformed files, bad options, output folders in
every state, --force, a full disk, signals with worker processes, regex bombs, non-UTF-8 bytes and JSON nested
200,000 levels deep.

    .venv/bin/pytest tests/test_hostile_data.py -q

Every error case asserts the exit status, exactly one `mapl: error:` line naming the problem, no traceback,
and that the test's whole folder (inputs, outputs, hidden files) is byte for byte what it was before the run:
nothing destroyed, no partial file, no temporary file left behind. Exit statuses: 2 for bad input or options,
1 for an operating-system error while writing (here a full disk), 130 for an interruption.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.hostile import (
    assert_one_line_error,
    file_size_limit,
    leftovers,
    run_and_signal,
    run_and_signal_group,
    run_mapl,
)

# Each case is a fresh `mapl` process (about 40 s in all). The ones that send a signal at a chosen moment
# are in the slow tier (make test-slow): under a heavily loaded machine the moment can miss the run.

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "assets" / "prefs_tiny.jsonl"
EXAMPLES = ROOT / "examples" / "prefs.jsonl"
PROMPTS = ROOT / "examples" / "eval_prompts.jsonl"
BENCHMARK = ROOT / "examples" / "eval_benchmark.jsonl"
RESPONSES = [json.loads(line)["response"] for line in (ROOT / "tests/assets/eval_reference_responses.jsonl").read_text().splitlines()]

DEEP = "[" * 200_000 + "]" * 200_000  # valid JSON, nested 200,000 levels: json.loads raises RecursionError
NOT_UTF8 = b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n'
BOMB_PATTERN = "(a|aa)+$"  # exponential backtracking on "aaaa...!" for re (hours at this length)
BOMB_RESPONSE = "a" * 5_000 + "!"


def tree(folder: Path) -> dict[str, str]:
    """Every entry under `folder`, hidden ones included: files with their sha256, folders as 'dir'."""
    return {
        str(p.relative_to(folder)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
    }


def _responses(n: int = 12, keys: bool = False) -> str:
    from mapl_cli.benchmark import read_benchmark

    rows = read_benchmark(BENCHMARK)[:n]
    lines = []
    for i, row in enumerate(rows):
        record = {"key": row.key} if keys else {"prompt": row.prompt}
        lines.append(json.dumps({**record, "response": RESPONSES[i % len(RESPONSES)]}))
    return "\n".join(lines) + "\n"


def _synthesized(tmp: Path) -> None:
    """out/ holding a finished synthesize run."""
    from mapl_cli.synth.run import SynthConfig, run

    run(SynthConfig(input=str(TINY), output=tmp / "out", progress=False))


def _evaluated(tmp: Path) -> None:
    """out/ holding a finished evaluation of 12 ready-made responses."""
    from mapl_cli.evaluation.evaluate import EvaluateConfig, run

    (tmp / "answers.jsonl").write_text(_responses())
    run(EvaluateConfig(output=tmp / "out", benchmark=str(BENCHMARK), responses=[str(tmp / "answers.jsonl")], bootstrap=0))


def _truncated_model(tmp: Path) -> None:
    """bad-model/: tiny-random's config with its weights cut in half (a copy that stopped midway)."""
    from mapl_cli.models import resolve_model

    source = Path(resolve_model("tiny-random"))
    folder = tmp / "bad-model"
    shutil.copytree(source, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _policy_and_pairs(tmp: Path) -> None:
    """policy/: a causal LM (what train-dpo writes), and pairs.parquet to score it on."""
    from mapl_cli.models import resolve_model
    from tests.train_fixtures import write_pairs

    shutil.copytree(Path(resolve_model("tiny-random")), tmp / "policy")
    write_pairs(tmp / "pairs.parquet", n_sources=2)


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]  # {tmp}, {tiny}, {prompts}, {bench} are filled in
    fragments: tuple[str, ...]  # each must be in the one error line
    code: int = 2
    files: dict[str, str | bytes] = field(default_factory=dict)  # written under the test folder first
    setup: Callable[[Path], None] | None = None
    fsize: int | None = None  # file-size limit in bytes: a full disk


def _args(case: Case, tmp: Path) -> list[str]:
    fill = {"tmp": tmp, "tiny": TINY, "prompts": PROMPTS, "bench": BENCHMARK}
    return [a.format(**fill) for a in case.args]


SYN = ("synthesize", "-q")
BUILD = ("build-benchmark",)
EVAL = ("evaluate", "--bootstrap", "0")

CASES = [
    # ---- synthesize: inputs -------------------------------------------------------------------------------
    Case("syn-missing-input", (*SYN, "{tmp}/nope.jsonl", "-o", "{tmp}/out"), ("nope.jsonl", "no such file")),
    Case("syn-input-is-a-folder", (*SYN, "{tmp}/data", "-o", "{tmp}/out"), ("data", "is a directory"), files={"data/x.txt": "x"}),
    Case("syn-not-utf8", (*SYN, "{tmp}/p.jsonl", "-o", "{tmp}/out"), ("p.jsonl", "UTF-8"), files={"p.jsonl": NOT_UTF8}),
    Case("syn-deep-json", (*SYN, "{tmp}/p.jsonl", "-o", "{tmp}/out"), ("p.jsonl", "line 1", "nested too deeply"),
         files={"p.jsonl": DEEP + "\n"}),
    Case("syn-deep-json-array-file", (*SYN, "{tmp}/p.json", "-o", "{tmp}/out"), ("p.json", "nested too deeply"),
         files={"p.json": DEEP}),
    Case("syn-empty-file", (*SYN, "{tmp}/p.jsonl", "-o", "{tmp}/out"), ("p.jsonl", "no rows"), files={"p.jsonl": ""}),
    Case("syn-damaged-parquet", (*SYN, "{tmp}/p.parquet", "-o", "{tmp}/out"), ("p.parquet", "not a readable parquet"),
         files={"p.parquet": b"PAR1 not really parquet PAR1"}),
    Case("syn-identical-sides", (*SYN, "{tmp}/p.jsonl", "-o", "{tmp}/out"), ("row 0", "the same response"),
         files={"p.jsonl": json.dumps({"prompt": "Say hi.", "chosen": "Hi there.", "rejected": "Hi there. "}) + "\n"}),
    # ---- synthesize: options (checked before anything is read or written) -----------------------------------
    Case("syn-k-max-above-compatible", (*SYN, "{tiny}", "-o", "{tmp}/out", "--k-max", "16"), ("--k-max 16", "at most 15")),
    Case("syn-k-max-above-include", (*SYN, "{tiny}", "-o", "{tmp}/out", "--include", "punctuation:no_comma,detectable_format:json_format",
                                     "--k-min", "1", "--k-max", "2"), ("--k-max 2", "at most 1 of the 2")),
    Case("syn-k-min-not-a-number", (*SYN, "{tiny}", "-o", "{tmp}/out", "--k-min", "two"), ("--k-min",)),
    Case("syn-limit-zero", (*SYN, "{tiny}", "-o", "{tmp}/out", "--limit", "0"), ("--limit",)),
    Case("syn-workers-negative", (*SYN, "{tiny}", "-o", "{tmp}/out", "--workers", "-1"), ("--workers",)),
    Case("syn-intra-negative", (*SYN, "{tiny}", "-o", "{tmp}/out", "--intra-per-response", "-1"), ("--intra-per-response",)),
    Case("syn-shard-out-of-range", (*SYN, "{tiny}", "-o", "{tmp}/out", "--shard", "2/2"), ("--shard",)),
    Case("syn-same-column-twice", (*SYN, "{tiny}", "-o", "{tmp}/out", "--rejected-column", "chosen"), ("--chosen-column", "same column")),
    Case("syn-nothing-to-write", (*SYN, "{tiny}", "-o", "{tmp}/out", "--no-standard", "--intra-per-response", "0",
                                  "--inter-per-pair", "0"), ("nothing to write",)),
    Case("syn-unknown-option", (*SYN, "{tiny}", "-o", "{tmp}/out", "--k-maximum", "3"), ("--k-maximum",)),
    # every candidate dropped: prose never fits a JSON-format instruction
    Case("syn-every-candidate-dropped", (*SYN, "{tiny}", "-o", "{tmp}/out", "--include", "detectable_format:json_format",
                                         "--k-min", "1", "--k-max", "1"), ("no intra or inter pair", "--include")),
    # ---- synthesize: the output folder ----------------------------------------------------------------------
    Case("syn-output-is-a-file", (*SYN, "{tiny}", "-o", "{tmp}/out"), ("out", "not a folder"), files={"out": "notes"}),
    Case("syn-output-under-a-file", (*SYN, "{tiny}", "-o", "{tmp}/notes/out"), ("notes", "is a file"), files={"notes": "x"}),
    Case("syn-existing-output", (*SYN, "{tiny}", "-o", "{tmp}/out", "--seed", "3"), ("pairs.parquet", "--force"), setup=_synthesized),
    Case("syn-full-disk", (*SYN, "{tiny}", "-o", "{tmp}/out"), ("out/pairs.parquet", "file too large"), code=1, fsize=4096),
    Case("syn-force-full-disk-keeps-the-old-run", (*SYN, "{tiny}", "-o", "{tmp}/out", "--force", "--seed", "3"),
         ("out/pairs.parquet", "file too large"), code=1, fsize=4096, setup=_synthesized),
    # ---- build-benchmark -----------------------------------------------------------------------------------
    Case("build-missing-prompts", (*BUILD, "{tmp}/nope.jsonl", "-o", "{tmp}/b.jsonl"), ("nope.jsonl", "no such file")),
    Case("build-prompts-is-a-folder", (*BUILD, "{tmp}/data", "-o", "{tmp}/b.jsonl"), ("data", "is a folder"), files={"data/x": "x"}),
    Case("build-not-utf8", (*BUILD, "{tmp}/p.jsonl", "-o", "{tmp}/b.jsonl"), ("p.jsonl", "UTF-8"), files={"p.jsonl": NOT_UTF8}),
    Case("build-deep-json", (*BUILD, "{tmp}/p.jsonl", "-o", "{tmp}/b.jsonl"), ("p.jsonl", "line 1", "nested too deeply"),
         files={"p.jsonl": DEEP + "\n"}),
    Case("build-empty-prompts", (*BUILD, "{tmp}/p.jsonl", "-o", "{tmp}/b.jsonl"), ("p.jsonl", "no prompts"), files={"p.jsonl": "\n"}),
    Case("build-output-is-a-folder", (*BUILD, "{prompts}", "-o", "{tmp}/b", "--force"), ("b", "is a folder"), files={"b/keep": "x"}),
    Case("build-existing-output", (*BUILD, "{prompts}", "-o", "{tmp}/b.jsonl"), ("b.jsonl", "--force"), files={"b.jsonl": "old\n"}),
    Case("build-k-max-above-compatible", (*BUILD, "{prompts}", "-o", "{tmp}/b.jsonl", "--k-max", "16"), ("--k-max 16", "at most 15")),
    Case("build-limit-zero", (*BUILD, "{prompts}", "-o", "{tmp}/b.jsonl", "--limit", "0"), ("--limit",)),
    Case("build-full-disk", (*BUILD, "{prompts}", "-o", "{tmp}/b.jsonl"), ("b.jsonl", "file too large"), code=1, fsize=4096),
    Case("build-force-full-disk-keeps-the-old-file", (*BUILD, "{prompts}", "-o", "{tmp}/b.jsonl", "--force"),
         ("b.jsonl", "file too large"), code=1, fsize=4096, files={"b.jsonl": "an earlier benchmark\n"}),
    # ---- evaluate: inputs ----------------------------------------------------------------------------------
    Case("eval-missing-benchmark", (*EVAL, "--benchmark", "{tmp}/nope.jsonl", "--responses", "{tmp}/a.jsonl", "-o", "{tmp}/out"),
         ("nope.jsonl", "no such benchmark file"), files={"a.jsonl": "{}\n"}),
    Case("eval-benchmark-is-a-folder", (*EVAL, "--benchmark", "{tmp}/data", "--responses", "{tmp}/a.jsonl", "-o", "{tmp}/out"),
         ("data", "is a folder"), files={"data/x": "x", "a.jsonl": "{}\n"}),
    Case("eval-benchmark-not-utf8", (*EVAL, "--benchmark", "{tmp}/b.jsonl", "--responses", "{tmp}/a.jsonl", "-o", "{tmp}/out"),
         ("b.jsonl", "UTF-8"), files={"b.jsonl": NOT_UTF8, "a.jsonl": "{}\n"}),
    Case("eval-benchmark-deep-json", (*EVAL, "--benchmark", "{tmp}/b.jsonl", "--responses", "{tmp}/a.jsonl", "-o", "{tmp}/out"),
         ("b.jsonl", "nested too deeply"), files={"b.jsonl": DEEP + "\n", "a.jsonl": "{}\n"}),
    Case("eval-empty-benchmark", (*EVAL, "--benchmark", "{tmp}/b.jsonl", "--responses", "{tmp}/a.jsonl", "-o", "{tmp}/out"),
         ("b.jsonl", "no rows"), files={"b.jsonl": "", "a.jsonl": "{}\n"}),
    Case("eval-responses-not-utf8", (*EVAL, "--benchmark", "{bench}", "--responses", "{tmp}/a.jsonl", "-o", "{tmp}/out"),
         ("a.jsonl", "UTF-8"), files={"a.jsonl": b'{"response": "caf\xe9"}\n'}),
    Case("eval-responses-deep-json", (*EVAL, "--benchmark", "{bench}", "--responses", "{tmp}/a.jsonl", "-o", "{tmp}/out"),
         ("a.jsonl", "line 1", "nested too deeply"), files={"a.jsonl": DEEP + "\n"}),
    Case("eval-responses-is-a-folder", (*EVAL, "--benchmark", "{bench}", "--responses", "{tmp}/a", "-o", "{tmp}/out"),
         ("a", "is a folder"), files={"a/x": "x"}),
    Case("eval-model-is-a-file", (*EVAL, "--benchmark", "{bench}", "--model", "{tmp}/m.bin", "-o", "{tmp}/out"),
         ("m.bin", "is a file"), files={"m.bin": "x"}),
    Case("eval-truncated-model", (*EVAL, "--benchmark", "{bench}", "--model", "{tmp}/bad-model", "-o", "{tmp}/out"),
         ("model.safetensors", "outside the file"), setup=_truncated_model),
    Case("eval-policy-as-reward-model", (*EVAL, "--reward-model", "{tmp}/policy", "--pairs", "{tmp}/pairs.parquet", "-o", "{tmp}/out"),
         ("policy", "not a reward model", "LlamaForCausalLM"), setup=_policy_and_pairs),
    Case("eval-deep-train-manifest", (*EVAL, "--benchmark", "{bench}", "--responses", "{tmp}/a.jsonl", "-o", "{tmp}/out",
                                      "--train-manifest", "{tmp}/manifest.json"), ("manifest.json", "not a readable manifest"),
         files={"a.jsonl": _responses(2), "manifest.json": DEEP}),
    Case("eval-unknown-device", (*EVAL, "--benchmark", "{bench}", "--model", "tiny-random", "-o", "{tmp}/out", "--device", "gpu0"),
         ("--device", "not a torch device")),
    Case("eval-deep-template-kwargs", (*EVAL, "--benchmark", "{bench}", "--responses", "{tmp}/a.jsonl", "-o", "{tmp}/out",
                                       "--chat-template-kwargs", "[" * 50_000 + "]" * 50_000), ("--chat-template-kwargs",),
         files={"a.jsonl": "{}\n"}),
    # ---- evaluate: options ---------------------------------------------------------------------------------
    *[
        Case(f"eval-option{flag}-{value}", (*EVAL, "--benchmark", "{bench}", "--responses", "{tmp}/a.jsonl", "-o", "{tmp}/out", flag, value),
             (flag,), files={"a.jsonl": "{}\n"})
        for flag, value in [
            ("--temperature", "nan"), ("--temperature", "-0.5"), ("--temperature", "inf"), ("--top-p", "0"), ("--top-p", "1.5"),
            ("--max-new-tokens", "0"), ("--batch-size", "0"), ("--chunk-size", "0"), ("--bootstrap", "-1"),
            ("--tensor-parallel-size", "0"), ("--max-length", "0"), ("--limit", "0"), ("--shard", "1/0"),
        ]
    ],
    Case("eval-resume-and-force", (*EVAL, "--benchmark", "{bench}", "--responses", "{tmp}/answers.jsonl", "-o", "{tmp}/out",
                                   "--resume", "--force"), ("--resume", "--force"), setup=_evaluated),
    # ---- evaluate: the output folder -----------------------------------------------------------------------
    Case("eval-output-is-a-file", (*EVAL, "--benchmark", "{bench}", "--responses", "{tmp}/a.jsonl", "-o", "{tmp}/out"),
         ("out", "not a folder"), files={"out": "x", "a.jsonl": "{}\n"}),
    Case("eval-existing-results", (*EVAL, "--benchmark", "{bench}", "--responses", "{tmp}/answers.jsonl", "-o", "{tmp}/out"),
         ("out", "--resume", "--force"), setup=_evaluated),
    Case("eval-force-with-truncated-model-keeps-the-old-run",
         (*EVAL, "--benchmark", "{bench}", "--model", "{tmp}/bad-model", "-o", "{tmp}/out", "--force"),
         ("model.safetensors",), setup=lambda tmp: (_evaluated(tmp), _truncated_model(tmp))),
    Case("eval-full-disk-before-any-result-leaves-nothing",
         (*EVAL, "--benchmark", "{bench}", "--responses", "{tmp}/a.jsonl", "-o", "{tmp}/out"),
         ("settings.json", "file too large"), code=1, fsize=200, files={"a.jsonl": _responses(3)}),
    Case("eval-force-full-disk-keeps-the-old-run",
         (*EVAL, "--benchmark", "{bench}", "--responses", "{tmp}/answers.jsonl", "-o", "{tmp}/out", "--force"),
         ("results.jsonl", "file too large"), code=1, fsize=2_000, setup=_evaluated),
    Case("eval-resume-with-damaged-settings",
         (*EVAL, "--benchmark", "{bench}", "--responses", "{tmp}/answers.jsonl", "-o", "{tmp}/out", "--resume"),
         ("settings.json", "--force"), setup=lambda tmp: (_evaluated(tmp), (tmp / "out" / "settings.json").write_text("{oops"))),
    Case("eval-resume-with-foreign-results", (*EVAL, "--benchmark", "{bench}", "--responses", "{tmp}/a.jsonl", "-o", "{tmp}/out", "--resume"),
         ("results.jsonl", "line 1", "not a result"), files={"out/results.jsonl": "[1, 2]\n", "a.jsonl": _responses(3)}),
    # an OSError no command expected (results.jsonl is a folder): the CLI's safety net, path and cause
    Case("eval-results-journal-is-a-folder", (*EVAL, "--benchmark", "{bench}", "--responses", "{tmp}/a.jsonl", "-o", "{tmp}/out", "--resume"),
         ("results.jsonl", "is a directory"), code=1, files={"out/results.jsonl/x": "x", "a.jsonl": _responses(3)}),
    Case("eval-merge-foreign-results", (*EVAL, "--merge", "{tmp}/shard", "-o", "{tmp}/out"), ("results.jsonl", "not a result"),
         files={"shard/results.jsonl": '"a string"\n'}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input_ends_with_one_line_and_changes_nothing(case: Case, tmp_path: Path):
    for name, content in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    if case.setup:
        case.setup(tmp_path)
    before = tree(tmp_path)
    result = run_mapl(_args(case, tmp_path), timeout=120, preexec_fn=file_size_limit(case.fsize) if case.fsize else None)
    assert_one_line_error(result, *case.fragments, code=case.code)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("args", [
    ["synthesize", "-q", str(TINY), "-o", "/sys/mapl-out"],
    ["build-benchmark", str(PROMPTS), "-o", "/sys/mapl-out/b.jsonl"],
    ["evaluate", "--benchmark", str(BENCHMARK), "--responses", "{tmp}/a.jsonl", "-o", "/sys/mapl-out"],
], ids=["synthesize", "build-benchmark", "evaluate"])
def test_an_output_folder_that_cannot_be_created_is_one_line(args, tmp_path):
    """/sys refuses new entries even to root (a read-only folder does not stop root)."""
    probe = Path("/sys/mapl-probe")
    try:
        probe.mkdir()
    except OSError:
        pass
    else:
        probe.rmdir()
        pytest.skip("/sys is writable here")
    (tmp_path / "a.jsonl").write_text(_responses(2))
    result = run_mapl([a.format(tmp=tmp_path) for a in args])
    assert_one_line_error(result, "/sys/mapl-out", "cannot create", code=2)


# ---- regex bombs: a crafted benchmark or responses file finishes ------------------------------------------------


def _bomb_row(key: int = 1) -> dict:
    return {"key": key, "prompt": "Write something.", "instruction_id_list": ["keywords:existence", "keywords:forbidden_words"],
            "kwargs": [{"keywords": [BOMB_PATTERN]}, {"forbidden_words": ["(a|aa)+!x"]}]}


@pytest.mark.parametrize("where", ["benchmark", "responses"])
def test_a_regex_bomb_is_scored_in_seconds_with_a_warning(where, tmp_path):
    out = tmp_path / "out"
    if where == "benchmark":
        (tmp_path / "b.jsonl").write_text(json.dumps(_bomb_row()) + "\n")
        (tmp_path / "a.jsonl").write_text(json.dumps({"key": 1, "response": BOMB_RESPONSE}) + "\n")
        args = ["--benchmark", str(tmp_path / "b.jsonl")]
    else:  # no benchmark: each response line carries its own instructions
        (tmp_path / "a.jsonl").write_text(json.dumps({**_bomb_row(), "response": BOMB_RESPONSE}) + "\n")
        args = []
    started = time.time()
    result = run_mapl(["evaluate", *args, "--responses", str(tmp_path / "a.jsonl"), "-o", str(out), "--bootstrap", "0"], timeout=60)
    assert result.code == 0, result.stderr[-2000:]
    assert time.time() - started < 30
    assert "matched as plain text" in result.stderr and "Traceback" not in result.stderr
    record = pq.read_table(out / "results.parquet").to_pylist()[0]
    assert record["strict"] == [False, True]  # neither pattern, read as text, is in the response
    assert leftovers(out) == []


# ---- coverage of a responses file ---------------------------------------------------------------------------------


def test_partial_responses_are_reported_on_stderr_and_in_the_summary(tmp_path):
    (tmp_path / "a.jsonl").write_text(_responses(5, keys=True))
    result = run_mapl(["evaluate", "--benchmark", str(BENCHMARK), "--limit", "12", "--responses", str(tmp_path / "a.jsonl"),
                       "-o", str(tmp_path / "out"), "--bootstrap", "0"])
    assert result.code == 0, result.stderr[-2000:]
    assert "answers 5 of the 12 benchmark prompts" in result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["models"]["a"]["coverage"] == {"answered": 5, "benchmark_prompts": 12, "fraction": 5 / 12}


# ---- evaluate: a full disk on a first run keeps the journal, and --resume finishes --------------------------------


def test_a_full_disk_while_writing_charts_leaves_the_journal_and_no_partial_file(tmp_path):
    (tmp_path / "a.jsonl").write_text(_responses())
    out = tmp_path / "out"
    args = ["evaluate", "--benchmark", str(BENCHMARK), "--responses", str(tmp_path / "a.jsonl"), "-o", str(out), "--bootstrap", "0"]
    # 20 kB: the journal (about 11 kB) fits, the chart of accuracy by k (about 29 kB) does not
    result = run_mapl(args, preexec_fn=file_size_limit(20_000))
    assert_one_line_error(result, ".png", "file too large", code=1)
    assert leftovers(out) == []
    assert len((out / "results.jsonl").read_text().splitlines()) == 12
    assert not (out / "accuracy_by_k.png").exists() and not (out / "manifest.json").exists()
    result = run_mapl([*args, "--resume"])
    assert result.code == 0, result.stderr[-2000:]
    assert (out / "accuracy_by_k.png").read_bytes().startswith(b"\x89PNG") and (out / "manifest.json").exists()


# ---- signals ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_prefs(tmp_path_factory) -> Path:
    """12,000 preference rows: the examples 150 times, each copy's responses made distinct (a repeated text
    would hit the registry's per-text caches and cost nothing), so a --workers 2 run takes far longer than
    any signal delay below (a run that ends before the signal lands would race the test)."""
    path = tmp_path_factory.mktemp("prefs") / "prefs.jsonl"
    rows = [json.loads(line) for line in EXAMPLES.read_text().splitlines()]
    with open(path, "w", encoding="utf-8") as handle:
        for copy in range(150):
            for row in rows:
                row = dict(row, id=f"{row['id']}-{copy}")
                for side in ("chosen", "rejected"):
                    if isinstance(row[side], str):
                        row[side] = f"{row[side]} (Version {copy}.)"
                handle.write(json.dumps(row) + "\n")
    return path


def _writing(out: Path, wait: float = 2.0) -> Callable[[], bool]:
    """True `wait` seconds after the run's temporary pairs file appeared (the workers are busy by then)."""
    seen: list[float] = []

    def check() -> bool:
        if not seen and out.is_dir() and any(p.name.startswith(".pairs") for p in out.iterdir()):
            seen.append(time.time())
        return bool(seen) and time.time() - seen[0] > wait

    return check


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "wait"), [("2", 2.0), ("2", 0.0), ("1", 1.0)])
def test_ctrl_c_during_synthesize_is_one_line(big_prefs, tmp_path, workers, wait):
    """Ctrl-C reaches every process of the terminal's group; only the driver reports it (a wait of 0 lands
    while the workers are being forked)."""
    out = tmp_path / "out"
    result = run_and_signal_group(["synthesize", "-q", str(big_prefs), "-o", str(out), "--workers", workers],
                                  signal.SIGINT, _writing(out, wait), timeout=120)
    assert_one_line_error(result, "interrupted (SIGINT)", "nothing was written", code=130)
    assert "KeyboardInterrupt" not in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_sigterm_during_synthesize_with_workers_keeps_an_earlier_output(big_prefs, tmp_path):
    out = tmp_path / "out"
    _synthesized(tmp_path)
    before = tree(tmp_path)
    result = run_and_signal(["synthesize", "-q", str(big_prefs), "-o", str(out), "--workers", "2", "--force"],
                            signal.SIGTERM, _writing(out), timeout=120)
    assert_one_line_error(result, "interrupted (SIGTERM)", "earlier pairs.parquet", code=130)
    assert tree(tmp_path) == before


@pytest.mark.slow
def test_a_killed_synthesize_leaves_a_temporary_file_that_the_next_run_removes(big_prefs, tmp_path):
    out = tmp_path / "out"
    result = run_and_signal(["synthesize", "-q", str(big_prefs), "-o", str(out), "--workers", "2"],
                            signal.SIGKILL, _writing(out, wait=0.5), timeout=120)
    assert result.code == -signal.SIGKILL
    assert leftovers(out)  # SIGKILL cannot be caught
    result = run_mapl(["synthesize", "-q", str(TINY), "-o", str(out)])
    assert result.code == 0, result.stderr[-2000:]
    assert leftovers(out) == [] and sorted(p.name for p in out.iterdir()) == ["manifest.json", "pairs.parquet"]


@pytest.mark.slow
def test_ctrl_c_during_generation_keeps_the_answers_for_resume(tmp_path):
    out = tmp_path / "out"
    journal = out / "results.jsonl"
    args = ["evaluate", "--benchmark", str(BENCHMARK), "--model", "tiny-random", "--limit", "8", "--chunk-size", "1",
            "--max-new-tokens", "16", "--bootstrap", "0", "--backend", "hf", "--device", "cpu", "-o", str(out)]
    result = run_and_signal_group(args, signal.SIGINT, lambda: journal.exists() and journal.stat().st_size > 0, timeout=180)
    assert_one_line_error(result, "interrupted (SIGINT)", "--resume", code=130)
    kept = journal.read_text().splitlines()
    assert 1 <= len(kept) < 8 and leftovers(out) == []
    result = run_mapl([*args, "--resume"], timeout=180)
    assert result.code == 0, result.stderr[-2000:]
    assert len(journal.read_text().splitlines()) == 8
