"""Scoring: hand-checked aggregates, empty responses, loose variants, and agreement with IFEval's reference
scoring code (lm-evaluation-harness's `tasks/ifeval/utils.process_results`) on a fixed set of cases. The
reference runs offline with NLTK's Punkt English model installed by tests/nltk_offline.py, so every id is
compared, sentence counting included.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from mapl_cli.benchmark import BenchmarkRow, read_benchmark
from mapl_cli.evaluation.scoring import METRICS, Verdicts, score_row, summarize

ROOT = Path(__file__).resolve().parents[1]
RESPONSES = ROOT / "tests" / "assets" / "eval_reference_responses.jsonl"
BENCHMARK = ROOT / "examples" / "eval_benchmark.jsonl"


def test_summarize_matches_hand_computed_metrics():
    # Three prompts. Strict: [T, F] -> not all; [T] -> all; [F, F, T] -> not all.
    #   prompt strict = 1/3; inst strict = (1 + 1 + 1) / 6 = 1/2.
    # Loose: [T, T] -> all; [T] -> all; [F, T, T] -> not all.
    #   prompt loose = 2/3; inst loose = (2 + 1 + 2) / 6 = 5/6.
    items = [
        (["a", "b"], Verdicts([True, False], [True, True])),
        (["a"], Verdicts([True], [True])),
        (["a", "b", "c"], Verdicts([False, False, True], [False, True, True])),
    ]
    s = summarize(items)
    assert s["prompt_level_strict_acc"] == pytest.approx(1 / 3)
    assert s["inst_level_strict_acc"] == pytest.approx(1 / 2)
    assert s["prompt_level_loose_acc"] == pytest.approx(2 / 3)
    assert s["inst_level_loose_acc"] == pytest.approx(5 / 6)
    # per id: a strict T, T, F -> 2/3, loose T, T, F -> 2/3; b strict F, F -> 0, loose T, T -> 1; c T -> 1.
    assert s["by_instruction"]["a"]["strict_acc"] == pytest.approx(2 / 3)
    assert s["by_instruction"]["a"]["loose_acc"] == pytest.approx(2 / 3)
    assert s["by_instruction"]["b"] == {"n": 2, "strict_acc": 0.0, "loose_acc": 1.0}
    assert s["by_instruction"]["c"]["n"] == 1
    # by k: k=1 one prompt (all followed), k=2 one prompt strict 1/2 inst, k=3 one prompt.
    assert set(s["by_num_instructions"]) == {"1", "2", "3"}
    assert s["by_num_instructions"]["2"]["inst_level_strict_acc"] == pytest.approx(0.5)
    assert s["by_num_instructions"]["2"]["prompt_level_loose_acc"] == 1.0
    assert s["by_num_instructions"]["3"]["inst_level_loose_acc"] == pytest.approx(2 / 3)
    assert s["n_prompts"] == 3 and s["n_instructions"] == 6


@pytest.mark.parametrize("response", ["", "   \n\t "])
def test_empty_response_follows_nothing(response):
    # "no commas" and "all lowercase" would hold vacuously for an empty string; IFEval counts them as failed.
    row = BenchmarkRow(1, "p", ["punctuation:no_comma", "change_case:english_lowercase"], [{}, {}])
    assert score_row(row, response) == Verdicts([False, False], [False, False])


def test_loose_scoring_drops_a_chatty_first_line_and_asterisks():
    row = BenchmarkRow(1, "p", ["punctuation:no_comma", "change_case:english_lowercase"], [{}, {}])
    verdicts = score_row(row, "Sure, here it is:\n**the garden needs water every day**")
    assert verdicts.strict == [False, False]
    assert verdicts.loose == [True, True]


def _cases() -> list[tuple[BenchmarkRow, str]]:
    """The shipped benchmark crossed with 18 hand-written responses (formats, cases, languages, empty), plus
    single-instruction rows whose arguments the registry's generators chose to make each response pass or
    fail each instruction type (arguments near the decision boundary)."""
    from mapl_cli.instructions import all_ids, get_instruction
    from tests.nltk_offline import install

    install()
    skip: set[str] = set()
    responses = [json.loads(line)["response"] for line in RESPONSES.read_text().splitlines()]
    cases = []
    for row in read_benchmark(BENCHMARK):
        keep = [i for i, iid in enumerate(row.instruction_id_list) if iid not in skip]
        if not keep:
            continue
        row = BenchmarkRow(row.key, row.prompt, [row.instruction_id_list[i] for i in keep], [row.kwargs[i] for i in keep])
        cases += [(row, r) for r in responses]
        if "combination:repeat_prompt" in row.instruction_id_list:
            args = row.kwargs[row.instruction_id_list.index("combination:repeat_prompt")]
            cases.append((row, args["prompt_to_repeat"] + "\nand here is the answer"))
    rng = random.Random(0)
    for iid in all_ids():
        if iid in skip:
            continue
        for response in responses:
            for wanted in (True, False):
                kwargs = get_instruction(iid).generate([(response, wanted)], rng)
                if kwargs is not None:
                    cases.append((BenchmarkRow(10_000 + len(cases), f"Prompt for {iid}", [iid], [kwargs]), response))
    return cases


def test_metrics_equal_ifeval_reference_scoring():
    from langdetect import DetectorFactory

    reference = pytest.importorskip("lm_eval.tasks.ifeval.utils")
    cases = _cases()
    ours, theirs = [], []
    for row, response in cases:
        DetectorFactory.seed = 0  # langdetect is random unless seeded
        verdicts = score_row(row, response)
        DetectorFactory.seed = 0
        ref = reference.process_results(
            {"key": row.key, "prompt": row.prompt, "instruction_id_list": row.instruction_id_list, "kwargs": row.kwargs},
            [response],
        )
        ours.append((row.instruction_id_list, verdicts))
        theirs.append((row.instruction_id_list, Verdicts(ref["inst_level_strict_acc"], ref["inst_level_loose_acc"])))
        assert ref["prompt_level_strict_acc"] == all(verdicts.strict)
        assert ref["prompt_level_loose_acc"] == all(verdicts.loose)
    disagreements = [
        (row.key, row.instruction_id_list, response[:60], a, b)
        for (row, response), (_, a), (_, b) in zip(cases, ours, theirs, strict=True)
        if a != b
    ]
    assert not disagreements, disagreements[:5]
    mine, ref_summary = summarize(ours), summarize(theirs)
    for metric in METRICS:
        assert mine[metric] == ref_summary[metric], metric
    # The fixture must exercise both verdicts and the loose variants, or agreement would prove little.
    flat = [(s, lo) for _, v in ours for s, lo in zip(v.strict, v.loose, strict=True)]
    assert len(cases) > 2000
    assert sum(s for s, _ in flat) >= 1000 and sum(not s for s, _ in flat) >= 1000
    assert sum(lo and not s for s, lo in flat) >= 20
    covered = {iid for ids, _ in ours for iid in ids}
    assert len(covered) >= 23
