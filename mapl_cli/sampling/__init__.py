"""`mapl sample`: n responses per prompt from a policy, labelled by the instruction registry, and the
preference pairs they give (chosen: the sample that satisfies the most instructions, rejected: the fewest).

    mapl sample examples/eval_benchmark.jsonl --model tiny-random --n 4 --max-new-tokens 32 --output out/samples

`prompts.py` reads the prompts (a benchmark, base prompts or a preference file), `labels.py` labels samples
and picks pairs (pure functions), `run.py` generates, journals, and writes the outputs.
"""
