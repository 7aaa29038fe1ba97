# Two commands do everything on a fresh machine:
#   make run    set up .venv if needed, then train on the embedded default (tiny model, built-in task, CPU)
#   make test   set up .venv if needed, then run the test suite
PY := .venv/bin/python
export VLLM_ENABLE_V1_MULTIPROCESSING ?= 0
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup run test
setup:
	@bash launch/setup.sh

run: setup
	$(PY) launch/grpo.py $(ARGS)

test: setup
	$(PY) -m pytest -q $(ARGS)
