import json
import shutil

import pytest

from pgdl_harness.cli import main
from pgdl_harness.runner import ModelResult, ResultCache, cache_path

from ..conftest import SHARED, TOY_TASK

GOLDEN = json.loads((SHARED / "pgdl" / "golden_cmi.json").read_text())["cases"]


def test_evaluate_scores_the_kits_sample_predictions(tmp_path, capsys):
    shutil.copy(SHARED / "pgdl" / "sample_result_submission" / "toy_data.predict", tmp_path)
    assert main(["evaluate", "--data", str(TOY_TASK.parent), "--predictions", str(tmp_path),
                 "--report", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert list(report) == ["toy_data"]
    expected = GOLDEN["kit_toy_predict"]
    assert report["toy_data"]["cmi"] == pytest.approx(expected["cmi_x100"], abs=1e-9)
    assert report["toy_data"]["kendall_tau"] == pytest.approx(expected["kendall_tau"], abs=1e-12)
    assert report["toy_data"]["granulated_kendall_tau"] == pytest.approx(expected["granulated_kendall_tau"], abs=1e-12)
    out = capsys.readouterr().out
    assert "12.044" in out and "toy_data" in out
    assert (tmp_path / "report.csv").exists() and (tmp_path / "report.json").exists()


def test_score_writes_predictions_and_reuses_cached_values(tmp_path, toy_task):
    # Fill the cache with the true gaps: the run must take them instead of computing.
    cache = ResultCache(cache_path(tmp_path, toy_task, "fragmentation"))
    for model_id, value in GOLDEN["true_gap"]["predictions"].items():
        cache.append(ModelResult(model_id, value, 0.5))
    assert main(["score", "--data", "data", "--task", "toy_data", "--out", str(tmp_path),
                 "--report", str(tmp_path / "r.json"), "--no-progress"]) == 0
    predictions = json.loads((tmp_path / "toy_data.predict").read_text())
    assert predictions == GOLDEN["true_gap"]["predictions"]
    report = json.loads((tmp_path / "r.json").read_text())["toy_data"]
    assert report["cmi"] == pytest.approx(100.0, abs=1e-9)
    assert report["seconds_per_model"] == 0.5
    assert set(report) >= {"cmi", "kendall_tau", "granulated_kendall_tau"}


def test_exceeded_predictions_score_zero_with_a_note(tmp_path, capsys):
    values = dict(GOLDEN["true_gap"]["predictions"], model_9="EXCEEDED")
    (tmp_path / "toy_data.predict").write_text(json.dumps(values))
    assert main(["evaluate", "--data", "data", "--predictions", str(tmp_path), "--report",
                 str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())["toy_data"]
    assert report["cmi"] == 0.0 and report["note"].startswith("EXCEEDED")


def test_an_incomplete_grid_is_reported_not_scored(tmp_path):
    shutil.copytree(TOY_TASK, tmp_path / "data" / "toy_data")
    specs_path = tmp_path / "data" / "toy_data" / "model_configs.json"
    specs = json.loads(specs_path.read_text())
    del specs["4"]
    specs_path.write_text(json.dumps(specs))
    values = {k: v for k, v in GOLDEN["true_gap"]["predictions"].items() if k != "model_4"}
    (tmp_path / "toy_data.predict").write_text(json.dumps(values))
    assert main(["evaluate", "--data", str(tmp_path / "data"), "--predictions", str(tmp_path),
                 "--report", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())["toy_data"]
    assert report["cmi"] is None
    assert "not scored" in report["note"] and "model_configs.json" in report["note"]
    assert "missing" in report["note"] or "not complete" in report["note"]


def test_errors_are_one_line_messages(tmp_path, capsys):
    assert main(["evaluate", "--data", str(tmp_path / "nowhere"), "--predictions", str(tmp_path)]) == 2
    assert "error: data root" in capsys.readouterr().err
    assert main(["evaluate", "--data", "data", "--task", "toy_data", "--predictions", str(tmp_path)]) == 2
    assert "toy_data.predict: missing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["score", "--measure", "no_such_measure"])


def test_measures_lists_the_registry(capsys):
    assert main(["measures"]) == 0
    assert "fragmentation " in capsys.readouterr().out
