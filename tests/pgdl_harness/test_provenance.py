"""Cached values are keyed by everything that made them: a changed setting, code or file recomputes
exactly the values it affects, and values under several keys live side by side."""

import json
import shutil

import pytest

import pgdl_harness.runner as runner
from complexity_measure.registry import get_measure
from pgdl_harness.provenance import files_fingerprint, key_digest, model_fingerprint
from pgdl_harness.cache import ResultCache, cache_path
from pgdl_harness.runner import run_measures
from pgdl_harness.tasks import find_tasks

from ..conftest import TOY_TASK

# A cheap fragmentation: 16 paths of 5 points.
CHEAP = {"n_pairs": 16, "n_points": 5}


@pytest.fixture
def toy_copy(tmp_path):
    shutil.copytree(TOY_TASK, tmp_path / "data" / "toy_data")
    return find_tasks(tmp_path / "data")[0]


def run(task, out, measure=None, **options):
    measure = measure or get_measure("fragmentation", **CHEAP)
    return run_measures(task, {"fragmentation": measure}, out, progress=False, **options)


def values(task_run):
    return {m: r.value for m, r in task_run.results["fragmentation"].items()}


def test_changing_max_examples_recomputes_every_value(toy_task, tmp_path):
    first = run(toy_task, tmp_path, max_examples=50)
    again = run(toy_task, tmp_path)
    assert again.reused["fragmentation"] == 0 and again.recomputed["fragmentation"] == 18
    assert values(again) != values(first)
    assert values(again) == values(run(toy_task, tmp_path / "fresh"))
    # Both keys stay in the cache side by side: going back reuses the first values.
    back = run(toy_task, tmp_path, max_examples=50)
    assert back.reused["fragmentation"] == 18 and values(back) == values(first)
    assert len(json.loads(ResultCache(cache_path(tmp_path, toy_task, "fragmentation")).keys_path.read_text())) == 2


def test_changing_a_parameter_recomputes_and_the_key_holds_every_parameter(toy_task, tmp_path):
    first = run(toy_task, tmp_path)
    key = first.keys["fragmentation"]
    assert key["parameters"] == get_measure("fragmentation", **CHEAP).parameters
    assert key["parameters"]["extend"] == 0.5 and key["max_examples"] == 10_000
    assert set(key) == {"measure", "parameters", "code", "max_examples", "version", "data"}
    other = run(toy_task, tmp_path, measure=get_measure("fragmentation", seed=1, **CHEAP))
    assert other.reused["fragmentation"] == 0 and values(other) != values(first)
    assert run(toy_task, tmp_path).reused["fragmentation"] == 18


def test_changing_one_weights_file_recomputes_exactly_that_model(toy_copy, tmp_path):
    first = run(toy_copy, tmp_path / "out")
    # model_0 and model_1 have the same architecture (only the activation differs): swap in model_1's weights.
    shutil.copy(toy_copy.model_folder("model_1") / "weights.hdf5", toy_copy.model_folder("model_0") / "weights.hdf5")
    again = run(toy_copy, tmp_path / "out")
    assert again.reused["fragmentation"] == 17 and again.recomputed["fragmentation"] == 1
    assert {m for m in values(again) if values(again)[m] != values(first)[m]} == {"model_0"}
    # The recomputed value is the new weights' own, as a run with no cache computes it.
    assert values(again)["model_0"] == values(run(toy_copy, tmp_path / "fresh"))["model_0"]


def test_changing_the_measure_code_recomputes(toy_task, tmp_path, monkeypatch):
    run(toy_task, tmp_path)
    monkeypatch.setattr(runner, "code_fingerprint", lambda: "0" * 64)
    assert run(toy_task, tmp_path).recomputed["fragmentation"] == 18


def test_changing_the_training_data_recomputes(toy_copy, tmp_path):
    run(toy_copy, tmp_path / "out")
    (toy_copy.dataset_folder / "train" / "shard_2.tfrecord").unlink()  # a third of the examples gone
    assert run(toy_copy, tmp_path / "out").recomputed["fragmentation"] == 18


def test_every_append_is_one_whole_line_with_its_keys(toy_task, tmp_path):
    task_run = run(toy_task, tmp_path)
    lines = cache_path(tmp_path, toy_task, "fragmentation").read_text().splitlines()
    assert len(lines) == 18
    entry = json.loads(lines[0])
    assert entry["run_key"] == key_digest(task_run.keys["fragmentation"])
    assert entry["model_key"] == model_fingerprint(toy_task.model_folder(entry["model_id"]))


def test_fingerprints_see_sizes_contents_and_missing_files(tmp_path):
    a = tmp_path / "config.json"
    a.write_text("{}")
    first = files_fingerprint([a])
    a.write_text("{ }")
    assert files_fingerprint([a]) != first
    a.write_text("{}")
    assert files_fingerprint([a]) == first
    assert model_fingerprint(tmp_path) != model_fingerprint(TOY_TASK / "model_0")
    (tmp_path / "weights.hdf5").write_bytes(b"")
    assert model_fingerprint(tmp_path) != files_fingerprint([a])  # an empty file is not a missing one
