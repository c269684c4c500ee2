"""Fault injection: a copy of the toy task with one model broken in each way a task folder can be
broken. Every broken model is reported with a one-line reason naming the file, every healthy model
is scored and cached as in an intact run, the task is incomplete (no CMI, no .predict) and the
command exits non-zero."""

import json
import os
import shutil

import h5py
import numpy as np
import pytest

from pgdl_harness.cli import main
from pgdl_harness.loading import build_model
from pgdl_harness.cache import ModelResult, ResultCache, cache_path, matching_results
from pgdl_harness.tasks import find_tasks

from ..conftest import TOY_TASK

CHEAP = ["--measure", "fragmentation", "--param", "n_pairs=8", "--param", "n_points=5"]


def _config(folder):
    return json.loads((folder / "config.json").read_text())


def _write_config(folder, config):
    (folder / "config.json").write_text(json.dumps(config))


def _save_weights_for(folder, config):
    """Weights that fit ``config`` exactly, saved as PGDL saves them (Keras 2, legacy HDF5)."""
    tf_keras = pytest.importorskip("tf_keras")
    model = build_model(config, folder / "config.json", keras=tf_keras)
    model.save_weights(str(folder / "weights.hdf5"))
    (folder / "weights_init.hdf5").unlink()


def _missing_weights(folder):
    (folder / "weights.hdf5").unlink()


def _truncated_weights(folder):
    path = folder / "weights.hdf5"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _random_weights(folder):
    path = folder / "weights.hdf5"
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def _bad_json(folder):
    (folder / "config.json").write_text('{"model_config": [')


def _refused_layer(folder):
    """A TFSMLayer over a saved graph that, when it runs, writes ``graph_ran`` beside it."""
    import tensorflow as tf

    class Marking(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def serve(self, x):
            tf.io.write_file(str(folder / "graph_ran"), "ran")
            return x

    tf.saved_model.save(Marking(), str(folder / "graph"))
    config = _config(folder)
    config["model_config"].insert(0, {"layer_name": "TFSMLayer", "filepath": str(folder / "graph"),
                                      "call_endpoint": "serve"})
    _write_config(folder, config)


def _other_architecture(folder):
    shutil.copy(TOY_TASK / "model_17" / "weights.hdf5", folder / "weights.hdf5")


def _wrong_input_shape(folder):
    config = dict(_config(folder), input_shape=[4])
    _write_config(folder, config)
    _save_weights_for(folder, config)


def _too_few_outputs(folder):
    config = _config(folder)
    config["model_config"][-1]["units"] = 1
    _write_config(folder, config)
    _save_weights_for(folder, config)


def _nan_weights(folder):
    with h5py.File(folder / "weights.hdf5", "r+") as weights:
        arrays = []
        weights.visititems(lambda name, item: arrays.append(item) if isinstance(item, h5py.Dataset) else None)
        arrays[0][...] = np.nan


def _missing_config(folder):
    (folder / "config.json").unlink()


# model id -> (how it is broken, what its one-line reason must say)
FAULTS = {
    "model_1": (_missing_weights, "model_1/weights.hdf5: missing"),
    "model_2": (_truncated_weights, "model_2/weights.hdf5: cannot be loaded into the model of config.json"),
    "model_3": (_random_weights, "model_3/weights.hdf5: cannot be loaded into the model of config.json"),
    "model_4": (_bad_json, "model_4/config.json: not valid JSON"),
    "model_5": (_refused_layer, "model_5/config.json: layer 0 is 'TFSMLayer', which is not a layer PGDL models "
                                "are made of; refused"),
    "model_6": (_other_architecture, "model_6/weights.hdf5: cannot be loaded into the model of config.json"),
    "model_7": (_wrong_input_shape, "model_7/config.json: the inputs have shape (3,) per example, but the model "
                                    "was built for inputs of shape (4,) (the training data of toy_data)"),
    "model_8": (_too_few_outputs, "model_8/config.json: the model has 1 outputs, but the training labels of "
                                  "toy_data run from 0 to 1"),
    "model_9": (_nan_weights, "model_9/weights.hdf5: the model's outputs on training examples are not finite"),
    "model_10": (_missing_config, "model_10/config.json: missing"),
}


@pytest.fixture(scope="module")
def intact_values(tmp_path_factory):
    out = tmp_path_factory.mktemp("intact")
    assert main(["score", "--data", str(TOY_TASK), *CHEAP, "--out", str(out), "--no-progress"]) == 0
    return json.loads((out / "toy_data.predict").read_text())


@pytest.fixture
def broken_task(tmp_path):
    root = tmp_path / "data"
    shutil.copytree(TOY_TASK, root / "toy_data")
    for model_id, (breaks, _) in FAULTS.items():
        breaks(root / "toy_data" / model_id)
    return find_tasks(root)[0]


@pytest.mark.slow
def test_every_fault_is_isolated_and_named(broken_task, intact_values, tmp_path, capsys):
    out = tmp_path / "out"
    arguments = ["score", "--data", str(broken_task.folder), *CHEAP, "--out", str(out), "--no-progress",
                 "--report", str(tmp_path / "r.json")]
    assert main(arguments) == 1
    err = capsys.readouterr().err
    assert "(cached)" not in err and "--retry-failed" not in err
    report = json.loads((tmp_path / "r.json").read_text())["toy_data"]
    assert sorted(report["failed"]) == sorted(FAULTS)
    for model_id, (_, reason) in FAULTS.items():
        assert reason in report["failed"][model_id], model_id
        assert "\n" not in report["failed"][model_id]
        assert f"toy_data/{model_id}: " in err
    assert report["cmi"] is None and report["note"].startswith("incomplete: 10 of 18 model(s) failed, no CMI")
    assert not (out / "toy_data.predict").exists()
    # The refused graph never ran; run, it leaves its mark.
    marked = broken_task.model_folder("model_5")
    assert not (marked / "graph_ran").exists()
    import tensorflow as tf
    tf.saved_model.load(str(marked / "graph")).serve(tf.zeros([1, 3]))
    assert (marked / "graph_ran").exists()

    # Every healthy model was scored, and cached exactly as an intact run computes it.
    healthy = sorted(set(broken_task.model_ids) - set(FAULTS))
    cached = matching_results(ResultCache(cache_path(out, broken_task, "fragmentation")).entries())
    assert sorted(cached) == healthy
    assert {m: r.value for m, r in cached.items()} == {m: intact_values[m] for m in healthy}
    companion = json.loads((out / "toy_data.predict.json").read_text())
    assert companion["complete"] is False and companion["failed"] == report["failed"]
    assert companion["predictions"] is None

    # --partial writes what there is under a name the scorer does not read; nothing is recomputed.
    assert main([*arguments, "--partial"]) == 1
    assert "--retry-failed measures those models again" in capsys.readouterr().err
    partial = json.loads((out / "toy_data.partial.predict").read_text())
    assert partial == {m: intact_values[m] for m in healthy}
    companion = json.loads((out / "toy_data.predict.json").read_text())
    assert companion["reused_from_cache"] == 8 and companion["computed"] == 0
    assert not (out / "toy_data.predict").exists()


def test_the_kits_time_budget_writes_exceeded(tmp_path):
    out = tmp_path / "out"
    assert main(["score", "--data", str(TOY_TASK), *CHEAP, "--out", str(out), "--no-progress", "--budget", "1e-9",
                 "--report", str(tmp_path / "r.json")]) == 0
    predictions = json.loads((out / "toy_data.predict").read_text())
    assert isinstance(predictions["model_0"], float)  # the kit measures the model that runs out of time
    assert [m for m, v in predictions.items() if v == "EXCEEDED"] == sorted(predictions)[1:]
    report = json.loads((tmp_path / "r.json").read_text())["toy_data"]
    assert report["cmi"] == 0.0 and report["note"].startswith("EXCEEDED")


def test_a_task_whose_data_cannot_be_read_fails_alone(tmp_path, capsys):
    root = tmp_path / "data"
    for name in ("good", "bad"):
        shutil.copytree(TOY_TASK, root / name)
    shard = root / "bad" / "dataset_1" / "train" / "shard_1.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-7])
    out = tmp_path / "out"
    assert main(["score", "--data", str(root), *CHEAP, "--out", str(out), "--no-progress"]) == 1
    assert "shard_1.tfrecord: truncated" in capsys.readouterr().err
    assert (out / "good.predict").exists() and not (out / "bad.predict").exists()


def test_cache_appends_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    ResultCache(tmp_path / "c.jsonl").append(ModelResult("model_0", 1.0, 0.1))
    assert len(synced) == 1
