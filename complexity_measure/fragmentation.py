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
# - 2048 pairs, 17 points (a step of 1/8 of the pair distance): the cheapest setting whose CMI and
#   Kendall's tau on both bundled image tasks sit within one standard deviation (over 3 pair
#   seeds) of those of 2048 pairs x 65 points (README, "How many pairs and points"). Fewer pairs
#   move CMI by several points with the seed; more points barely move the scores. With adaptive
#   counting it costs ~9,700 forward passes per model (the former 512 x 33 dense grid: 16,896).
DEFAULT_PAIRS = "same_class"
DEFAULT_N_PAIRS = 2048
DEFAULT_N_POINTS = 17
DEFAULT_EXTEND = 0.5
DEFAULT_AGGREGATE = "mean"
DEFAULT_SEED = 0
# Adaptive counting (see count_changes_adaptively): the same counts as the dense grid on nearly
# every path for a fraction of the forward passes; figures in the README.
COUNTINGS = ("adaptive", "dense")
DEFAULT_COUNTING = "adaptive"
DEFAULT_COARSE_POINTS = 3
DEFAULT_REFINE_MARGIN = 1.5


def fragmentation_score(model, inputs, labels, *, pairs: str = DEFAULT_PAIRS,
                        n_pairs: int = DEFAULT_N_PAIRS, n_points: int = DEFAULT_N_POINTS,
                        extend: float = DEFAULT_EXTEND, aggregate: str = DEFAULT_AGGREGATE,
                        layer: int | str | None = None, seed: int = DEFAULT_SEED,
                        counting: str = DEFAULT_COUNTING, coarse_points: int = DEFAULT_COARSE_POINTS,
                        refine_margin: float = DEFAULT_REFINE_MARGIN,
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
    counting : ``"adaptive"`` (default) evaluates a coarse grid of ``coarse_points`` per path and
        bisects, down to the ``n_points`` grid, only intervals whose ends differ in class or whose
        top-2 margins are small for the path (``refine_margin``, see ``count_changes_adaptively``);
        ``"dense"`` evaluates all ``n_points``. Adaptive never counts more than dense and, on the
        bundled image tasks, counts the same on >= 99.9% of paths with 16% of the passes on a
        33-point grid and 28% on the default 17-point grid.
    coarse_points, refine_margin : the adaptive rule (ignored by ``"dense"``).
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
    if counting not in COUNTINGS:
        raise ValueError(f"counting must be one of {COUNTINGS}, got {counting!r}")
    if layer == "middle":
        layer = middle_activation_layer(model)
    first, second = draw_pairs(inputs, labels, pairs=pairs, n_pairs=n_pairs, seed=seed)
    positions = path_positions(n_points, extend)
    if counting == "dense":
        changes = path_class_changes(model, inputs[first], inputs[second], positions,
                                     layer=layer, batch_size=batch_size)
    else:
        changes, _ = adaptive_path_class_changes(model, inputs[first], inputs[second], positions,
                                                 coarse_points=coarse_points, refine_margin=refine_margin,
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
    # Two uniform numbers per pair, drawn row by row from one seeded stream: pair p depends only on
    # the seed and p, so the first k of n pairs are exactly the pairs of n_pairs=k (a benchmark can
    # evaluate 2048 paths once and read every smaller n_pairs off its prefix).
    uniform = np.random.default_rng(seed).random((n_pairs, 2))
    n = len(labels)
    if pairs == "same_class":
        eligible = np.flatnonzero(counts[np.searchsorted(classes, sorted_labels)] >= 2)
        if len(eligible) == 0:
            raise ValueError("pairs='same_class' needs a class with at least two examples")
        first = eligible[_uniform_index(uniform[:, 0], len(eligible))]
        block = np.searchsorted(classes, sorted_labels[first])
        # A uniform draw among the other members of the class: skip over the first example itself.
        second = starts[block] + _uniform_index(uniform[:, 1], counts[block] - 1)
        second = second + (second >= first)
    elif pairs == "different_class":
        if len(classes) < 2:
            raise ValueError("pairs='different_class' needs at least two classes")
        first = _uniform_index(uniform[:, 0], n)
        block = np.searchsorted(classes, sorted_labels[first])
        # A uniform draw among the examples outside the first one's class block.
        position = _uniform_index(uniform[:, 1], n - counts[block])
        second = position + counts[block] * (position >= starts[block])
    else:
        if n < 2:
            raise ValueError("pairs='any' needs at least two examples")
        first = _uniform_index(uniform[:, 0], n)
        second = _uniform_index(uniform[:, 1], n - 1)
        second = second + (second >= first)
    return order[first], order[second]


def _uniform_index(uniform: np.ndarray, size) -> np.ndarray:
    """Integers uniform on ``0 .. size-1`` (elementwise) from uniform numbers in [0, 1)."""
    return np.minimum((uniform * size).astype(np.int64), np.asarray(size) - 1)


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


def adaptive_path_class_changes(model, starts: np.ndarray, ends: np.ndarray, positions: np.ndarray, *,
                                coarse_points: int = DEFAULT_COARSE_POINTS,
                                refine_margin: float = DEFAULT_REFINE_MARGIN, layer: int | None = None,
                                batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``path_class_changes`` evaluating only the points where the class may change.

    Paths and ``positions`` (the dense grid) as in ``path_class_changes``; the points evaluated are
    always a subset of the dense grid, chosen by ``count_changes_adaptively`` (a coarse grid of
    ``coarse_points``, then bisection of the intervals whose ends differ in class or whose
    margins are close to zero for the path's margin slope, see ``refine_margin`` there). Each
    refinement round sends the points of all paths through one compiled function.

    Returns ``(changes, evaluations)``, int arrays of shape ``(n_paths,)``: class changes per
    path (at most the dense count; equal to it on >= 99.9% of paths of the bundled image tasks
    at the defaults) and forward passes spent per path.
    """
    positions = np.asarray(positions, dtype=np.float32)
    evaluator = _PathEvaluator(model, starts, ends, layer, batch_size)
    return count_changes_adaptively(lambda rows, columns: evaluator(rows, positions[columns]),
                                    evaluator.n_paths, len(positions), coarse_points=coarse_points,
                                    refine_margin=refine_margin)


def path_point_predictions(model, starts: np.ndarray, ends: np.ndarray, positions: np.ndarray, *,
                           layer: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and top-2 logit margin at every point of every path.

    Paths as in ``path_class_changes``. Returns ``(classes, margins)``, both of shape
    ``(n_paths, n_points)``: the argmax class (int) and the largest minus the second-largest
    output (float32, >= 0; small near a class boundary). For studies of the grid (how counts move
    with ``n_points``, which intervals adaptive counting must refine) from one dense evaluation.
    """
    positions = np.asarray(positions, dtype=np.float32)
    evaluator = _PathEvaluator(model, starts, ends, layer, batch_size)
    n_paths, n_points = evaluator.n_paths, len(positions)
    rows = np.repeat(np.arange(n_paths), n_points)
    classes, margins = evaluator(rows, np.tile(positions, n_paths))
    return classes.reshape(n_paths, n_points), margins.reshape(n_paths, n_points)


class _PathEvaluator:
    """Classifies arbitrary points ``a_p + t (b_p - a_p)`` of a set of paths, batch by batch.

    The path ends (representations at ``layer``) are kept as tensors; each call takes a flat list
    of (path row, t) and runs it through one compiled function in batches of ``batch_size``
    points. The function is traced once per model whatever the number of points asked for
    (adaptive counting asks for a different number in every refinement round).
    """

    def __init__(self, model, starts, ends, layer, batch_size):
        starts = np.asarray(starts, dtype=np.float32)
        ends = np.asarray(ends, dtype=np.float32)
        if starts.shape != ends.shape:
            raise ValueError(f"starts and ends must have the same shape, got {starts.shape} and {ends.shape}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if len(starts) == 0:
            raise ValueError("no paths to evaluate")
        _, tail = split_model(model, layer)
        both = representations(model, np.concatenate([starts, ends]), layer, batch_size)
        self.n_paths = len(starts)
        self.batch_size = batch_size
        both = np.asarray(both, dtype=np.float32)
        self._first = tf.constant(both[:self.n_paths])
        self._second = tf.constant(both[self.n_paths:])
        self._evaluate = _point_classifier(tail, both.shape[1:])

    def __call__(self, rows: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(classes, margins)`` of shape ``(len(rows),)`` at points ``t`` of paths ``rows``."""
        rows = np.asarray(rows, dtype=np.int32)
        t = np.asarray(t, dtype=np.float32)
        classes, margins = [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
        for i in range(0, len(rows), self.batch_size):
            c, m = self._evaluate(self._first, self._second, tf.constant(rows[i:i + self.batch_size]),
                                  tf.constant(t[i:i + self.batch_size]))
            classes.append(c.numpy())
            margins.append(m.numpy())
        return np.concatenate(classes), np.concatenate(margins)


def _point_classifier(tail, feature_shape):
    # One trace for every number of points (the batch axis is left unknown): refinement rounds
    # ask for different numbers, and padding them to a fixed size would waste up to a batch a round.
    ends = tf.TensorSpec((None,) + tuple(feature_shape), tf.float32)
    points = tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None,), tf.float32)

    @tf.function(autograph=False, input_signature=(ends, ends) + points)
    def classify(first, second, rows, t):
        a = tf.gather(first, rows)
        b = tf.gather(second, rows)
        # Broadcast t over the feature axes: (n, 1, ..., 1).
        t_shape = tf.concat([tf.shape(t), tf.ones_like(tf.shape(a)[1:])], axis=0)
        outputs = run_layers(tail, a + tf.reshape(t, t_shape) * (b - a))
        top = tf.math.top_k(outputs, k=min(2, outputs.shape[-1])).values
        return tf.argmax(outputs, axis=-1), top[:, 0] - top[:, -1]

    return classify


def count_changes_adaptively(classify, n_paths: int, n_points: int, *, coarse_points: int,
                             refine_margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Class changes along paths on a grid of ``n_points``, evaluating only where a change may be.

    ``classify(rows, columns)`` returns ``(classes, margins)`` (arrays of shape ``(len(rows),)``)
    at grid point ``columns[i]`` of path ``rows[i]``; ``margins`` is the top-2 output margin
    (>= 0). Every path is first evaluated at ``coarse_points`` evenly spaced grid points (ends
    included). Then, round by round, every interval between neighbouring evaluated points that is
    longer than one grid step is bisected (at a grid point) when its two ends differ in class, or
    when they agree but the sum of their margins is below ``refine_margin`` times the interval's
    length times the path's margin slope (the largest margin change per grid step between
    neighbouring coarse points; a change of class counts as a change of ``m_left + m_right``):
    if the margin changed no faster inside than that, a boundary cannot hide there when the sum
    exceeds slope x length, so ``refine_margin >= 1`` refines every interval where a
    Lipschitz-like margin could dip to zero, and 0 is plain bisection. Each round is one call of
    ``classify`` for all paths.

    Returns ``(changes, evaluations)``, both int arrays of shape ``(n_paths,)``: class changes
    between consecutive evaluated points (never more than the dense grid's count, and equal to it
    unless an interval with agreeing ends was left out while it leaves and re-enters the class) and
    points evaluated per path.
    """
    if coarse_points < 2:
        raise ValueError(f"coarse_points must be at least 2, got {coarse_points}")
    if refine_margin < 0:
        raise ValueError(f"refine_margin must be >= 0, got {refine_margin}")
    coarse = np.unique(np.round(np.linspace(0, n_points - 1, min(coarse_points, n_points))).astype(np.int64))
    classes = np.full((n_paths, n_points), -1, dtype=np.int64)
    margins = np.zeros((n_paths, n_points), dtype=np.float64)

    def evaluate(rows, columns):
        classes[rows, columns], margins[rows, columns] = classify(rows, columns)

    evaluate(np.repeat(np.arange(n_paths), len(coarse)), np.tile(coarse, n_paths))
    path = np.repeat(np.arange(n_paths), len(coarse) - 1)
    left, right = np.tile(coarse[:-1], n_paths), np.tile(coarse[1:], n_paths)
    slope = np.zeros(n_paths)
    new = np.ones(len(path), dtype=bool)
    while True:
        differ = classes[path, left] != classes[path, right]
        margin_sum = margins[path, left] + margins[path, right]
        # The path's margin slope: the fastest change per grid step seen between neighbouring
        # evaluated points so far (it grows as bisection looks closer, and intervals left alone
        # in earlier rounds are checked again against it).
        change = np.where(differ, margin_sum, np.abs(margins[path, right] - margins[path, left]))
        np.maximum.at(slope, path[new], change[new] / (right - left)[new])
        split = (right - left > 1) & (differ | (margin_sum < refine_margin * slope[path] * (right - left)))
        if not split.any():
            break
        keep = ~split & (right - left > 1)
        middle = (left[split] + right[split]) // 2
        evaluate(path[split], middle)
        path = np.concatenate([path[keep], path[split], path[split]])
        left = np.concatenate([left[keep], left[split], middle])
        right = np.concatenate([right[keep], middle, right[split]])
        new = np.arange(len(path)) >= keep.sum()
    evaluated = classes >= 0
    # Carry each evaluated class forward over the skipped points (point 0 is always evaluated), so
    # changes between consecutive evaluated points are changes between consecutive grid points.
    last = np.maximum.accumulate(np.where(evaluated, np.arange(n_points), 0), axis=1)
    filled = np.take_along_axis(classes, last, axis=1)
    return np.sum(filled[:, 1:] != filled[:, :-1], axis=1), np.sum(evaluated, axis=1)
