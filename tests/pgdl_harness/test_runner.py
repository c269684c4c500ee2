import json

import numpy as np
import pytest

from pgdl_harness.cache import ResultCache, cache_path, matching_results
from pgdl_harness.predictions import read_predictions, write_predictions
from pgdl_harness.runner import run_measures

from ..conftest import GOLDEN_DIR


def parameter_count(model, inputs, labels):
    return float(model.count_params())


def cached_values(path):
    """The latest value of each model in the cache file ``path``, whatever its keys."""
    return matching_results(ResultCache(path).entries())


def values_of(task, function, label, out_dir, **options):
    """``function``'s results on every model of ``task`` (asserting that none failed)."""
    run = run_measures(task, {label: function}, out_dir, progress=False, **options)
    assert run.failures[label] == {}
    return run.results[label]


def test_runs_every_model_in_order_and_times_them(toy_task, tmp_path):
    results = values_of(toy_task, parameter_count, "params", tmp_path)
    assert list(results) == toy_task.model_ids
    # model_0: one hidden layer of 64 units on 3 inputs, 2 outputs.
    assert results["model_0"].value == 3 * 64 + 64 + 64 * 2 + 2
    assert all(r.seconds > 0 for r in results.values())


def test_an_interrupted_run_resumes_without_recomputing(toy_task, tmp_path):
    seen = []

    def flaky(model, inputs, labels):
        seen.append(model.count_params())
        if len(seen) == 4:
            raise KeyboardInterrupt  # a kill mid-run: what was computed is in the cache
        return float(len(seen))

    with pytest.raises(KeyboardInterrupt):
        run_measures(toy_task, {"flaky": flaky}, tmp_path, progress=False)
    assert list(cached_values(cache_path(tmp_path, toy_task, "flaky"))) == ["model_0", "model_1", "model_10"]

    resumed = flaky  # the same function, so the same key: the three values are reused
    seen.clear()
    seen.extend([0] * 10)  # no more interrupts
    results = values_of(toy_task, resumed, "flaky", tmp_path)
    assert len(seen) == 10 + 15
    assert [results[m].value for m in ("model_0", "model_1", "model_10", "model_11")] == [1.0, 2.0, 3.0, 11.0]
    # --fresh throws the cache away.
    results = values_of(toy_task, lambda m, x, y: 9.0, "flaky", tmp_path, fresh=True)
    assert {r.value for r in results.values()} == {9.0}


def test_an_interrupted_run_resumes_past_a_cached_failure(toy_task, tmp_path):
    """The kit's clock counts a model whose cached record is a failure (no time) as 0 s."""
    seen = []

    def broken_first(model, inputs, labels):
        seen.append(model.count_params())
        if len(seen) == 1:
            raise ValueError("broken")
        if len(seen) == 3:
            raise KeyboardInterrupt
        return float(len(seen))

    with pytest.raises(KeyboardInterrupt):
        run_measures(toy_task, {"broken": broken_first}, tmp_path, progress=False)
    run = run_measures(toy_task, {"broken": broken_first}, tmp_path, progress=False, budget=1e6)
    assert list(run.failures["broken"]) == ["model_0"] and run.cached_failures == {"broken": 1}
    assert sorted(run.results["broken"]) == sorted(toy_task.model_ids[1:]) and run.reused == {"broken": 1}
    assert len(seen) == 3 + 16 and run.exceeded == []


def test_a_failing_model_is_recorded_and_the_run_goes_on(toy_task, tmp_path):
    def fails_on_deep_models(model, inputs, labels):
        if len(model.layers) > 3:
            raise ValueError("too deep")
        return 1.0

    run = run_measures(toy_task, {"params": parameter_count, "shallow": fails_on_deep_models}, tmp_path,
                       progress=False)
    assert len(run.results["params"]) == 18 and run.complete("params") and not run.failures["params"]
    deep = sorted(m for m in toy_task.model_ids if m not in run.results["shallow"])
    assert len(deep) == 6 and sorted(run.failures["shallow"]) == deep and not run.complete("shallow")
    assert run.failures["shallow"][deep[0]] == (f"measure shallow failed on {toy_task.folder / deep[0]}: "
                                                f"ValueError: too deep")


def test_a_line_cut_short_by_a_kill_is_recomputed(toy_task, tmp_path):
    path = cache_path(tmp_path, toy_task, "params")
    values_of(toy_task, parameter_count, "params", tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])
    assert len(cached_values(path)) == 5
    run = run_measures(toy_task, {"params": parameter_count}, tmp_path, progress=False)
    assert run.reused["params"] == 5 and len(run.results["params"]) == 18
    assert len(cached_values(path)) == 18


@pytest.mark.parametrize("bad, message", [(float("nan"), "returned nan"), ("high", "not a scalar"),
                                          (np.ones(3), "not a scalar")])
def test_a_measure_must_return_a_finite_scalar(toy_task, tmp_path, bad, message):
    def returns_bad(model, inputs, labels):
        return bad

    run = run_measures(toy_task, {"bad": returns_bad}, tmp_path, progress=False)
    assert run.results["bad"] == {} and len(run.failures["bad"]) == 18
    assert message in run.failures["bad"]["model_3"] and "toy_data/model_3" in run.failures["bad"]["model_3"]
    # The failures are cached (no values), so the same run does not call the measure again.
    cache = ResultCache(cache_path(tmp_path, toy_task, "bad"))
    assert matching_results(cache.entries()) == {} and len(cache.entries()) == 18
    again = run_measures(toy_task, {"bad": returns_bad}, tmp_path, progress=False)
    assert again.cached_failures == {"bad": 18} and again.workers == {}
    assert again.failures["bad"]["model_3"].startswith(run.failures["bad"]["model_3"])


def test_predict_files_are_written_exactly_as_the_kit_writes_them(toy_task, tmp_path):
    sample = GOLDEN_DIR / "toy_data.predict"
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
    monkeypatch.setattr(runner, "load_model", lambda folder, **options: loads.append(folder.name) or real_load(folder, **options))
    values_of(toy_task, parameter_count, "params", tmp_path)
    assert len(loads) == 18
    loads.clear()
    def layer_count(model, inputs, labels):
        return len(model.layers)

    both = runner.run_measures(toy_task, {"params": parameter_count, "layers": layer_count},
                               tmp_path, progress=False).results
    assert len(loads) == 18  # once per model for the new measure; params came from its cache
    assert both["params"]["model_0"].value == 386 and both["layers"]["model_0"].value == 2
    assert both["layers"]["model_17"].value == 4
    loads.clear()
    runner.run_measures(toy_task, {"params": parameter_count, "layers": layer_count}, tmp_path, progress=False)
    assert loads == []
    # Another function under the same label is another measure: its values are not reused.
    runner.run_measures(toy_task, {"layers": lambda m, x, y: 1.0}, tmp_path, progress=False)
    assert len(loads) == 18


def test_the_budget_rule_needs_the_in_process_engine():
    from pgdl_harness.errors import HarnessError
    from pgdl_harness.runner import LocalEngine, check_budget
    from pgdl_harness.workers import WorkerEngine

    check_budget(1.0, LocalEngine())
    check_budget(1.0, None)
    check_budget(None, WorkerEngine(2))
    with pytest.raises(HarnessError, match="needs the in-process engine"):
        check_budget(1.0, WorkerEngine(2))
