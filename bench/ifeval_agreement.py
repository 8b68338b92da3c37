"""mapl's scoring against lm-evaluation-harness's IFEval reference code on a whole benchmark file.

    python bench/ifeval_agreement.py input_data.jsonl          # IFEval's published 541 rows
    python bench/ifeval_agreement.py examples/eval_benchmark.jsonl

For every row, eight synthetic responses (the prompt itself, lower-cased, upper-cased, without commas,
quoted, with a postscript, bullets and sections, a title) are scored strict and loose by mapl
(`score_row`) and by the reference (`lm_eval.tasks.ifeval.utils`, run offline with NLTK's Punkt model from
tests/nltk_offline.py). Verdicts of `keywords:letter_frequency` with a non-letter "letter" are left out:
the reference replaces it with a random letter. Prints a table and writes bench/results/ifeval_agreement.json.
Needs the dev extra (lm-eval).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def variants(prompt: str) -> list[str]:
    return [
        prompt, prompt.lower(), prompt.upper(), prompt.replace(",", ""), '"' + prompt + '"',
        prompt + "\nP.S. thanks", "* a\n* b\n* c\n\n***\n\nSECTION 1 x", "<<Title>>\n" + prompt,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", help="an IFEval-format jsonl file")
    parser.add_argument("--out", default=str(ROOT / "bench/results/ifeval_agreement.json"))
    args = parser.parse_args()

    from tests.nltk_offline import install

    install()
    from lm_eval.tasks.ifeval import utils as reference

    from mapl_cli.benchmark import read_benchmark
    from mapl_cli.evaluation.scoring import score_row
    from mapl_cli.manifest import file_sha256

    started = time.time()
    rows = read_benchmark(args.benchmark)
    compared, agreed, skipped = Counter(), Counter(), 0
    disagreements = []
    for row in rows:
        for response in variants(row.prompt):
            ours = score_row(row, response)
            theirs = {}
            for level, test in (("strict", reference.test_instruction_following_strict),
                                ("loose", reference.test_instruction_following_loose)):
                example = reference.InputExample(key=row.key, instruction_id_list=row.instruction_id_list,
                                                 prompt=row.prompt, kwargs=[dict(k) for k in row.kwargs])
                theirs[level] = test(example, response).follow_instruction_list
            for i, inst_id in enumerate(row.instruction_id_list):
                if inst_id == "keywords:letter_frequency" and not str(row.kwargs[i]["letter"]).isalpha():
                    skipped += 2
                    continue
                for level, mine in (("strict", ours.strict[i]), ("loose", ours.loose[i])):
                    compared[inst_id] += 1
                    if mine == theirs[level][i]:
                        agreed[inst_id] += 1
                    else:
                        disagreements.append({"key": row.key, "id": inst_id, "level": level, "response": response[:80]})
    total, same = sum(compared.values()), sum(agreed.values())
    print("| benchmark | rows | verdicts compared | agree | left out (random letter) |\n| --- | --- | --- | --- | --- |")
    print(f"| {Path(args.benchmark).name} | {len(rows)} | {total} | {same} | {skipped} |")
    for d in disagreements[:10]:
        print("disagreement:", d)
    result = {
        "benchmark": {"path": str(Path(args.benchmark).resolve()), "sha256": file_sha256(args.benchmark), "rows": len(rows)},
        "verdicts_compared": total, "agree": same, "left_out_random_letter": skipped,
        "by_instruction": {i: {"compared": compared[i], "agree": agreed[i]} for i in sorted(compared)},
        "disagreements": disagreements[:100], "seconds": round(time.time() - started, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
