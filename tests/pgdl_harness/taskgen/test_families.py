"""The model families: plain allow-listed layers, the same network in Keras 3 and tf_keras, and trainable."""

import itertools
import json

import h5py
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras3 = pytest.importorskip("keras", minversion="3")
tf_keras = pytest.importorskip("tf_keras")

from pgdl_harness.loading import build_model, load_model  # noqa: E402  (after the skips: needs TensorFlow)
from pgdl_harness.taskgen import FAMILIES, make_task  # noqa: E402

# The layers a PGDL config may name (the loader's allow-list), with plain JSON arguments only.
ALLOWED_LAYERS = {"Conv2D", "Dense", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
                  "GlobalMaxPooling2D", "Flatten", "Dropout", "BatchNormalization", "LayerNormalization",
                  "Activation", "ReLU", "LeakyReLU", "ZeroPadding2D", "Reshape"}


def settings_of(family, **changes):
    """Every axis at its first default value, then ``changes``."""
    return {**{axis: values[0] for axis, values in FAMILIES[family].default_grid.items()}, **changes}


def all_settings(family):
    """Every point of the family's default grid, with each boolean axis taking both values."""
    grid = {axis: list(values) for axis, values in FAMILIES[family].default_grid.items()}
    for axis, spec in FAMILIES[family].axes.items():
        if spec.kind is bool:
            grid[axis] = [False, True]
    return [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_default_setting_gives_plain_allow_listed_layers(family):
    for settings in all_settings(family):
        layers = FAMILIES[family].layers(settings, 10)
        assert {layer["layer_name"] for layer in layers} <= ALLOWED_LAYERS, settings
        assert json.loads(json.dumps(layers)) == layers  # plain JSON, nothing to deserialise
        for layer in layers:
            assert not any("regularizer" in key or "initializer" in key or "constraint" in key for key in layer)
        names = [layer["layer_name"] for layer in layers]
        assert ("Dropout" in names) == (settings["dropout"] > 0), settings
        if "batch_norm" in settings:
            assert ("BatchNormalization" in names) == settings["batch_norm"], settings


def test_allconv_has_no_dense_layer_and_downsamples_as_asked():
    strided = FAMILIES["allconv"].layers(settings_of("allconv", depth=3, max_pool=False), 10)
    pooled = FAMILIES["allconv"].layers(settings_of("allconv", depth=3, max_pool=True), 10)
    for layers in (strided, pooled):
        assert "Dense" not in [layer["layer_name"] for layer in layers]
        assert layers[-1] == {"layer_name": "GlobalAveragePooling2D"}
        assert layers[-2]["kernel_size"] == [1, 1] and layers[-2]["filters"] == 10
    assert sum(layer.get("strides") == [2, 2] for layer in strided) == 3
    assert sum(layer["layer_name"] == "MaxPooling2D" for layer in pooled) == 3
    assert not any("strides" in layer for layer in pooled)


def test_mlp_depth_counts_hidden_dense_layers():
    layers = FAMILIES["mlp"].layers(settings_of("mlp", width=7, depth=3), 10)
    dense = [layer for layer in layers if layer["layer_name"] == "Dense"]
    assert [layer["units"] for layer in dense] == [7, 7, 7, 10]
    assert layers[0] == {"layer_name": "Flatten"}


@pytest.mark.parametrize("family, changes, input_shape", [
    ("allconv", {"batch_norm": True, "max_pool": False, "depth": 3, "dropout": 0.25}, [8, 8, 1]),
    ("allconv", {"batch_norm": False, "max_pool": True, "depth": 2}, [14, 14, 1]),
    ("mlp", {"batch_norm": True, "depth": 2, "dropout": 0.5}, [8, 8, 1]),
    ("mlp", {"batch_norm": False, "depth": 1}, [28, 28, 1]),
])
def test_new_families_build_the_same_network_in_both_kerases(family, changes, input_shape):
    config = {"model_config": FAMILIES[family].layers(settings_of(family, width=6, **changes), 10),
              "input_shape": input_shape}
    tf_keras.backend.clear_session()
    legacy = build_model(config, f"{family} test config", keras=tf_keras)
    current = build_model(config, f"{family} test config", keras=keras3)
    assert tuple(legacy.output_shape)[1:] == tuple(current.output_shape)[1:] == (10,)  # one logit per class
    weights = [np.random.default_rng(i).normal(0, 0.3, w.shape).astype(np.float32)
               for i, w in enumerate(legacy.get_weights())]
    # BatchNorm's moving variance must stay positive.
    weights = [np.abs(w) + 0.5 if "moving_variance" in v.name else w for w, v in zip(weights, legacy.weights)]
    legacy.set_weights(weights)
    current.set_weights(weights)
    images = np.random.default_rng(9).uniform(0, 1, [5, *input_shape]).astype(np.float32)
    np.testing.assert_allclose(np.asarray(current(images, training=False)),
                               np.asarray(legacy(images, training=False)), rtol=1e-4, atol=1e-4)


TINY = dict(dataset="digits", seed=2, n_train=100, n_test=50, num_shards=2, max_epochs=3, target_train_acc=1.0,
            progress=False)


@pytest.mark.parametrize("family, grid", [
    ("allconv", {"batch_norm": [True], "width": [8], "depth": [2], "dropout": [0.0], "max_pool": [False, True],
                 "batch_size": [16], "learning_rate": [0.001, 0.01]}),
    ("mlp", {"batch_norm": [False], "width": [16], "depth": [1, 2], "dropout": [0.0], "weight_decay": [0.0],
             "batch_size": [16], "learning_rate": [0.001, 0.01]}),
])
def test_new_families_train_with_a_learning_rate_axis(tmp_path, family, grid):
    task = make_task("tiny", tmp_path, family=family, grid=grid, **TINY)
    configs = json.loads((task / "model_configs.json").read_text())
    log = json.loads((task / "generation_log.json").read_text())
    assert len(configs) == 4
    moved = {}
    for key, entry in configs.items():
        assert entry["hparams"]["learning_rate"]["possible_values"] == [0.001, 0.01]
        model = load_model(task / f"model_{key}")  # the harness's loader, Keras 3
        assert tuple(model.output_shape)[1:] == (10,)
        with h5py.File(task / f"model_{key}" / "weights.hdf5", "r") as f:
            assert str(f.attrs["keras_version"]).startswith("2.")
        # Kernels only: BatchNorm's moving statistics move whatever the learning rate.
        kernels = [i for i, v in enumerate(model.weights) if v.trainable and "kernel" in v.path]
        moved[key] = float(np.median(np.concatenate(
            [np.abs(model.initial_weights[i] - model.get_weights()[i]).ravel() for i in kernels])))
        assert log["models"][key]["epochs"] == 3  # target 1.0 is out of reach in 3 epochs
    # Far above chance (0.1 with 10 balanced classes; its spread on 100 images is 0.03).
    assert max(e["metrics"]["train_acc"] for e in configs.values()) > 0.3
    # Adam moves a weight by about the learning rate per step: the axis reaches the optimizer.
    for key, entry in configs.items():
        if entry["hparams"]["learning_rate"]["current_value"] == 0.01:
            assert moved[key] > 3 * moved[str(int(key) - 1)], (key, moved)
    assert "learning rate `learning_rate`" in (task / "README.md").read_text()
