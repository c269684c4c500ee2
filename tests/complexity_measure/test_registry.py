import math

import numpy as np
import pytest

from complexity_measure.frameworks import as_classifier
from complexity_measure.fragmentation import DEFAULT_N_PAIRS, fragmentation_score
from complexity_measure.registry import DEFAULT_MEASURE, MEASURES, code_fingerprint, get_measure, parse_parameter

from ..conftest import REPO


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
    assert as_classifier(convnet).activation_layers() == [0, 2, 4]  # the middle one: 2
    assert get_measure("fragmentation_middle")(convnet, inputs, labels) == fragmentation_score(
        convnet, inputs, labels, layer=2)


def test_parameters_include_defaults_and_fixed_values():
    parameters = get_measure("fragmentation_penultimate").parameters
    assert parameters["layer"] == -2 and parameters["pairs"] == "same_class"
    assert parameters["n_pairs"] == DEFAULT_N_PAIRS and parameters["seed"] == 0
    assert get_measure("parameter_norm").parameters == {}
    assert get_measure("fragmentation").samples and not get_measure("parameter_norm").samples


def test_with_params_overrides_and_is_used_in_the_call(convnet, data):
    inputs, labels = data
    measure = get_measure("fragmentation", n_pairs=16, pairs="any")
    assert measure.parameters["n_pairs"] == 16 and measure.parameters["pairs"] == "any"
    assert measure(convnet, inputs, labels) == fragmentation_score(convnet, inputs, labels, n_pairs=16, pairs="any")
    assert MEASURES["fragmentation"].parameters["n_pairs"] == DEFAULT_N_PAIRS  # the registered one is unchanged


@pytest.mark.parametrize("overrides, message", [
    ({"n_pairs": "many"}, "parameter n_pairs must be int, got 'many'"),
    ({"nonsense": 1}, "has no parameter 'nonsense'; its parameters: aggregate, batch_size"),
    ({"extend": True}, "parameter extend must be float, got True"),
    ({"layer": 1.5}, "parameter layer must be None or int or str, got 1.5"),
])
def test_with_params_rejects_unknown_and_ill_typed_parameters(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        get_measure("fragmentation", **overrides)


def test_an_int_is_accepted_where_a_float_is_expected():
    assert get_measure("fragmentation", extend=1).parameters["extend"] == 1


@pytest.mark.parametrize("text, expected", [
    ("n_pairs=1024", ("n_pairs", 1024)), ("layer=-2", ("layer", -2)), ("pairs=any", ("pairs", "any")),
    ("layer=None", ("layer", None)), ("layers=[-2, -1]", ("layers", [-2, -1])), ("extend= 0.25", ("extend", 0.25)),
])
def test_parse_parameter(text, expected):
    assert parse_parameter(text) == expected


@pytest.mark.parametrize("text", ["n_pairs", "=3", "two words=1", "x={'a': 1}"])
def test_parse_parameter_rejects_malformed_text(text):
    with pytest.raises(ValueError):
        parse_parameter(text)


def test_code_fingerprint_is_a_stable_hash_of_the_package():
    assert code_fingerprint() == code_fingerprint()
    assert len(code_fingerprint()) == 64


def test_the_makefile_scores_the_registry_default():
    """`make score` and the reporting suite's comparison name the default once, as the registry does."""
    lines = (REPO / "Makefile").read_text().splitlines()
    assert f"DEFAULT_MEASURE := {DEFAULT_MEASURE}" in lines
    assert "MEASURE ?= $(DEFAULT_MEASURE)" in lines and "BENCH_REPORTED_DEFAULT := $(DEFAULT_MEASURE)" in lines
