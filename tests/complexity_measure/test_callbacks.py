import math
import re

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from complexity_measure.callbacks import FragmentationMonitor, fragmentation_monitor_class
from complexity_measure.fragmentation import DEFAULT_N_POINTS, fragmentation_score, fragmentation_with_cost
from complexity_measure.registry import get_measure

PHASE = 0.1  # keeps the class boundaries off the path's grid points and ends
# Class changes along the path from x=0 to x=1 at each epoch, set by ScheduledFrequency.
SCHEDULE = [0, 3, 1, 5]


def sine_model(keras):
    """1-D input; logits (sin(w x + b), -sin(w x + b)) with w, b the weights of a Dense(1) layer.

    With w = k pi and b = PHASE the class changes exactly k times on x in [0, 1].
    """
    model = keras.Sequential([
        keras.layers.Dense(1),
        keras.layers.Lambda(lambda h: tf.concat([tf.sin(h), -tf.sin(h)], axis=1), output_shape=(2,)),
    ])
    model.build([None, 1])
    # A learning rate of 0: fit runs its loop and callbacks, but only the schedule moves the weights.
    model.compile(optimizer=keras.optimizers.SGD(0.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def scheduled_frequency(keras, model, schedule):
    class ScheduledFrequency(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            model.layers[0].set_weights([np.array([[schedule[epoch] * math.pi]], np.float32),
                                         np.array([PHASE], np.float32)])

    return ScheduledFrequency()


# Two examples of one class at x=0 and x=1: every same-class path runs between them, exactly.
# Counted on the dense grid: a sine of k whole periods looks the same at the ends and the middle
# of the path, so adaptive counting (which refines only where the class or margin may change)
# would see nothing there; the counting rule is fragmentation's business, tested with it.
X = np.array([[0.0], [1.0]], np.float32)
Y = np.array([0, 0])
EXACT = {"n_pairs": 4, "n_points": 401, "extend": 0.0, "counting": "dense"}


def fit(keras, model, callbacks, epochs=len(SCHEDULE)):
    return model.fit(X, Y, epochs=epochs, batch_size=1, verbose=0, shuffle=False, callbacks=callbacks)


def test_known_fragmentation_at_every_epoch_reaches_history_and_csv(keras, tmp_path):
    model = sine_model(keras)
    monitor = FragmentationMonitor(X, Y, keras=keras, verbose=0, **EXACT)
    csv = tmp_path / "log.csv"
    history = fit(keras, model, [scheduled_frequency(keras, model, SCHEDULE), monitor,
                                 keras.callbacks.CSVLogger(str(csv))])
    assert history.history["fragmentation"] == SCHEDULE
    assert pd.read_csv(csv)["fragmentation"].tolist() == SCHEDULE
    assert [r["value"] for r in monitor.records] == SCHEDULE
    assert isinstance(monitor, keras.callbacks.Callback)


def test_every_and_batches_choose_when_to_measure(keras):
    model = sine_model(keras)
    monitor = FragmentationMonitor(X, Y, keras=keras, every=2, batches=[1], at_train_begin=True,
                                   log_name="frag", verbose=0, **EXACT)
    history = fit(keras, model, [scheduled_frequency(keras, model, SCHEDULE), monitor])
    # Epochs 0 and 2 only (History keeps the measured ones, as with Keras's validation_freq).
    assert history.history["frag"] == [SCHEDULE[0], SCHEDULE[2]]
    where = [(r["stage"], r["epoch"], r["batch"]) for r in monitor.records]
    assert where == [("train_begin", None, None), ("batch", 0, 1), ("epoch", 0, None),
                     ("batch", 2, 1), ("epoch", 2, None)]
    # Before training the Dense layer has its random initial weights: a value, not the schedule's.
    assert [r["value"] for r in monitor.records][1:] == [0, 0, 1, 1]


def test_early_stopping_sees_the_score(keras):
    model = sine_model(keras)
    monitor = FragmentationMonitor(X, Y, keras=keras, verbose=0, **EXACT)
    stop = keras.callbacks.EarlyStopping(monitor="fragmentation", mode="min", patience=0)
    history = fit(keras, model, [scheduled_frequency(keras, model, [4, 2, 3, 1]), monitor, stop])
    # 4 -> 2 improves, 3 does not: training stops after the third epoch.
    assert history.history["fragmentation"] == [4, 2, 3]


def test_a_registered_measure_or_a_callable_is_logged_under_its_name(keras):
    model = sine_model(keras)
    norm = FragmentationMonitor(X, Y, keras=keras, measure="parameter_norm", verbose=0)
    seen = []

    def first_logit_sum(model, inputs, labels, scale=1.0):
        seen.append(inputs)
        return scale * float(np.sum(model(inputs, training=False).numpy()[:, 0]))

    custom = FragmentationMonitor(X, Y, keras=keras, measure=first_logit_sum, scale=2.0, verbose=0)
    history = fit(keras, model, [scheduled_frequency(keras, model, [1, 2]), norm, custom], epochs=2)
    squares = [(k * math.pi) ** 2 + PHASE ** 2 for k in (1, 2)]
    np.testing.assert_allclose(history.history["parameter_norm"], squares, rtol=1e-5)
    expected = [2 * (math.sin(PHASE) + math.sin(k * math.pi + PHASE)) for k in (1, 2)]
    np.testing.assert_allclose(history.history["first_logit_sum"], expected, rtol=1e-5, atol=1e-6)
    # The same examples at every call: the paths of a seeded measure cannot move between epochs.
    assert len(seen) == 2 and seen[0] is seen[1]
    assert norm.last_cost["forward_passes"] == 0 and norm.last_cost["seconds"] >= 0  # weights only
    assert custom.last_cost["forward_passes"] is None  # a callable of one's own: not counted


def test_measure_params_reach_the_registered_measure():
    model = sine_model(tf.keras)
    model.layers[0].set_weights([np.array([[3 * math.pi]], np.float32), np.array([PHASE], np.float32)])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(40, 1)).astype(np.float32)
    y = rng.integers(0, 2, size=40)
    monitor = FragmentationMonitor(x, y, measure="fragmentation_any", n_pairs=64, seed=5, verbose=0)
    monitor.set_model(model)
    value = monitor.measure_now()
    assert value == fragmentation_score(model, x, y, pairs="any", n_pairs=64, seed=5)
    assert monitor.name == "fragmentation_any"
    # Adaptive counting evaluates part of the dense grid: the monitor reports what the measure made.
    passes = fragmentation_with_cost(model, x, y, pairs="any", n_pairs=64, seed=5).forward_passes
    assert monitor.last_cost["forward_passes"] == passes and 64 * 5 <= passes < 64 * DEFAULT_N_POINTS


def test_measuring_changes_no_weight_and_no_statistic(keras):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.BatchNormalization(),
                              keras.layers.Dropout(0.5), keras.layers.Flatten(), keras.layers.Dense(3)])
    model.build([None, 6, 6, 1])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=30)
    before = [w.copy() for w in model.get_weights()]
    for layer in (None, -2):
        monitor = FragmentationMonitor(x, y, keras=keras, layer=layer, n_pairs=32, verbose=0)
        monitor.set_model(model)
        logs = {}
        monitor.on_epoch_end(0, logs)
        assert logs["fragmentation"] >= 0
    after = model.get_weights()
    assert len(before) == len(after)  # BatchNorm's moving mean and variance included
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)


def test_training_with_the_monitor_gives_the_same_weights_as_without(keras):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=64)

    def train(callbacks):
        keras.utils.set_random_seed(7)
        model = keras.Sequential([keras.layers.Dense(16, activation="relu"), keras.layers.Dropout(0.3),
                                  keras.layers.Dense(3)])
        model.build([None, 5])
        model.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=callbacks(keras))
        return model.get_weights()

    plain = train(lambda keras: [])
    monitored = train(lambda keras: [FragmentationMonitor(x, y, keras=keras, n_pairs=32, batches=[1], verbose=0)])
    for a, b in zip(plain, monitored):
        np.testing.assert_array_equal(a, b)


def test_cost_is_stated_per_call(keras, capsys):
    model = sine_model(keras)
    monitor = FragmentationMonitor(X, Y, keras=keras, layer=0, n_pairs=10, n_points=9, counting="dense")
    monitor.set_model(model)
    monitor.on_epoch_end(0, {})
    line = capsys.readouterr().out.strip()
    assert line.startswith("FragmentationMonitor: fragmentation = ")
    assert line.endswith("110 forward passes)")  # 10 paths x 9 points + 2 x 10 representations
    assert monitor.last_cost["forward_passes"] == 110
    assert monitor.total_seconds == pytest.approx(monitor.last_cost["seconds"])


def test_forward_passes_follow_the_registered_parameters():
    model = sine_model(tf.keras)
    penultimate = FragmentationMonitor(X, Y, measure="fragmentation_penultimate", n_pairs=8, counting="dense",
                                       verbose=0)  # layer=-2 is fixed by the registry
    assert penultimate.function.parameters["layer"] == -2 and penultimate.function.parameters["n_pairs"] == 8
    penultimate.set_model(model)
    penultimate.measure_now()
    assert penultimate.last_cost["forward_passes"] == 8 * DEFAULT_N_POINTS + 2 * 8  # points + path ends
    jacobian = FragmentationMonitor(X, Y, measure="jacobian_norm", verbose=0)
    jacobian.set_model(model)
    jacobian.measure_now()
    assert jacobian.last_cost["forward_passes"] == min(len(X), 512)  # its sample, once through


def test_the_default_measure_logs_the_passes_of_both_factors():
    from complexity_measure.registry import DEFAULT_MEASURE
    keras = tf.keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2)).astype(np.float32)
    y = model.predict(x, verbose=0).argmax(axis=1)
    monitor = FragmentationMonitor(x, y, measure=DEFAULT_MEASURE, verbose=0)
    monitor.set_model(model)
    value = monitor.measure_now()
    fitted = fragmentation_with_cost(model, x, y, ends="fitted").forward_passes
    # the fragmentation factor's passes (the path ends' check included), then the index's sample
    assert monitor.last_cost["forward_passes"] == fitted + min(len(x), 500)
    assert value == get_measure(DEFAULT_MEASURE)(model, x, y)


def test_one_class_per_keras_each_a_subclass_of_its_callback(keras):
    cls = fragmentation_monitor_class(keras)
    assert cls is fragmentation_monitor_class(keras)
    assert issubclass(cls, keras.callbacks.Callback) and cls.__name__ == "FragmentationMonitor"


@pytest.mark.parametrize("kwargs, message", [
    ({"every": 0}, "every must be a positive integer"),
    ({"batches": [-1]}, "batches must be non-negative"),
    ({"measure": "no_such_measure"}, "unknown measure 'no_such_measure'"),
    ({"measure": 3}, "measure must be a registered measure's name or a callable"),
])
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    with pytest.raises((ValueError, KeyError), match=message):
        FragmentationMonitor(X, Y, **kwargs)


def test_mismatched_inputs_and_labels_are_refused():
    with pytest.raises(ValueError, match="inputs has 2 examples but labels has 3"):
        FragmentationMonitor(X, [0, 0, 1])
    with pytest.raises(ValueError, match="keras must be a Keras module"):
        FragmentationMonitor(X, Y, keras=np)


def test_the_documented_example_runs(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "experiments.md").read_text()
    section = page[page.index("## The callback"):]
    code = section[section.index("```python\n") + len("```python\n"):section.index("```\n", section.index("```python"))]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    logged = pd.read_csv(tmp_path / "training.csv")
    assert len(logged) == 4 and logged["fragmentation"].notna().all()
    assert logged["fragmentation_penultimate"].notna().tolist() == [True, False, True, False]
    # The passes the measure made: adaptive counting evaluates 5 to 17 points of each of 256 paths.
    passes = int(re.search(r"'forward_passes': (\d+)}", capsys.readouterr().out).group(1))
    assert 256 * 5 <= passes <= 256 * DEFAULT_N_POINTS
