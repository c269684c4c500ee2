# `make score` and `make test` work on a fresh machine: the first use builds .venv/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# cpu installs tensorflow-cpu; gpu installs tensorflow (CUDA). See setup.cfg.
TF_EXTRA ?= cpu

DATA ?= data
TASK ?= mnist_vgg
MEASURE ?= fragmentation
# Measure parameters, e.g. PARAMS="n_pairs=1024 layer=-2"
PARAMS ?=
OUT ?= results/$(MEASURE)

.PHONY: setup score test test-fast clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[$(TF_EXTRA),test]'
	# Keras 2, to test the measure on models of the organisers' era; --no-deps, or pip would
	# pull the full tensorflow package next to tensorflow-cpu.
	$(PY) -m pip install --quiet --no-deps 'tf-keras==2.21.*'
	touch $@

score: setup
	$(PY) -m pgdl_harness score --data $(DATA) --task $(TASK) --measure $(MEASURE) --out $(OUT) \
		$(foreach param,$(PARAMS),--param $(param))

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

clean:
	rm -rf $(VENV) results .pytest_cache *.egg-info

# Benchmarks print timings and ratios (not timed tests): implementations and PGDL-sized models,
# then adaptive against dense counting on every bundled image model (~10 min on 2 cores).
.PHONY: bench bench-pairs
bench: setup
	$(PY) tests/benchmarks/bench_fragmentation.py
	$(PY) tests/benchmarks/bench_adaptive.py

# How CMI and tau move with n_pairs and n_points over 3 pair seeds (~30-60 min; cached in
# results/bench_pairs/, resumable), then the adaptive-rule ablation on the same evaluations.
bench-pairs: setup
	$(PY) tests/benchmarks/pairs_and_points.py
	$(PY) tests/benchmarks/adaptive_rules.py

.PHONY: regression-update
regression-update: setup
	$(PY) tests/regression/update_expected.py

# A new PGDL-format image task: make task NAME=my_task FAMILY=nin ARGS="--grid width=8,16 ..."
NAME ?= new_task
FAMILY ?= vgg
ARGS ?=
.PHONY: task
task: setup
	$(PY) -m pgdl_harness make-task $(NAME) --out $(DATA) --family $(FAMILY) $(ARGS)

# Mouton et al.'s observations reproduced: make experiment NAME=through_training|double_descent|weight_norms
# (writes results/experiments/NAME/; ARGS="--quick" runs the seconds-long miniature CI runs).
.PHONY: experiment
experiment: setup
	$(PY) -m pgdl_harness.experiments $(NAME) $(ARGS)

# The development suite (pgdl_harness/taskgen/dev_suite.py), outside data/: CI never uses it.
# Run again to finish an interrupted generation; finished tasks are skipped.
DEV_DATA ?= dev_data
.PHONY: dev-suite
dev-suite: setup
	$(PY) -m pgdl_harness.taskgen.dev_suite --out $(DEV_DATA)

# Seconds per model with the local engine and with Ray (1 and 2 workers) on a bundled task.
.PHONY: bench-engines
bench-engines: setup
	$(PY) tests/benchmarks/bench_engines.py $(TASK)
