"""Fragmentation: how often a classifier's predicted class changes along straight paths through data.

A model that fits its training data with a simple decision function keeps its prediction along
the line between two training inputs of the same class; a model that has fragmented its input
space into many small class regions changes its prediction many times. Mouton et al. (2024),
"Is network fragmentation a useful complexity measure?", arXiv:2411.04695, find that
fragmentation follows the generalization gap (and double descent), in the input space and in
hidden representations. The recipe below is ours: walk the line between pairs of training
examples and count predicted-class changes at evenly spaced points.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .dataset import class_indices
from .sampling import canonical_order
from .forward import (DEFAULT_BATCH_SIZE, check_inputs_fit_model, middle_activation_layer, representations,
                      run_layers, split_model)

PAIR_MODES = ("same_class", "different_class", "any")
AGGREGATIONS = ("mean", "fraction", "median", "max")

# Defaults, and why:
# - same-class pairs: a model that fits its training data needs no class change on such a
#   path, so every change counted is fragmentation rather than a change the labels force.
# - paths extended by half their length beyond both ends (t in [-0.5, 1.5]): same-class paths
#   inside [0, 1] rarely cross a boundary (0-14% of paths on a small MNIST task), so many models
#   tie; on that task the extension roughly tripled Kendall's tau (0.11 to 0.36) at the same cost
#   per point.
# - 33 points: a step of 1/16 of the pair distance; 512 pairs: counts resolve to 1/512 and the
#   whole measure costs ~17k forward passes, seconds per model on a CPU for small convnets.
DEFAULT_PAIRS = "same_class"
DEFAULT_N_PAIRS = 512
DEFAULT_N_POINTS = 33
DEFAULT_EXTEND = 0.5
DEFAULT_AGGREGATE = "mean"
DEFAULT_SEED = 0


def fragmentation_score(model, inputs, labels, *, pairs: str = DEFAULT_PAIRS,
                        n_pairs: int = DEFAULT_N_PAIRS, n_points: int = DEFAULT_N_POINTS,
                        extend: float = DEFAULT_EXTEND, aggregate: str = DEFAULT_AGGREGATE,
                        layer: int | str | None = None, seed: int = DEFAULT_SEED,
                        batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """Predicted-class changes along straight paths between pairs of training examples.

    Parameters
    ----------
    model : Sequential Keras classifier (Keras 3 ``tf.keras`` or Keras 2 ``tf_keras``) whose
        outputs are class scores (logits or probabilities: only their argmax is used).
    inputs : array of shape ``(n,) + input_shape``, the training inputs.
    labels : array of shape ``(n,)`` (class indices) or ``(n, k)`` (one-hot).
    pairs : ``"same_class"`` (default), ``"different_class"`` or ``"any"``: which pairs of
        training examples are the ends of the paths. Pairs are drawn with replacement, never an
        example with itself.
    n_pairs : how many paths.
    n_points : points per path, evenly spaced in ``t``, ends included (at least 2).
    extend : each path is ``x_a + t (x_b - x_a)`` for ``t`` from ``-extend`` to ``1 + extend``:
        0 walks exactly from one example to the other.
    aggregate : how per-path counts become one number: ``"mean"`` changes per path (default),
        ``"fraction"`` of paths with at least one change, ``"median"`` or ``"max"``.
    layer : None interpolates in the input space; an integer index (negative counts from the end)
        interpolates between the two examples' representations at that layer's output and runs
        the rest of the network on the interpolated points. ``"middle"`` is the middle hidden
        layer with a nonlinearity (``forward.middle_activation_layer``), found per model.
    seed : the pairs drawn depend only on the seed and the data (not on its order, see
        ``draw_pairs``), so every model of a task is measured on the same paths.
    batch_size : points per forward pass.

    Returns
    -------
    float >= 0. Larger means more fragmented; a larger value is expected to mean a larger
    generalization gap.
    """
    inputs = np.asarray(inputs, dtype=np.float32)
    labels = class_indices(labels)
    if len(inputs) != len(labels):
        raise ValueError(f"inputs has {len(inputs)} examples but labels has {len(labels)}")
    if aggregate not in AGGREGATIONS:
        raise ValueError(f"aggregate must be one of {AGGREGATIONS}, got {aggregate!r}")
    check_inputs_fit_model(model, inputs)
    if layer == "middle":
        layer = middle_activation_layer(model)
    first, second = draw_pairs(inputs, labels, pairs=pairs, n_pairs=n_pairs, seed=seed)
    changes = path_class_changes(model, inputs[first], inputs[second], path_positions(n_points, extend),
                                 layer=layer, batch_size=batch_size)
    return aggregate_changes(changes, aggregate)


def path_positions(n_points: int, extend: float = 0.0) -> np.ndarray:
    """The ``t`` values of the points along each path: ``n_points`` from ``-extend`` to ``1 + extend``."""
    if n_points < 2:
        raise ValueError(f"n_points must be at least 2, got {n_points}")
    if extend < 0:
        raise ValueError(f"extend must be >= 0, got {extend}")
    return np.linspace(-extend, 1.0 + extend, n_points, dtype=np.float32)


def aggregate_changes(changes: np.ndarray, aggregate: str = DEFAULT_AGGREGATE) -> float:
    """One number from per-path class-change counts (see ``fragmentation_score``)."""
    if aggregate == "mean":
        return float(np.mean(changes))
    if aggregate == "fraction":
        return float(np.mean(changes > 0))
    if aggregate == "median":
        return float(np.median(changes))
    if aggregate == "max":
        return float(np.max(changes))
    raise ValueError(f"aggregate must be one of {AGGREGATIONS}, got {aggregate!r}")


def draw_pairs(inputs: np.ndarray, labels: np.ndarray, *, pairs: str = DEFAULT_PAIRS,
               n_pairs: int = DEFAULT_N_PAIRS, seed: int = DEFAULT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(first, second)`` of ``n_pairs`` pairs of distinct examples, drawn with replacement.

    The examples are first put in a canonical order (by label, then by a fixed random projection
    of the inputs), so the same examples give the same pairs whatever order the dataset listed
    them in: PGDL's kit reads the shards in ``glob`` order, which is not fixed.
    """
    if pairs not in PAIR_MODES:
        raise ValueError(f"pairs must be one of {PAIR_MODES}, got {pairs!r}")
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be at least 1, got {n_pairs}")
    order = canonical_order(inputs, labels)
    sorted_labels = labels[order]
    classes, starts, counts = np.unique(sorted_labels, return_index=True, return_counts=True)
    rng = np.random.default_rng(seed)
    n = len(labels)
    if pairs == "same_class":
        eligible = np.flatnonzero(counts[np.searchsorted(classes, sorted_labels)] >= 2)
        if len(eligible) == 0:
            raise ValueError("pairs='same_class' needs a class with at least two examples")
        first = rng.choice(eligible, size=n_pairs)
        block = np.searchsorted(classes, sorted_labels[first])
        # A uniform draw among the other members of the class: skip over the first example itself.
        offset = rng.integers(0, counts[block] - 1)
        second = starts[block] + offset
        second = second + (second >= first)
    elif pairs == "different_class":
        if len(classes) < 2:
            raise ValueError("pairs='different_class' needs at least two classes")
        first = rng.integers(0, n, size=n_pairs)
        block = np.searchsorted(classes, sorted_labels[first])
        # A uniform draw among the examples outside the first one's class block.
        position = rng.integers(0, n - counts[block])
        second = position + counts[block] * (position >= starts[block])
    else:
        if n < 2:
            raise ValueError("pairs='any' needs at least two examples")
        first = rng.integers(0, n, size=n_pairs)
        second = rng.integers(0, n - 1, size=n_pairs)
        second = second + (second >= first)
    return order[first], order[second]



def path_class_changes(model, starts: np.ndarray, ends: np.ndarray, positions: np.ndarray, *,
                       layer: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """Number of predicted-class changes along each path, shape ``(n_paths,)``, int.

    Path ``p`` visits ``a_p + t (b_p - a_p)`` for each ``t`` in ``positions``, where ``a_p`` and
    ``b_p`` are the representations of ``starts[p]`` and ``ends[p]`` at the output of ``layer``
    (the inputs themselves for ``layer=None``); the rest of the network classifies each point.
    A change is a pair of consecutive points with different argmax classes.
    """
    starts = np.asarray(starts, dtype=np.float32)
    ends = np.asarray(ends, dtype=np.float32)
    if starts.shape != ends.shape:
        raise ValueError(f"starts and ends must have the same shape, got {starts.shape} and {ends.shape}")
    _, tail = split_model(model, layer)
    both = representations(model, np.concatenate([starts, ends]), layer, batch_size)
    first, second = both[:len(starts)], both[len(starts):]
    counter = _change_counter(tail, np.asarray(positions, dtype=np.float32))
    # All points of a chunk of paths go through the network in one compiled call; the last chunk
    # is padded to full size so the function is traced once.
    chunk = max(1, batch_size // len(positions))
    n_paths = len(first)
    padded = -(-n_paths // chunk) * chunk
    pad = [(0, padded - n_paths)] + [(0, 0)] * (first.ndim - 1)
    first, second = np.pad(first, pad, mode="edge"), np.pad(second, pad, mode="edge")
    counts = [counter(tf.constant(first[i:i + chunk]), tf.constant(second[i:i + chunk])).numpy()
              for i in range(0, padded, chunk)]
    return np.concatenate(counts)[:n_paths]


def _change_counter(tail, positions: np.ndarray):
    t = tf.constant(positions)

    @tf.function(autograph=False)
    def count(a, b):
        n_paths = tf.shape(a)[0]
        n_points = tf.shape(t)[0]
        feature_shape = tf.shape(a)[1:]
        # Broadcast t over the feature axes: (1, n_points, 1, ..., 1).
        t_shape = tf.concat([[1, n_points], tf.ones_like(feature_shape)], axis=0)
        points = a[:, None] + tf.reshape(t, t_shape) * (b - a)[:, None]
        points = tf.reshape(points, tf.concat([[n_paths * n_points], feature_shape], axis=0))
        predicted = tf.argmax(run_layers(tail, points), axis=-1)
        predicted = tf.reshape(predicted, [n_paths, n_points])
        changed = tf.not_equal(predicted[:, 1:], predicted[:, :-1])
        return tf.reduce_sum(tf.cast(changed, tf.int32), axis=1)

    return count
