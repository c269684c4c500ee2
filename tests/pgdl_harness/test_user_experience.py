"""What a user of the command line sees: no TensorFlow start-up noise, and a non-zero exit code
with a one-line reason whenever a command could not produce what it was asked for."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pgdl_harness.cli import main
from pgdl_harness.predictions import write_predictions
from pgdl_harness.scoring import generalization_gaps
from pgdl_harness.tasks import find_tasks

REPO = Path(__file__).resolve().parents[2]
TOY_TASK = REPO / "data" / "toy_data"

# What TensorFlow prints while it starts (and about retracing) when it is not kept quiet: absl's
# notice and log lines ("I0000 00:00:... port.cc:153] oneDNN ..."), the CPU-feature and CUDA
# lines, and Python's tf logger.
START_UP_PATTERNS = [re.compile(pattern, re.IGNORECASE | re.MULTILINE) for pattern in (
    r"absl::InitializeLog", r"oneDNN custom operations", r"cpu_feature_guard", r"rebuild TensorFlow",
    r"This TensorFlow binary", r"^[IWEF]\d{4} \d\d:\d\d:\d\d", r"\bcuda", r"cuDNN", r"cuBLAS", r"cuFFT",
    r"TensorRT", r"Unable to register", r"WARNING:tensorflow", r"retracing")]


@pytest.mark.slow
def test_score_with_workers_from_an_empty_cache_prints_no_tensorflow_start_up_lines(tmp_path):
    # As a user's terminal has it: no TF_CPP_MIN_LOG_LEVEL of the test suite's, workers asked for.
    env = {key: value for key, value in os.environ.items()
           if key not in ("TF_CPP_MIN_LOG_LEVEL", "PGDL_HARNESS_WORKERS")}
    done = subprocess.run([sys.executable, "-m", "pgdl_harness", "score", "--data", str(TOY_TASK.parent), "--task",
                           "toy_data", "--out", str(tmp_path / "out"), "--workers", "2"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    noise = [pattern.pattern for pattern in START_UP_PATTERNS if pattern.search(output)]
    assert noise == [], output
    # What is left is the progress bar, the table and where the report went.
    assert "18/18" in done.stderr
    assert re.search(r"^toy_data +fragmentation\S* +18 ", done.stdout, re.MULTILINE), done.stdout
    assert f"report: {tmp_path / 'out' / 'report.csv'}" in done.stdout
    assert json.loads((tmp_path / "out" / "toy_data.predict.json").read_text())["computed"] == 18


def _copy_toy_task(root: Path, name: str = "toy_data") -> Path:
    folder = root / name
    shutil.copytree(TOY_TASK, folder)
    return folder


def _edit_specs(folder: Path, edit) -> None:
    path = folder / "model_configs.json"
    specs = json.loads(path.read_text())
    edit(specs)
    path.write_text(json.dumps(specs))


def _not_json(folder):
    (folder / "model_configs.json").write_text('{"0": {"hparams": ')


def _missing(folder):
    (folder / "model_configs.json").unlink()


def _incomplete_grid(folder):
    _edit_specs(folder, lambda specs: specs.pop("4"))
    shutil.rmtree(folder / "model_4")


def _no_accuracies(folder):
    _edit_specs(folder, lambda specs: specs["3"].pop("metrics"))


def _unlisted_model(folder):
    shutil.copytree(folder / "model_0", folder / "model_18")


def _listed_model_absent(folder):
    shutil.rmtree(folder / "model_5")


BROKEN_CONFIGS = {
    "not_json": (_not_json, "model_configs.json: not valid JSON (Expecting value: line 1 column 19"),
    "missing": (_missing, "task toy_data: no model_configs.json was found for it"),
    "incomplete_grid": (_incomplete_grid, "model_configs.json: the grid is not complete: 1 of 18 combinations"),
    "no_accuracies": (_no_accuracies, "model_configs.json: model_3 has no numeric metrics.train_acc"),
    "unlisted_model": (_unlisted_model, "model_configs.json: the model folder(s) model_18 are not in it"),
    "listed_model_absent": (_listed_model_absent, "model_configs.json: it lists model_5, which"),
}


@pytest.mark.parametrize("command", ["score", "compare"])
@pytest.mark.parametrize("broken", sorted(BROKEN_CONFIGS))
def test_a_task_that_cannot_be_scored_is_refused_before_anything_is_measured(tmp_path, capsys, command, broken):
    breaks, reason = BROKEN_CONFIGS[broken]
    breaks(_copy_toy_task(tmp_path / "data"))
    out = tmp_path / "out"
    measure = ["--measure"] if command == "score" else ["--measures"]
    assert main([command, "--data", str(tmp_path / "data"), *measure, "parameter_norm", "--out", str(out),
                 "--no-progress", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and reason in err, err
    assert err.count("\n") == 1  # one line
    assert not out.exists()  # nothing measured, nothing written


def test_a_refused_task_keeps_the_values_already_cached(tmp_path, capsys):
    folder = _copy_toy_task(tmp_path / "data")
    out = tmp_path / "out"
    arguments = ["score", "--data", str(tmp_path / "data"), "--measure", "parameter_norm", "--out", str(out),
                 "--no-progress", "--workers", "1"]
    assert main(arguments) == 0
    cache = out / "cache" / "toy_data" / "parameter_norm.jsonl"
    cached = cache.read_text()
    configs = (folder / "model_configs.json").read_text()
    _not_json(folder)
    assert main(arguments) == 2
    assert cache.read_text() == cached
    (folder / "model_configs.json").write_text(configs)
    capsys.readouterr()
    assert main(arguments) == 0
    assert json.loads((out / "toy_data.predict.json").read_text())["reused_from_cache"] == 18


def test_every_task_that_cannot_be_scored_is_named(tmp_path, capsys):
    _not_json(_copy_toy_task(tmp_path / "data", "first"))
    _missing(_copy_toy_task(tmp_path / "data", "second"))
    _copy_toy_task(tmp_path / "data", "third")
    assert main(["score", "--data", str(tmp_path / "data"), "--measure", "parameter_norm", "--out",
                 str(tmp_path / "out"), "--no-progress", "--workers", "1"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "error: 2 tasks cannot be scored:"
    assert "first/model_configs.json: not valid JSON" in lines[1] and "task second: no model_configs" in lines[2]
    assert len(lines) == 3


def _true_gaps() -> dict:
    """The toy task's generalization gaps by model id: a .predict file that scores."""
    return generalization_gaps(json.loads((TOY_TASK / "model_configs.json").read_text()))


def test_evaluate_exits_1_naming_each_task_it_could_not_score(tmp_path, capsys):
    _copy_toy_task(tmp_path / "data", "good")
    _not_json(_copy_toy_task(tmp_path / "data", "broken"))
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    for name in ("good", "broken"):
        (predictions / f"{name}.predict").write_text(json.dumps(_true_gaps()))
    assert main(["evaluate", "--data", str(tmp_path / "data"), "--predictions", str(predictions),
                 "--null", "0", "--bootstrap", "0", "--report", str(tmp_path / "r.json")]) == 1
    err = capsys.readouterr().err
    assert "1 task(s) not scored:" in err
    assert re.search(r"^  broken \(predictions\): \S+broken/model_configs.json: not valid JSON", err,
                     re.MULTILINE), err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["good"]["cmi"] is not None and report["broken"]["cmi"] is None  # the rest was scored


def test_evaluate_exits_1_when_a_predict_file_lacks_a_model(tmp_path, capsys):
    values = _true_gaps()
    del values["model_7"]
    (tmp_path / "toy_data.predict").write_text(json.dumps(values))
    assert main(["evaluate", "--data", str(TOY_TASK.parent), "--task", "toy_data", "--predictions", str(tmp_path),
                 "--null", "0", "--bootstrap", "0"]) == 1
    assert "toy_data (" in (err := capsys.readouterr().err) and "no value for model_7" in err


def test_compare_names_a_task_whose_data_cannot_be_read_at_the_end(tmp_path, capsys):
    folder = _copy_toy_task(tmp_path / "data")
    shard = folder / "dataset_1" / "train" / "shard_1.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-7])
    assert main(["compare", "--data", str(tmp_path / "data"), "--measures", "parameter_norm", "--out",
                 str(tmp_path / "out"), "--no-progress", "--no-figures", "--workers", "1"]) == 1
    err = capsys.readouterr().err
    summary = err[err.index("1 task(s) not scored:"):].splitlines()
    assert len(summary) == 2 and summary[1].startswith("  toy_data: failed: ") and "shard_1.tfrecord" in summary[1]


def _compare_results(root: Path, results: Path) -> None:
    """What a compare run leaves for select: <measure>/<task>.predict of two measures."""
    for task in find_tasks(root):
        gaps = generalization_gaps(task.model_specs())
        write_predictions(task, gaps, results / "good")
        write_predictions(task, {model_id: -gap for model_id, gap in gaps.items()}, results / "backwards")


def _select(root: Path, results: Path) -> int:
    return main(["select", "--data", str(root), "--results", str(results), "--candidates", "good", "backwards",
                 "--reference", "good", "--family", "a=one", "--family", "b=two", "--bootstrap", "5", "--null", "0"])


def test_select_refuses_a_task_that_cannot_be_scored(tmp_path, capsys):
    root, results = tmp_path / "data", tmp_path / "results"
    for name in ("a", "b"):
        _copy_toy_task(root, name)
    _compare_results(root, results)
    _incomplete_grid(root / "b")
    assert _select(root, results) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "b/model_configs.json: the grid is not complete" in err
    assert not (results / "selection.md").exists()


def test_select_names_the_flag_that_gives_a_family_it_cannot_read(tmp_path, capsys):
    root, results = tmp_path / "data", tmp_path / "results"
    for name in ("a", "b"):
        _copy_toy_task(root, name)
    _compare_results(root, results)
    assert main(["select", "--data", str(root), "--results", str(results), "--candidates", "good", "backwards",
                 "--reference", "good", "--family", "a=one", "--bootstrap", "5", "--null", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {root / 'b' / 'generation_log.json'}: cannot read the task's family (")
    assert err.endswith("); give it with --family b=NAME\n") and err.count("\n") == 1


def test_select_refuses_a_task_without_cmi(tmp_path, capsys):
    root, results = tmp_path / "data", tmp_path / "results"
    for name in ("a", "b"):
        _copy_toy_task(root, name)
    # Task b keeps the two models that differ in activation only, and that one hyperparameter.
    specs = json.loads((root / "b" / "model_configs.json").read_text())
    hparams = {key: {name: entry["current_value"] for name, entry in spec["hparams"].items()}
               for key, spec in specs.items()}
    kept = {key: spec for key, spec in specs.items()
            if hparams[key]["num_units"] == 64 and hparams[key]["num_layers"] == 1}
    for spec in kept.values():
        spec["hparams"] = {"activation_function": spec["hparams"]["activation_function"]}
    for key in set(specs) - set(kept):
        shutil.rmtree(root / "b" / f"model_{key}")
    (root / "b" / "model_configs.json").write_text(json.dumps(kept))
    _compare_results(root, results)
    assert _select(root, results) == 2
    assert "CMI needs at least two hyperparameters, the task has 1 (activation_function)" in capsys.readouterr().err


def test_select_names_predictions_it_cannot_score_in_one_line(tmp_path, capsys):
    root, results = tmp_path / "data", tmp_path / "results"
    for name in ("a", "b"):
        _copy_toy_task(root, name)
    _compare_results(root, results)
    values = json.loads((results / "backwards" / "b.predict").read_text())
    del values["model_2"]
    (results / "backwards" / "b.predict").write_text(json.dumps(values))
    assert _select(root, results) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {results / 'backwards' / 'b.predict'}: backwards on b not scored: ") and "model_2" in err
    assert err.count("\n") == 1


def test_compare_without_matplotlib_refuses_before_measuring_unless_no_figures(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    arguments = ["compare", "--data", str(TOY_TASK.parent), "--task", "toy_data", "--measures", "parameter_norm",
                 "--out", str(tmp_path / "out"), "--no-progress", "--workers", "1", "--null", "0", "--bootstrap", "0"]
    assert main(arguments) == 2
    assert capsys.readouterr().err == ("error: figures need matplotlib: pip install -e '.[plots]' "
                                       "(or pass --no-figures)\n")
    assert not (tmp_path / "out").exists()
    assert main([*arguments, "--no-figures"]) == 0


def test_a_folder_that_cannot_be_written_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "toy_data.predict").write_text(json.dumps(_true_gaps()))
    (tmp_path / "out").write_text("a file where --report wants a folder")
    assert main(["evaluate", "--data", str(TOY_TASK.parent), "--task", "toy_data", "--predictions", str(tmp_path),
                 "--null", "0", "--bootstrap", "0", "--report", str(tmp_path / "out" / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: [Errno ") and str(tmp_path / "out") in err and err.count("\n") == 1


def test_the_modules_that_score_report_and_write_results_import_no_tensorflow():
    """The list in docs/architecture.md: what evaluate and select use, and what reads a TaskRun."""
    import subprocess
    import sys

    modules = ("tasks", "scoring", "uncertainty", "report", "compare", "render", "figures", "outputs", "predictions",
               "selection", "cache", "task_run", "provenance", "errors")
    code = "".join(f"import pgdl_harness.{name}\n" for name in modules) + (
        "import sys\nprint('LOADED', 'pgdl_harness.outputs' in sys.modules, 'tensorflow' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LOADED True False" in done.stdout


def test_evaluate_select_and_measures_run_without_tensorflow(tmp_path):
    """Commands that read files and score them never import TensorFlow (5 s of a 5.4 s evaluate)."""
    import shutil
    import subprocess
    import sys

    root, predictions, results = tmp_path / "data", tmp_path / "golden", tmp_path / "results"
    for task in ("toy_a", "toy_b"):  # select chooses leaving one family out: two tasks
        shutil.copytree(REPO / "data" / "toy_data", root / task)
        for folder in (predictions, results / "golden"):
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / "tests" / "golden" / "toy_data.predict", folder / f"{task}.predict")
    code = f"""
import sys
from pgdl_harness.cli import main
codes = [main(["evaluate", "--data", r"{root}", "--predictions", r"{predictions}", "--null", "20", "--bootstrap", "20"]),
         main(["select", "--data", r"{root}", "--results", r"{results}", "--candidates", "golden",
               "--reference", "golden", "--family", "toy_a=one", "--family", "toy_b=two",
               "--bootstrap", "20", "--null", "20"]),
         main(["measures"])]
print("CODES", codes, "tensorflow" in sys.modules, "torch" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CODES [0, 0, 0] False False" in done.stdout
