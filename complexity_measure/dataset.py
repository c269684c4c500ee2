"""Turning PGDL's training ``tf.data.Dataset`` into the arrays the measures work on."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# The measures look at no more than this many training examples. PGDL's largest training sets
# (CIFAR-10, SVHN, CINIC-10) have 50k-90k images; 10k of them is ~120 MB of float32 CIFAR
# images, reads in a few seconds, and is far more than any measure here samples from.
DEFAULT_MAX_EXAMPLES = 10_000


def dataset_to_arrays(dataset: tf.data.Dataset, max_examples: int | None = DEFAULT_MAX_EXAMPLES
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(inputs, label)`` pairs from an unbatched dataset, as PGDL's kit hands them over.

    Returns ``inputs`` (float32, shape ``(n,) + input_shape``) and ``labels`` (int64, shape
    ``(n,)``), the first ``max_examples`` examples in the dataset's order (all of them when
    ``max_examples`` is None). One-hot labels are turned into class indices.
    """
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(f"expected a dataset of (inputs, label) pairs, got elements of structure {spec}")
    if max_examples is not None:
        if max_examples < 1:
            raise ValueError(f"max_examples must be at least 1 or None, got {max_examples}")
        dataset = dataset.take(max_examples)
    inputs, labels = [], []
    for x, y in dataset.batch(1024).as_numpy_iterator():
        inputs.append(x)
        labels.append(y)
    if not inputs:
        raise ValueError("the dataset is empty")
    inputs = np.concatenate(inputs).astype(np.float32, copy=False)
    return inputs, class_indices(np.concatenate(labels))


def class_indices(labels: np.ndarray) -> np.ndarray:
    """Labels as a 1-D int64 array of class indices; accepts indices of shape (n,) or (n, 1), or one-hot."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    elif labels.ndim == 2:
        labels = labels.argmax(axis=1)
    if labels.ndim != 1:
        raise ValueError(f"labels must be class indices of shape (n,) or one-hot of shape (n, k), "
                         f"got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ValueError("labels must be whole class indices")
    return labels.astype(np.int64)
