import json
import textwrap

import numpy as np
import pytest

from pgdl_harness.cli import main
from pgdl_harness.loading import load_model
from pgdl_harness.submission import SubmissionError, load_submission

WEIGHT_NORM = textwrap.dedent('''
    import numpy as np
    from helper import squared  # a sibling module, importable because the folder is on sys.path

    def complexity(model, dataset{extra}):
        count = sum(1 for _ in dataset)
        return sum(squared(w) for w in model.get_weights()) + count
''')


@pytest.mark.parametrize("extra", ["", ", program_dir=None"])
def test_a_submission_folder_is_run_as_the_kit_runs_it(tmp_path, toy_task, extra):
    folder = tmp_path / f"submission{len(extra)}"
    folder.mkdir()
    (folder / "complexity.py").write_text(WEIGHT_NORM.format(extra=extra))
    (folder / "helper.py").write_text("import numpy as np\ndef squared(w):\n    return float(np.sum(w ** 2))\n")
    out = tmp_path / "out"
    assert main(["score", "--data", "data", "--task", "toy_data", "--submission", str(folder),
                 "--out", str(out), "--no-progress"]) == 0
    predictions = json.loads((out / "toy_data.predict").read_text())
    model = load_model(toy_task.model_folder("model_5"))
    # All 200 training examples reach the submission (registered measures get at most 10,000).
    expected = sum(float(np.sum(w ** 2)) for w in model.get_weights()) + 200
    assert predictions["model_5"] == pytest.approx(expected, rel=1e-6)
    report = json.loads((out / "report.json").read_text())["toy_data"]
    assert report["measure"] == f"submission-{folder.name}"


def test_bad_submission_folders(tmp_path):
    with pytest.raises(SubmissionError, match="complexity.py: missing"):
        load_submission(tmp_path)
    (tmp_path / "complexity.py").write_text("import no_such_module\n")
    with pytest.raises(SubmissionError, match="importing it failed: ModuleNotFoundError"):
        load_submission(tmp_path)
    (tmp_path / "complexity.py").write_text("def measure(model, dataset):\n    return 1\n")
    with pytest.raises(SubmissionError, match="defines no function complexity"):
        load_submission(tmp_path)
