"""The same network gives the same value in every framework, and a model that cannot give what a
measure needs is refused with one line naming the measure."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from complexity_measure.classifier import ModelRefused
from complexity_measure.frameworks import as_classifier
from complexity_measure.fragmentation import draw_pairs, fragmentation_score, path_classes, path_positions
from complexity_measure.registry import DEFAULT_MEASURE, MEASURES, get_measure
from pgdl_harness.torch_port import torch_port

REPO = Path(__file__).resolve().parents[2]


def randomise_batchnorm(model, seed):
    """Moving statistics and scales far from the identity, so that BatchNorm changes every value."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2.0, variance.shape)])


def mlp(keras):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)])
    return model


def convnet(keras):
    """Convolutions with BatchNorm and global pooling (BatchNorm before and after the activation)."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.BatchNormalization(), keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(16, 3, padding="same"), keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    randomise_batchnorm(model, 1)
    return model


def nin(keras):
    """A NiN-like block: a 3x3 convolution, two 1x1 convolutions (the last one the class maps), global pooling."""
    keras.utils.set_random_seed(2)
    return keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(12, 3, activation="relu"),
        keras.layers.Conv2D(12, 1, activation="relu"), keras.layers.Dropout(0.3), keras.layers.Conv2D(10, 1),
        keras.layers.GlobalAveragePooling2D()])


NETWORKS = {"mlp": mlp, "convnet": convnet, "nin": nin}


def training_data(model, n=400, seed=3):
    """Inputs in the Keras model's layout, and labels: the model's own classes (its outputs
    standardised per class, so that every class has examples), 10% of them changed."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(n,) + tuple(model.input_shape[1:])).astype(np.float32)
    scores = model.predict(inputs, verbose=0)
    labels = ((scores - scores.mean(axis=0)) / scores.std(axis=0)).argmax(axis=1)
    changed = rng.random(n) < 0.1
    labels[changed] = rng.integers(0, 10, changed.sum())
    return inputs, labels


def channels_first(inputs):
    return np.ascontiguousarray(np.moveaxis(inputs, -1, 1)) if inputs.ndim == 4 else inputs


@pytest.fixture(scope="module", params=sorted(NETWORKS))
def twins(request):
    """A Keras network, its PyTorch port, and training data in each one's layout."""
    import tensorflow as tf
    model = NETWORKS[request.param](tf.keras)
    inputs, labels = training_data(model)
    return request.param, model, torch_port(model), inputs, labels


def test_the_port_computes_the_same_function(twins):
    _, model, module, inputs, _ = twins
    expected = model.predict(inputs, verbose=0)
    with torch.no_grad():
        actual = module(torch.as_tensor(channels_first(inputs))).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


def test_the_same_layers_are_hidden_in_both(twins):
    name, model, module, inputs, _ = twins
    keras_side, torch_side = as_classifier(model), as_classifier(module)
    torch_side.check_inputs(channels_first(inputs))
    assert len(keras_side.activation_layers()) == len(torch_side.activation_layers()) >= 1
    keras_layers = [layer.name for layer in keras_side.layers()]
    torch_layers = [layer.name for layer in torch_side.layers()]
    if name == "mlp":  # Linear+ReLU is one layer, as Dense(relu) is
        assert torch_layers == ["Linear+ReLU", "Linear+ReLU", "Linear"] and len(keras_layers) == 3


def test_the_paths_change_class_at_the_same_points(twins):
    _, model, module, inputs, labels = twins
    first, second = draw_pairs(inputs, labels, n_pairs=512, seed=0)
    positions = path_positions(17, 0.5)
    counts = {}
    for name, classifier, x in (("keras", model, inputs), ("torch", module, channels_first(inputs))):
        paths = path_classes(classifier, x[first], x[second], positions, counting="dense")
        counts[name] = np.sum(paths.classes[:, 1:] != paths.classes[:, :-1], axis=1)
    assert np.mean(counts["keras"] == counts["torch"]) >= 0.999
    assert counts["keras"].sum() > 0  # the paths do change class: the comparison means something


# What each measure needs beyond the outputs; the rest of the zoo applies to every one of these networks.
NEEDS_INITIAL_WEIGHTS = {"distance_from_init", "fragmentation_fitted_relative_init_davies_bouldin_quarter"}
FAST = {"fragmentation", "davies_bouldin", DEFAULT_MEASURE, "fragmentation_penultimate", "fragmentation_hidden",
        "sparsity", "parameter_norm", "jacobian_norm", "natekar_sharma", "output_margin"}


def assert_same_values(model, module, inputs, labels, names):
    torch_inputs = channels_first(inputs)
    for name in names:
        keras_value = get_measure(name)(model, inputs, labels)
        torch_value = get_measure(name)(module, torch_inputs, labels)
        assert torch_value == pytest.approx(keras_value, rel=1e-2, abs=1e-6), name


def test_every_measure_gives_the_same_value_in_keras_and_pytorch(twins):
    _, model, module, inputs, labels = twins
    assert_same_values(model, module, inputs, labels, sorted(FAST))


@pytest.mark.slow
def test_the_whole_zoo_gives_the_same_value_in_keras_and_pytorch(twins):
    _, model, module, inputs, labels = twins
    assert_same_values(model, module, inputs, labels, sorted(set(MEASURES) - NEEDS_INITIAL_WEIGHTS - FAST))


def test_distance_from_initialization_with_recorded_initial_weights(twins):
    _, model, module, inputs, labels = twins
    initial_keras = [w * 0.5 for w in model.get_weights()]
    initial_torch = {key: value * 0.5 if value.is_floating_point() else value
                     for key, value in module.state_dict().items()}
    expected = get_measure("distance_from_init")(as_classifier(model, initial_weights=initial_keras), inputs, labels)
    actual = get_measure("distance_from_init")(as_classifier(module, initial_weights=initial_torch), inputs, labels)
    assert expected > 0 and actual == pytest.approx(expected, rel=1e-6)


def halved(model, module):
    """Initial weights for the twins: every weight array halved, in each framework's own order."""
    return ([w * 0.5 for w in model.get_weights()],
            {key: value * 0.5 if value.is_floating_point() else value for key, value in module.state_dict().items()})


def test_the_initial_weights_are_set_inside_the_block_and_restored_after_it(twins):
    _, model, module, inputs, labels = twins
    initial_keras, initial_torch = halved(model, module)
    for classifier in (as_classifier(model, initial_weights=initial_keras),
                       as_classifier(module, initial_weights=initial_torch)):
        trained = classifier.weights()
        with pytest.raises(RuntimeError, match="inside"):
            with classifier.at_initial_weights():
                for now, start in zip(classifier.weights(), trained):
                    np.testing.assert_array_equal(now, start * 0.5)
                raise RuntimeError("inside")
        for now, start in zip(classifier.weights(), trained):
            np.testing.assert_array_equal(now, start)
    with pytest.raises(ModelRefused, match="initial"):
        with as_classifier(module).at_initial_weights():
            pass


def test_initial_weights_of_another_shape_are_refused_before_any_weight_is_set(twins):
    _, model, module, inputs, labels = twins
    initial_keras, _ = halved(model, module)
    wrong = [initial_keras[0][:-1]] + initial_keras[1:]
    classifier = as_classifier(model, initial_weights=wrong)
    trained = classifier.weights()
    with pytest.raises(ValueError, match=r"initial weight array 0 has shape"):
        with classifier.at_initial_weights():
            pass
    with pytest.raises(ValueError, match="initial weights have 1 arrays"):
        with as_classifier(model, initial_weights=initial_keras[:1]).at_initial_weights():
            pass
    for now, start in zip(classifier.weights(), trained):
        np.testing.assert_array_equal(now, start)


def test_fragmentation_relative_to_initialisation_in_keras_and_pytorch(twins):
    import tensorflow as tf
    _, model, module, inputs, labels = twins
    initial_keras, initial_torch = halved(model, module)
    name = "fragmentation_fitted_relative_init_davies_bouldin_quarter"
    keras_value = get_measure(name)(as_classifier(model, initial_weights=initial_keras), inputs, labels)
    torch_value = get_measure(name)(as_classifier(module, initial_weights=initial_torch), channels_first(inputs), labels)
    assert torch_value == pytest.approx(keras_value, rel=1e-2)
    # What it computes, from a separate copy of the network at its initial weights.
    copy = tf.keras.models.clone_model(model)
    copy.set_weights(initial_keras)
    floor = 1 / 2048
    trained = max(get_measure("fragmentation_fitted")(model, inputs, labels), floor)
    at_init = max(get_measure("fragmentation")(copy, inputs, labels), floor)
    assert trained != at_init  # halving the weights moved the count: the division means something
    expected = (trained / at_init) ** 0.25 * get_measure("davies_bouldin")(model, inputs, labels)
    assert keras_value == pytest.approx(expected, rel=1e-9)


def test_a_callable_wrapping_a_keras_model_gives_its_fragmentation():
    import tensorflow as tf
    model = convnet(tf.keras)
    inputs, labels = training_data(model)
    function = lambda batch: model(batch, training=False)  # noqa: E731: a user's own wrapper
    for measure in ("fragmentation", "fragmentation_fitted", "mixup_error", "output_margin"):
        assert get_measure(measure)(function, inputs, labels) == pytest.approx(
            get_measure(measure)(model, inputs, labels), rel=1e-6)


def test_pytorch_is_measured_in_eval_mode_and_left_as_it_was(twins):
    _, _, module, inputs, labels = twins
    module.train()
    before = [tensor.clone() for tensor in module.state_dict().values()]
    value = fragmentation_score(module, channels_first(inputs), labels, n_pairs=64)
    assert module.training and all(member.training for member in module.modules())
    assert all(torch.equal(a, b) for a, b in zip(before, module.state_dict().values()))  # BatchNorm untouched
    module.eval()
    assert value == fragmentation_score(module, channels_first(inputs), labels, n_pairs=64)


# ---------------------------------------------------------------------------------------------
# Modules that are not chains, and refusals


class Residual(nn.Module):
    """Not a chain: a skip connection, and one ReLU module called twice."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.inner = nn.Linear(16, 16)
        self.relu = nn.ReLU()
        self.second = nn.Linear(16, 16)
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        x = self.relu(self.inner(x))
        x = self.relu(x + self.second(x))
        return self.out(x)


class FunctionalRelu(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.first, self.last = nn.Linear(16, 16), nn.Linear(16, 4)

    def forward(self, x):
        return self.last(torch.relu(self.first(x)))


def flat_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(n, 16)).astype(np.float32)
    return inputs, (inputs[:, 0] > 0).astype(int) + 2 * (inputs[:, 1] > 0).astype(int)


def test_a_module_that_is_not_a_chain_is_measured_through_hooks():
    module = Residual()
    inputs, labels = flat_data()
    classifier = as_classifier(module)
    classifier.check_inputs(inputs)
    # Calls: inner, relu, second, relu (the same module again), out: three layers, two hidden.
    assert [layer.name for layer in classifier.layers()] == ["Linear+ReLU", "Linear+ReLU", "Linear"]
    assert classifier.activation_layers() == [0, 1]
    # The hooks see the same representations as running the pieces by hand.
    with torch.no_grad():
        x = torch.as_tensor(inputs)
        first = torch.relu(module.inner(x))
        expected = [first.numpy(), torch.relu(first + module.second(first)).numpy()]
    outputs = [np.concatenate(parts) for parts in zip(*classifier.layer_outputs(inputs, [0, 1], batch_size=64))]
    for actual, wanted in zip(outputs, expected):
        np.testing.assert_allclose(actual, wanted, rtol=1e-6)
    assert get_measure("davies_bouldin")(module, inputs, labels) > 0
    assert get_measure("fragmentation")(module, inputs, labels) >= 0
    with pytest.raises(ModelRefused, match="^fragmentation_penultimate: .*needs a chain of layers"):
        get_measure("fragmentation_penultimate")(module, inputs, labels)


def refusal(name, model, inputs, labels):
    with pytest.raises(ModelRefused) as raised:
        get_measure(name)(model, inputs, labels)
    message = str(raised.value)
    assert message.startswith(f"{name}: ") and "\n" not in message
    return message


def test_each_refusal_is_one_line_naming_the_measure_and_what_is_lacking():
    inputs, labels = flat_data()
    module = Residual()
    function = lambda batch: module(torch.as_tensor(batch)).detach().numpy()  # noqa: E731
    assert "plain callable has no layers" in refusal("davies_bouldin", function, inputs, labels)
    assert "plain callable has no layers" in refusal(DEFAULT_MEASURE, function, inputs, labels)
    assert "needs a chain of layers" in refusal("fragmentation_penultimate", function, inputs, labels)
    assert "gives no input gradients" in refusal("jacobian_norm", function, inputs, labels)
    assert "has no weights" in refusal("parameter_norm", function, inputs, labels)
    assert "initial weights were never recorded" in refusal("distance_from_init", module, inputs, labels)
    assert "no hidden layer with a nonlinearity" in refusal("davies_bouldin", FunctionalRelu(), inputs, labels)
    # What a callable does give, it gives: the input-space measures.
    assert get_measure("fragmentation")(function, inputs, labels) == get_measure("fragmentation")(module, inputs, labels)


def nan_copies(twin):
    name, model, module, inputs, labels = twin
    import tensorflow as tf
    broken = NETWORKS[name](tf.keras)
    broken.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    broken.initial_weights = model.get_weights()
    broken_module = torch_port(model)
    with torch.no_grad():
        for parameter in broken_module.parameters():
            parameter.fill_(float("nan"))
    return broken, broken_module, inputs, labels


def test_a_diverged_network_is_refused_by_every_measure(twins):
    broken, broken_module, inputs, labels = nan_copies(twins)
    initial = {key: torch.zeros_like(value) for key, value in broken_module.state_dict().items()}
    for name in sorted(MEASURES):
        assert "not finite" in refusal(name, broken, inputs, labels)
        assert "not finite" in refusal(name, as_classifier(broken_module, initial_weights=initial),
                                       channels_first(inputs), labels)


def test_unknown_models_are_refused_at_the_door():
    with pytest.raises(TypeError, match="expected a classifier: a Keras model, a torch.nn.Module or a callable"):
        fragmentation_score(object(), np.zeros((4, 2)), np.array([0, 0, 1, 1]))


# ---------------------------------------------------------------------------------------------
# Keras 3 on the JAX and PyTorch backends, and frameworks imported only when used


def run_python(code, **environment):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **environment}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


KERAS_BACKEND_RUN = """
import json, sys
import numpy as np
import keras
saved = np.load(r"{weights}")
inputs, labels = saved["inputs"], saved["labels"]
model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
    keras.layers.BatchNormalization(), keras.layers.MaxPooling2D(2), keras.layers.Conv2D(16, 3, padding="same"),
    keras.layers.BatchNormalization(), keras.layers.Activation("relu"), keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dense(10)])
model.set_weights([saved[f"w{{i}}"] for i in range(len(model.get_weights()))])
from complexity_measure.registry import get_measure
values = {{name: get_measure(name)(model, inputs, labels) for name in {names!r}}}
values["backend"] = keras.backend.backend()
print(json.dumps(values))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_3_on_another_backend_gives_the_tensorflow_value(backend, tmp_path):
    import tensorflow as tf
    model = convnet(tf.keras)
    inputs, labels = training_data(model, n=300)
    weights = tmp_path / "weights.npz"
    np.savez(weights, inputs=inputs, labels=labels, **{f"w{i}": w for i, w in enumerate(model.get_weights())})
    names = ["fragmentation", "davies_bouldin", DEFAULT_MEASURE, "fragmentation_penultimate", "jacobian_norm"]
    values = run_python(KERAS_BACKEND_RUN.format(weights=weights, names=names), KERAS_BACKEND=backend)
    assert values.pop("backend") == backend
    for name in names:
        assert values[name] == pytest.approx(get_measure(name)(model, inputs, labels), rel=1e-2), name


def test_measuring_a_pytorch_module_never_imports_tensorflow():
    values = run_python("""
import json, sys
import numpy as np, torch
from complexity_measure.registry import get_measure, DEFAULT_MEASURE
torch.manual_seed(0)
module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
inputs = np.random.default_rng(0).normal(size=(90, 4)).astype(np.float32)
labels = np.arange(90) % 3
value = get_measure(DEFAULT_MEASURE)(module, inputs, labels)
print(json.dumps({"value": value, "tensorflow": "tensorflow" in sys.modules, "jax": "jax" in sys.modules}))
""")
    assert values["value"] > 0 and not values["tensorflow"] and not values["jax"]


def test_the_drop_in_imports_no_other_framework():
    values = run_python("""
import json, sys
sys.path.insert(0, "complexity_measure")
from complexity import complexity
print(json.dumps({"torch": "torch" in sys.modules, "jax": "jax" in sys.modules}))
""")
    assert values == {"torch": False, "jax": False}


def test_measuring_once_an_epoch_inside_a_pytorch_training_loop():
    """docs/frameworks.md's loop: the measure between epochs changes nothing that training uses."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = (digits.images[:, None] / 16.0).astype(np.float32)[:600]  # NCHW
    y = digits.target[:600]

    def train(measure_each_epoch):
        torch.manual_seed(0)
        module = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Dropout(0.2), nn.Flatten(), nn.Linear(288, 10))
        optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
        fragmentation = get_measure("fragmentation", n_pairs=128)
        history = []
        for _ in range(3):
            module.train()
            for start in range(0, len(x), 100):
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(module(torch.as_tensor(x[start:start + 100])),
                                                   torch.as_tensor(y[start:start + 100]))
                loss.backward()
                optimizer.step()
            if measure_each_epoch:
                history.append(fragmentation(module, x, y))
                assert module.training  # left as the loop had it
        return history, [p.detach().clone() for p in module.parameters()]

    history, weights = train(True)
    _, weights_unmeasured = train(False)
    assert len(history) == 3 and all(value >= 0 for value in history)
    assert all(torch.equal(a, b) for a, b in zip(weights, weights_unmeasured))  # training went on as before


def test_the_drop_in_refuses_a_diverged_network_with_one_line():
    import tensorflow as tf
    from complexity_measure.complexity import complexity
    model = mlp(tf.keras)
    inputs, labels = training_data(model, n=200)
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    dataset = tf.data.Dataset.from_tensor_slices((inputs, labels.astype(np.int32)))
    with pytest.raises(ModelRefused, match=f"^{DEFAULT_MEASURE}: the model's weights are not finite"):
        complexity(model, dataset)
