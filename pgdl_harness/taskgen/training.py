"""Training one model of a task: the seeded Adam loop, its stopping rule, and the saved model's accuracies.

- Models are built and trained with tf_keras (Keras 2), so that ``save_weights`` writes the
  legacy HDF5 format of the real PGDL tasks; Keras 3 reads those files by layer order.
- Adam (the task's learning rate, or the model's ``learning_rate`` axis value), mean sparse
  categorical cross-entropy on logits, plus weight decay as an L2 penalty
  ``weight_decay * sum(||W||^2)`` over conv and dense kernels. The penalty lives in the training
  loss, not in ``config.json``, so the configs hold only plain layers.
- Stopping rule: after every epoch the accuracy on the whole training split is measured in
  inference mode (dropout off, BatchNorm moving statistics). Training stops as soon as it reaches
  ``target_train_acc`` or after ``max_epochs`` epochs, whichever comes first.
- The recorded accuracies are those of the saved files: the model is rebuilt from its folder by
  the harness's loader with ``tf.keras`` (Keras 3), the way the organisers' kit does it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .errors import TaskGenerationError
from .spec import learning_rate

# Images per inference call when measuring accuracies (bounds memory; results do not depend on it).
EVAL_BATCH_SIZE = 250
# Keras 2 and Keras 3 run the same float32 kernels; their logits may differ only by rounding.
RELOAD_TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True)
class Splits:
    """A task's data as read back from its shards: images [N, H, W, C] float32, labels [N] int32."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


@dataclasses.dataclass
class TrainingOutcome:
    epochs: int
    stopped_by: str  # "target_train_acc" or "max_epochs"


def model_seed(task_seed: int, model_id: int) -> int:
    """The seed of model ``model_id``: from the task seed and the id alone, never from run order."""
    return int(np.random.SeedSequence([task_seed, 1, model_id]).generate_state(1)[0] % 2**31)


def batched_logits(call: Callable, images: np.ndarray) -> np.ndarray:
    """``call`` over ``images`` in batches of EVAL_BATCH_SIZE, as one [N, classes] array."""
    batches = range(0, len(images), EVAL_BATCH_SIZE)
    return np.concatenate([np.asarray(call(images[i:i + EVAL_BATCH_SIZE])) for i in batches])


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows of ``logits`` [N, classes] whose argmax equals ``labels`` [N]."""
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def fit_until_target(tf: Any, tf_keras: Any, model: Any, splits: Splits, settings: Mapping[str, Any],
                     spec: Mapping[str, Any], seed: int) -> TrainingOutcome:
    """Adam epochs over a seeded shuffle until inference-mode train accuracy reaches the target."""
    optimizer = tf_keras.optimizers.Adam(learning_rate(spec, settings))
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
        train_acc = accuracy(batched_logits(infer, splits.train_x), splits.train_y)
        if train_acc >= spec["target_train_acc"]:
            return TrainingOutcome(epoch, "target_train_acc")
    return TrainingOutcome(spec["max_epochs"], "max_epochs")


def measure_saved_model(tf: Any, model_dir: Path, trained: Any, splits: Splits) -> dict:
    """Accuracies of the files in ``model_dir`` reloaded with tf.keras, checked against ``trained``."""
    tf.keras.backend.clear_session()
    # The harness's loader rebuilds the folder as the organisers' kit does (init weights first).
    from ..loading import load_model
    reloaded = load_model(model_dir)
    train_logits = batched_logits(lambda x: reloaded(x, training=False), splits.train_x)
    trained_logits = batched_logits(lambda x: trained(x, training=False), splits.train_x)
    difference = float(np.max(np.abs(train_logits - trained_logits)))
    if difference > RELOAD_TOLERANCE * max(1.0, float(np.max(np.abs(trained_logits)))):
        raise TaskGenerationError(
            f"{model_dir}: the weights reloaded with tf.keras give logits {difference:.3g} away from the"
            " trained tf_keras model's"
        )
    test_logits = batched_logits(lambda x: reloaded(x, training=False), splits.test_x)
    return {
        "train_acc": accuracy(train_logits, splits.train_y),
        "test_acc": accuracy(test_logits, splits.test_y),
        "reload_max_abs_logit_difference": difference,
    }
