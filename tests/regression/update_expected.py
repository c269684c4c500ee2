"""Record the default measure's values and scores on every bundled task as the regression baseline.

Run `make regression-update` after changing the default measure on purpose, and commit the new
`tests/regression/<task>.json` files in the same commit, saying why in its message.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from complexity_measure.registry import DEFAULT_MEASURE, get_measure  # noqa: E402
from pgdl_harness.report import score_predictions  # noqa: E402
from pgdl_harness.runner import run_measures  # noqa: E402
from pgdl_harness.tasks import find_tasks  # noqa: E402


def main():
    with tempfile.TemporaryDirectory() as scratch:
        for task in find_tasks(REPO / "data"):
            run = run_measures(task, {DEFAULT_MEASURE: get_measure(DEFAULT_MEASURE)}, scratch)
            failures = run.failures[DEFAULT_MEASURE]
            if failures:  # a baseline needs every model's value
                sys.exit(f"{len(failures)} model(s) of {task.name} failed; first: {next(iter(failures.values()))}")
            values = run.predictions(DEFAULT_MEASURE)
            report = score_predictions(task, DEFAULT_MEASURE, values)
            expected = {"measure": DEFAULT_MEASURE, "values": values, "cmi": report.cmi,
                        "kendall_tau": report.kendall_tau,
                        "granulated_kendall_tau": report.granulated_kendall_tau}
            path = REPO / "tests" / "regression" / f"{task.name}.json"
            path.write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
            print(f"{path.relative_to(REPO)}: CMI {report.cmi:.3f}, tau {report.kendall_tau:.3f}, "
                  f"psi {report.granulated_kendall_tau:.3f}")


if __name__ == "__main__":
    main()
