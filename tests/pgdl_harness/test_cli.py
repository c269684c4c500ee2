import json
import os
import shutil
import subprocess
import sys

import pytest

from complexity_measure.fragmentation import DEFAULT_N_POINTS
from pgdl_harness.cli import main

from ..conftest import DATA, GOLDEN_DIR, REPO, TOY_TASK

GOLDEN = json.loads((GOLDEN_DIR / "golden_cmi.json").read_text())["cases"]


def test_evaluate_scores_the_kits_sample_predictions(tmp_path, capsys):
    shutil.copy(GOLDEN_DIR / "toy_data.predict", tmp_path)
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


def test_score_writes_predictions_with_their_provenance_and_reuses_cached_values(tmp_path, toy_task):
    arguments = ["score", "--data", str(DATA), "--task", "toy_data", "--out", str(tmp_path), "--measure",
                 "fragmentation", "--param", "n_pairs=8", "--param", "pairs=any", "--report", str(tmp_path / "r.json"),
                 "--no-progress"]
    assert main(arguments) == 0
    predictions = json.loads((tmp_path / "toy_data.predict").read_text())
    assert sorted(predictions) == toy_task.model_ids
    report = json.loads((tmp_path / "r.json").read_text())["toy_data"]
    assert report["parameters"]["n_pairs"] == 8 and report["parameters"]["pairs"] == "any"
    assert report["parameters"]["n_points"] == DEFAULT_N_POINTS and report["failed"] == {} and report["recomputed"] == 0
    companion = json.loads((tmp_path / "toy_data.predict.json").read_text())
    assert companion["key"]["parameters"] == report["parameters"] and companion["complete"] is True
    assert companion["computed"] == 18 and companion["predictions"] == "toy_data.predict"

    assert main(arguments) == 0
    companion = json.loads((tmp_path / "toy_data.predict.json").read_text())
    assert companion["reused_from_cache"] == 18 and companion["computed"] == 0
    assert json.loads((tmp_path / "toy_data.predict").read_text()) == predictions


@pytest.mark.parametrize("param, message", [
    ("n_pairz=8", "measure fragmentation has no parameter 'n_pairz'"),
    ("n_pairs=many", "parameter n_pairs must be int, got 'many'"),
    ("n_pairs", "expected a measure parameter as name=value"),
])
def test_bad_parameters_are_one_line_errors(tmp_path, capsys, param, message):
    assert main(["score", "--data", str(DATA), "--task", "toy_data", "--out", str(tmp_path), "--measure", "fragmentation",
                 "--param", param]) == 2
    assert message in capsys.readouterr().err


def test_compare_sets_each_parameter_where_it_applies(tmp_path, capsys):
    assert main(["compare", "--data", str(DATA), "--task", "toy_data", "--measures", "parameter_norm", "fragmentation",
                 "--param", "n_pairs=8", "--out", str(tmp_path), "--no-figures", "--no-progress"]) == 0
    companion = json.loads((tmp_path / "fragmentation" / "toy_data.predict.json").read_text())
    assert companion["key"]["parameters"]["n_pairs"] == 8
    assert json.loads((tmp_path / "parameter_norm" / "toy_data.predict.json").read_text())["key"]["parameters"] == {}
    assert main(["compare", "--data", str(DATA), "--task", "toy_data", "--measures", "parameter_norm",
                 "--param", "n_pairs=8", "--out", str(tmp_path)]) == 2
    assert "no chosen measure has the parameter(s) n_pairs" in capsys.readouterr().err


def test_tensorflows_start_up_lines_stay_off_the_terminal():
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    quiet = subprocess.run([sys.executable, "-m", "pgdl_harness", "measures"], capture_output=True, text=True,
                           cwd=REPO, env=env, timeout=300)
    assert quiet.returncode == 0 and "fragmentation" in quiet.stdout
    assert quiet.stderr == ""


def test_exceeded_predictions_score_zero_with_a_note(tmp_path, capsys):
    values = dict(GOLDEN["true_gap"]["predictions"], model_9="EXCEEDED")
    (tmp_path / "toy_data.predict").write_text(json.dumps(values))
    assert main(["evaluate", "--data", str(DATA), "--predictions", str(tmp_path), "--report",
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
                 "--report", str(tmp_path / "r.json")]) == 1
    report = json.loads((tmp_path / "r.json").read_text())["toy_data"]
    assert report["cmi"] is None
    assert "not scored" in report["note"] and "model_configs.json" in report["note"]
    assert "missing" in report["note"] or "not complete" in report["note"]


def test_errors_are_one_line_messages(tmp_path, capsys):
    assert main(["evaluate", "--data", str(tmp_path / "nowhere"), "--predictions", str(tmp_path)]) == 2
    assert "error: data root" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(DATA), "--task", "toy_data", "--predictions", str(tmp_path)]) == 2
    assert "toy_data.predict: missing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["score", "--measure", "no_such_measure"])


def test_measures_lists_the_registry_with_parameters(capsys):
    assert main(["measures"]) == 0
    out = capsys.readouterr().out
    assert "fragmentation " in out
    assert "parameters: aggregate='mean' batch_size=256 coarse_points=5 counting='adaptive' ends='all' extend=0.5 " \
           "layer=None n_pairs=2048 n_points=17" in out


def test_the_budget_runs_on_across_tasks(tmp_path):
    """Once one task runs out of the kit's time, every model of the tasks after it is exceeded."""
    for name in ("a_first", "b_second"):
        shutil.copytree(TOY_TASK, tmp_path / "data" / name)
    out = tmp_path / "out"
    assert main(["score", "--data", str(tmp_path / "data"), "--measure", "parameter_norm", "--out", str(out),
                 "--no-progress", "--budget", "1e-9", "--workers", "1"]) == 0
    first = json.loads((out / "a_first.predict").read_text())
    assert isinstance(first["model_0"], float)  # the kit measures the model that runs out of time
    assert [m for m, v in first.items() if v == "EXCEEDED"] == sorted(first)[1:]
    assert set(json.loads((out / "b_second.predict").read_text()).values()) == {"EXCEEDED"}


def test_max_examples_reaches_the_measure(tmp_path):
    folder = tmp_path / "counting"
    folder.mkdir()
    (folder / "complexity.py").write_text("def complexity(model, dataset):\n    return sum(1 for _ in dataset)\n")
    out = tmp_path / "out"
    assert main(["score", "--data", str(DATA), "--task", "toy_data", "--submission", str(folder), "--out", str(out),
                 "--no-progress", "--max-examples", "50"]) == 0
    assert set(json.loads((out / "toy_data.predict").read_text()).values()) == {50}


def test_max_parameters_refuses_every_larger_model(tmp_path, toy_task):
    assert main(["score", "--data", str(DATA), "--task", "toy_data", "--measure", "parameter_norm", "--out",
                 str(tmp_path), "--no-progress", "--max-parameters", "10", "--report", str(tmp_path / "r.json")]) == 1
    failed = json.loads((tmp_path / "r.json").read_text())["toy_data"]["failed"]
    assert sorted(failed) == sorted(toy_task.model_ids)
    assert "model_0/config.json: the layers would hold" in failed["model_0"]


def test_cached_failures_are_marked_and_the_flag_that_measures_them_again_is_named(tmp_path, capsys):
    arguments = ["score", "--data", str(DATA), "--task", "toy_data", "--measure", "parameter_norm", "--out",
                 str(tmp_path), "--no-progress", "--max-parameters", "10", "--report", str(tmp_path / "r.json")]
    assert main(arguments) == 1
    first = capsys.readouterr().err
    assert "(cached)" not in first and "--retry-failed" not in first
    assert main(arguments) == 1
    again = capsys.readouterr().err
    failed = json.loads((tmp_path / "r.json").read_text())["toy_data"]["failed"]
    assert all(reason.endswith("refused before building (cached)") for reason in failed.values()) and len(failed) == 18
    assert again.rstrip().endswith("a failure marked (cached) was read from an earlier run's cache: --retry-failed "
                                   "measures those models again")
    assert main([*arguments, "--retry-failed"]) == 1
    retried = capsys.readouterr().err
    assert "(cached)" not in retried and "--retry-failed" not in retried


def test_model_timeout_needs_worker_processes(tmp_path, capsys):
    assert main(["score", "--data", str(DATA), "--task", "toy_data", "--measure", "parameter_norm", "--out",
                 str(tmp_path), "--workers", "1", "--model-timeout", "5"]) == 2
    assert "--model-timeout needs worker processes" in capsys.readouterr().err


HANGS_ONCE = '''
import os, time

def complexity(model, dataset):
    # The first model any worker measures hangs (one marker file decides which); the rest are measured.
    try:
        os.close(os.open(os.environ["HANG_MARKER"], os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return float(model.count_params())
    time.sleep(3600)
'''


@pytest.mark.slow
def test_model_timeout_through_the_cli_loses_only_the_model_past_it(tmp_path, monkeypatch, toy_task, capsys):
    # Every model runs under the timeout here, so it is generous (30 s against well under a second
    # a model, and a worker's start): a busy machine cannot make a healthy model miss it.
    submission = tmp_path / "hangs_once"
    submission.mkdir()
    (submission / "complexity.py").write_text(HANGS_ONCE)
    monkeypatch.setenv("HANG_MARKER", str(tmp_path / "marker"))
    out = tmp_path / "out"
    code = main(["score", "--data", str(DATA), "--task", "toy_data", "--submission", str(submission), "--out",
                 str(out), "--no-progress", "--workers", "2", "--model-timeout", "30", "--partial",
                 "--report", str(tmp_path / "r.json")])
    assert code == 1
    failed = json.loads((tmp_path / "r.json").read_text())["toy_data"]["failed"]
    assert len(failed) == 1 and "took longer than the model timeout of 30 s" in next(iter(failed.values()))
    assert "1 model(s) ran past --model-timeout 30: a larger value gives them longer" in capsys.readouterr().err
    values = json.loads((out / "toy_data.partial.predict").read_text())
    assert len(values) == len(toy_task.model_ids) - 1 and set(values).isdisjoint(failed)
