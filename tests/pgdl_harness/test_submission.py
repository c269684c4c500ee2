"""A PGDL submission folder scored as the kit scores it: its own modules, whatever their names."""

import json
import shutil
import sys
import textwrap

import numpy as np
import pytest

import complexity_measure
from pgdl_harness.cli import main
from pgdl_harness.loading import load_model
from pgdl_harness.submission import SubmissionError, load_submission

from ..conftest import DATA, REPO

WEIGHT_NORM = textwrap.dedent('''
    import numpy as np
    from helper import squared  # a sibling module, importable because the folder is on sys.path

    def complexity(model, dataset{extra}):
        count = sum(1 for _ in dataset)
        return sum(squared(w) for w in model.get_weights()) + count
''')
# Each submission's helper differs: a second submission given the first one's `helper` would be wrong.
HELPERS = {"": "def squared(w):\n    return float(np.sum(w ** 2))\n",
           ", program_dir=None": "def squared(w):\n    return 2 * float(np.sum(w ** 2))\n"}
FACTORS = {"": 1, ", program_dir=None": 2}


def _weight_sum(toy_task, model_id):
    return sum(float(np.sum(w ** 2)) for w in load_model(toy_task.model_folder(model_id)).get_weights())


@pytest.mark.parametrize("extra", ["", ", program_dir=None"])
def test_a_submission_folder_is_run_as_the_kit_runs_it(tmp_path, toy_task, extra):
    folder = tmp_path / f"submission{len(extra)}"
    folder.mkdir()
    (folder / "complexity.py").write_text(WEIGHT_NORM.format(extra=extra))
    (folder / "helper.py").write_text("import numpy as np\n" + HELPERS[extra])
    out = tmp_path / "out"
    assert main(["score", "--data", str(DATA), "--task", "toy_data", "--submission", str(folder),
                 "--out", str(out), "--no-progress"]) == 0
    predictions = json.loads((out / "toy_data.predict").read_text())
    # All 200 training examples reach the submission (registered measures get at most 10,000).
    expected = FACTORS[extra] * _weight_sum(toy_task, "model_5") + 200
    assert predictions["model_5"] == pytest.approx(expected, rel=1e-6)
    report = json.loads((out / "report.json").read_text())["toy_data"]
    assert report["measure"] == f"submission-{folder.name}"


def test_two_submissions_with_a_helper_of_the_same_name_each_run_their_own(tmp_path, toy_task):
    measures = []
    for extra in HELPERS:
        folder = tmp_path / f"submission{len(extra)}"
        folder.mkdir()
        (folder / "complexity.py").write_text(WEIGHT_NORM.format(extra=extra))
        (folder / "helper.py").write_text("import numpy as np\n" + HELPERS[extra])
        measures.append(load_submission(folder).function)
    model = load_model(toy_task.model_folder("model_2"))
    inputs = np.zeros((3, 3), np.float32)
    for measure, factor in zip(measures * 2, [*FACTORS.values()] * 2):  # interleaved calls
        assert measure(model, inputs, np.zeros(3)) == pytest.approx(factor * _weight_sum(toy_task, "model_2") + 3)
    assert "helper" not in sys.modules  # a submission's modules stay its own


def modified_copy(parent, name):
    """A copy of the project's ``complexity_measure/`` named ``name`` whose registry's measures give
    7 plus a thousandth of the examples they see: its ``complexity.py`` unchanged, a sibling changed."""
    folder = parent / name
    shutil.copytree(REPO / "complexity_measure", folder, ignore=shutil.ignore_patterns("__pycache__"))
    with open(folder / "registry.py", "a") as registry:
        registry.write("\n\ndef get_measure(name):\n"
                       "    return lambda model, inputs, labels: 7.0 + len(inputs) / 1000\n")
    return folder


def score_modified_copy(tmp_path, toy_task, name, *engine) -> dict:
    """Score ``modified_copy(tmp_path, name)`` on the toy task with the ``engine`` options, check that
    the copy's own values were written under its name, and return where each model was measured."""
    folder = modified_copy(tmp_path, name)
    out = tmp_path / "out"
    assert main(["score", "--data", str(DATA), "--task", "toy_data", "--submission", str(folder),
                 "--out", str(out), "--no-progress", *engine]) == 0
    predictions = json.loads((out / "toy_data.predict").read_text())
    assert predictions == dict.fromkeys(toy_task.model_ids, 7.2)  # 200 examples
    companion = json.loads((out / "toy_data.predict.json").read_text())
    assert companion["measure"] == f"submission-{folder.name}"
    return companion["workers"]


@pytest.mark.parametrize("name", ["entry", "complexity_measure"])
def test_a_modified_copy_of_the_package_is_scored_as_itself_in_process(tmp_path, toy_task, name):
    path = list(sys.path)
    score_modified_copy(tmp_path, toy_task, name, "--workers", "1")
    # The harness's own package and search path are as they were.
    assert sys.modules["complexity_measure"] is complexity_measure
    assert sys.modules["complexity_measure.registry"].__file__ == str(REPO / "complexity_measure" / "registry.py")
    assert sys.path == path


@pytest.mark.slow
def test_a_modified_copy_of_the_package_is_scored_as_itself_by_worker_processes(tmp_path, toy_task):
    workers = score_modified_copy(tmp_path, toy_task, "complexity_measure", "--workers", "2")
    assert all(where.startswith("worker pid") for where in workers)


def test_bad_submission_folders(tmp_path):
    with pytest.raises(SubmissionError, match="complexity.py: missing"):
        load_submission(tmp_path)
    (tmp_path / "complexity.py").write_text("import no_such_module\n")
    with pytest.raises(SubmissionError, match="importing it failed: ModuleNotFoundError"):
        load_submission(tmp_path)
    (tmp_path / "complexity.py").write_text("def measure(model, dataset):\n    return 1\n")
    with pytest.raises(SubmissionError, match="defines no function complexity"):
        load_submission(tmp_path)
