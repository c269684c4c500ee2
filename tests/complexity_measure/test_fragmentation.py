import math

import numpy as np
import pytest
import tensorflow as tf

from complexity_measure.fragmentation import (aggregate_changes, draw_pairs, fragmentation_score,
                                              path_class_changes, path_positions)

PHASE = 0.1  # keeps the class boundaries off the path's grid points and ends


def sine_classifier(keras, k, head=None):
    """1-D inputs; class 0 where sin(k*pi*h + PHASE) > 0, else 1, with h = head(x) (default x).

    On h from 0 to 1 the class changes exactly k times (boundaries at h = (m - PHASE/pi)/k).
    """
    layers = []
    if head is not None:
        layers.append(keras.layers.Lambda(head, output_shape=(1,)))
    layers.append(keras.layers.Lambda(
        lambda h: tf.concat([tf.sin(k * math.pi * h + PHASE), -tf.sin(k * math.pi * h + PHASE)], axis=1),
        output_shape=(2,)))
    model = keras.Sequential(layers)
    model.build([0, 1])
    return model


def constant_classifier(keras, n_features=4, n_classes=3):
    model = keras.Sequential([keras.layers.Dense(n_classes, kernel_initializer="zeros",
                                                 bias_initializer=keras.initializers.Constant([0.0, 1.0, 0.5]))])
    model.build([0, n_features])
    return model


@pytest.mark.parametrize("k", [0, 1, 3, 7])
def test_a_path_through_k_boundaries_counts_k(keras, k):
    model = sine_classifier(keras, k)
    changes = path_class_changes(model, np.zeros((1, 1)), np.ones((1, 1)), path_positions(401))
    assert changes.tolist() == [k]


def test_counts_are_per_path_and_independent_of_batching(keras):
    model = sine_classifier(keras, 5)
    # Paths from 0 to 0.1 .. 1.0: the number of boundaries crossed grows with the end point.
    ends = np.linspace(0.1, 1.0, 10, dtype=np.float32)[:, None]
    starts = np.zeros_like(ends)
    expected = [int(np.sum((np.arange(1, 6) - PHASE / math.pi) / 5 < end)) for end in ends[:, 0]]
    for batch_size in (1, 7, 64, 10_000):  # chunks of 1 path .. all paths; padded last chunk
        changes = path_class_changes(model, starts, ends, path_positions(201), batch_size=batch_size)
        assert changes.tolist() == expected


def test_batched_counts_match_a_plain_loop_on_a_random_network():
    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential([tf.keras.layers.Dense(32, activation="relu"),
                                 tf.keras.layers.Dense(32, activation="tanh"), tf.keras.layers.Dense(4)])
    model.build([0, 5])
    rng = np.random.default_rng(0)
    starts, ends = rng.normal(size=(2, 23, 5)).astype(np.float32) * 3
    positions = path_positions(17, extend=0.5)
    changes = path_class_changes(model, starts, ends, positions, batch_size=50)
    for start, end, count in zip(starts, ends, changes):
        points = start + positions[:, None] * (end - start)
        classes = model(points).numpy().argmax(axis=1)
        assert count == np.sum(classes[1:] != classes[:-1])
    assert changes.sum() > 0  # the check above is not vacuous


def test_a_constant_classifier_never_changes(keras):
    model = constant_classifier(keras)
    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(60, 4)).astype(np.float32)
    labels = rng.integers(0, 3, size=60)
    for pairs in ("same_class", "different_class", "any"):
        assert fragmentation_score(model, inputs, labels, pairs=pairs, n_pairs=40) == 0.0


def test_score_on_known_paths(keras):
    # Two class-0 examples at 0 and 1: every same-class path joins them and crosses 3 boundaries.
    model = sine_classifier(keras, 3)
    inputs = np.array([[0.0], [1.0], [0.5]], dtype=np.float32)
    labels = np.array([0, 0, 1])
    score = fragmentation_score(model, inputs, labels, n_pairs=20, n_points=301, extend=0.0)
    assert score == 3.0
    # Extending the paths to t in [-0.5, 1.5] walks h from -0.5 to 1.5: 3 more boundaries.
    assert fragmentation_score(model, inputs, labels, n_pairs=20, n_points=601, extend=0.5) == 6.0


def test_hidden_layer_interpolates_representations(keras):
    # Head h = x**2, then 2 boundaries in h on [0, 1]. From x=-1 to x=1 the input path goes
    # h: 1 -> 0 -> 1 and crosses each boundary twice; in h-space both ends are h=1: no change.
    model = sine_classifier(keras, 2, head=lambda x: x ** 2)
    starts, ends, positions = np.array([[-1.0]]), np.array([[1.0]]), path_positions(801)
    assert path_class_changes(model, starts, ends, positions).tolist() == [4]
    assert path_class_changes(model, starts, ends, positions, layer=0).tolist() == [0]
    assert path_class_changes(model, starts, ends, positions, layer=-2).tolist() == [0]
    # From x=0 to x=1, h goes 0 -> 1 either way (but not linearly): the same 2 changes.
    assert path_class_changes(model, np.array([[0.0]]), np.array([[1.0]]), positions, layer=0).tolist() == [2]
    # At the last layer the logits themselves are interpolated: their argmax can still change.
    assert path_class_changes(model, np.array([[0.2]]), np.array([[0.7]]), positions, layer=1).tolist() == [1]


def test_same_seed_same_score_other_seed_other_pairs():
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.layers.Dense(64, activation="relu"), tf.keras.layers.Dense(3)])
    model.build([0, 2])
    rng = np.random.default_rng(5)
    inputs = rng.normal(size=(300, 2)).astype(np.float32)
    labels = rng.integers(0, 3, size=300)
    first = fragmentation_score(model, inputs, labels, n_pairs=200, seed=11)
    assert fragmentation_score(model, inputs, labels, n_pairs=200, seed=11) == first
    pairs_a = draw_pairs(inputs, labels, n_pairs=200, seed=11)
    pairs_b = draw_pairs(inputs, labels, n_pairs=200, seed=12)
    assert not np.array_equal(pairs_a[0], pairs_b[0])
    scores = {fragmentation_score(model, inputs, labels, n_pairs=200, seed=seed) for seed in range(4)}
    assert len(scores) > 1


def test_pairs_do_not_depend_on_the_order_of_the_data():
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.layers.Dense(64, activation="relu"), tf.keras.layers.Dense(3)])
    model.build([0, 2])
    rng = np.random.default_rng(7)
    inputs = rng.normal(size=(200, 2)).astype(np.float32)
    labels = rng.integers(0, 3, size=200)
    shuffle = rng.permutation(200)
    for pairs in ("same_class", "different_class", "any"):
        first, second = draw_pairs(inputs, labels, pairs=pairs, n_pairs=50, seed=1)
        first_s, second_s = draw_pairs(inputs[shuffle], labels[shuffle], pairs=pairs, n_pairs=50, seed=1)
        np.testing.assert_array_equal(inputs[first], inputs[shuffle][first_s])
        np.testing.assert_array_equal(inputs[second], inputs[shuffle][second_s])
    assert fragmentation_score(model, inputs, labels) == fragmentation_score(model, inputs[shuffle], labels[shuffle])


@pytest.mark.parametrize("mode", ["same_class", "different_class", "any"])
def test_pair_modes_draw_every_allowed_pair_and_nothing_else(mode):
    labels = np.array([0, 0, 0, 1, 1, 2])
    inputs = np.arange(6, dtype=np.float32)[:, None]
    first, second = draw_pairs(inputs, labels, pairs=mode, n_pairs=30_000, seed=0)
    drawn = set(zip(first.tolist(), second.tolist()))
    allowed = {(i, j) for i in range(6) for j in range(6) if i != j and (
        mode == "any" or (labels[i] == labels[j]) == (mode == "same_class"))}
    assert drawn == allowed
    # Every first example is equally likely, then every allowed partner of it.
    counts = np.bincount(first, minlength=6)
    eligible = np.array([i for i in range(6) if any(p[0] == i for p in allowed)])
    shares = counts[eligible] / counts.sum()
    np.testing.assert_allclose(shares, 1 / len(eligible), atol=0.02)


def test_aggregations():
    changes = np.array([0, 0, 1, 3, 6])
    assert aggregate_changes(changes, "mean") == 2.0
    assert aggregate_changes(changes, "fraction") == 0.6
    assert aggregate_changes(changes, "median") == 1.0
    assert aggregate_changes(changes, "max") == 6.0


def test_bad_arguments_are_named():
    model = constant_classifier(tf.keras)
    inputs = np.zeros((10, 4), dtype=np.float32)
    labels = np.arange(10) % 3
    with pytest.raises(ValueError, match=r"shape \(5,\).*\(4,\)"):
        fragmentation_score(model, np.zeros((10, 5), dtype=np.float32), labels)
    with pytest.raises(ValueError, match="pairs must be one of"):
        fragmentation_score(model, inputs, labels, pairs="nearest")
    with pytest.raises(ValueError, match="aggregate must be one of"):
        fragmentation_score(model, inputs, labels, aggregate="sum")
    with pytest.raises(ValueError, match="layer=3 is out of range"):
        fragmentation_score(model, inputs, labels, layer=3)
    with pytest.raises(ValueError, match="n_points must be at least 2"):
        fragmentation_score(model, inputs, labels, n_points=1)
    with pytest.raises(ValueError, match="10 examples but labels has 9"):
        fragmentation_score(model, inputs, labels[:9])
    with pytest.raises(ValueError, match="at least two examples"):
        fragmentation_score(model, inputs, np.arange(10))
