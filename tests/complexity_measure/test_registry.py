import math

import numpy as np
import pytest

from complexity_measure.forward import middle_activation_layer
from complexity_measure.fragmentation import fragmentation_score
from complexity_measure.registry import MEASURES, get_measure


def small_convnet(keras):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.layers.Conv2D(4, 3, activation="relu"),   # 0: 8x8x4
        keras.layers.MaxPooling2D(2),                   # 1: 4x4x4
        keras.layers.Conv2D(6, 3, activation="relu"),   # 2: 2x2x6
        keras.layers.Flatten(),                         # 3
        keras.layers.Dense(8, activation="relu"),       # 4
        keras.layers.Dense(3),                          # 5: logits
    ])
    model.build([None, 10, 10, 1])
    initial = model.get_weights()
    model.set_weights([w + 0.1 * np.random.default_rng(i).normal(size=w.shape).astype(np.float32)
                       for i, w in enumerate(initial)])
    model.initial_weights = initial
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    labels = np.arange(150) % 3
    templates = rng.normal(size=(3, 10, 10, 1))
    inputs = (templates[labels] + rng.normal(size=(150, 10, 10, 1))).astype(np.float32)
    return inputs, labels


@pytest.fixture(scope="module", params=["keras3", "keras2"])
def convnet(request):
    if request.param == "keras2":
        keras = pytest.importorskip("tf_keras")
    else:
        import tensorflow as tf
        keras = tf.keras
    return small_convnet(keras)


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_every_measure_gives_the_same_finite_float_twice(convnet, data, name):
    inputs, labels = data
    measure = get_measure(name)
    first = measure(convnet, inputs, labels)
    second = measure(convnet, inputs, labels)
    assert isinstance(first, float) and math.isfinite(first)
    assert first == second


def test_the_zoo_is_registered():
    assert {"sparsity", "davies_bouldin", "silhouette", "natekar_sharma", "distance_from_init", "jacobian_norm",
            "output_margin", "parameter_norm", "fragmentation_middle"} <= set(MEASURES)
    assert all(measure.description for measure in MEASURES.values())


def test_fragmentation_middle_interpolates_at_the_middle_hidden_layer(convnet, data):
    inputs, labels = data
    assert middle_activation_layer(convnet) == 2  # hidden layers with a nonlinearity: 0, 2, 4
    assert get_measure("fragmentation_middle")(convnet, inputs, labels) == fragmentation_score(
        convnet, inputs, labels, layer=2)
