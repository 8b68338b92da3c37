#!/usr/bin/env bash
# Everything in mapl that needs a GPU, in one command of at most 8 minutes (the parts and what they measure:
# bench/gpu.py's docstring and docs/gpu.md):
#
#   bash bench/gpu.sh                  # GPU: a ~1B random Llama -> bench/results/gpu.json and a table
#   bash bench/gpu.sh --size 1.5b      # other options go to bench/gpu.py (python3 bench/gpu.py --help)
#
# On a machine without a GPU the same parts run on a tiny model in under 2 minutes and write
# bench/results/gpu-cpu.json (tests/test_gpu_bench.py runs it so). Nothing is downloaded: the model is built
# here. mapl is taken from this checkout, installed or not. Python: $PYTHON, else .venv/bin/python, else python3.
# Exit status 0 when every part finished, 1 when one failed or ran out of its time (the JSON says which).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "$PY" bench/gpu.py "$@"
