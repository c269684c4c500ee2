import json

import pytest

from pgdl_harness.compare import comparison_markdown, score_table, write_comparison
from pgdl_harness.runner import ModelResult, TaskRun

from ..conftest import GOLDEN_DIR

GOLDEN = json.loads((GOLDEN_DIR / "golden_cmi.json").read_text())["cases"]


def as_results(case, seconds=1.0):
    return {m: ModelResult(m, v, seconds) for m, v in GOLDEN[case]["predictions"].items()}


def test_comparison_scores_each_measure_and_ranks_them(toy_task, tmp_path):
    broken = {m: r for m, r in as_results("true_gap").items() if m != "model_3"}
    results = {toy_task: TaskRun(toy_task, {"negated": as_results("negated_gap"), "truth": as_results("true_gap"),
                                            "kit": as_results("kit_toy_predict", 2.0), "broken": broken},
                                 {"broken": {"model_3": "measure broken failed on model_3: ValueError: no"}})}
    reports, frame, written = write_comparison(results, tmp_path)
    cmi = score_table(frame, "cmi")
    assert list(cmi.index) == ["truth", "negated", "kit", "broken"]
    assert frame.set_index("measure").loc["broken", "note"] == (
        "incomplete: 1 of 18 model(s) failed, no CMI (first: measure broken failed on model_3: ValueError: no)")
    assert not (tmp_path / "broken" / "toy_data.predict").exists()
    assert json.loads((tmp_path / "broken" / "toy_data.predict.json").read_text())["failed"] == {
        "model_3": "measure broken failed on model_3: ValueError: no"}
    assert cmi.loc["truth", "toy_data"] == pytest.approx(100.0, abs=1e-9)
    assert cmi.loc["kit", "mean"] == pytest.approx(GOLDEN["kit_toy_predict"]["cmi_x100"], abs=1e-9)
    assert score_table(frame, "kendall_tau").loc["negated", "toy_data"] == pytest.approx(
        GOLDEN["negated_gap"]["kendall_tau"], abs=1e-12)
    assert json.loads((tmp_path / "kit" / "toy_data.predict").read_text()) == GOLDEN["kit_toy_predict"]["predictions"]
    markdown = (tmp_path / "comparison.md").read_text()
    assert markdown == comparison_markdown(frame)
    assert "| truth     |     100.00 | 100.00 |" in markdown
    assert (tmp_path / "figures" / "toy_data.png").stat().st_size > 10_000
    assert {r.measure for r in reports} == {"negated", "truth", "kit", "broken"}
    assert (tmp_path / "comparison.csv").read_text().splitlines()[0].startswith("task,measure,models,failed,cmi")
