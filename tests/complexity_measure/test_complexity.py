"""The PGDL drop-in: ``complexity(model, dataset)`` as the starting kit calls it."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import complexity_measure
from complexity_measure.complexity import complexity
from complexity_measure.fragmentation import fragmentation_score
from complexity_measure.representation import davies_bouldin_measure
from pgdl_harness.cli import main
from complexity_measure.dataset import dataset_to_arrays, example_hashes
from pgdl_harness.loading import load_arrays, load_model, shard_paths, shards_dataset, split_dataset

from ..conftest import DATA, REPO, TOY_TASK


def test_complexity_is_the_default_measure_as_a_float(toy_task):
    """The default: the fourth root of fragmentation over the fitted paths times the hidden layers'
    Davies-Bouldin index."""
    model = load_model(toy_task.model_folder("model_4"))
    value = complexity(model, split_dataset(toy_task.dataset_folder / "train"))
    assert isinstance(value, float)
    inputs, labels = load_arrays(toy_task)
    assert value == (fragmentation_score(model, inputs, labels, ends="fitted") ** 0.25
                     * davies_bouldin_measure(model, inputs, labels))
    assert complexity(model, split_dataset(toy_task.dataset_folder / "train"), program_dir="/somewhere") == value


def test_complexity_does_not_depend_on_the_order_of_the_shards(toy_task):
    model = load_model(toy_task.model_folder("model_4"))
    inputs, labels = load_arrays(toy_task)
    order = np.random.default_rng(0).permutation(len(labels))
    shuffled = tf.data.Dataset.from_tensor_slices((inputs[order], labels[order].astype(np.int32)))
    assert complexity(model, shuffled) == complexity(model, split_dataset(toy_task.dataset_folder / "train"))


@pytest.fixture(scope="module")
def mnist_vgg():
    from pgdl_harness.tasks import find_tasks
    return find_tasks(DATA, ["mnist_vgg"])[0]


def test_a_large_dataset_is_cut_to_the_examples_with_the_smallest_hashes_whatever_the_shard_order(mnist_vgg):
    shards = shard_paths(mnist_vgg)
    assert len(shards) == 4
    everything, all_labels = dataset_to_arrays(shards_dataset(shards), None)
    smallest = np.argsort(example_hashes(everything, all_labels.astype(np.int32)))[:300]
    for order in ([0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 1, 0]):
        inputs, labels = dataset_to_arrays(shards_dataset([shards[i] for i in order]), 300)
        np.testing.assert_array_equal(inputs, everything[smallest])
        np.testing.assert_array_equal(labels, all_labels[smallest])
    # A dataset within the limit is returned whole, in its own order.
    inputs, _ = dataset_to_arrays(shards_dataset(shards[::-1]), 1000)
    np.testing.assert_array_equal(inputs[:5], everything[750:755])


def test_a_stream_longer_than_the_limit_plus_a_read_batch_is_cut_while_it_is_read():
    """As on every real PGDL task (50,000 examples against the 10,000 cap): the examples kept so far
    are cut to the smallest hashes during the pass, and the result is the same whatever the order."""
    rng = np.random.default_rng(3)
    everything = rng.normal(size=(3000, 4)).astype(np.float32)
    all_labels = rng.integers(0, 10, size=3000).astype(np.int32)
    smallest = np.argsort(example_hashes(everything, all_labels))[:200]
    assert len(everything) > 200 + 2 * 1024  # several cuts during the pass
    for order in (np.arange(3000), rng.permutation(3000)):
        stream = tf.data.Dataset.from_tensor_slices((everything[order], all_labels[order]))
        inputs, labels = dataset_to_arrays(stream, 200)
        np.testing.assert_array_equal(inputs, everything[smallest])
        np.testing.assert_array_equal(labels, all_labels[smallest])


def test_complexity_is_the_same_whatever_order_the_kit_lists_the_shards_in(mnist_vgg, monkeypatch):
    import complexity_measure.complexity as drop_in
    monkeypatch.setattr(drop_in, "DEFAULT_MAX_EXAMPLES", 300)  # fewer than the task's 1,000: a subset is taken
    model = load_model(mnist_vgg.model_folder("model_5"))
    shards = shard_paths(mnist_vgg)
    values = {complexity(model, shards_dataset([shards[i] for i in order]))
              for order in ([0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2])}
    assert len(values) == 1
    assert values != {complexity(model, shards_dataset(shards[:3]))}  # another set of examples, another value


def test_a_dataset_that_does_not_fit_the_model_is_named(toy_task):
    model = load_model(toy_task.model_folder("model_4"))
    wrong = tf.data.Dataset.from_tensor_slices((np.zeros((10, 5), np.float32), np.zeros(10, np.int32)))
    with pytest.raises(ValueError, match=r"inputs have shape \(5,\) per example.*\(3,\)"):
        complexity(model, wrong)
    with pytest.raises(ValueError, match="pairs"):
        complexity(model, tf.data.Dataset.from_tensor_slices(np.zeros((10, 3), np.float32)))


def test_a_copy_loaded_where_the_projects_package_is_imported_runs_its_own_modules(tmp_path, toy_task):
    """A host that imported ``complexity_measure`` loads a changed copy's ``complexity.py``: the copy's
    registry answers (7 plus a thousandth of the examples), and the host's package stays in place."""
    folder = tmp_path / "unpacked_submission"
    shutil.copytree(REPO / "complexity_measure", folder, ignore=shutil.ignore_patterns("__pycache__"))
    with open(folder / "registry.py", "a") as registry:
        registry.write("\n\ndef get_measure(name):\n"
                       "    return lambda model, inputs, labels: 7.0 + len(inputs) / 1000\n")
    spec = importlib.util.spec_from_file_location("unpacked_complexity", folder / "complexity.py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        model = load_model(toy_task.model_folder("model_4"))
        assert module.complexity(model, split_dataset(toy_task.dataset_folder / "train")) == 7.2  # 200 examples
        assert sys.modules["complexity_measure"] is complexity_measure
        assert module.get_measure.__module__.startswith("complexity_measure_")
    finally:
        for name in [name for name in sys.modules if name.startswith("complexity_measure_")]:
            del sys.modules[name]


# The starting kit's way, in a fresh interpreter: the submission folder (under another name, as
# the kit unpacks it) is put on sys.path, `from complexity import complexity`, models built from
# config.json as a Sequential subclass of wrapped layers, the training shards in glob order.
KIT_LIKE_INGESTION = textwrap.dedent('''
    import glob, json, os, sys
    import pkg_resources  # the organisers' ingestion program imports it (setuptools below 81 has it)
    import tensorflow as tf
    task_dir, submission_dir, out_file = sys.argv[1:4]
    sys.path.append(submission_dir)
    from complexity import complexity

    class Sequential(tf.keras.Sequential):
        def __call__(self, x, tape=False, *args, **kwargs):
            if tape:
                tape.watch(x)
            return super().__call__(x, *args, **kwargs)

    def wrapped(layer_class, **kwargs):
        class Wrapped(layer_class):
            def __call__(self, x, *args, **kwargs):
                self._last_seen_input = x
                return super().__call__(x, *args, **kwargs)
        return Wrapped(**kwargs)

    def load(model_dir):
        config = json.load(open(os.path.join(model_dir, "config.json")))
        layers = []
        for definition in config["model_config"]:
            kwargs = {k: (int(v) if isinstance(v, float) and v.is_integer() else v)
                      for k, v in definition.items() if k != "layer_name"}
            layers.append(wrapped(getattr(tf.keras.layers, definition["layer_name"]), **kwargs))
        model = Sequential(layers)
        model.build([0] + config["input_shape"])
        model.load_weights(os.path.join(model_dir, "weights_init.hdf5"))
        model.initial_weights = model.get_weights()
        model.load_weights(os.path.join(model_dir, "weights.hdf5"))
        return model

    def decode(record):
        features = {"inputs": tf.io.FixedLenFeature([], tf.string),
                    "output": tf.io.FixedLenFeature([], tf.string)}
        example = tf.io.parse_single_example(record, features)
        return (tf.io.parse_tensor(example["inputs"], out_type=tf.float32),
                tf.io.parse_tensor(example["output"], out_type=tf.int32))

    data = tf.data.TFRecordDataset(glob.glob(os.path.join(task_dir, "dataset_1", "train", "shard_*.tfrecord")))
    data = data.map(decode)
    values = {}
    for model_id in sorted(m for m in os.listdir(task_dir) if "model" in m and "json" not in m):
        tf.keras.backend.clear_session()
        value = complexity(load(os.path.join(task_dir, model_id)), data)
        values[model_id] = float(value)
    json.dump(values, open(out_file, "w"), sort_keys=True, indent=4)
    package = sys.modules["complexity_measure"].__file__
    print(json.dumps({"keras": type(load(os.path.join(task_dir, model_id))).__mro__[1].__module__,
                      "package": package}))
''')


def run_kit_like_ingestion(tmp_path, legacy_keras: bool):
    submission = tmp_path / "unpacked_submission"
    shutil.copytree(REPO / "complexity_measure", submission, ignore=shutil.ignore_patterns("__pycache__"))
    script = tmp_path / "ingestion.py"
    script.write_text(KIT_LIKE_INGESTION)
    out = tmp_path / "res"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    if legacy_keras:
        env["TF_USE_LEGACY_KERAS"] = "1"
    done = subprocess.run([sys.executable, str(script), str(TOY_TASK), str(submission),
                           str(out / "toy_data.predict")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["package"].startswith(str(submission))  # the copy, not the project's package
    return out, info


@pytest.mark.slow
@pytest.mark.parametrize("legacy_keras", [False, True], ids=["keras3", "keras2"])
def test_the_kit_runs_the_folder_as_it_stands_and_evaluate_scores_it(tmp_path, toy_task, legacy_keras):
    out, info = run_kit_like_ingestion(tmp_path, legacy_keras)
    assert info["keras"].startswith("tf_keras" if legacy_keras else "keras")
    predictions = json.loads((out / "toy_data.predict").read_text())
    assert sorted(predictions) == sorted(toy_task.model_ids)

    # The harness computes the same values in-process (Keras 3) ...
    harness = tmp_path / "harness"
    assert main(["score", "--data", str(DATA), "--task", "toy_data", "--out", str(harness),
                 "--no-progress"]) == 0
    expected = json.loads((harness / "toy_data.predict").read_text())
    differences = np.array([abs(predictions[m] - expected[m]) for m in expected])
    relative = differences / np.abs([expected[m] for m in expected])
    if legacy_keras:
        # ... and Keras 2 computes the same logits up to float rounding: the index agrees to about
        # 1e-6, and rounding can move a class change by a grid point on a rare path (one path of
        # 2048 moves F ** 0.25 by about a 1 / (4 * 2048 * F) part of it).
        assert np.all(relative <= 1e-3) and np.mean(relative <= 1e-5) > 0.8
    else:
        assert np.all(differences == 0)

    # ... and `evaluate` scores the kit's output like the harness's own.
    assert main(["evaluate", "--data", str(DATA), "--predictions", str(out), "--report",
                 str(tmp_path / "kit.json")]) == 0
    kit_score = json.loads((tmp_path / "kit.json").read_text())["toy_data"]
    harness_score = json.loads((harness / "report.json").read_text())["toy_data"]
    # The scores depend only on the models' order: the same order, the same scores, to the last digit.
    same_order = sorted(expected, key=expected.get) == sorted(predictions, key=predictions.get)
    assert same_order or legacy_keras
    if same_order:
        for score in ("cmi", "kendall_tau", "granulated_kendall_tau"):
            assert kit_score[score] == harness_score[score], score
    else:  # a Keras 2 rounding swapped two neighbours: the scores move by at most a pair's worth
        assert abs(kit_score["kendall_tau"] - harness_score["kendall_tau"]) <= 2 / (len(expected) * (len(expected) - 1) / 2) + 1e-12
