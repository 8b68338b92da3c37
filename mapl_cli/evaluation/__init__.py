"""Evaluation: IFEval-format benchmarks, scoring, statistics, reports (generation backends: mapl_cli.generation).

    mapl build-benchmark examples/eval_prompts.jsonl --output examples/eval_benchmark.jsonl
    mapl evaluate --benchmark examples/eval_benchmark.jsonl --model smollm2-135m-instruct --output out/eval

This package imports nothing heavy at top level; torch, transformers and vllm are imported inside the
functions that need them.
"""
