"""The default measure on every bundled task must keep its recorded values and scores.

Baselines live in tests/regression/<task>.json (made by `make regression-update`) and must be of
``DEFAULT_MEASURE``. The default is ``F ** power * DB``: F, the mean class changes over the fitted
paths among DEFAULT_N_PAIRS, moves in whole paths (a point's argmax flipping between CPU kernels or
TensorFlow builds moves F by 1 / (fitted paths) >= 1 / DEFAULT_N_PAIRS), while DB, the hidden
layers' Davies-Bouldin index, has no such steps. So the drift is measured on F itself, recovered
from each value with a freshly computed DB, and may be at most 3 paths of DEFAULT_N_PAIRS, whatever
the size of F. The scores of the fresh values may move by at most 3 CMI points (x100) and 0.05 in
tau and psi; the recorded scores must be those ``scoring.score_task`` (checked against the
organisers' scorer by the golden tests) gives the recorded values, to 1e-9.
"""

import json

import pytest

from complexity_measure.combinations import fragmentation_times_davies_bouldin
from complexity_measure.fragmentation import DEFAULT_N_PAIRS
from complexity_measure.registry import DEFAULT_MEASURE, get_measure
from complexity_measure.representation import davies_bouldin_measure
from pgdl_harness.loading import load_arrays, load_model
from pgdl_harness.report import score_predictions
from pgdl_harness.runner import run_measures
from pgdl_harness.scoring import score_task
from pgdl_harness.tasks import find_tasks

from ..conftest import DATA, REPO

BASELINES = sorted((REPO / "tests" / "regression").glob("*.json"))
FRAGMENTATION_TOLERANCE = 3 / DEFAULT_N_PAIRS
SCORE_TOLERANCE = {"cmi": 3.0, "kendall_tau": 0.05, "granulated_kendall_tau": 0.05}


def test_every_bundled_task_has_a_baseline_of_the_default_measure():
    assert sorted(path.stem for path in BASELINES) == sorted(task.name for task in find_tasks(DATA))
    assert {json.loads(path.read_text())["measure"] for path in BASELINES} == {DEFAULT_MEASURE}


@pytest.mark.parametrize("baseline", BASELINES, ids=[path.stem for path in BASELINES])
def test_recorded_values_still_score_the_same(baseline):
    expected = json.loads(baseline.read_text())
    [task] = find_tasks(DATA, [baseline.stem])
    scores = score_task(expected["values"], task.model_specs())
    for score in SCORE_TOLERANCE:
        assert getattr(scores, score) == pytest.approx(expected[score], abs=1e-9), score


@pytest.mark.slow
@pytest.mark.parametrize("baseline", BASELINES, ids=[path.stem for path in BASELINES])
def test_default_measure_has_not_drifted(baseline, tmp_path):
    expected = json.loads(baseline.read_text())
    measure = get_measure(DEFAULT_MEASURE)
    assert measure.function is fragmentation_times_davies_bouldin  # the form the tolerance is made for
    power = measure.parameters["power"]
    [task] = find_tasks(DATA, [baseline.stem])
    run = run_measures(task, {DEFAULT_MEASURE: measure}, tmp_path, progress=False)
    assert run.failures[DEFAULT_MEASURE] == {}
    values = run.predictions(DEFAULT_MEASURE)
    assert sorted(values) == sorted(expected["values"])
    inputs, labels = load_arrays(task)
    drift = {}
    for model_id, value in values.items():
        if value != expected["values"][model_id]:
            index = davies_bouldin_measure(load_model(task.model_folder(model_id)), inputs, labels)
            drift[model_id] = (value / index) ** (1 / power) - (expected["values"][model_id] / index) ** (1 / power)
    assert all(abs(d) <= FRAGMENTATION_TOLERANCE + 1e-9 for d in drift.values()), drift
    report = score_predictions(task, DEFAULT_MEASURE, values)
    for score, tolerance in SCORE_TOLERANCE.items():
        assert getattr(report, score) == pytest.approx(expected[score], abs=tolerance), score
