"""Each combination is exactly the product of its two factors."""

import numpy as np
import pytest
import tensorflow as tf

from complexity_measure.combinations import fragmentation_times_davies_bouldin, fragmentation_times_mixup_error
from complexity_measure.fragmentation import fragmentation_score
from complexity_measure.natekar_sharma import mixup_error
from complexity_measure.representation import davies_bouldin_measure


def _random_net_and_data():
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.layers.Dense(32, activation="relu"), tf.keras.layers.Dense(3)])
    model.build([None, 2])
    rng = np.random.default_rng(0)
    return model, rng.normal(size=(120, 2)).astype(np.float32), rng.integers(0, 3, size=120)


def test_the_combination_is_fragmentation_times_the_floored_mixup_error():
    model, inputs, labels = _random_net_and_data()
    changes = fragmentation_score(model, inputs, labels, seed=2)
    error = mixup_error(model, inputs, labels, n_pairs=512, seed=2)
    assert changes > 0 and 0 < error < 1  # a random net on random labels: both factors move
    value = fragmentation_times_mixup_error(model, inputs, labels, seed=2, n_mixup_pairs=512)
    assert value == pytest.approx(changes * (error + 1 / 512))


def test_fragmentation_times_davies_bouldin_is_the_product_at_one_seed():
    model, inputs, labels = _random_net_and_data()
    changes = fragmentation_score(model, inputs, labels, seed=3)
    clustering = davies_bouldin_measure(model, inputs, labels, seed=3)
    assert changes > 0 and clustering > 0
    assert fragmentation_times_davies_bouldin(model, inputs, labels, seed=3) == pytest.approx(changes * clustering)
    # The seed reaches both factors: another seed gives another product.
    other = fragmentation_score(model, inputs, labels, seed=4) * davies_bouldin_measure(model, inputs, labels, seed=4)
    assert fragmentation_times_davies_bouldin(model, inputs, labels, seed=4) == pytest.approx(other)


def test_the_power_weights_fragmentation_in_the_product():
    model, inputs, labels = _random_net_and_data()
    changes = fragmentation_score(model, inputs, labels, seed=3, ends="fitted")
    clustering = davies_bouldin_measure(model, inputs, labels, seed=3)
    assert changes > 0 and changes != 1  # a power other than 1 changes the value
    plain = fragmentation_times_davies_bouldin(model, inputs, labels, seed=3, ends="fitted")
    assert plain == changes * clustering  # power 1 is the plain product, to the last bit
    half = fragmentation_times_davies_bouldin(model, inputs, labels, seed=3, ends="fitted", power=0.5)
    assert half == pytest.approx(changes ** 0.5 * clustering) and half != pytest.approx(plain)
    with pytest.raises(ValueError, match="power must be > 0"):
        fragmentation_times_davies_bouldin(model, inputs, labels, power=0)


def test_the_floor_keeps_the_index_where_no_path_changes_class():
    from complexity_measure.fragmentation import DEFAULT_N_PAIRS
    from complexity_measure.registry import DEFAULT_MEASURE, get_measure
    model, inputs, labels = _random_net_and_data()
    weights = model.get_weights()
    model.set_weights(weights[:2] + [np.zeros_like(weights[2]), np.array([1.0, 0.0, 0.0], np.float32)])  # always class 0
    assert fragmentation_score(model, inputs, labels, ends="fitted") == 0
    clustering = davies_bouldin_measure(model, inputs, labels)
    assert get_measure(DEFAULT_MEASURE)(model, inputs, labels) == 0  # the index erased
    floored = get_measure("fragmentation_fitted_davies_bouldin_quarter_floor")(model, inputs, labels)
    assert floored == pytest.approx((1 / DEFAULT_N_PAIRS) ** 0.25 * clustering) and floored > 0
    # Where paths do change class the floor changes nothing.
    model.set_weights(weights)
    assert get_measure("fragmentation_fitted_davies_bouldin_quarter_floor")(model, inputs, labels) == \
        get_measure(DEFAULT_MEASURE)(model, inputs, labels)
    with pytest.raises(ValueError, match="floor must be >= 0"):
        fragmentation_times_davies_bouldin(model, inputs, labels, floor=-1)
