# `make score` and `make test` work on a fresh machine: the first use builds .venv/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# cpu installs tensorflow-cpu; gpu installs tensorflow (CUDA). See setup.cfg.
TF_EXTRA ?= cpu

DATA ?= data
TASK ?= mnist_vgg
# The default measure (complexity_measure/registry.py's DEFAULT_MEASURE): make score and the
# reporting suite's comparison score it.
DEFAULT_MEASURE := fragmentation_fitted_davies_bouldin_quarter
MEASURE ?= $(DEFAULT_MEASURE)
# Measure parameters, e.g. PARAMS="n_pairs=1024 layer=-2"
PARAMS ?=
OUT ?= results/$(MEASURE)

.PHONY: setup score test test-fast clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[$(TF_EXTRA),torch,jax,weightwatcher,test]'
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

# Benchmarks print timings and ratios (not timed tests): implementations, the default measure on
# two PGDL-sized models trained on colour digits (trained once, ~5 min, kept in results/bench_models/)
# and every measure on PGDL-sized models, then adaptive against dense counting on every bundled
# image model (~10 min on 2 cores), then
# where jacobian_norm's time goes (tracing against compute, three exact implementations), then the
# same PGDL-sized networks in Keras on TensorFlow, PyTorch and Keras 3 on JAX against each one's own
# forward pass (BENCH_DEVICE=cuda times the PyTorch rows on a GPU).
BENCH_DEVICE ?= cpu
.PHONY: bench bench-pairs bench-frameworks
bench: setup
	$(PY) benchmarks/bench_fragmentation.py
	$(PY) benchmarks/bench_adaptive.py
	$(PY) benchmarks/bench_jacobian.py
	$(PY) benchmarks/bench_frameworks.py --device $(BENCH_DEVICE)

bench-frameworks: setup
	$(PY) benchmarks/bench_frameworks.py --device $(BENCH_DEVICE)

# How CMI and tau move with n_pairs and n_points over 3 pair seeds (~30-60 min; cached in
# results/bench_pairs/, resumable).
bench-pairs: setup
	$(PY) benchmarks/pairs_and_points.py

# Which intervals adaptive counting must refine: every rule replayed on the stored dense grids of
# every model of the bundled image tasks and the development suite (make dev-suite first; ~15 min
# to store them in results/adaptive_grids/, resumable; the replay takes a few minutes).
.PHONY: bench-rules
bench-rules: setup
	$(PY) benchmarks/adaptive_rules.py --data $(DATA) $(DEV_DATA)

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

# The seed papers' observations: make experiment NAME=through_training|double_descent|double_descent_conv|weight_norms|batchnorm
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

# The benchmark suite (pgdl_harness/taskgen/benchmark_suite.py): eight tasks of 48-96 models, outside
# data/ (CI never builds it). Resumable: run again to finish; finished tasks are skipped.
BENCH_DATA ?= bench_data
WORKERS ?= 2
.PHONY: benchmark-suite
benchmark-suite: setup
	$(PY) -m pgdl_harness.taskgen.benchmark_suite --out $(BENCH_DATA) --workers $(WORKERS)

# The reporting suite: the same eight grids from seed 1, never chosen on (docs/benchmark.md, "The
# reporting suite"); benchmark-report scores the chosen default and what it is reported beside.
BENCH_REPORT_DATA ?= bench_report_data
.PHONY: benchmark-report-suite
benchmark-report-suite: setup
	$(PY) -m pgdl_harness.taskgen.benchmark_suite --reporting --out $(BENCH_REPORT_DATA) --workers $(WORKERS)
# select with the default as its only candidate chooses nothing: it writes the paired comparison of
# every measure with the default and the per-axis table (selection.md).
BENCH_REPORTED_DEFAULT := $(DEFAULT_MEASURE)
# WeightWatcher's six data-free metrics (the weightwatcher extra), reported beside on both suites.
WEIGHTWATCHER := weightwatcher_alpha weightwatcher_alpha_weighted weightwatcher_log_alpha_norm weightwatcher_log_norm \
	weightwatcher_log_spectral_norm weightwatcher_stable_rank
BENCH_REPORTED_OTHERS := davies_bouldin fragmentation_fitted_davies_bouldin fragmentation_fitted_davies_bouldin_half \
	fragmentation_davies_bouldin natekar_sharma \
	fragmentation fragmentation_fitted jacobian_norm davies_bouldin_penultimate distance_from_init parameter_norm \
	output_margin mixup_error sparsity silhouette natekar_sharma_dbi \
	fragmentation_penultimate fragmentation_wide fragmentation_nearest fragmentation_nearest_other fragmentation_mixup \
	fragmentation_per_length fragmentation_off_label fragmentation_tiebreak fragmentation_penultimate_per_length \
	fragmentation_fitted_davies_bouldin_quarter_floor fragmentation_fitted_beyond_davies_bouldin_quarter \
	fragmentation_fitted_relative_init_davies_bouldin_quarter $(WEIGHTWATCHER)
BENCH_REPORT_OUT ?= results/benchmark_report
.PHONY: benchmark-report
benchmark-report: setup benchmark-report-suite
	$(PY) -m pgdl_harness compare --data $(BENCH_REPORT_DATA) --measures $(BENCH_REPORTED_DEFAULT) \
		$(BENCH_REPORTED_OTHERS) --out $(BENCH_REPORT_OUT) --workers $(WORKERS)
	$(PY) -m pgdl_harness select --data $(BENCH_REPORT_DATA) --results $(BENCH_REPORT_OUT) \
		--candidates $(BENCH_REPORTED_DEFAULT) --fixed $(BENCH_REPORTED_OTHERS) --reference $(BENCH_REPORTED_DEFAULT)

# The protocol of docs/benchmark.md on the suite (its fifth round): the candidates and the measures
# reported beside them, pair seed 0 (compare, cached and resumable), then leave-one-family-out
# selection (select) against the default the round started from.
# BENCH_OTHERS="..." chooses the measures reported beside.
BENCH_CANDIDATES := $(DEFAULT_MEASURE) fragmentation_fitted_davies_bouldin_quarter_floor \
	fragmentation_fitted_beyond_davies_bouldin_quarter fragmentation_fitted_relative_init_davies_bouldin_quarter
BENCH_OTHERS ?= davies_bouldin fragmentation_fitted natekar_sharma $(WEIGHTWATCHER)
BENCH_OUT ?= results/benchmark
.PHONY: benchmark-study
benchmark-study: setup benchmark-suite
	$(PY) -m pgdl_harness compare --data $(BENCH_DATA) --measures $(BENCH_CANDIDATES) $(BENCH_OTHERS) \
		--out $(BENCH_OUT) --workers $(WORKERS)
	$(PY) -m pgdl_harness select --data $(BENCH_DATA) --results $(BENCH_OUT) --candidates $(BENCH_CANDIDATES) \
		--fixed $(BENCH_OTHERS) --reference $(DEFAULT_MEASURE)

# score and compare in one process and with worker processes on the bundled image tasks (seconds
# per model, speed-up), and the task generator's models per minute with 1 and 2 workers (~10 min).
.PHONY: bench-workers
bench-workers: setup
	$(PY) benchmarks/bench_workers.py

# Seconds per model with the local engine and with Ray (1 and 2 workers) on a bundled task.
.PHONY: bench-engines
bench-engines: setup
	$(PY) benchmarks/bench_engines.py $(TASK)

# The variant study behind the default (README, "Which fragmentation"): the bundled tasks and the
# development suite in one root of symbolic links (results/study/tasks), the fragmentation
# variants with STUDY_SEEDS pair seeds, then every other measure (and seed 0 of the variants)
# in one table. Both share one cache: cached, resumable, and the second run only adds measures.
STUDY_SEEDS ?= 3
STUDY_VARIANTS := fragmentation fragmentation_any fragmentation_different_class fragmentation_nearest \
	fragmentation_per_length fragmentation_off_label fragmentation_penultimate fragmentation_middle fragmentation_hidden
STUDY_OTHERS := fragmentation_tiebreak fragmentation_penultimate_per_length sparsity \
	davies_bouldin silhouette natekar_sharma mixup_error output_margin parameter_norm distance_from_init
.PHONY: study
study: setup dev-suite
	mkdir -p results/study/tasks results/study/all
	for task in $(DATA)/*/ $(DEV_DATA)/*/; do ln -sfn "$$(cd "$$task" && pwd)" "results/study/tasks/$$(basename "$$task")"; done
	$(PY) -m pgdl_harness compare --data results/study/tasks --measures $(STUDY_VARIANTS) --seeds $(STUDY_SEEDS) \
		--out results/study/variants
	ln -sfn ../variants/cache results/study/all/cache
	$(PY) -m pgdl_harness compare --data results/study/tasks --measures $(STUDY_VARIANTS) $(STUDY_OTHERS) \
		--out results/study/all
