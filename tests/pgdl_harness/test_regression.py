"""The default measure on every bundled task must keep its recorded values and scores.

Baselines live in tests/regression/<task>.json (made by `make regression-update`). Tolerances:
the default measure is a mean over DEFAULT_N_PAIRS paths of whole class-change counts, so one path
whose count moves (a point's argmax flipping between CPU kernels or TensorFlow builds) moves a value
by 1/DEFAULT_N_PAIRS; a model may differ by at most 3 paths. The scores of the fresh values may move by at most
3 CMI points (x100) and 0.05 in tau and psi; the scores of the *recorded* values must be
reproduced to 1e-9, which guards the scoring code.
"""

import json

import pytest

from complexity_measure.fragmentation import DEFAULT_N_PAIRS
from complexity_measure.registry import get_measure
from pgdl_harness.report import score_predictions
from pgdl_harness.runner import run_measure
from pgdl_harness.tasks import find_tasks

from ..conftest import DATA, REPO

BASELINES = sorted((REPO / "tests" / "regression").glob("*.json"))
VALUE_TOLERANCE = 3 / DEFAULT_N_PAIRS
SCORE_TOLERANCE = {"cmi": 3.0, "kendall_tau": 0.05, "granulated_kendall_tau": 0.05}


def test_every_bundled_task_has_a_baseline():
    assert sorted(path.stem for path in BASELINES) == sorted(task.name for task in find_tasks(DATA))


@pytest.mark.parametrize("baseline", BASELINES, ids=[path.stem for path in BASELINES])
def test_recorded_values_still_score_the_same(baseline):
    expected = json.loads(baseline.read_text())
    [task] = find_tasks(DATA, [baseline.stem])
    report = score_predictions(task, expected["measure"], expected["values"])
    for score in SCORE_TOLERANCE:
        assert getattr(report, score) == pytest.approx(expected[score], abs=1e-9), score


@pytest.mark.slow
@pytest.mark.parametrize("baseline", BASELINES, ids=[path.stem for path in BASELINES])
def test_default_measure_has_not_drifted(baseline, tmp_path):
    expected = json.loads(baseline.read_text())
    [task] = find_tasks(DATA, [baseline.stem])
    results = run_measure(task, get_measure(expected["measure"]), expected["measure"], tmp_path, progress=False)
    values = {model_id: result.value for model_id, result in results.items()}
    assert sorted(values) == sorted(expected["values"])
    drift = {m: values[m] - expected["values"][m] for m in values if abs(values[m] - expected["values"][m]) > 1e-12}
    assert all(abs(d) <= VALUE_TOLERANCE + 1e-12 for d in drift.values()), drift
    report = score_predictions(task, expected["measure"], values)
    for score, tolerance in SCORE_TOLERANCE.items():
        assert getattr(report, score) == pytest.approx(expected[score], abs=tolerance), score
