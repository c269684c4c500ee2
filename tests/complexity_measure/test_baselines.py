import numpy as np
import pytest

from complexity_measure.baselines import (distance_from_initialization, jacobian_norm, logit_margins, output_margin,
                                          parameter_norm)


def small_mlp(keras, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3)])
    model.build([None, 5])
    return model


def test_distance_from_initialization(keras):
    model = small_mlp(keras)
    model.initial_weights = model.get_weights()
    assert distance_from_initialization(model) == 0.0
    weights = model.get_weights()
    weights[0][2, 1] += 3.0
    weights[3][0] -= 4.0
    model.set_weights(weights)
    assert distance_from_initialization(model) == pytest.approx(5.0)


def test_distance_from_initialization_needs_matching_initial_weights(keras):
    model = small_mlp(keras)
    with pytest.raises(ValueError, match="no initial_weights"):
        distance_from_initialization(model)
    model.initial_weights = model.get_weights()[:-1]
    with pytest.raises(ValueError, match="initial weights have 3 arrays but the model has 4"):
        distance_from_initialization(model)
    model.initial_weights = [w.T for w in model.get_weights()]
    with pytest.raises(ValueError, match=r"initial weight array 0 has shape \(4, 5\)"):
        distance_from_initialization(model)


def test_parameter_norm_is_the_sum_of_squared_weights(keras):
    model = keras.Sequential([keras.layers.Dense(2)])
    model.build([None, 3])
    model.set_weights([np.array([[1, 2], [0, -1], [3, 0]], np.float32), np.array([0.5, -2], np.float32)])
    assert parameter_norm(model) == pytest.approx(1 + 4 + 1 + 9 + 0.25 + 4)


def test_jacobian_norm_of_a_linear_model_is_the_frobenius_norm_of_its_weights(keras):
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(12, 3)).astype(np.float32)
    # Images flattened into a linear map: the Jacobian is kernel.T at every input.
    model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(3)])
    model.build([None, 2, 3, 2])
    model.layers[1].set_weights([kernel, rng.normal(size=3).astype(np.float32)])
    inputs = rng.normal(size=(70, 2, 3, 2)).astype(np.float32)
    assert jacobian_norm(model, inputs, np.zeros(70, int), batch_size=16) == pytest.approx(
        np.linalg.norm(kernel), rel=1e-5)


def test_jacobian_norm_of_a_relu_network_counts_only_active_units(keras):
    model = keras.Sequential([keras.layers.Dense(2, activation="relu"), keras.layers.Dense(2)])
    model.build([None, 1])
    # Hidden units relu(x) and relu(-x); outputs (h0 + 2 h1, 3 h0): d/dx is (1, 3) for x > 0
    # (norm sqrt(10)) and (-2, 0) for x < 0 (norm 2).
    model.set_weights([np.array([[1.0, -1.0]], np.float32), np.zeros(2, np.float32),
                       np.array([[1.0, 3.0], [2.0, 0.0]], np.float32), np.zeros(2, np.float32)])
    inputs = np.array([[1.0], [2.0], [-1.0], [0.5]], np.float32)
    assert jacobian_norm(model, inputs, np.zeros(4, int)) == pytest.approx((3 * np.sqrt(10) + 2) / 4, rel=1e-6)


def identity_logits_model(keras, n_classes=3):
    model = keras.Sequential([keras.layers.Dense(n_classes)])
    model.build([None, n_classes])
    model.set_weights([np.eye(n_classes, dtype=np.float32), np.zeros(n_classes, np.float32)])
    return model


def test_margins_of_known_logits(keras):
    model = identity_logits_model(keras)
    logits = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 2.5], [1.0, 1.0, 1.0], [-1.0, 4.0, 0.0]], np.float32)
    labels = np.array([0, 1, 2, 1])
    np.testing.assert_allclose(logit_margins(model, logits, labels), [2.0, -0.5, 0.0, 4.0])
    assert output_margin(model, logits, labels, percentile=0) == pytest.approx(0.5)
    assert output_margin(model, logits, labels, percentile=50) == pytest.approx(-1.0)


def test_output_margin_default_is_the_negated_tenth_percentile(keras):
    model = identity_logits_model(keras)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 3)).astype(np.float32)
    labels = rng.integers(0, 3, 500)
    rows = np.arange(500)
    others = logits.copy()
    others[rows, labels] = -np.inf
    margins = logits[rows, labels] - others.max(axis=1)
    assert output_margin(model, logits, labels) == pytest.approx(-np.percentile(margins, 10), rel=1e-6)
    # Raising every true-class logit by 1.5 raises every margin by 1.5: the measure drops by 1.5.
    boosted = logits.copy()
    boosted[rows, labels] += 1.5
    assert output_margin(model, boosted, labels) == pytest.approx(output_margin(model, logits, labels) - 1.5,
                                                                  rel=1e-5)


def test_margin_arguments_are_checked(keras):
    model = identity_logits_model(keras)
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="percentile"):
        output_margin(model, x, np.zeros(4, int), percentile=101)
    with pytest.raises(ValueError, match="class indices in 0 .. 2"):
        output_margin(model, x, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="n_examples"):
        jacobian_norm(model, x, np.zeros(4, int), n_examples=0)
