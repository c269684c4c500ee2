import numpy as np
import pytest
from sklearn.metrics import davies_bouldin_score, silhouette_score

from complexity_measure.frameworks import as_classifier
from complexity_measure.forward import batched_apply, compiled
from complexity_measure.keras_models import model_layers
from complexity_measure.representation import (channel_sparsity, channel_sparsity_per_layer, davies_bouldin_measure,
                                               davies_bouldin_per_layer, silhouette_measure, silhouette_per_layer,
                                               sparsity, sparsity_measure, sparsity_per_layer)
from complexity_measure.sampling import sample_indices


def dense_model(keras, kernel, bias, n_classes=2, activation="relu"):
    """Dense(m, activation) with the given weights, then a Dense logits layer."""
    kernel = np.asarray(kernel, dtype=np.float32)
    model = keras.Sequential([keras.layers.Dense(kernel.shape[1], activation=activation),
                              keras.layers.Dense(n_classes)])
    model.build([None, kernel.shape[0]])
    model.layers[0].set_weights([kernel, np.asarray(bias, dtype=np.float32)])
    return model


def two_feature_inputs():
    # 40 examples with both features in [1, 2]; x0 > x1 for exactly the first 10 of them.
    rng = np.random.default_rng(0)
    x = rng.uniform(1.0, 2.0, size=(40, 2)).astype(np.float32)
    x[:, 1] = np.where(np.arange(40) < 10, x[:, 0] - 0.5, x[:, 0] + 0.5)
    return x


# Unit 0 and 1: negative weights on positive inputs, always 0 after ReLU; units 2, 3: always
# positive; unit 4: relu(x0 - x1), zero exactly for the 30 examples with x0 < x1.
KERNEL = [[-1.0, -2.0, 1.0, 0.5, 1.0],
          [-1.0, -0.5, 1.0, 0.5, -1.0]]
BIAS = [0.0, 0.0, 0.1, 0.0, 0.0]
EXPECTED_CHANNELS = [1.0, 1.0, 0.0, 0.0, 0.75]


def test_per_channel_and_per_layer_sparsity_of_a_layer_with_known_zeros(keras):
    model = dense_model(keras, KERNEL, BIAS)
    inputs = two_feature_inputs()
    per_channel = channel_sparsity_per_layer(model, inputs)
    assert list(per_channel) == [0]  # the only hidden layer with a nonlinearity
    np.testing.assert_array_equal(per_channel[0], EXPECTED_CHANNELS)
    assert sparsity_per_layer(model, inputs) == {0: 0.55}
    assert sparsity_measure(model, inputs, np.zeros(40, dtype=int)) == pytest.approx(-0.55)
    # A layer chosen explicitly, with a tolerance: the logits layer has no near-zero values.
    assert sparsity_per_layer(model, inputs, layers=[0, -1]) == {0: 0.55, 1: 0.0}


def test_sparsity_counts_each_channel_over_examples_and_positions(keras):
    # A 1x1 Conv2D with 3 filters: filter 0 maps x to -x (0 after ReLU everywhere), filter 1 to
    # x + 1 (never 0), filter 2 to x, which is 0 in the left column of each image: 4 of 16 positions.
    model = keras.Sequential([keras.layers.Conv2D(3, 1, activation="relu"), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    model.build([None, 4, 4, 1])
    model.layers[0].set_weights([np.array([-1.0, 1.0, 1.0], np.float32).reshape(1, 1, 1, 3),
                                 np.array([0.0, 1.0, 0.0], np.float32)])
    inputs = np.ones((5, 4, 4, 1), np.float32)
    inputs[:, :, 0] = 0.0  # 4 of 16 positions per image
    per_channel = channel_sparsity_per_layer(model, inputs)
    np.testing.assert_allclose(per_channel[0], [1.0, 0.0, 0.25])
    assert sparsity_per_layer(model, inputs)[0] == pytest.approx(1.25 / 3)


def test_array_sparsity_and_tolerance():
    a = np.array([[0.0, 1e-7, 0.5], [-1e-7, 0.2, 0.003]], np.float32)
    np.testing.assert_allclose(channel_sparsity(a), [1.0, 0.5, 0.0])
    assert sparsity(a) == pytest.approx(0.5)
    assert sparsity(a, tol=0.0) == pytest.approx(1 / 6)
    np.testing.assert_allclose(channel_sparsity(a, tol=0.01), [1.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="tol"):
        sparsity(a, tol=-1)
    with pytest.raises(ValueError, match="shape"):
        channel_sparsity(np.zeros(3))


def test_sparsity_sample_is_seeded(keras):
    model = dense_model(keras, KERNEL, BIAS)
    inputs = two_feature_inputs()
    # 8 examples: the 4th channel's value is the fraction of x0 < x1 among the sampled ones.
    chosen = sample_indices(inputs, np.zeros(40, dtype=np.int64), 8, seed=3)
    expected = np.mean(inputs[chosen, 0] < inputs[chosen, 1])
    assert channel_sparsity_per_layer(model, inputs, n_examples=8, seed=3)[0][4] == expected


def test_activation_layers_are_the_nonlinear_hidden_outputs(keras):
    model = keras.Sequential([
        keras.layers.Conv2D(2, 3, activation="relu"),     # 0 yes
        keras.layers.MaxPooling2D(2),                     # 1
        keras.layers.Conv2D(2, 1),                        # 2 linear
        keras.layers.BatchNormalization(),                # 3
        keras.layers.ReLU(),                              # 4 yes
        keras.layers.Flatten(),                           # 5
        keras.layers.Dense(4, activation="tanh"),         # 6 yes
        keras.layers.Dropout(0.5),                        # 7
        keras.layers.Activation("relu"),                  # 8 yes
        keras.layers.Dense(3),                            # 9 logits, never
    ])
    model.build([None, 8, 8, 1])
    assert as_classifier(model).activation_layers() == [0, 4, 6, 8]


def test_one_pass_layer_outputs_match_separate_representations(keras):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.layers.Dense(6, activation="relu"), keras.layers.Dense(5, activation="tanh"),
                              keras.layers.Dense(3)])
    model.build([None, 4])
    inputs = np.random.default_rng(2).normal(size=(23, 4)).astype(np.float32)
    classifier = as_classifier(model)
    batches = list(classifier.layer_outputs(inputs, [1, 0, -1], batch_size=10))
    assert len(batches) == 3
    for position, layer in enumerate([1, 0, 2]):
        joined = np.concatenate([outputs[position] for outputs in batches])
        np.testing.assert_allclose(joined, classifier.representations(inputs, layer), rtol=1e-6)


def test_batches_of_two_sizes_are_traced_once(keras):
    # 23 inputs in batches of 10 come as 10, 10, 3: one trace for any batch length, not two.
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.layers.Dense(6, activation="relu"), keras.layers.Dense(3)])
    model.build([None, 4])
    inputs = np.random.default_rng(2).normal(size=(23, 4)).astype(np.float32)
    call = compiled(model_layers(model))
    outputs = batched_apply(call, inputs, batch_size=10)
    assert call.experimental_get_tracing_count() == 1
    np.testing.assert_allclose(outputs, model(inputs, training=False).numpy(), rtol=1e-5, atol=1e-6)
    # A multiple of the batch size needs no generalised trace: one trace of the fixed shape.
    call = compiled(model_layers(model))
    batched_apply(call, inputs[:20], batch_size=10)
    assert call.experimental_get_tracing_count() == 1


def clusters(separation, n_per_class=30, n_classes=3, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * separation + 5 * separation
    labels = np.repeat(np.arange(n_classes), n_per_class)
    points = centres[labels] + rng.normal(size=(len(labels), dim))
    return np.abs(points).astype(np.float32), labels  # positive: a ReLU identity layer keeps them


def identity_relu_model(keras, dim=4, n_classes=3):
    return dense_model(keras, np.eye(dim), np.zeros(dim), n_classes=n_classes)


def test_clustering_per_layer_equals_scikit_learn_on_the_representations(keras):
    model = identity_relu_model(keras)
    for separation in (10.0, 0.3):
        inputs, labels = clusters(separation)
        assert davies_bouldin_per_layer(model, inputs, labels, n_examples=None)[0] == pytest.approx(
            davies_bouldin_score(inputs, labels), rel=1e-6)
        assert silhouette_per_layer(model, inputs, labels, n_examples=None)[0] == pytest.approx(
            silhouette_score(inputs, labels), rel=1e-6)
        # A seeded subsample of 40: the same examples scikit-learn is given here.
        chosen = sample_indices(inputs, labels, 40, seed=5)
        assert silhouette_per_layer(model, inputs, labels, n_examples=40, seed=5)[0] == pytest.approx(
            silhouette_score(inputs[chosen], labels[chosen]), rel=1e-6)


def test_well_separated_classes_give_the_smaller_measures(keras):
    model = identity_relu_model(keras)
    good, good_labels = clusters(10.0)
    bad, bad_labels = clusters(0.3)
    assert davies_bouldin_measure(model, good, good_labels) < 0.3 < davies_bouldin_measure(model, bad, bad_labels)
    assert silhouette_measure(model, good, good_labels) < -0.7
    assert silhouette_measure(model, bad, bad_labels) > -0.3
    assert silhouette_measure(model, good, good_labels) == pytest.approx(-silhouette_score(good, good_labels),
                                                                         rel=1e-6)


def test_clustering_needs_two_classes_and_hidden_layers(keras):
    model = identity_relu_model(keras)
    inputs, _ = clusters(1.0)
    with pytest.raises(ValueError, match="2 and n_examples - 1"):
        davies_bouldin_measure(model, inputs, np.zeros(len(inputs), dtype=int))
    linear = keras.Sequential([keras.layers.Dense(3)])
    linear.build([None, 4])
    with pytest.raises(ValueError, match="no hidden layer with a nonlinearity"):
        silhouette_measure(linear, inputs, np.arange(len(inputs)) % 3)
    with pytest.raises(ValueError, match="labels"):
        davies_bouldin_measure(model, inputs, np.zeros(5, dtype=int))
