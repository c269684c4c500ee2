"""``make_task``: train a complete hyperparameter grid of one model family and write it as a PGDL task.

Reproducibility: the data split comes from ``seed``; model ``i`` is initialised, shuffled and
dropped out from a seed derived from ``(seed, i)`` alone, and TensorFlow op determinism is turned
on, so the same command gives the same task on the same machine and TensorFlow build with the
same TensorFlow thread count (also when an interrupted run is resumed; see suite.py on threads). This turns on ``tf.config.experimental.enable_op_determinism``
for the whole process.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Mapping, Sequence

from .errors import TaskGenerationError
from .images import DATASETS
from .spec import DEFAULTS, command_line, grid_points, validated_spec
from .writer import (CONFIGS_NAME, LOG_NAME, ensure_dataset, environment, folder_bytes, is_complete_model,
                     make_model, model_configs, prepare_task_dir, readme, summary_line, write_json_atomic)


def make_task(
    name: str,
    out_dir: str | os.PathLike,
    *,
    family: str,
    dataset: str = "mnist14",
    seed: int = DEFAULTS["seed"],
    grid: Mapping[str, Sequence] | None = None,
    n_train: int = DEFAULTS["n_train"],
    n_test: int = DEFAULTS["n_test"],
    num_shards: int = DEFAULTS["num_shards"],
    max_epochs: int = DEFAULTS["max_epochs"],
    target_train_acc: float = DEFAULTS["target_train_acc"],
    learning_rate: float = DEFAULTS["learning_rate"],
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    progress_bar: bool = True,
) -> Path:
    """Generate (or finish) the PGDL task ``<out_dir>/<name>`` and return its folder.

    Args:
        name: task folder name (a plain name, no path separators).
        family: a key of FAMILIES ("vgg", "nin", "allconv", "mlp").
        dataset: a key of DATASETS ("mnist", "mnist14", "digits").
        seed: determines the split and, with the model id, each model's initialisation and training.
        grid: overrides of the family's default grid, {hyperparameter: [values]}; a hyperparameter
            with one value is a fixed setting and not listed among the task's hparams.
        n_train, n_test: class-balanced split sizes; num_shards: tfrecord shards per split.
        max_epochs, target_train_acc: the stopping rule (see pgdl_harness.taskgen.training).
        learning_rate: Adam's learning rate for every model, unless the grid has a learning_rate axis.
        resume: continue an interrupted run with the same settings, skipping complete models.
        force: delete an existing task folder first.
        progress: show a progress bar and one line per model on stderr.
        progress_bar: with ``progress``, the bar too (off: the per-model lines alone).

    Raises:
        TaskGenerationError: bad argument, existing folder without resume/force, or a dataset on
            disk that differs from what the seed gives.
    """
    if not name or name in (".", "..") or Path(name).name != name:
        raise TaskGenerationError(f"task name must be a plain folder name, got {name!r}")
    if resume and force:
        raise TaskGenerationError("resume and force exclude each other")
    spec = validated_spec(family, dataset, seed, grid, n_train=n_train, n_test=n_test, num_shards=num_shards,
                          max_epochs=max_epochs, target_train_acc=target_train_acc, learning_rate=learning_rate)
    import tensorflow as tf
    from tqdm import tqdm

    tf.config.experimental.enable_op_determinism()
    task_dir = Path(out_dir) / name
    log = prepare_task_dir(task_dir, spec, resume=resume, force=force)
    log.setdefault("environment", environment())  # logs written before it was recorded
    for leftover in task_dir.glob(".building_*"):
        shutil.rmtree(leftover)
    splits, dataset_seconds = ensure_dataset(task_dir, spec)
    if not log["models"]:
        log["dataset_seconds"] = round(dataset_seconds, 2)
    write_json_atomic(task_dir / LOG_NAME, log)

    points = grid_points(spec["grid"])
    bar = tqdm(points, desc=name, unit="model", disable=not (progress and progress_bar), file=sys.stderr)
    for point in bar:
        if is_complete_model(task_dir, point, log):
            continue
        record = make_model(task_dir, point, splits, spec)
        log["models"][str(point.model_id)] = record
        write_json_atomic(task_dir / LOG_NAME, log)
        if progress:
            bar.write(f"{name} model_{point.model_id} {point.label()}: train_acc {record['train_acc']:.4f}"
                      f" test_acc {record['test_acc']:.4f} gap {record['train_acc'] - record['test_acc']:.4f},"
                      f" {record['epochs']} epochs ({record['stopped_by']}), {record['seconds']:.1f} s",
                      file=sys.stderr)
    bar.close()

    configs = model_configs(points, spec["grid"], log)
    write_json_atomic(task_dir / CONFIGS_NAME, configs)
    (task_dir / "NOTICE").write_text(DATASETS[dataset].notice)
    # README last: its presence marks a finished task (see writer.is_complete_task).
    (task_dir / "README.md").unlink(missing_ok=True)
    size = folder_bytes(task_dir)
    (task_dir / "README.md").write_text(readme(name, command_line(name, out_dir, spec), spec, log, configs, size))
    if progress:
        print(summary_line(name, configs, log), file=sys.stderr)
    return task_dir
