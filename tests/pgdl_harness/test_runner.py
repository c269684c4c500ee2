import json
import shutil

import numpy as np
import pytest

from pgdl_harness.loading import ModelLoadError
from pgdl_harness.runner import (MeasureError, ResultCache, cache_path, read_predictions, run_measure,
                                 write_predictions)
from pgdl_harness.tasks import find_tasks

from ..conftest import SHARED, TOY_TASK


def parameter_count(model, inputs, labels):
    return float(model.count_params())


def test_runs_every_model_in_order_and_times_them(toy_task, tmp_path):
    results = run_measure(toy_task, parameter_count, "params", tmp_path, progress=False)
    assert list(results) == toy_task.model_ids
    # model_0: one hidden layer of 64 units on 3 inputs, 2 outputs.
    assert results["model_0"].value == 3 * 64 + 64 + 64 * 2 + 2
    assert all(r.seconds > 0 for r in results.values())


def test_an_interrupted_run_resumes_without_recomputing(toy_task, tmp_path):
    seen = []

    def failing_on_model_2(model, inputs, labels):
        seen.append(model.count_params())
        if len(seen) == 4:
            raise RuntimeError("out of memory")
        return float(len(seen))

    with pytest.raises(MeasureError, match=r"failed on .*toy_data/model_11: RuntimeError: out of memory "
                                           r"\(3 value\(s\) of toy_data already computed are kept"):
        run_measure(toy_task, failing_on_model_2, "flaky", tmp_path, progress=False)
    assert list(ResultCache(cache_path(tmp_path, toy_task, "flaky")).load()) == ["model_0", "model_1", "model_10"]

    calls = []
    results = run_measure(toy_task, lambda m, x, y: calls.append(1) or 7.0, "flaky", tmp_path, progress=False)
    assert len(calls) == 15
    assert [results[m].value for m in ("model_0", "model_1", "model_10", "model_11")] == [1.0, 2.0, 3.0, 7.0]
    # --fresh throws the cache away.
    results = run_measure(toy_task, lambda m, x, y: 9.0, "flaky", tmp_path, fresh=True, progress=False)
    assert {r.value for r in results.values()} == {9.0}


def test_a_line_cut_short_by_a_kill_is_recomputed(toy_task, tmp_path):
    path = cache_path(tmp_path, toy_task, "params")
    run_measure(toy_task, parameter_count, "params", tmp_path, progress=False)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])
    calls = []
    run_measure(toy_task, lambda m, x, y: calls.append(1) or 1.0, "params", tmp_path, progress=False)
    assert len(calls) == 13


def test_a_broken_model_folder_stops_the_run_and_names_the_file(tmp_path):
    shutil.copytree(TOY_TASK, tmp_path / "toy_data")
    (tmp_path / "toy_data" / "model_12" / "weights.hdf5").write_bytes(b"garbage")
    task = find_tasks(tmp_path)[0]
    with pytest.raises(ModelLoadError, match=r"model_12/weights.hdf5: cannot be loaded .*\(4 value\(s\) of toy_data"):
        run_measure(task, parameter_count, "params", tmp_path / "out", progress=False)
    assert len(ResultCache(cache_path(tmp_path / "out", task, "params")).load()) == 4


@pytest.mark.parametrize("bad, message", [(float("nan"), "returned nan"), ("high", "not a scalar"),
                                          (np.ones(3), "not a scalar")])
def test_a_measure_must_return_a_finite_scalar(toy_task, tmp_path, bad, message):
    with pytest.raises(MeasureError, match=message):
        run_measure(toy_task, lambda m, x, y: bad, "bad", tmp_path, progress=False)


def test_predict_files_are_written_exactly_as_the_kit_writes_them(toy_task, tmp_path):
    sample = SHARED / "pgdl" / "sample_result_submission" / "toy_data.predict"
    values = json.loads(sample.read_text())
    path = write_predictions(toy_task, values, tmp_path)
    assert path.name == "toy_data.predict"
    assert path.read_text() == sample.read_text()
    assert read_predictions(path) == values


def test_reading_bad_predictions(tmp_path):
    (tmp_path / "a.predict").write_text('{"model_0": "fast"}')
    with pytest.raises(Exception, match=r"a.predict: the value of model_0 is 'fast'"):
        read_predictions(tmp_path / "a.predict")
    (tmp_path / "b.predict").write_text('{"model_0": ')
    with pytest.raises(Exception, match="b.predict: not valid JSON"):
        read_predictions(tmp_path / "b.predict")
    (tmp_path / "c.predict").write_text('{"model_0": "EXCEEDED"}')
    assert read_predictions(tmp_path / "c.predict") == {"model_0": "EXCEEDED"}


def test_several_measures_share_each_model_load_and_resume_separately(toy_task, tmp_path, monkeypatch):
    import pgdl_harness.runner as runner
    loads = []
    real_load = runner.load_model
    monkeypatch.setattr(runner, "load_model", lambda folder: loads.append(folder.name) or real_load(folder))
    run_measure(toy_task, parameter_count, "params", tmp_path, progress=False)
    assert len(loads) == 18
    loads.clear()
    both = runner.run_measures(toy_task, {"params": parameter_count, "layers": lambda m, x, y: len(m.layers)},
                               tmp_path, progress=False).results
    assert len(loads) == 18  # once per model for the new measure; params came from its cache
    assert both["params"]["model_0"].value == 386 and both["layers"]["model_0"].value == 2
    assert both["layers"]["model_17"].value == 4
    loads.clear()
    runner.run_measures(toy_task, {"params": parameter_count, "layers": len}, tmp_path, progress=False)
    assert loads == []


def test_a_failing_measure_can_be_skipped_without_stopping_the_others(toy_task, tmp_path):
    import pgdl_harness.runner as runner

    def fails_on_deep_models(model, inputs, labels):
        if len(model.layers) > 3:
            raise ValueError("too deep")
        return 1.0

    run = runner.run_measures(toy_task, {"params": parameter_count, "shallow": fails_on_deep_models},
                              tmp_path, progress=False, skip_failing=True)
    assert list(run.results) == ["params"] and len(run.results["params"]) == 18
    assert "measure shallow failed on" in run.failures["shallow"] and "too deep" in run.failures["shallow"]
    with pytest.raises(MeasureError, match="too deep"):
        runner.run_measures(toy_task, {"shallow": fails_on_deep_models}, tmp_path, progress=False)
