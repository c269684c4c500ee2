"""Writing a task folder in the PGDL starting kit's layout, and resuming one that was interrupted.

::

    dataset_1/train/shard_<k>.tfrecord   tf.train.Example records: bytes features ``inputs``
    dataset_1/test/shard_<k>.tfrecord    (serialised float32 image, HxWxC) and ``output``
                                         (serialised scalar int32 class index)
    model_<id>/config.json               {"model_config": [{"layer_name": ..., **kwargs}], "input_shape": [...]}
    model_<id>/weights_init.hdf5         weights at initialisation, legacy Keras-2 HDF5 save_weights
    model_<id>/weights.hdf5              weights after training, same format
    model_configs.json                   {"<id>": {"hparams": {...}, "metrics": {"train_acc", "test_acc"}}}

plus three files a PGDL loader ignores (no ``model`` in their names): ``generation_log.json``
(the spec, per-model epochs, stopping reason and seconds; it makes resuming possible),
``README.md`` (how the task was made, with the gap spread) and ``NOTICE`` (where the images come
from and under which terms).

Every file appears whole or not at all: JSON is written to a ``.partial`` file then renamed, the
dataset and each model folder are built under names PGDL loaders skip (``.dataset_1.partial``,
``.building_<id>``) and renamed into place when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..scoring import generalization_gaps
from .errors import TaskGenerationError
from .families import FAMILIES
from .images import DATASETS, stratified_split
from .spec import ModelPoint
from .training import Splits, fit_until_target, measure_saved_model, model_seed

LOG_NAME = "generation_log.json"
CONFIGS_NAME = "model_configs.json"
MODEL_FILES = ("config.json", "weights_init.hdf5", "weights.hdf5")


# --------------------------------------------------------------------------- small file helpers


def write_json_atomic(path: Path, content: Any) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(content, indent=2) + "\n")
    os.replace(partial, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise TaskGenerationError(f"cannot read {path}: {error}") from error


def environment() -> dict:
    """Versions and machine a task was made with: bit-identical results need the same ones."""
    import platform

    import tensorflow as tf
    import tf_keras

    return {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- the folder and its log


def _looks_like_task(task_dir: Path) -> bool:
    return any((task_dir / name).exists() for name in (LOG_NAME, CONFIGS_NAME, "dataset_1"))


def prepare_task_dir(task_dir: Path, spec: dict, *, resume: bool, force: bool) -> dict:
    """Create or reuse the task folder; return the generation log to continue from."""
    fresh_log = {"generator": "pgdl_harness.make_task", "spec": spec, "environment": environment(),
                 "dataset_seconds": 0.0, "models": {}}
    if task_dir.exists() and not task_dir.is_dir():
        raise TaskGenerationError(f"{task_dir} exists and is not a folder")
    if task_dir.exists() and any(task_dir.iterdir()):
        if force:
            if not _looks_like_task(task_dir):
                raise TaskGenerationError(
                    f"refusing to delete {task_dir}: it has no {LOG_NAME}, {CONFIGS_NAME} or dataset_1,"
                    " so it does not look like a generated task"
                )
            shutil.rmtree(task_dir)
        elif resume:
            return _log_to_resume(task_dir, spec)
        else:
            raise TaskGenerationError(
                f"{task_dir} exists and is not empty; pass resume (--resume) to continue an interrupted"
                " run with the same settings, or force (--force) to delete it and start again"
            )
    task_dir.mkdir(parents=True, exist_ok=True)
    return fresh_log


def _log_to_resume(task_dir: Path, spec: dict) -> dict:
    log_path = task_dir / LOG_NAME
    if not log_path.is_file():
        raise TaskGenerationError(f"cannot resume {task_dir}: it has no {LOG_NAME}, so it was not made by make_task")
    log = read_json(log_path)
    recorded = log.get("spec", {})
    if recorded != spec:
        differing = sorted(k for k in set(recorded) | set(spec) if recorded.get(k) != spec.get(k))
        raise TaskGenerationError(
            f"cannot resume {task_dir}: {log_path} was made with different settings ({', '.join(differing)});"
            " use the same arguments, or force to start again"
        )
    return log


def is_complete_task(task_dir: Path, spec: Mapping) -> bool:
    """Whether ``task_dir`` holds a finished task made with exactly ``spec`` (its last file written)."""
    log_path = task_dir / LOG_NAME
    if not (log_path.is_file() and (task_dir / CONFIGS_NAME).is_file() and (task_dir / "README.md").is_file()):
        return False
    log = read_json(log_path)
    return log.get("spec") == spec and len(log.get("models", {})) == len(read_json(task_dir / CONFIGS_NAME))


# --------------------------------------------------------------------------- dataset shards


def _example_bytes(tf: Any, image: np.ndarray, label: np.int32) -> bytes:
    def feature(tensor: Any) -> Any:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.serialize_tensor(tensor).numpy()]))

    features = {"inputs": feature(tf.constant(image, tf.float32)), "output": feature(tf.constant(label, tf.int32))}
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def _write_split(tf: Any, split_dir: Path, images: np.ndarray, labels: np.ndarray, num_shards: int) -> None:
    split_dir.mkdir(parents=True)
    for shard, indices in enumerate(np.array_split(np.arange(len(labels)), num_shards)):
        with tf.io.TFRecordWriter(str(split_dir / f"shard_{shard}.tfrecord")) as writer:
            for i in indices:
                writer.write(_example_bytes(tf, images[i], labels[i]))


def ensure_dataset(task_dir: Path, spec: dict) -> tuple[Splits, float]:
    """Write dataset_1 if missing, check it equals what the seed gives, return it as read from disk."""
    import tensorflow as tf

    started = time.perf_counter()
    images, labels = DATASETS[spec["dataset"]].load()
    rng = np.random.default_rng([spec["seed"], 0])
    train_idx, test_idx = stratified_split(labels, spec["n_train"], spec["n_test"], rng, spec["dataset"])
    data_dir = task_dir / "dataset_1"
    if not data_dir.exists():
        # Written under a temporary name so that an interrupted run never leaves half a dataset.
        partial = task_dir / ".dataset_1.partial"
        shutil.rmtree(partial, ignore_errors=True)
        for split, idx in (("train", train_idx), ("test", test_idx)):
            _write_split(tf, partial / split, images[idx], labels[idx], spec["num_shards"])
        os.replace(partial, data_dir)
    # Read back through the harness's reader: what is checked is what measures will see.
    from ..loading import read_split
    (train_x, train_y), (test_x, test_y) = read_split(data_dir / "train"), read_split(data_dir / "test")
    splits = Splits(train_x, train_y.astype(np.int32), test_x, test_y.astype(np.int32))
    for split, idx, x, y in (("train", train_idx, splits.train_x, splits.train_y),
                             ("test", test_idx, splits.test_x, splits.test_y)):
        if not (np.array_equal(x, images[idx]) and np.array_equal(y, labels[idx])):
            raise TaskGenerationError(
                f"{data_dir / split} does not hold the images that seed {spec['seed']} selects;"
                " force (--force) regenerates the task"
            )
    return splits, time.perf_counter() - started


# --------------------------------------------------------------------------- model folders


def make_model(task_dir: Path, point: ModelPoint, splits: Splits, spec: Mapping[str, Any]) -> dict:
    """Build, train, save and measure one model; return its generation-log record."""
    import tensorflow as tf
    import tf_keras

    started = time.perf_counter()
    source = DATASETS[spec["dataset"]]
    layers = FAMILIES[spec["family"]].layers(point.settings, source.num_classes)
    seed = model_seed(spec["seed"], point.model_id)
    # A model depends only on its own seed, never on the models trained before it in this process.
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(seed)
    config = {"model_config": layers, "input_shape": list(source.input_shape)}
    # Built by the harness's own builder (the kit's rules), in Keras 2 so that save_weights writes
    # the legacy HDF5 format.
    from ..loading import build_model
    model = build_model(config, f"{spec['family']} family config", keras=tf_keras)

    building = task_dir / f".building_{point.model_id}"  # no "model" in the name: loaders skip it
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    write_json_atomic(building / "config.json", config)
    model.save_weights(str(building / "weights_init.hdf5"))
    outcome = fit_until_target(tf, tf_keras, model, splits, point.settings, spec, seed)
    model.save_weights(str(building / "weights.hdf5"))
    measured = measure_saved_model(tf, building, model, splits)

    model_dir = task_dir / f"model_{point.model_id}"
    shutil.rmtree(model_dir, ignore_errors=True)
    os.replace(building, model_dir)
    return {
        "settings": point.settings,
        "seed": seed,
        "parameters": int(model.count_params()),
        "epochs": outcome.epochs,
        "stopped_by": outcome.stopped_by,
        **measured,
        "seconds": round(time.perf_counter() - started, 2),
    }


def is_complete_model(task_dir: Path, point: ModelPoint, log: Mapping) -> bool:
    record = log["models"].get(str(point.model_id))
    model_dir = task_dir / f"model_{point.model_id}"
    return (record is not None and record.get("settings") == point.settings
            and all((model_dir / name).is_file() for name in MODEL_FILES))


# --------------------------------------------------------------------------- task-level outputs


def model_configs(points: Sequence[ModelPoint], grid: Mapping[str, list], log: Mapping) -> dict:
    """The kit's model_configs.json object: each model's varied hparams and measured accuracies."""
    configs = {}
    for point in points:
        record = log["models"][str(point.model_id)]
        configs[str(point.model_id)] = {
            "hparams": {name: {"possible_values": grid[name], "current_value": value}
                        for name, value in point.hparams.items()},
            "metrics": {"train_acc": record["train_acc"], "test_acc": record["test_acc"]},
        }
    return configs


def gap_summary(configs: Mapping[str, Mapping]) -> dict[str, float]:
    """Min, median and max of train_acc - test_acc over the models of ``configs``."""
    gaps = list(generalization_gaps(configs).values())
    return {"min": min(gaps), "median": statistics.median(gaps), "max": max(gaps)}


def _learning_rate_text(spec: Mapping) -> str:
    values = spec["grid"].get("learning_rate")
    if values is None:
        return f"learning rate {spec['learning_rate']}"
    if len(values) == 1:
        return f"learning rate {values[0]}"
    return "learning rate `learning_rate`"


def readme(name: str, command: str, spec: Mapping, log: Mapping, configs: Mapping, size_bytes: int) -> str:
    """The task's README.md: the command that made it, its models, data, stopping rule and gaps."""
    family, source = FAMILIES[spec["family"]], DATASETS[spec["dataset"]]
    records = list(log["models"].values())
    gaps = gap_summary(configs)
    train_accs = [r["train_acc"] for r in records]
    test_accs = [r["test_acc"] for r in records]
    reached = sum(r["stopped_by"] == "target_train_acc" for r in records)
    seconds = log["dataset_seconds"] + sum(r["seconds"] for r in records)
    params = [r["parameters"] for r in records]
    varied = {k: v for k, v in spec["grid"].items() if len(v) > 1}
    fixed = {k: v[0] for k, v in spec["grid"].items() if len(v) == 1}
    lines = [
        f"# {name}: a PGDL-format task made by `pgdl_harness/make_task.py`",
        "",
        f"{len(records)} models of the `{spec['family']}` family on {source.description}: a complete grid"
        f" over {len(varied)} hyperparameters, in the PGDL starting kit's layout (`dataset_1/`, `model_<id>/`,"
        f" `{CONFIGS_NAME}`). `NOTICE` says where the images come from and under which terms.",
        "",
        "## How it was made",
        "",
        "```",
        command,
        "```",
        "",
        "(The project CLI's `make-task` subcommand takes the same arguments.) With the same command, the",
        "same machine, TensorFlow build and TensorFlow thread count give the same task: the split, every",
        "initialisation, shuffle and dropout mask come from the seed, and TensorFlow op determinism is on"
        " (the thread count changes the order of sums, and 80 epochs can grow the round-off into other"
        " models; the benchmark suites train every task with one thread). Made with "
        + ", ".join(f"{k} {v}" for k, v in log.get("environment", {}).items()) + ".",
        f"Generation took {seconds:.0f} s in total ({log['dataset_seconds']:.0f} s for the data, the rest"
        " training, saving and measuring the models; per-model seconds are in `generation_log.json`).",
        "",
        "## Models",
        "",
        family.description,
        "",
        "| hyperparameter | values | meaning |",
        "|---|---|---|",
        *[f"| `{k}` | {', '.join(json.dumps(x) for x in v)} | {family.axes[k].meaning} |" for k, v in varied.items()],
        "",
        ("Fixed for every model: " + ", ".join(f"`{k}` = {json.dumps(v)}" for k, v in fixed.items()) + "."
         if fixed else "Every setting is one of the hyperparameters above."),
        f"Parameters per model: {min(params):,} to {max(params):,}. Model ids follow the grid's product order"
        f" ({' x '.join(varied)}), the last hyperparameter varying fastest.",
        "",
        "## Data",
        "",
        f"- Input shape {list(source.input_shape)}, {source.num_classes} classes, float32 in [0, 1].",
        f"- Train: {spec['n_train']} images, test: {spec['n_test']} images, class-balanced and disjoint,"
        f" drawn with seed {spec['seed']}; {spec['num_shards']} shards per split.",
        "",
        "## Training and stopping rule",
        "",
        f"Adam ({_learning_rate_text(spec)}) on the mean cross-entropy of the logits plus"
        " `weight_decay` x the sum of squared conv and dense kernel weights. After every epoch the accuracy"
        " on the whole training split is measured in inference mode; training stops when it reaches"
        f" {spec['target_train_acc']} or after {spec['max_epochs']} epochs."
        f" {reached} of {len(records)} models reached the target; {len(records) - reached} stopped at the"
        " epoch limit.",
        "",
        "`train_acc` and `test_acc` were measured after saving, by rebuilding each model from its folder"
        " with `tf.keras` (Keras 3), loading `weights_init.hdf5` then `weights.hdf5`, and evaluating on the"
        " shards read back from disk.",
        "",
        "## Generalization gaps (train_acc - test_acc)",
        "",
        f"- min {gaps['min']:.4f}, median {gaps['median']:.4f}, max {gaps['max']:.4f}",
        f"- train_acc {min(train_accs):.4f} to {max(train_accs):.4f}; test_acc {min(test_accs):.4f} to"
        f" {max(test_accs):.4f}",
        "",
        "## Per model",
        "",
        "| id | " + " | ".join(varied) + " | train_acc | test_acc | gap | epochs | stopped by |",
        "|---" * (len(varied) + 6) + "|",
        *[f"| {key} | " + " | ".join(json.dumps(log["models"][key]["settings"][k]) for k in varied)
          + f" | {c['metrics']['train_acc']:.4f} | {c['metrics']['test_acc']:.4f}"
          f" | {c['metrics']['train_acc'] - c['metrics']['test_acc']:.4f} | {log['models'][key]['epochs']}"
          f" | {log['models'][key]['stopped_by']} |" for key, c in configs.items()],
        "",
        f"Size on disk, all files but this README: {size_bytes / 2**20:.1f} MiB.",
        "",
    ]
    return "\n".join(lines)


def summary_line(name: str, configs: Mapping, log: Mapping) -> str:
    """One line: models, gap min/median/max and how many reached the target train accuracy."""
    gaps = gap_summary(configs)
    records = list(log["models"].values())
    reached = sum(r["stopped_by"] == "target_train_acc" for r in records)
    return (f"{name}: {len(configs)} models; gap min {gaps['min']:.4f} median {gaps['median']:.4f}"
            f" max {gaps['max']:.4f}; {reached}/{len(records)} reached the target train accuracy")
