import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import davies_bouldin_score

from complexity_measure.fragmentation import draw_pairs
from complexity_measure.natekar_sharma import (early_layer, early_layer_davies_bouldin, labelwise_mixup_accuracy,
                                               max_pool, mixup_error, natekar_sharma_score)
from complexity_measure.sampling import sample_indices


def sign_classifier(keras):
    """1-D inputs; logits (-x, x): class 1 exactly where x > 0."""
    model = keras.Sequential([keras.layers.Dense(2)])
    model.build([None, 1])
    model.set_weights([np.array([[-1.0, 1.0]], np.float32), np.zeros(2, np.float32)])
    return model


def abs_classifier(keras):
    """1-D inputs; class 0 where |x| > 0.5, class 1 where |x| < 0.5."""
    model = keras.Sequential([keras.layers.Lambda(lambda x: tf.concat([tf.abs(x) - 0.5, 0.5 - tf.abs(x)], axis=1),
                                                  output_shape=(2,))])
    model.build([None, 1])
    return model


def separated_data(n_per_class=60, seed=0):
    rng = np.random.default_rng(seed)
    inputs = np.concatenate([rng.uniform(-2, -1, n_per_class), rng.uniform(1, 2, n_per_class)])
    labels = np.repeat([0, 1], n_per_class)
    return inputs[:, None].astype(np.float32), labels


def test_a_model_right_on_every_same_class_mix_scores_zero(keras):
    # Classes on [-2, -1] and [1, 2]: every mix of two same-class inputs stays in its interval.
    model = sign_classifier(keras)
    inputs, labels = separated_data()
    assert labelwise_mixup_accuracy(model, inputs, labels) == 1.0
    assert mixup_error(model, inputs, labels) == 0.0
    assert natekar_sharma_score(model, inputs, labels) == 0.0


def test_mixup_accuracy_on_a_model_with_a_hole_in_a_class(keras):
    # Class 0 sits at -1 and +1, its midpoint 0 falls in class 1's region; class 1 (at +-0.1)
    # stays inside |x| < 0.5 under any mix. So class 0's accuracy is the fraction of its pairs
    # on one side, class 1's is 1, and the result is their plain mean.
    model = abs_classifier(keras)
    inputs = np.array([-1.0] * 20 + [1.0] * 20 + [-0.1] * 5 + [0.1] * 5, np.float32)[:, None]
    labels = np.array([0] * 40 + [1] * 10)
    first, second = draw_pairs(inputs, labels, pairs="same_class", n_pairs=500, seed=4)
    class0 = labels[first] == 0
    same_side = inputs[first, 0] == inputs[second, 0]
    expected = (np.mean(same_side[class0]) + 1.0) / 2
    accuracy = labelwise_mixup_accuracy(model, inputs, labels, n_pairs=500, seed=4)
    assert accuracy == pytest.approx(expected)
    # A pair of distinct class-0 examples is on one side with probability 19/39.
    assert accuracy == pytest.approx((19 / 39 + 1) / 2, abs=0.06)
    # Weight 1 "mixes" nothing: every training input is classified correctly.
    assert labelwise_mixup_accuracy(model, inputs, labels, n_pairs=500, weight=1.0) == 1.0


def test_score_is_the_product_of_its_two_factors(keras):
    model = abs_classifier(keras)
    rng = np.random.default_rng(1)
    inputs = np.concatenate([rng.choice([-1.2, 1.2], 100) + rng.normal(0, 0.2, 100),
                             rng.normal(0, 0.15, 100)])[:, None].astype(np.float32)
    labels = np.repeat([0, 1], 100)
    dbi = early_layer_davies_bouldin(model, inputs, labels, seed=2)
    accuracy = labelwise_mixup_accuracy(model, inputs, labels, seed=2)
    assert 0 < accuracy < 1 and dbi > 0
    assert natekar_sharma_score(model, inputs, labels, seed=2) == pytest.approx(dbi * (1 - accuracy), rel=1e-12)


def test_dbi_is_the_mean_over_groups_of_scikit_learns_index(keras):
    model = abs_classifier(keras)  # layer 0 maps x to (|x| - 0.5, 0.5 - |x|)
    rng = np.random.default_rng(3)
    inputs = rng.normal(size=(300, 1)).astype(np.float32)
    labels = rng.integers(0, 3, 300)
    chosen = sample_indices(inputs, labels, 250, seed=7)
    features = np.concatenate([np.abs(inputs[chosen]) - 0.5, 0.5 - np.abs(inputs[chosen])], axis=1)
    groups = np.array_split(np.arange(250), 250 // 60)  # 4 groups: 63, 63, 62, 62 examples
    expected = np.mean([davies_bouldin_score(features[g], labels[chosen][g]) for g in groups])
    value = early_layer_davies_bouldin(model, inputs, labels, n_examples=250, group_size=60, seed=7)
    assert value == pytest.approx(expected, rel=1e-5)


def test_early_layer_is_the_first_strided_one_among_the_first_three(keras):
    def build(layers, shape):
        model = keras.Sequential(layers)
        model.build([None] + shape)
        return model

    conv = build([keras.layers.Conv2D(2, 3), keras.layers.Flatten(), keras.layers.Dense(2)], [6, 6, 1])
    assert early_layer(conv) == 0
    dropout_first = build([keras.layers.Dropout(0.1), keras.layers.BatchNormalization(),
                           keras.layers.MaxPooling2D(2), keras.layers.Flatten(), keras.layers.Dense(2)], [6, 6, 1])
    assert early_layer(dropout_first) == 2
    mlp = build([keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)], [3])
    assert early_layer(mlp) == 0


def test_max_pool_matches_keras_valid_max_pooling():
    x = np.random.default_rng(0).normal(size=(3, 10, 9, 2)).astype(np.float32)
    expected = tf.keras.layers.MaxPooling2D(pool_size=4, padding="valid")(x).numpy()
    np.testing.assert_array_equal(max_pool(x, 4), expected)
    # Maps smaller than the window pool over what there is; non-image arrays are left alone.
    small = x[:, :3, :2]
    np.testing.assert_array_equal(max_pool(small, 4), small.max(axis=(1, 2), keepdims=True))
    flat = x.reshape(3, -1)
    assert max_pool(flat, 4) is flat


def test_winner_on_a_convnet_uses_the_pooled_first_convolution(keras):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Conv2D(3, 3, activation="relu"), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    model.build([None, 10, 10, 1])
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(130, 10, 10, 1)).astype(np.float32)
    labels = np.arange(130) % 2
    chosen = sample_indices(inputs, labels, 1200, seed=0)  # all 130, one group
    features = max_pool(model.layers[0](inputs[chosen]).numpy(), 4).reshape(130, -1)  # 8x8 -> 2x2
    assert features.shape == (130, 12)
    assert early_layer_davies_bouldin(model, inputs, labels) == pytest.approx(
        davies_bouldin_score(features, labels[chosen]), rel=1e-5)


def test_bad_arguments_are_named(keras):
    model = sign_classifier(keras)
    inputs, labels = separated_data()
    with pytest.raises(ValueError, match="weight"):
        labelwise_mixup_accuracy(model, inputs, labels, weight=1.5)
    with pytest.raises(ValueError, match="group_size"):
        early_layer_davies_bouldin(model, inputs, labels, group_size=0)
    with pytest.raises(ValueError, match="classes"):
        early_layer_davies_bouldin(model, inputs, np.zeros(len(inputs), dtype=int))
