import json
import re
import shutil

import numpy as np
import pytest

from complexity_measure.frameworks import as_classifier
from pgdl_harness.loading import ModelLoadError, RefusedConfigError, load_arrays, load_model, shard_paths, split_dataset
from pgdl_harness.tasks import TaskFolderError, find_tasks

from ..conftest import TOY_TASK


def test_toy_models_reproduce_the_recorded_accuracies_exactly(toy_task):
    specs = toy_task.model_specs()
    train = load_arrays(toy_task, "train", None)
    test = load_arrays(toy_task, "test", None)
    assert len(train[0]) == 200 and len(test[0]) == 100
    for model_id in toy_task.model_ids:
        model = load_model(toy_task.model_folder(model_id))
        metrics = specs[model_id.removeprefix("model_")]["metrics"]
        for (inputs, labels), recorded in ((train, metrics["train_acc"]), (test, metrics["test_acc"])):
            accuracy = np.mean(as_classifier(model).logits(inputs).argmax(axis=1) == labels)
            assert accuracy == pytest.approx(recorded, abs=1e-12), model_id


def test_initial_weights_are_kept_beside_the_trained_ones(toy_task):
    model = load_model(toy_task.model_folder("model_3"))
    assert len(model.initial_weights) == len(model.get_weights())
    distance = sum(np.sum((a - b) ** 2) for a, b in zip(model.initial_weights, model.get_weights()))
    assert distance > 0.1


def test_dataset_is_the_kits_unbatched_pairs_in_sorted_shard_order(toy_task):
    dataset = split_dataset(toy_task.dataset_folder / "train")
    inputs, label = next(iter(dataset))
    assert inputs.shape == (3,) and inputs.dtype.name == "float32"
    assert label.shape == () and label.dtype.name == "int32"
    assert [p.name for p in shard_paths(toy_task)] == ["shard_0.tfrecord", "shard_1.tfrecord", "shard_2.tfrecord"]
    assert len(load_arrays(toy_task, "train", 50)[0]) == 50


@pytest.fixture
def model_folder(tmp_path):
    folder = tmp_path / "model_9"
    shutil.copytree(TOY_TASK / "model_9", folder)
    return folder


def _edit_config(folder, edit):
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))


def test_missing_config(model_folder):
    (model_folder / "config.json").unlink()
    with pytest.raises(ModelLoadError, match=r"model_9/config.json: missing"):
        load_model(model_folder)


def test_config_that_is_not_json(model_folder):
    (model_folder / "config.json").write_text("{'model_config': ")
    with pytest.raises(ModelLoadError, match=r"config.json: not valid JSON"):
        load_model(model_folder)


def test_unknown_layer(model_folder):
    _edit_config(model_folder, lambda c: c["model_config"][0].update(layer_name="Dense3000"))
    with pytest.raises(RefusedConfigError, match=r"config.json: layer 0 is 'Dense3000', which is not a layer PGDL "
                                                 r"models are made of; refused"):
        load_model(model_folder)


# Entries a task folder must never get past the loader: layers that load files or run functions,
# and arguments Keras would turn into objects other than its own built-ins.
REFUSED = [
    ({"layer_name": "TFSMLayer", "filepath": "/tmp/graph", "call_endpoint": "serve"},
     "layer 1 is 'TFSMLayer', which is not a layer PGDL models are made of; refused"),
    ({"layer_name": "Lambda", "function": "lambda x: x"}, "layer 1 is 'Lambda', which is not a layer PGDL"),
    ({"layer_name": "Dense", "units": 2, "kernel_initializer": {"class_name": "Evil", "config": {}}},
     "layer 1 (Dense), argument 'kernel_initializer': an object naming class 'Evil' is not a built-in initializer; "
     "refused"),
    ({"layer_name": "Dense", "units": 2, "activation": "os.system"},
     "layer 1 (Dense), argument 'activation': 'os.system' is not a built-in activation; refused"),
    ({"layer_name": "Dense", "units": 2, "activation": {"class_name": "function", "config": "relu"}},
     "layer 1 (Dense), argument 'activation': expected the name of a built-in activation, got an object naming "
     "class 'function'; refused"),
    ({"layer_name": "Dense", "units": 2, "kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.1},
                                                                "module": "my_package"}},
     "layer 1 (Dense), argument 'kernel_regularizer': 'L2' is named from module 'my_package'"),
    ({"layer_name": "Dense", "units": 2, "dtype": {"class_name": "DTypePolicy", "config": {"name": "float32"}}},
     "layer 1 (Dense), argument 'dtype': an object naming class 'DTypePolicy' would be turned into an object; "
     "refused (layer arguments must be plain JSON values"),
    ({"layer_name": "Reshape", "target_shape": [{"class_name": "X"}]},
     "layer 1 (Reshape), argument 'target_shape': an object naming class 'X' would be turned into an object"),
]


@pytest.mark.parametrize("entry, message", REFUSED, ids=[entry["layer_name"] + str(i) for i, (entry, _) in
                                                        enumerate(REFUSED)])
def test_refused_layers_and_arguments_name_the_file_layer_and_reason(model_folder, entry, message):
    _edit_config(model_folder, lambda c: c["model_config"].insert(1, entry))
    with pytest.raises(RefusedConfigError, match=re.escape(f"model_9/config.json: {message}")):
        load_model(model_folder)


def test_a_refused_layer_makes_nothing_even_after_good_layers(model_folder, monkeypatch):
    import tensorflow as tf
    made = []
    real = tf.keras.layers.Dense.__init__
    monkeypatch.setattr(tf.keras.layers.Dense, "__init__", lambda self, *a, **k: made.append(1) or real(self, *a, **k))
    _edit_config(model_folder, lambda c: c["model_config"].append({"layer_name": "TFSMLayer", "filepath": "x"}))
    with pytest.raises(RefusedConfigError):
        load_model(model_folder)
    assert made == []


@pytest.mark.parametrize("arguments", [
    {"kernel_initializer": "glorot_uniform", "bias_initializer": "Zeros", "activation": "relu"},
    {"kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
     "kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.001}},
     "kernel_constraint": {"class_name": "MaxNorm", "config": {"max_value": 3}}},
])
def test_built_in_objects_are_accepted_in_both_keras(keras, arguments):
    from pgdl_harness.loading import build_model
    config = {"model_config": [{"layer_name": "Dense", "units": 4, **arguments}, {"layer_name": "Dense", "units": 2}],
              "input_shape": [3]}
    model = build_model(config, "config.json", keras=keras)
    assert model.output_shape == (None, 2) or model.output_shape == (0, 2)


def test_every_bundled_config_passes_the_allow_list():
    from pgdl_harness.loading import check_layer_definition
    checked = 0
    for path in sorted(TOY_TASK.parent.glob("*/model_*/config.json")):
        for index, entry in enumerate(json.loads(path.read_text())["model_config"]):
            check_layer_definition(path, index, entry)
            checked += 1
    assert checked > 800


def test_the_parameter_count_from_the_config_is_the_built_models(keras):
    # Every family of the task generator, with and without BatchNorm, and every bundled model.
    from pgdl_harness.loading import _make_layer, build_model, config_parameter_count
    from pgdl_harness.taskgen.families import FAMILIES
    configs = []
    for family, hp, shape in [("vgg", {"width": 4, "depth": 2, "dropout": 0.5}, [32, 32, 3]),
                              ("nin", {"width": 8, "depth": 2, "dropout": 0.0, "batch_norm": True}, [28, 28, 1]),
                              ("allconv", {"width": 4, "depth": 2, "dropout": 0.3, "batch_norm": True,
                                           "max_pool": False}, [32, 32, 3]),
                              ("mlp", {"width": 16, "depth": 2, "dropout": 0.0, "batch_norm": True}, [14, 14, 1])]:
        configs.append({"model_config": FAMILIES[family].layers(hp, 10), "input_shape": shape})
    configs += [json.loads(path.read_text()) for path in sorted(TOY_TASK.parent.glob("*/model_1/config.json"))]
    for config in configs:
        layers = [_make_layer(keras, "config.json", i, d) for i, d in enumerate(config["model_config"])]
        counted = config_parameter_count(layers, config["input_shape"])
        assert counted == build_model(config, "config.json", keras=keras).count_params() > 0


def test_a_config_that_asks_for_the_whole_machine_is_refused_before_anything_is_built(model_folder):
    from pgdl_harness.loading import config_parameter_count, _make_layer
    import tensorflow as tf
    # 2e9 units on the toy models' 3 inputs: 8e9 weights, and the next layer's on 2e9 features far more.
    # Counted without allocating.
    config = json.loads((model_folder / "config.json").read_text())
    config["model_config"][0]["units"] = 2_000_000_000
    layers = [_make_layer(tf.keras, "config.json", i, d) for i, d in enumerate(config["model_config"])]
    assert not any(layer.built for layer in layers)
    count = config_parameter_count(layers, config["input_shape"])
    assert count == 264_000_000_386
    _edit_config(model_folder, lambda c: c["model_config"][0].update(units=2_000_000_000))
    with pytest.raises(ModelLoadError, match=r"model_9/config.json: the layers would hold [\d,]+ parameters "
                                             r"\(\d+\.\d GiB of float32\), more than the limit of 200,000,000"):
        load_model(model_folder)
    # The limit is a setting: a small model under a smaller limit is refused the same way.
    shutil.rmtree(model_folder)
    shutil.copytree(TOY_TASK / "model_9", model_folder)
    with pytest.raises(ModelLoadError, match="more than the limit of 10"):
        load_model(model_folder, max_parameters=10)
    assert load_model(model_folder).count_params() == 17_282  # under the default limit it loads


def test_layer_arguments_rejected(model_folder):
    _edit_config(model_folder, lambda c: c["model_config"][0].update(unitz=3))
    with pytest.raises(ModelLoadError, match=r"layer 0 \(Dense\) rejects its arguments"):
        load_model(model_folder)


def test_weights_that_do_not_fit_the_architecture(model_folder):
    _edit_config(model_folder, lambda c: c["model_config"][0].update(units=7))
    with pytest.raises(ModelLoadError, match=r"model_9/weights.hdf5: cannot be loaded into the model"), \
            pytest.warns(UserWarning, match="weights_init.hdf5: cannot be loaded"):
        load_model(model_folder)


def test_corrupt_weights_file(model_folder):
    data = (model_folder / "weights.hdf5").read_bytes()
    (model_folder / "weights.hdf5").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelLoadError, match=r"model_9/weights.hdf5: cannot be loaded"):
        load_model(model_folder)


def test_missing_weights(model_folder):
    (model_folder / "weights.hdf5").unlink()
    with pytest.raises(ModelLoadError, match=r"model_9/weights.hdf5: missing"):
        load_model(model_folder)


def test_corrupt_initial_weights_warn_and_the_model_still_loads(model_folder):
    (model_folder / "weights_init.hdf5").write_bytes(b"not hdf5")
    with pytest.warns(UserWarning, match=r"weights_init.hdf5.*initial_weights is not set"):
        model = load_model(model_folder)
    assert not hasattr(model, "initial_weights")


def test_keras2_only_batchnorm_argument_is_dropped_on_keras3(tmp_path):
    import tensorflow as tf
    if not tf.keras.__version__.startswith("3"):
        pytest.skip("only Keras 3 rejects BatchNormalization(fused=...)")
    folder = tmp_path / "model_bn"
    folder.mkdir()
    layers = [{"layer_name": "Dense", "units": 4.0}, {"layer_name": "BatchNormalization", "fused": False},
              {"layer_name": "Dense", "units": 2}]
    (folder / "config.json").write_text(json.dumps({"model_config": layers, "input_shape": [3]}))
    # The file as a Keras 2 model of the organisers' era writes it.
    tf_keras = pytest.importorskip("tf_keras")
    model = tf_keras.Sequential([tf_keras.layers.Dense(4), tf_keras.layers.BatchNormalization(fused=False),
                                 tf_keras.layers.Dense(2)])
    model.build([0, 3])
    model.layers[1].set_weights([np.full(4, 2.0), np.full(4, 0.5), np.full(4, 0.1), np.full(4, 3.0)])
    model.save_weights(str(folder / "weights.hdf5"))
    with pytest.warns(UserWarning, match="no argument 'fused'"):
        loaded = load_model(folder)
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-6)
    assert loaded.layers[0].units == 4  # the whole float 4.0 became the int the kit makes it


# Task discovery


def _toy_copy(root, name="toy_data"):
    shutil.copytree(TOY_TASK, root / name)
    return root / name


def test_toy_layout(tmp_path):
    _toy_copy(tmp_path, "b_task")
    _toy_copy(tmp_path, "a_task")
    (tmp_path / ".DS_Store").write_text("")
    (tmp_path / "__MACOSX").mkdir()
    tasks = find_tasks(tmp_path)
    assert [t.name for t in tasks] == ["a_task", "b_task"]
    assert tasks[0].model_configs_path == tmp_path / "a_task" / "model_configs.json"
    assert tasks[0].model_ids[:3] == ["model_0", "model_1", "model_10"]  # the kit's string order
    assert len(tasks[0].model_ids) == 18


def test_released_layout(tmp_path):
    task = _toy_copy(tmp_path / "input_data", "task1_v4")
    (tmp_path / "reference_data" / "task1_v4").mkdir(parents=True)
    (task / "model_configs.json").rename(tmp_path / "reference_data" / "task1_v4" / "model_configs.json")
    (task / ".DS_Store").write_text("")
    [found] = find_tasks(tmp_path)
    assert found.name == "task1_v4" and found.folder == task
    assert found.model_configs_path == tmp_path / "reference_data" / "task1_v4" / "model_configs.json"
    assert len(found.model_ids) == 18 and len(found.model_specs()) == 18


def test_a_task_folder_is_a_root_with_one_task():
    [task] = find_tasks(TOY_TASK)
    assert task.name == "toy_data" and len(task.model_ids) == 18


def test_discovery_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(TaskFolderError, match="does not exist"):
        find_tasks(tmp_path / "nowhere")
    with pytest.raises(TaskFolderError, match="no PGDL task under"):
        find_tasks(tmp_path)
    _toy_copy(tmp_path)
    with pytest.raises(TaskFolderError, match="no task named task9 .*found: toy_data"):
        find_tasks(tmp_path, ["task9"])
    (tmp_path / "toy_data" / "model_configs.json").write_text("[1, 2")
    with pytest.raises(TaskFolderError, match="model_configs.json: not valid JSON"):
        find_tasks(tmp_path)[0].model_specs()
    for shard in (tmp_path / "toy_data" / "dataset_1" / "train").iterdir():
        shard.unlink()
    with pytest.raises(TaskFolderError, match=r"train: no shard_\*.tfrecord files"):
        load_arrays(find_tasks(tmp_path)[0])


def test_corrupt_shards_name_the_folder(tmp_path):
    task_folder = _toy_copy(tmp_path)
    shard = task_folder / "dataset_1" / "train" / "shard_1.tfrecord"
    content = shard.read_bytes()
    shard.write_bytes(content[:500])
    with pytest.raises(TaskFolderError, match=r"train/shard_1.tfrecord: truncated"):
        load_arrays(find_tasks(tmp_path)[0])
    shard.write_bytes(content[:300] + b"0123456789" + content[310:])  # same length, bad checksum
    with pytest.raises(TaskFolderError, match=r"dataset_1/train: the shards cannot be read"):
        load_arrays(find_tasks(tmp_path)[0])


def test_a_split_larger_than_the_cap_keeps_the_smallest_hashes_whatever_the_shards(tmp_path):
    """Real PGDL tasks hold 50,000 training examples against the 10,000 cap: the harness's reader
    keeps the examples with the smallest hashes while streaming (more than max_examples + 1024 here,
    so it cuts during the read), the same set whichever order or number of shards holds them."""
    import tensorflow as tf

    from complexity_measure.dataset import example_hashes
    from pgdl_harness.loading import read_split
    from pgdl_harness.taskgen.writer import _write_split

    rng = np.random.default_rng(0)
    images = rng.random((1200, 3, 3, 1), dtype=np.float32)
    labels = rng.integers(0, 4, 1200).astype(np.int32)
    order = rng.permutation(1200)
    _write_split(tf, tmp_path / "three", images, labels, 3)
    _write_split(tf, tmp_path / "five_shuffled", images[order], labels[order], 5)
    smallest = np.argsort(example_hashes(images, labels), kind="stable")[:60]
    for folder in ("three", "five_shuffled"):
        inputs, kept = read_split(tmp_path / folder, max_examples=60)
        np.testing.assert_array_equal(inputs, images[smallest])
        np.testing.assert_array_equal(kept, labels[smallest])
    assert len(read_split(tmp_path / "three", max_examples=None)[0]) == 1200
