"""Seeded subsamples of the training data that do not depend on the order the data came in.

PGDL's kit reads the training shards in ``glob`` order, which is not fixed, so "the first n
examples" or "a random draw from positions 0..n-1" would measure different examples on different
runs. Sorting the examples into a canonical order first (by label, then by a fixed random
projection of the inputs, as ``fragmentation.draw_pairs`` does) makes a seeded subsample a
function of the *set* of examples and the seed alone.
"""

from __future__ import annotations

import numpy as np

from .classifier import Classifier
from .labels import class_indices

# A fixed direction, the same as fragmentation's pair drawing uses; the projection is computed in
# float64 chunks so 10,000 CIFAR-sized images never need a float64 copy of the whole array.
_PROJECTION_SEED = 12345
_PROJECTION_CHUNK = 1024


def canonical_order(inputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices that sort the examples by label, then by a fixed random projection of their inputs."""
    flat = np.asarray(inputs).reshape(len(inputs), -1)
    direction = np.random.default_rng(_PROJECTION_SEED).standard_normal(flat.shape[1])
    projection = np.concatenate([flat[start:start + _PROJECTION_CHUNK].astype(np.float64) @ direction
                                 for start in range(0, len(flat), _PROJECTION_CHUNK)]) if len(flat) else []
    return np.lexsort((projection, np.asarray(labels)))


def sample_indices(inputs: np.ndarray, labels: np.ndarray, n_examples: int, seed: int) -> np.ndarray:
    """Indices of ``min(n_examples, n)`` distinct examples drawn without replacement, in random order.

    The draw depends only on the set of ``(input, label)`` pairs and ``seed``, not on their order.
    """
    if isinstance(n_examples, bool) or not isinstance(n_examples, (int, np.integer)) or n_examples < 1:
        raise ValueError(f"n_examples must be a positive integer, got {n_examples!r}")
    if len(inputs) != len(labels):
        raise ValueError(f"inputs has {len(inputs)} examples but labels has {len(labels)}")
    order = canonical_order(inputs, labels)
    chosen = np.random.default_rng(seed).permutation(len(order))[:n_examples]
    return order[chosen]


def training_sample(model: Classifier, inputs, labels, n_examples: int | None, seed: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The training data checked against ``model`` and subsampled: ``(inputs, labels)`` arrays.

    ``inputs`` become float32 of shape ``(m,) + input_shape``, ``labels`` int64 class indices of
    shape ``(m,)`` (one-hot labels are accepted), with ``m = min(n_examples, n)`` examples drawn by
    ``sample_indices`` from the channels-last view of the inputs (``Classifier.canonical_layout``),
    so the draw is the same in every framework's layout; ``n_examples=None`` keeps every example
    in the given order.
    """
    inputs = np.asarray(inputs, dtype=np.float32)
    labels = class_indices(labels)
    if len(inputs) != len(labels):
        raise ValueError(f"inputs has {len(inputs)} examples but labels has {len(labels)}")
    if len(inputs) == 0:
        raise ValueError("no training examples given")
    model.check_inputs(inputs)
    if n_examples is None:
        return inputs, labels
    chosen = sample_indices(model.canonical_layout(inputs), labels, n_examples, seed)
    return inputs[chosen], labels[chosen]
