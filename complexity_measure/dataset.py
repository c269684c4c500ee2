"""Turning PGDL's training ``tf.data.Dataset`` into the arrays the measures work on."""

from __future__ import annotations

import hashlib

import numpy as np

from .labels import class_indices

# The measures look at no more than this many training examples. PGDL's largest training sets
# (CIFAR-10, SVHN, CINIC-10) have 50k-90k images; 10k of them is ~120 MB of float32 CIFAR
# images, reads in a few seconds, and is far more than any measure here samples from.
DEFAULT_MAX_EXAMPLES = 10_000


def dataset_to_arrays(dataset, max_examples: int | None = DEFAULT_MAX_EXAMPLES
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(inputs, label)`` pairs from an unbatched ``tf.data.Dataset``, as PGDL's kit hands them over.

    Returns ``inputs`` (float32, shape ``(n,) + input_shape``) and ``labels`` (int64, shape
    ``(n,)``). One-hot labels are turned into class indices. A dataset of at most
    ``max_examples`` examples (or any dataset when ``max_examples`` is None) is returned whole, in
    its own order. A larger one is cut to the ``max_examples`` examples whose bytes have the
    smallest hashes (``example_hashes``), in hash order: a function of the *set* of examples,
    so the kit's ``glob`` order of the shards (which differs between machines) cannot change which
    examples a measure sees. One streaming pass; memory stays at ``max_examples`` plus one batch.
    """
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(f"expected a dataset of (inputs, label) pairs, got elements of structure {spec}")
    if max_examples is not None and (isinstance(max_examples, bool) or max_examples < 1):
        raise ValueError(f"max_examples must be at least 1 or None, got {max_examples}")
    inputs, labels, hashes = [], [], []
    kept = 0
    for x, y in dataset.batch(_READ_BATCH).as_numpy_iterator():
        x = x.astype(np.float32, copy=False)
        inputs.append(x)
        labels.append(y)
        kept += len(x)
        if max_examples is None:
            continue
        hashes.append(example_hashes(x, y))
        if kept > max_examples + _READ_BATCH:
            # Keep only the smallest hashes so far; what is dropped can never come back.
            inputs, labels, hashes = _smallest(inputs, labels, hashes, max_examples)
            kept = max_examples
    if not inputs:
        raise ValueError("the dataset is empty")
    if max_examples is not None and kept > max_examples:
        inputs, labels, hashes = _smallest(inputs, labels, hashes, max_examples)
    return np.concatenate(inputs), class_indices(np.concatenate(labels))


# Examples read per step of dataset_to_arrays.
_READ_BATCH = 1024


def example_hashes(inputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A 64-bit BLAKE2b hash of each example's input bytes (float32) and label, shape ``(n,)``, uint64."""
    inputs = np.ascontiguousarray(inputs, dtype=np.float32)
    labels = np.asarray(labels)
    return np.array([int.from_bytes(hashlib.blake2b(inputs[i].tobytes() + labels[i].tobytes(),
                                                    digest_size=8).digest(), "little")
                     for i in range(len(inputs))], dtype=np.uint64)


def _smallest(inputs: list, labels: list, hashes: list, count: int) -> tuple[list, list, list]:
    """The ``count`` examples with the smallest hashes, sorted by hash (equal hashes: equal bytes, in practice)."""
    x, y, h = np.concatenate(inputs), np.concatenate(labels), np.concatenate(hashes)
    order = np.argsort(h, kind="stable")[:count]
    return [x[order]], [y[order]], [h[order]]
