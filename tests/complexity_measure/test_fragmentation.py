import functools
import math

import numpy as np
import pytest
import tensorflow as tf

from complexity_measure.fragmentation import (adaptive_classes, aggregate_changes, class_changes, draw_pairs,
                                              fragmentation_score, fragmentation_with_cost, path_classes,
                                              path_point_predictions, path_positions)

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


def dense_changes(model, starts, ends, positions, **options):
    """Class changes per path on the dense grid (the measure's evaluator, every point classified)."""
    paths = path_classes(model, starts, ends, positions, counting="dense", **options)
    assert paths.evaluations.tolist() == [len(positions)] * len(starts)
    return class_changes(paths.classes)


def adaptive_counts(model, starts, ends, positions, **options):
    """``(changes, evaluations)`` per path with adaptive counting."""
    paths = path_classes(model, starts, ends, positions, counting="adaptive", **options)
    return class_changes(paths.classes), paths.evaluations


def adaptive_changes(model, starts, ends, positions, **options):
    changes, evaluations = adaptive_counts(model, starts, ends, positions, **options)
    assert np.all(evaluations <= len(positions))
    return changes


def count_adaptively(classify, n_paths, n_points, **options):
    """The adaptive rule replayed on a lookup: ``(changes, evaluations)`` per path."""
    classes, evaluations = adaptive_classes(classify, n_paths, n_points, **options)
    return class_changes(classes), evaluations


COUNTERS = {"dense": dense_changes, "adaptive": adaptive_changes}


@pytest.mark.parametrize("counting", COUNTERS)
@pytest.mark.parametrize("k", [0, 1, 3, 7])
def test_a_path_through_k_boundaries_counts_k(keras, k, counting):
    model = sine_classifier(keras, k)
    changes = COUNTERS[counting](model, np.zeros((1, 1)), np.ones((1, 1)), path_positions(401))
    assert changes.tolist() == [k]


def test_counts_are_per_path_and_independent_of_batching(keras):
    model = sine_classifier(keras, 5)
    # Paths from 0 to 0.1 .. 1.0: the number of boundaries crossed grows with the end point.
    ends = np.linspace(0.1, 1.0, 10, dtype=np.float32)[:, None]
    starts = np.zeros_like(ends)
    expected = [int(np.sum((np.arange(1, 6) - PHASE / math.pi) / 5 < end)) for end in ends[:, 0]]
    for batch_size in (1, 7, 64, 10_000):  # chunks of 1 path .. all paths; padded last chunk
        changes = dense_changes(model, starts, ends, path_positions(201), batch_size=batch_size)
        assert changes.tolist() == expected
        # 9 coarse points: at the default 3 the path to 0.8 is aliased (see the test on misses).
        changes = adaptive_changes(model, starts, ends, path_positions(201), batch_size=batch_size,
                                   coarse_points=9)
        assert changes.tolist() == expected


def test_batched_counts_match_a_plain_loop_on_a_random_network():
    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential([tf.keras.layers.Dense(32, activation="relu"),
                                 tf.keras.layers.Dense(32, activation="tanh"), tf.keras.layers.Dense(4)])
    model.build([0, 5])
    rng = np.random.default_rng(0)
    starts, ends = rng.normal(size=(2, 23, 5)).astype(np.float32) * 3
    positions = path_positions(17, extend=0.5)
    changes = dense_changes(model, starts, ends, positions, batch_size=50)
    for start, end, count in zip(starts, ends, changes):
        points = start + positions[:, None] * (end - start)
        classes = model(points).numpy().argmax(axis=1)
        assert count == np.sum(classes[1:] != classes[:-1])
    assert changes.sum() > 0  # the check above is not vacuous


def excursion_classifier(keras, centre, half_width, bump=None):
    """1-D inputs; class 1 on (centre - half_width, centre + half_width), class 0 elsewhere.

    The margin (logit 0 minus logit 1) is ``|x - centre| - half_width``, a V with slope 1
    everywhere, so every grid interval shows how fast the margin moves. With ``bump`` the
    margin is instead 1 everywhere except a spike of that width down to -1 at the centre (flat,
    then steep: no grid interval away from the centre shows the spike coming).
    """
    if bump is None:
        def margin(x):
            return tf.abs(x - centre) - half_width
    else:
        def margin(x):
            return 1.0 - 2.0 * tf.nn.relu(1.0 - tf.abs(x - centre) / bump)
    model = keras.Sequential([keras.layers.Lambda(lambda x: tf.concat([margin(x), tf.zeros_like(x)], axis=1),
                                                  output_shape=(2,))])
    model.build([0, 1])
    return model


def test_adaptive_finds_a_narrow_excursion_between_coarse_points(keras):
    # 33 points at t = 0, 1/32, ..: the class-1 excursion (0.40, 0.44) holds one grid point (13/32)
    # and lies inside the coarse interval [0, 0.5] with class 0 at both of its ends.
    model = excursion_classifier(keras, centre=0.42, half_width=0.02)
    starts, ends, positions = np.zeros((1, 1)), np.ones((1, 1)), path_positions(33)
    assert dense_changes(model, starts, ends, positions).tolist() == [2]
    # Plain bisection (refine_margin=0) never looks inside and misses both changes...
    changes, evaluations = adaptive_counts(model, starts, ends, positions, coarse_points=3, refine_margin=0.0)
    assert changes.tolist() == [0] and evaluations.tolist() == [3]
    # ...the margin rule sees margins 0.40 + 0.06 at the ends of [0, 0.5], below 2 x slope 1 x 0.5,
    # and bisects down to the excursion, still evaluating fewer than the 33 points.
    changes, evaluations = adaptive_counts(model, starts, ends, positions, coarse_points=3, refine_margin=2.0)
    assert changes.tolist() == [2] and evaluations[0] < 33


def test_adaptive_can_miss_a_spike_the_coarse_grid_gives_no_hint_of(keras):
    # A margin flat at 1 with a narrow spike to -1: the coarse points see slope 0, so no rule based
    # on them refines, and adaptive counts 0 where the dense grid counts 2. Adaptive counting is
    # a lower bound of the dense count; the benchmark measures how often it is not equal.
    model = excursion_classifier(keras, centre=0.42, half_width=None, bump=0.03)
    starts, ends, positions = np.zeros((1, 1)), np.ones((1, 1)), path_positions(33)
    assert dense_changes(model, starts, ends, positions).tolist() == [2]
    assert adaptive_changes(model, starts, ends, positions).tolist() == [0]
    # Aliasing: sin(5 pi h + 0.1) on h from 0 to 0.8 takes the same value at the 3 coarse points
    # (0, 0.4, 0.8), so the slope seen is 0 and the 4 boundaries go unseen with 3 coarse points.
    model = sine_classifier(keras, 5)
    starts, ends, positions = np.zeros((1, 1)), np.full((1, 1), 0.8), path_positions(201)
    assert dense_changes(model, starts, ends, positions).tolist() == [4]
    assert adaptive_changes(model, starts, ends, positions, coarse_points=3).tolist() == [0]
    assert adaptive_changes(model, starts, ends, positions, coarse_points=9).tolist() == [4]


def lookup(classes, margins):
    def classify(rows, columns):
        return classes[rows, columns], margins[rows, columns]
    return classify


def test_adaptive_evaluates_only_grid_points_and_never_counts_more_than_dense():
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 3, size=(200, 17))
    margins = rng.random((200, 17))
    asked = []

    def classify(rows, columns):
        asked.append(len(rows))
        return classes[rows, columns], margins[rows, columns]

    dense = np.sum(classes[:, 1:] != classes[:, :-1], axis=1)
    changes, evaluations = count_adaptively(classify, 200, 17, coarse_points=5, refine_margin=0.0)
    assert np.all(changes <= dense) and np.all(evaluations >= 5) and np.all(evaluations <= 17)
    assert sum(asked) == evaluations.sum()
    # Coarse points, then one call per bisection round: 16 steps of 4 need at most 2 rounds.
    assert len(asked) <= 3
    # Refining everything evaluates every point and gives the dense count exactly.
    changes, evaluations = count_adaptively(lookup(classes, margins), 200, 17, coarse_points=5, refine_margin=1e9)
    assert changes.tolist() == dense.tolist() and evaluations.tolist() == [17] * 200


def test_bisection_is_exact_for_far_apart_boundaries():
    # One change per path at a random grid step; margins = distance to the boundary (slope 1).
    n_points, rng = 65, np.random.default_rng(1)
    boundary = rng.integers(0, n_points - 1, size=100) + 0.5
    position = np.arange(n_points)[None, :]
    classes = (position > boundary[:, None]).astype(int)
    margins = np.abs(position - boundary[:, None])
    changes, evaluations = count_adaptively(lookup(classes, margins), 100, n_points, coarse_points=9,
                                            refine_margin=0.0)
    assert changes.tolist() == [1] * 100
    assert evaluations.tolist() == [9 + 3] * 100  # 8 steps bisected to 1: 3 more points


def test_adaptive_matches_dense_on_a_random_network(keras):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(4)])
    model.build([0, 5])
    rng = np.random.default_rng(0)
    starts, ends = rng.normal(size=(2, 64, 5)).astype(np.float32) * 3
    positions = path_positions(33, extend=0.5)
    dense = dense_changes(model, starts, ends, positions)
    changes, evaluations = adaptive_counts(model, starts, ends, positions)
    assert dense.sum() > 0
    assert np.all(changes <= dense) and np.mean(changes == dense) >= 0.95
    # This small random network changes class ~1.5 times per path, so the saving is modest here
    # (the benchmark measures it on trained models): paths without a change cost less, never more.
    assert evaluations.sum() < dense.size * len(positions)
    assert evaluations[dense == 0].mean() < 0.5 * len(positions)
    classes, margins = path_point_predictions(model, starts, ends, positions, batch_size=100)
    assert np.sum(classes[:, 1:] != classes[:, :-1], axis=1).tolist() == dense.tolist()
    points = (starts[:, None] + positions[None, :, None] * (ends - starts)[:, None]).reshape(-1, 5)
    top = np.sort(model(points).numpy(), axis=-1).reshape(64, 33, 4)
    np.testing.assert_allclose(margins, top[..., -1] - top[..., -2], rtol=1e-4, atol=1e-5)


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


@pytest.mark.parametrize("counting", COUNTERS)
def test_hidden_layer_interpolates_representations(keras, counting):
    # Head h = x**2, then 2 boundaries in h on [0, 1]. From x=-1 to x=1 the input path goes
    # h: 1 -> 0 -> 1 and crosses each boundary twice; in h-space both ends are h=1: no change.
    # 5 coarse points: with 3, x = -1, 0, 1 gives h = 1, 0, 1, where sin(2 pi h + 0.1) is the
    # same, and the symmetric path is aliased (see the test on misses).
    count = functools.partial(COUNTERS[counting], **({"coarse_points": 5} if counting == "adaptive" else {}))
    model = sine_classifier(keras, 2, head=lambda x: x ** 2)
    starts, ends, positions = np.array([[-1.0]]), np.array([[1.0]]), path_positions(801)
    assert count(model, starts, ends, positions).tolist() == [4]
    assert count(model, starts, ends, positions, layer=0).tolist() == [0]
    assert count(model, starts, ends, positions, layer=-2).tolist() == [0]
    # From x=0 to x=1, h goes 0 -> 1 either way (but not linearly): the same 2 changes.
    assert count(model, np.array([[0.0]]), np.array([[1.0]]), positions, layer=0).tolist() == [2]
    # At the last layer the logits themselves are interpolated: their argmax can still change.
    assert count(model, np.array([[0.2]]), np.array([[0.7]]), positions, layer=1).tolist() == [1]


def random_classifier_and_data(hidden, n_features, n_examples, *, model_seed, data_seed):
    """A random ReLU net with 3 classes and random labelled inputs (normal, shape ``(n_examples, n_features)``)."""
    tf.keras.utils.set_random_seed(model_seed)
    model = tf.keras.Sequential([tf.keras.layers.Dense(hidden, activation="relu"), tf.keras.layers.Dense(3)])
    model.build([0, n_features])
    rng = np.random.default_rng(data_seed)
    inputs = rng.normal(size=(n_examples, n_features)).astype(np.float32)
    return model, inputs, rng.integers(0, 3, size=n_examples)


def test_same_seed_same_score_other_seed_other_pairs():
    model, inputs, labels = random_classifier_and_data(64, 2, 300, model_seed=0, data_seed=5)
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
    for pairs in ("same_class", "different_class", "any", "nearest", "nearest_other"):
        first, second = draw_pairs(inputs, labels, pairs=pairs, n_pairs=50, seed=1)
        first_s, second_s = draw_pairs(inputs[shuffle], labels[shuffle], pairs=pairs, n_pairs=50, seed=1)
        np.testing.assert_array_equal(inputs[first], inputs[shuffle][first_s])
        np.testing.assert_array_equal(inputs[second], inputs[shuffle][second_s])
    assert fragmentation_score(model, inputs, labels) == fragmentation_score(model, inputs[shuffle], labels[shuffle])


@pytest.mark.parametrize("mode", ["same_class", "different_class", "any", "nearest", "nearest_other"])
def test_the_first_k_pairs_of_n_are_the_pairs_of_n_pairs_k(mode):
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(90, 3)).astype(np.float32)
    labels = rng.integers(0, 4, size=90)
    first, second = draw_pairs(inputs, labels, pairs=mode, n_pairs=2048, seed=4)
    for k in (1, 32, 500):
        first_k, second_k = draw_pairs(inputs, labels, pairs=mode, n_pairs=k, seed=4)
        np.testing.assert_array_equal(first_k, first[:k])
        np.testing.assert_array_equal(second_k, second[:k])


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


def test_class_changes_counts_only_the_masked_intervals():
    classes = np.array([[0, 1, 1, 2, 0], [3, 3, 3, 3, 3], [0, 1, 0, 1, 0]])
    np.testing.assert_array_equal(class_changes(classes), [3, 0, 4])
    counted = np.array([False, True, True, False])
    np.testing.assert_array_equal(class_changes(classes, counted), [1, 0, 2])
    np.testing.assert_array_equal(class_changes(classes, counted) + class_changes(classes, ~counted),
                                  class_changes(classes))


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
        fragmentation_score(model, inputs, labels, pairs="nearby")
    with pytest.raises(ValueError, match="statistic must be one of"):
        fragmentation_score(model, inputs, labels, statistic="margin")
    with pytest.raises(ValueError, match="normalize must be one of"):
        fragmentation_score(model, inputs, labels, normalize="area")
    with pytest.raises(ValueError, match="needs normalize='none'"):
        fragmentation_score(model, inputs, labels, statistic="changes_then_off_label", normalize="length")
    with pytest.raises(ValueError, match="neighbours must be a positive integer"):
        fragmentation_score(model, inputs, labels, pairs="nearest", neighbours=0)
    with pytest.raises(ValueError, match="no hidden layer with a nonlinearity"):
        fragmentation_score(model, inputs, labels, layer="hidden")
    with pytest.raises(ValueError, match="'middle' or 'hidden'"):
        fragmentation_score(model, inputs, labels, layer="last")
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
    with pytest.raises(ValueError, match="counting must be one of"):
        fragmentation_score(model, inputs, labels, counting="sparse")
    with pytest.raises(ValueError, match="coarse_points must be at least 2"):
        fragmentation_score(model, inputs, labels, coarse_points=1)
    with pytest.raises(ValueError, match="refine_margin must be >= 0"):
        fragmentation_score(model, inputs, labels, refine_margin=-1.0)


def test_nearest_pairs_join_an_example_to_one_of_its_k_nearest_classmates():
    # Class 0 on a line at 0, 1, 3, 7, 15 and class 1 at 100, 101: distances are all different.
    positions = np.array([0.0, 1.0, 3.0, 7.0, 15.0, 100.0, 101.0], dtype=np.float32)
    labels = np.array([0, 0, 0, 0, 0, 1, 1])
    inputs = np.stack([positions, np.zeros_like(positions)], axis=1)
    first, second = draw_pairs(inputs, labels, pairs="nearest", n_pairs=5000, seed=3, neighbours=2)
    drawn = set(zip(first.tolist(), second.tolist()))
    nearest_two = {0: {1, 2}, 1: {0, 2}, 2: {1, 0}, 3: {2, 1}, 4: {3, 2}, 5: {6}, 6: {5}}
    assert drawn == {(i, j) for i, partners in nearest_two.items() for j in partners}
    first, second = draw_pairs(inputs, labels, pairs="nearest", n_pairs=200, seed=3, neighbours=1)
    assert dict(zip(first.tolist(), second.tolist())) == {0: 1, 1: 0, 2: 1, 3: 2, 4: 3, 5: 6, 6: 5}


def test_nearest_other_pairs_join_an_example_to_one_of_its_k_nearest_examples_of_another_class():
    # On a line: class 0 at 0, 1, 3, class 1 at 4, 10 and class 2 at 20; distances all differ.
    positions = np.array([0.0, 1.0, 3.0, 4.0, 10.0, 20.0], dtype=np.float32)
    labels = np.array([0, 0, 0, 1, 1, 2])
    inputs = np.stack([positions, np.zeros_like(positions)], axis=1)
    first, second = draw_pairs(inputs, labels, pairs="nearest_other", n_pairs=5000, seed=3, neighbours=2)
    drawn = set(zip(first.tolist(), second.tolist()))
    nearest_two = {0: {3, 4}, 1: {3, 4}, 2: {3, 4}, 3: {2, 1}, 4: {2, 1}, 5: {4, 3}}
    assert drawn == {(i, j) for i, partners in nearest_two.items() for j in partners}
    # Every first example is equally likely (it is drawn among all of them).
    np.testing.assert_allclose(np.bincount(first, minlength=6) / 5000, 1 / 6, atol=0.02)
    first, second = draw_pairs(inputs, labels, pairs="nearest_other", n_pairs=300, seed=3, neighbours=1)
    assert dict(zip(first.tolist(), second.tolist())) == {0: 3, 1: 3, 2: 3, 3: 2, 4: 2, 5: 4}
    # More neighbours than examples outside a class: each row draws among those it has.
    first, second = draw_pairs(inputs, labels, pairs="nearest_other", n_pairs=3000, seed=3, neighbours=50)
    assert (labels[first] != labels[second]).all()
    assert set(second[first == 5].tolist()) == {0, 1, 2, 3, 4}
    with pytest.raises(ValueError, match="needs at least two classes"):
        draw_pairs(inputs, np.zeros(6, dtype=int), pairs="nearest_other", n_pairs=5)


def test_off_label_fraction_and_tie_break_on_known_paths(keras):
    # Two class-0 examples at 0 and 1 and the k=3 sine: the class along the path is known exactly.
    model = sine_classifier(keras, 3)
    inputs = np.array([[0.0], [1.0], [0.5]], dtype=np.float32)
    labels = np.array([0, 0, 1])
    t = np.linspace(0.0, 1.0, 301)
    off = float(np.mean(np.sin(3 * math.pi * t + PHASE) <= 0))
    options = dict(n_pairs=20, n_points=301, extend=0.0)
    for counting in ("dense", "adaptive"):
        value = fragmentation_score(model, inputs, labels, statistic="off_label", counting=counting, **options)
        assert value == pytest.approx(off, abs=1e-9)
        assert 0.3 < value < 0.4
        tied = fragmentation_score(model, inputs, labels, statistic="changes_then_off_label", counting=counting,
                                   **options)
        assert tied == pytest.approx(3.0 + off / 42)


def test_changes_per_unit_length(keras):
    # h = x / 2: examples at x = 0 and 2 walk h from 0 to 1 (3 changes) over a length of 2.
    model = sine_classifier(keras, 3, head=lambda x: x / 2)
    inputs = np.array([[0.0], [2.0], [1.0]], dtype=np.float32)
    labels = np.array([0, 0, 1])
    assert fragmentation_score(model, inputs, labels, n_pairs=10, n_points=401, extend=0.0,
                               normalize="length") == pytest.approx(1.5)
    # Extended to t in [-0.5, 1.5]: 6 changes over a length of 4.
    assert fragmentation_score(model, inputs, labels, n_pairs=10, n_points=801, extend=0.5,
                               normalize="length") == pytest.approx(1.5)


def test_hidden_is_the_mean_over_the_hidden_layers_with_a_nonlinearity():
    tf.keras.utils.set_random_seed(1)
    model = tf.keras.Sequential([tf.keras.layers.Dense(32, activation="relu"), tf.keras.layers.Dropout(0.1),
                                 tf.keras.layers.Dense(32, activation="tanh"), tf.keras.layers.Dense(3)])
    model.build([0, 2])
    rng = np.random.default_rng(4)
    inputs = rng.normal(size=(120, 2)).astype(np.float32) * 3
    labels = rng.integers(0, 3, size=120)
    per_layer = [fragmentation_score(model, inputs, labels, n_pairs=300, layer=index) for index in (0, 2)]
    assert max(per_layer) > 0
    assert fragmentation_score(model, inputs, labels, n_pairs=300, layer="hidden") == pytest.approx(np.mean(per_layer))


@pytest.mark.parametrize("layer", [None, -2])
def test_the_measure_reports_the_forward_passes_it_made(layer):
    model, inputs, labels = random_classifier_and_data(16, 4, 50, model_seed=4, data_seed=2)
    result = fragmentation_with_cost(model, inputs, labels, n_pairs=40, layer=layer)
    assert result.value == fragmentation_score(model, inputs, labels, n_pairs=40, layer=layer)
    first, second = draw_pairs(inputs, labels, n_pairs=40)
    _, evaluations = adaptive_counts(model, inputs[first], inputs[second], path_positions(17, 0.5), layer=layer)
    ends = 0 if layer is None else 2 * 40  # both ends of every path through the first layer
    assert result.forward_passes == evaluations.sum() + ends
    dense = fragmentation_with_cost(model, inputs, labels, n_pairs=40, layer=layer, counting="dense")
    assert dense.forward_passes == 40 * 17 + ends
    with pytest.raises(TypeError, match="n_pair"):
        fragmentation_with_cost(model, inputs, labels, n_pair=40)


def test_fitted_ends_leave_the_training_error_out_of_the_count(keras):
    # One boundary, at x = 1 - PHASE/pi: class 0 left of it, 1 right of it. The examples at 1.5
    # (labelled 0) and 0.6 (labelled 1) are misfitted; a same-class path with one of them at an
    # end crosses the boundary once, a path between two fitted examples never does (extend=0).
    model = sine_classifier(keras, 1)
    inputs = np.array([[0.2], [0.4], [1.5], [1.2], [1.4], [0.6]], dtype=np.float32)
    labels = np.array([0, 0, 0, 1, 1, 1])
    misfit = np.array([False, False, True, False, False, True])
    options = dict(n_pairs=200, n_points=65, extend=0.0, counting="dense")
    first, second = draw_pairs(inputs, labels, n_pairs=200)
    crossing = misfit[first] != misfit[second]
    assert 0 < crossing.mean() < 1
    assert fragmentation_score(model, inputs, labels, **options) == pytest.approx(crossing.mean())
    fitted = fragmentation_with_cost(model, inputs, labels, ends="fitted", **options)
    assert fitted.value == 0.0
    walked = np.sum(~misfit[first] & ~misfit[second])
    assert fitted.forward_passes == 2 * 200 + walked * 65  # both ends of every path, then the fitted paths
    # A model that fits no pair's two ends is measured on every path.
    wrong = 1 - labels
    assert fragmentation_score(model, inputs, wrong, ends="fitted", **options) == fragmentation_score(
        model, inputs, wrong, **options)
    with pytest.raises(ValueError, match="ends must be one of"):
        fragmentation_score(model, inputs, labels, ends="some")


def test_changes_are_counted_inside_the_segment_or_beyond_its_ends(keras):
    # A class change at every x = m - PHASE/pi (class 0 on (-0.03, 0.97) and (1.97, 2.97)). Same-class
    # paths cross boundaries between their two examples (0.5 to 2.5) and beyond them (0.5 to 0.9:
    # x from 0.3 to 1.1 crosses 0.97 beyond 0.9).
    model = sine_classifier(keras, 1)
    inputs = np.array([[0.5], [0.9], [2.5], [1.2], [1.5]], dtype=np.float32)
    labels = np.array([0, 0, 0, 1, 1])
    options = dict(n_pairs=300, n_points=65, counting="dense")
    first, second = draw_pairs(inputs, labels, n_pairs=300)
    a, b = inputs[first, 0].astype(np.float64), inputs[second, 0].astype(np.float64)
    boundaries = np.arange(-5, 6) - PHASE / math.pi

    def crossings(lo, hi):
        lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
        return np.sum((boundaries[None, :] > lo[:, None]) & (boundaries[None, :] < hi[:, None]), axis=1)

    inside = crossings(a, b)
    beyond = crossings(a - 0.5 * (b - a), a) + crossings(b, b + 0.5 * (b - a))
    assert inside.mean() > 0 and beyond.mean() > 0
    assert fragmentation_score(model, inputs, labels, part="inside", **options) == pytest.approx(inside.mean())
    assert fragmentation_score(model, inputs, labels, part="beyond", **options) == pytest.approx(beyond.mean())
    assert fragmentation_score(model, inputs, labels, **options) == pytest.approx((inside + beyond).mean())
    # With adaptive counting the two parts still add up to the whole path.
    parts = [fragmentation_score(model, inputs, labels, n_pairs=300, part=part) for part in ("inside", "beyond")]
    assert sum(parts) == pytest.approx(fragmentation_score(model, inputs, labels, n_pairs=300))
    with pytest.raises(ValueError, match="extend > 0"):
        fragmentation_score(model, inputs, labels, part="beyond", extend=0.0)
    with pytest.raises(ValueError, match="part must be one of"):
        fragmentation_score(model, inputs, labels, part="middle")
    with pytest.raises(ValueError, match="statistic='changes'"):
        fragmentation_score(model, inputs, labels, part="inside", statistic="off_label")
