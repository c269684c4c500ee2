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

from dataclasses import dataclass

import numpy as np

from .classifier import DEFAULT_BATCH_SIZE, Classifier, names_refusals
from .frameworks import as_classifier
from .labels import class_indices
from .sampling import canonical_order

PAIR_MODES = ("same_class", "different_class", "any", "nearest", "nearest_other")
AGGREGATIONS = ("mean", "fraction", "median", "max")
# What is measured along each path (see fragmentation_score): class changes, the fraction of the
# path's points classified as neither end's label, or the changes with that fraction as a tie-break.
STATISTICS = ("changes", "off_label", "changes_then_off_label")
NORMALIZATIONS = ("none", "length")
# Which paths count: all of them, or only those whose two ends the model classifies as labelled.
ENDS = ("all", "fitted")
# Which stretch of each path the changes are counted on: all of it, between the two examples, or
# beyond them.
PARTS = ("whole", "inside", "beyond")

# Defaults, and why:
# - same-class pairs: a model that fits its training data needs no class change on such a
#   path, so every change counted is fragmentation rather than a change the labels force.
# - paths extended by half their length beyond both ends (t in [-0.5, 1.5]): same-class paths
#   inside [0, 1] rarely cross a boundary (0-14% of paths on a small MNIST task), so many models
#   tie; on that task the extension roughly tripled Kendall's tau (0.11 to 0.36) at the same cost
#   per point.
# - 2048 pairs, 17 points (a step of 1/8 of the pair distance): the cheapest setting whose CMI and
#   Kendall's tau on both bundled image tasks sit within one standard deviation (over 3 pair
#   seeds) of those of 2048 pairs x 65 points (docs/measure.md, "How many pairs and points"). Fewer pairs
#   move CMI by several points with the seed; more points barely move the scores. With adaptive
#   counting it costs ~12,000-13,000 forward passes per model (the former 512 x 33 dense grid: 16,896).
DEFAULT_PAIRS = "same_class"
DEFAULT_N_PAIRS = 2048
DEFAULT_N_POINTS = 17
DEFAULT_EXTEND = 0.5
DEFAULT_AGGREGATE = "mean"
DEFAULT_SEED = 0
# Adaptive counting (see adaptive_classes): the same counts as the dense grid on nearly
# every path for a fraction of the forward passes. The rule (5 coarse points, refine_margin 1.25)
# is the cheapest measured one that matches the dense count on >= 99.5% of the paths of every
# one of 11 image tasks and of two trained PGDL-sized models (a task1-like VGG, a task2-like
# NiN), and on >= 99.9% averaged over the tasks (docs/measure.md, "Adaptive counting";
# benchmarks/adaptive_rules.py). On the default 17-point grid with extend 0.5 its coarse
# points are t = -0.5, 0, 0.5, 1, 1.5: the path's ends, both training examples and the midpoint.
# Three coarse points (t = -0.5, 0.5, 1.5) cost 12-17% fewer passes but miss changes around the
# training examples: 3.8% of all changes on the trained NiN.
COUNTINGS = ("adaptive", "dense")
DEFAULT_COUNTING = "adaptive"
DEFAULT_COARSE_POINTS = 5
DEFAULT_REFINE_MARGIN = 1.25
DEFAULT_STATISTIC = "changes"
DEFAULT_NORMALIZE = "none"
DEFAULT_ENDS = "all"
DEFAULT_PART = "whole"
# pairs="nearest": the second end is one of this many nearest same-class neighbours of the first.
DEFAULT_NEIGHBOURS = 5


@names_refusals
def fragmentation_score(model, inputs, labels, *, pairs: str = DEFAULT_PAIRS,
                        n_pairs: int = DEFAULT_N_PAIRS, n_points: int = DEFAULT_N_POINTS,
                        extend: float = DEFAULT_EXTEND, aggregate: str = DEFAULT_AGGREGATE,
                        layer: int | str | None = None, seed: int = DEFAULT_SEED,
                        counting: str = DEFAULT_COUNTING, coarse_points: int = DEFAULT_COARSE_POINTS,
                        refine_margin: float = DEFAULT_REFINE_MARGIN,
                        statistic: str = DEFAULT_STATISTIC, normalize: str = DEFAULT_NORMALIZE,
                        neighbours: int = DEFAULT_NEIGHBOURS, ends: str = DEFAULT_ENDS,
                        part: str = DEFAULT_PART, batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """Predicted-class changes along straight paths between pairs of training examples.

    Parameters
    ----------
    model : a classifier whose outputs are class scores (logits or probabilities: only their argmax
        is used): a Keras model (Keras 2, or Keras 3 on any backend), a ``torch.nn.Module`` or a
        callable ``f(inputs) -> scores`` (``classifier.as_classifier``). An integer ``layer``, or
        ``"middle"``/``"hidden"``, needs a chain of layers (Keras ``Sequential``, ``nn.Sequential``).
    inputs : array of shape ``(n,) + input_shape``, the training inputs, in the model's own layout
        (channels first for a PyTorch convnet). Pairs are drawn from their channels-last view, so
        the same images give the same paths in every framework.
    labels : array of shape ``(n,)`` (class indices) or ``(n, k)`` (one-hot).
    pairs : ``"same_class"`` (default), ``"different_class"``, ``"any"``, ``"nearest"`` or
        ``"nearest_other"``: which pairs of training examples are the ends of the paths. Pairs
        are drawn with replacement, never an example with itself. ``"nearest"`` pairs an example with one of its
        ``neighbours`` nearest same-class examples (Euclidean, input space): short paths that
        measure fragmentation *locally*, around the training data, rather than across a class.
        ``"nearest_other"`` pairs an example with one of its ``neighbours`` nearest examples of
        another class: short paths across the nearest class boundary, which every such path
        must cross once; the changes beyond that one are fragmentation where two classes meet.
    n_pairs : how many paths.
    n_points : points per path, evenly spaced in ``t``, ends included (at least 2).
    extend : each path is ``x_a + t (x_b - x_a)`` for ``t`` from ``-extend`` to ``1 + extend``:
        0 walks exactly from one example to the other.
    aggregate : how per-path counts become one number: ``"mean"`` changes per path (default),
        ``"fraction"`` of paths with at least one change, ``"median"`` or ``"max"``.
    layer : None interpolates in the input space; an integer index (negative counts from the end)
        interpolates between the two examples' representations at that layer's output and runs
        the rest of the network on the interpolated points. ``"middle"`` is the middle hidden
        layer with a nonlinearity (the earlier of the two middle ones when their number is even), found per model;
        ``"hidden"`` measures at every hidden layer with a nonlinearity
        (``Classifier.activation_layers``) on the same pairs and returns the mean over layers.
    seed : the pairs drawn depend only on the seed and the data (not on its order, see
        ``draw_pairs``), so every model of a task is measured on the same paths.
    counting : ``"adaptive"`` (default) evaluates a coarse grid of ``coarse_points`` per path and
        bisects, down to the ``n_points`` grid, only intervals whose ends differ in class or whose
        top-2 margins are small for the path (``refine_margin``, see ``adaptive_classes``);
        ``"dense"`` evaluates all ``n_points``. Adaptive never counts more than dense and, on the
        default 17-point grid, counts the same on 99.95% of paths (mean over 11 image tasks,
        worst 99.73%) with 37% of the passes (docs/measure.md, "Adaptive counting").
    coarse_points, refine_margin : the adaptive rule (ignored by ``"dense"``).
    statistic : ``"changes"`` (default) counts class changes per path. ``"off_label"`` is the
        fraction of a path's points classified as neither end's label: continuous where counts
        are small integers, and large when a path crosses a wide foreign region once as well as
        when it crosses many thin ones. ``"changes_then_off_label"`` is the aggregated count plus
        the mean off-label fraction divided by ``2 (n_pairs + 1)``: models are ordered by their
        count, and models with the same count by their off-label fraction (a tie-break; only
        with ``normalize="none"``, where counts are multiples of ``1 / n_pairs`` or coarser).
    normalize : ``"none"`` (default), or ``"length"``: each path's count is divided by the
        path's length in the space where it is interpolated (``(1 + 2 extend) |b - a|``), i.e.
        changes per unit distance. In the input space the lengths are the same for every model
        of a task, so this reweights the pairs towards short ones; at a hidden layer it also
        removes the scale of the model's representation.
    neighbours : how many nearest neighbours ``pairs="nearest"`` and ``"nearest_other"`` choose
        among (ignored otherwise).
    ends : ``"all"`` (default) counts every path; ``"fitted"`` only the paths whose two ends (the
        training examples themselves) the model classifies as their labels. A path from a
        misclassified example changes class at least once on its way to a fitted one, so with
        ``"all"`` the count also carries the training error, which is larger for the models that
        regularisation (dropout, weight decay) keeps from fitting, and those tend to have the
        smaller gaps. ``"fitted"`` leaves the training error out (the paths are the same for every
        model; which of them count depends on the model). Costs two forward passes per path, and
        saves the paths left out; a model that fits no pair's two ends is measured on all paths.
    part : which stretch of each path the changes are counted on: ``"whole"`` (default), ``"inside"``
        the segment between the two examples (``0 <= t <= 1``), or ``"beyond"`` its ends (``t < 0``
        or ``t > 1``; needs ``extend > 0``). A change counts where the grid interval it falls in
        lies (with the defaults the grid and adaptive counting's coarse points include ``t = 0``
        and ``1``, so no interval straddles an end). Needs ``statistic="changes"`` and
        ``normalize="none"``.
    batch_size : points per forward pass.

    Returns
    -------
    float >= 0. Larger means more fragmented; a larger value is expected to mean a larger
    generalization gap.
    """
    model = as_classifier(model)
    inputs = np.asarray(inputs, dtype=np.float32)
    labels = class_indices(labels)
    if len(inputs) != len(labels):
        raise ValueError(f"inputs has {len(inputs)} examples but labels has {len(labels)}")
    if aggregate not in AGGREGATIONS:
        raise ValueError(f"aggregate must be one of {AGGREGATIONS}, got {aggregate!r}")
    model.check_inputs(inputs)
    if counting not in COUNTINGS:
        raise ValueError(f"counting must be one of {COUNTINGS}, got {counting!r}")
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if ends not in ENDS:
        raise ValueError(f"ends must be one of {ENDS}, got {ends!r}")
    if statistic == "changes_then_off_label" and normalize != "none":
        raise ValueError("statistic='changes_then_off_label' breaks ties between counts, so it needs "
                         "normalize='none' (counts per unit length are not multiples of 1 / n_pairs)")
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    if part != "whole" and (statistic != "changes" or normalize != "none"):
        raise ValueError(f"part={part!r} counts changes on a stretch of each path, so it needs "
                         "statistic='changes' and normalize='none'")
    if part == "beyond" and not extend > 0:
        raise ValueError("part='beyond' counts the changes beyond the two examples, so it needs extend > 0")
    layers = _measured_layers(model, layer)
    first, second = draw_pairs(model.canonical_layout(inputs), labels, pairs=pairs, n_pairs=n_pairs, seed=seed,
                               neighbours=neighbours)
    positions = path_positions(n_points, extend)
    counted = _counted_intervals(positions, part)
    values = []
    if ends == "fitted":
        at_ends = path_classes(model, inputs[first], inputs[second], np.array([0.0, 1.0]), counting="dense",
                               batch_size=batch_size)
        fitted = (at_ends.classes[:, 0] == labels[first]) & (at_ends.classes[:, 1] == labels[second])
        if fitted.any():  # only the paths with fitted ends are walked
            first, second = first[fitted], second[fitted]
    for index in layers:
        paths = path_classes(model, inputs[first], inputs[second], positions, layer=index, counting=counting,
                             coarse_points=coarse_points, refine_margin=refine_margin, batch_size=batch_size,
                             with_lengths=normalize == "length")
        classes = paths.classes
        changes = class_changes(classes, counted)
        if normalize == "length":
            span = paths.lengths * float(positions[-1] - positions[0])
            changes = np.divide(changes, span, out=np.zeros(len(changes)), where=span > 0)
        off_label = None if statistic == "changes" else float(np.mean(
            (classes != labels[first][:, None]) & (classes != labels[second][:, None])))
        if statistic == "off_label":
            values.append(off_label)
            continue
        value = aggregate_changes(changes, aggregate)
        if statistic == "changes_then_off_label":
            value += off_label / (2 * (n_pairs + 1))
        values.append(value)
    return float(np.mean(values))


def _counted_intervals(positions: np.ndarray, part: str) -> np.ndarray | None:
    """Which grid intervals ``part`` counts (None: all). Interval ``k`` joins points ``k`` and ``k + 1``;
    it is inside the segment when both lie in [0, 1]."""
    if part == "whole":
        return None
    inside = (positions[:-1] >= 0) & (positions[1:] <= 1)
    return inside if part == "inside" else ~inside


@dataclass(frozen=True)
class FragmentationResult:
    """``fragmentation_score``'s value and what it cost.

    ``forward_passes``: examples sent through (part of) the network: every path point classified
    by the part after ``layer``, plus both ends of every path through the part up to it when
    ``layer`` is set (summed over the layers for ``layer="hidden"``). With adaptive counting it is
    the number actually evaluated, not the dense grid's.
    """

    value: float
    forward_passes: int


def fragmentation_with_cost(model, inputs, labels, **parameters) -> FragmentationResult:
    """``fragmentation_score(model, inputs, labels, **parameters)`` with the forward passes it made,
    as the classifier counted them (a TypeError names an unknown parameter)."""
    classifier = as_classifier(model)
    before = classifier.forward_passes
    value = fragmentation_score(classifier, inputs, labels, **parameters)
    return FragmentationResult(value, classifier.forward_passes - before)


def _measured_layers(model: Classifier, layer) -> list:
    """The layers ``fragmentation_score`` interpolates at: ``[None]`` is the input space."""
    if layer in ("middle", "hidden"):
        model.require_chain(f"fragmentation at layer={layer!r} (the rest of the network from a hidden layer)")
        hidden = model.hidden_layers()
        return [hidden[(len(hidden) - 1) // 2]] if layer == "middle" else hidden
    if isinstance(layer, str):
        raise ValueError(f"layer must be None, an integer index, 'middle' or 'hidden', got {layer!r}")
    if layer is not None:
        model.require_chain(f"fragmentation at layer={layer} (the rest of the network from a hidden layer)")
        model.resolve_layer(layer)
    return [layer]


@dataclass(frozen=True)
class PathClasses:
    """What ``path_classes`` found along a set of paths.

    ``classes``: the predicted class at every grid point of every path, int ``(n_paths, n_points)``;
    ``evaluations``: the grid points evaluated on each path, int ``(n_paths,)``; ``forward_passes``:
    examples sent through (part of) the network, ends included (see ``FragmentationResult``);
    ``lengths``: ``|b_p - a_p|`` at the layer (float64 ``(n_paths,)``), or None when not asked for.
    """

    classes: np.ndarray
    evaluations: np.ndarray
    forward_passes: int
    lengths: np.ndarray | None = None


def path_classes(model, starts: np.ndarray, ends: np.ndarray, positions: np.ndarray, *,
                 layer: int | None = None, counting: str = DEFAULT_COUNTING,
                 coarse_points: int = DEFAULT_COARSE_POINTS, refine_margin: float = DEFAULT_REFINE_MARGIN,
                 batch_size: int = DEFAULT_BATCH_SIZE, with_lengths: bool = False) -> PathClasses:
    """The predicted class at every point of the grid of every path: the measure's one path evaluator.

    Path ``p`` visits ``a_p + t (b_p - a_p)`` for each ``t`` in ``positions``, where ``a_p`` and
    ``b_p`` are the representations of ``starts[p]`` and ``ends[p]`` at the output of ``layer``
    (the inputs themselves for ``layer=None``); the rest of the network classifies each point
    (``Classifier.path_points``). ``counting="dense"`` classifies every point; ``"adaptive"``
    classifies the points ``adaptive_classes`` chooses and gives each skipped point the class of
    the last evaluated point before it (the dense classes wherever the adaptive count equals the
    dense one). ``with_lengths`` also returns the paths' lengths at ``layer`` (off by default: at an
    early convolution of a PGDL-sized model the differences of 2048 pairs would take a gigabyte).
    """
    if counting not in COUNTINGS:
        raise ValueError(f"counting must be one of {COUNTINGS}, got {counting!r}")
    positions = np.asarray(positions, dtype=np.float32)
    points = as_classifier(model).path_points(starts, ends, layer, batch_size)
    if counting == "dense":
        classes, _ = points.grid(positions)
        evaluations = np.full(points.n_paths, len(positions), dtype=np.int64)
    else:
        classes, evaluations = adaptive_classes(lambda rows, columns: points(rows, positions[columns]),
                                                points.n_paths, len(positions), coarse_points=coarse_points,
                                                refine_margin=refine_margin)
    return PathClasses(classes, evaluations, points.forward_passes, points.lengths() if with_lengths else None)


def class_changes(classes: np.ndarray, counted: np.ndarray | None = None) -> np.ndarray:
    """Class changes along each path: consecutive grid points of different classes, int ``(n_paths,)``.
    ``counted``: which grid intervals count (a boolean mask over the ``n_points - 1`` intervals;
    None: all of them)."""
    changed = classes[:, 1:] != classes[:, :-1]
    return np.sum(changed if counted is None else changed & counted, axis=1)


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
               n_pairs: int = DEFAULT_N_PAIRS, seed: int = DEFAULT_SEED,
               neighbours: int = DEFAULT_NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(first, second)`` of ``n_pairs`` pairs of distinct examples, drawn with replacement.

    The examples are first put in a canonical order (by label, then by a fixed random projection
    of the inputs), so the same examples give the same pairs whatever order the dataset listed
    them in: PGDL's kit reads the shards in ``glob`` order, which is not fixed. For
    ``pairs="nearest"`` the second example is drawn uniformly among the first one's
    ``neighbours`` nearest other examples of its class (fewer when the class is smaller); for
    ``pairs="nearest_other"`` among its ``neighbours`` nearest examples of the other classes.
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
    if pairs in ("same_class", "nearest"):
        eligible = np.flatnonzero(counts[np.searchsorted(classes, sorted_labels)] >= 2)
        if len(eligible) == 0:
            raise ValueError(f"pairs={pairs!r} needs a class with at least two examples")
        first = eligible[_uniform_index(uniform[:, 0], len(eligible))]
        block = np.searchsorted(classes, sorted_labels[first])
        if pairs == "nearest":
            if isinstance(neighbours, bool) or not isinstance(neighbours, (int, np.integer)) or neighbours < 1:
                raise ValueError(f"neighbours must be a positive integer, got {neighbours!r}")
            table = _nearest_in_class(np.asarray(inputs)[order], starts, counts, np.unique(first), neighbours)
            available = np.minimum(neighbours, counts[block] - 1)
            second = table[first, _uniform_index(uniform[:, 1], available)]
            return order[first], order[second]
        # A uniform draw among the other members of the class: skip over the first example itself.
        second = starts[block] + _uniform_index(uniform[:, 1], counts[block] - 1)
        second = second + (second >= first)
    elif pairs == "nearest_other":
        if len(classes) < 2:
            raise ValueError("pairs='nearest_other' needs at least two classes")
        if isinstance(neighbours, bool) or not isinstance(neighbours, (int, np.integer)) or neighbours < 1:
            raise ValueError(f"neighbours must be a positive integer, got {neighbours!r}")
        first = _uniform_index(uniform[:, 0], n)
        block = np.searchsorted(classes, sorted_labels[first])
        table = _nearest_outside_class(np.asarray(inputs)[order], starts, counts, np.unique(first), neighbours)
        available = np.minimum(neighbours, n - counts[block])
        second = table[first, _uniform_index(uniform[:, 1], available)]
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


def _nearest_in_class(inputs: np.ndarray, starts: np.ndarray, counts: np.ndarray, wanted: np.ndarray,
                      k: int) -> np.ndarray:
    """Row ``i`` (for each ``i`` in ``wanted``): the positions of the ``k`` nearest other examples
    of ``i``'s class, nearest first (ties by position), in a table of shape ``(n, k)`` (-1 where a
    class has fewer than ``k + 1`` examples, and in rows not wanted).

    ``inputs`` are in canonical order, so the classes are the blocks ``starts[c]`` ..
    ``starts[c] + counts[c]``. Squared Euclidean distances in float64 from one matrix product per
    class and chunk of rows: numpy alone, so that fragmentation by itself needs no scikit-learn.
    """
    flat = inputs.reshape(len(inputs), -1)
    table = np.full((len(inputs), k), -1, dtype=np.int64)
    block_of = np.searchsorted(starts, wanted, side="right") - 1
    for block in np.unique(block_of):
        members = np.arange(starts[block], starts[block] + counts[block])
        points = flat[members].astype(np.float64)
        norms = np.sum(points ** 2, axis=1)
        rows = wanted[block_of == block]
        take = min(k, len(members) - 1)
        for chunk in range(0, len(rows), 256):
            row = rows[chunk:chunk + 256]
            own = flat[row].astype(np.float64)
            distance = np.sum(own ** 2, axis=1)[:, None] + norms[None, :] - 2 * own @ points.T
            distance[np.arange(len(row)), row - starts[block]] = np.inf  # never the example itself
            nearest = np.argsort(distance, axis=1, kind="stable")[:, :take]
            table[row, :take] = members[nearest]
    return table


def _nearest_outside_class(inputs: np.ndarray, starts: np.ndarray, counts: np.ndarray, wanted: np.ndarray,
                           k: int) -> np.ndarray:
    """Row ``i`` (for each ``i`` in ``wanted``): the positions of the ``k`` nearest examples of the
    *other* classes, nearest first (ties by position), in a table of shape ``(n, k)`` (-1 in rows
    not wanted, and past the number of examples outside the class).

    As ``_nearest_in_class``, with distances to every example and the row's own class block
    masked out.
    """
    flat = inputs.reshape(len(inputs), -1)
    table = np.full((len(inputs), k), -1, dtype=np.int64)
    points = flat.astype(np.float64)
    norms = np.sum(points ** 2, axis=1)
    block_of = np.searchsorted(starts, np.arange(len(inputs)), side="right") - 1
    for chunk in range(0, len(wanted), 256):
        row = wanted[chunk:chunk + 256]
        own = points[row]
        distance = np.sum(own ** 2, axis=1)[:, None] + norms[None, :] - 2 * own @ points.T
        distance[block_of[row][:, None] == block_of[None, :]] = np.inf  # never the row's own class
        take = min(k, int(len(inputs) - counts[block_of[row]].min()))  # rows with more use only theirs
        nearest = np.argsort(distance, axis=1, kind="stable")[:, :take]
        table[row, :take] = nearest
    return table


def _uniform_index(uniform: np.ndarray, size) -> np.ndarray:
    """Integers uniform on ``0 .. size-1`` (elementwise) from uniform numbers in [0, 1)."""
    return np.minimum((uniform * size).astype(np.int64), np.asarray(size) - 1)


def path_point_predictions(model, starts: np.ndarray, ends: np.ndarray, positions: np.ndarray, *,
                           layer: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and top-2 logit margin at every point of every path.

    Paths as in ``path_classes``. Returns ``(classes, margins)``, both of shape
    ``(n_paths, n_points)``: the argmax class (int) and the largest minus the second-largest
    output (float32, >= 0; small near a class boundary). For studies of the grid (how counts move
    with ``n_points``, which intervals adaptive counting must refine) from one dense evaluation;
    ``adaptive_classes`` replays the adaptive rule on them with a lookup as ``classify``.
    """
    return as_classifier(model).path_points(starts, ends, layer, batch_size).grid(np.asarray(positions, dtype=np.float32))


def adaptive_classes(classify, n_paths: int, n_points: int, *, coarse_points: int,
                     refine_margin: float) -> tuple[np.ndarray, np.ndarray]:
    """The class at every point of a grid of ``n_points`` per path, evaluating only where a change may be.

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

    Returns ``(classes, evaluations)``: an int array of shape ``(n_paths, n_points)``, the class
    of each evaluated point and, at a skipped point, the class of the last evaluated point before
    it; and the points evaluated per path (int, shape ``(n_paths,)``).
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
    return np.take_along_axis(classes, last, axis=1), np.sum(evaluated, axis=1)
