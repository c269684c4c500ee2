"""Why deeper VGGs change class more along input-space paths: where the changes are, and from when.

On a task with a ``depth`` hyperparameter (default: the bundled ``mnist_vgg``, depth 1 and 2; any
PGDL task folder with weights_init.hdf5 works), for every model, on the default measure's paths
(2048 same-class pairs, 17 points from t = -0.5 to 1.5, only the paths whose two ends the model
classifies as labelled, as the default measure counts them; dense counting, so every change is
seen):

- the class changes per path *inside* the segment between the two training examples (t in [0, 1])
  and *beyond* its ends (t < 0 or t > 1);
- the same count on the same network at its initial weights (``weights_init.hdf5``): how much of
  the depth effect is there before any training;
- the fragmentation at the first and at the last hidden layer with a nonlinearity (the paths
  interpolated between the two examples' representations there).

Prints, per depth, the mean over models of each and the Spearman correlation of each with the
generalization gap over the task, and writes one row per model to ``--out`` (a CSV).

Run: ``python benchmarks/depth_mechanism.py [--data data --task mnist_vgg --out results/depth_mechanism.csv
--pairs 2048]`` (fewer pairs for a quick look at a large task).
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from complexity_measure.fragmentation import (DEFAULT_EXTEND, DEFAULT_N_PAIRS, DEFAULT_N_POINTS, draw_pairs,  # noqa: E402
                                              fragmentation_score, path_classes, path_positions)
from complexity_measure.frameworks import as_classifier  # noqa: E402
from pgdl_harness.loading import load_arrays, load_model  # noqa: E402
from pgdl_harness.scoring import generalization_gaps  # noqa: E402
from pgdl_harness.tasks import find_tasks  # noqa: E402


def changes_inside_and_beyond(model, inputs, labels, first, second, positions) -> tuple[float, float, int]:
    """Mean class changes per fitted path inside [0, 1] and beyond it, and the number of fitted paths."""
    ends = path_classes(model, inputs[first], inputs[second], np.array([0.0, 1.0]), counting="dense").classes
    fitted = (ends[:, 0] == labels[first]) & (ends[:, 1] == labels[second])
    if fitted.any():
        first, second = first[fitted], second[fitted]
    classes = path_classes(model, inputs[first], inputs[second], positions, counting="dense").classes
    changed = classes[:, 1:] != classes[:, :-1]
    # Interval k joins points k and k + 1: inside the segment when both lie in [0, 1].
    inside = (positions[:-1] >= 0) & (positions[1:] <= 1)
    return float(changed[:, inside].sum(axis=1).mean()), float(changed[:, ~inside].sum(axis=1).mean()), len(first)


def measure(task, out_path: Path, n_pairs: int = DEFAULT_N_PAIRS) -> pd.DataFrame:
    inputs, labels = load_arrays(task)
    first, second = draw_pairs(inputs, labels, n_pairs=n_pairs, seed=0)
    positions = path_positions(DEFAULT_N_POINTS, DEFAULT_EXTEND)
    specs = task.model_specs()
    gaps = generalization_gaps(specs)
    rows = []
    for model_id in task.model_ids:
        model = load_model(task.model_folder(model_id))
        spec = specs.get(model_id, specs.get(model_id.removeprefix("model_")))  # bare ids or model_<id>
        hparams = {name: value["current_value"] for name, value in spec["hparams"].items()}
        inside, beyond, fitted = changes_inside_and_beyond(model, inputs, labels, first, second, positions)
        hidden = as_classifier(model).activation_layers()
        row = {"model": model_id, **hparams, "gap": gaps[model_id], "fitted_paths": fitted,
               "inside": inside, "beyond": beyond,
               "first_hidden": fragmentation_score(model, inputs, labels, layer=hidden[0], ends="fitted", n_pairs=n_pairs),
               "last_hidden": fragmentation_score(model, inputs, labels, layer=hidden[-1], ends="fitted", n_pairs=n_pairs)}
        initial = getattr(model, "initial_weights", None)
        if initial is not None:
            model.set_weights(initial)
            row["inside_at_init"], row["beyond_at_init"], _ = changes_inside_and_beyond(
                model, inputs, labels, first, second, positions)
        rows.append(row)
        print(f"{model_id}: depth {hparams.get('depth')}, gap {row['gap']:.3f}, inside {inside:.3f}, beyond "
              f"{beyond:.3f}, at init {row.get('inside_at_init', float('nan')):.3f} / "
              f"{row.get('beyond_at_init', float('nan')):.3f}", flush=True)
    table = pd.DataFrame(rows)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_path, index=False)
    return table


def summary(table: pd.DataFrame) -> str:
    columns = [c for c in ("gap", "inside", "beyond", "inside_at_init", "beyond_at_init", "first_hidden",
                           "last_hidden") if c in table]
    lines = ["mean per depth:", table.groupby("depth")[columns].mean().round(4).to_string(), "",
             "Spearman with the generalization gap over the task's models:"]
    for column in columns[1:]:
        rho = spearmanr(table[column], table["gap"]).statistic
        lines.append(f"  {column:<15} {rho:+.2f}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO / "data"))
    parser.add_argument("--task", default="mnist_vgg")
    parser.add_argument("--out", default=str(REPO / "results" / "depth_mechanism.csv"))
    parser.add_argument("--pairs", type=int, default=DEFAULT_N_PAIRS, help="paths per model (default: the measure's 2048)")
    arguments = parser.parse_args()
    task = find_tasks(arguments.data, [arguments.task])[0]
    table = measure(task, Path(arguments.out), arguments.pairs)
    print("\n" + summary(table))


if __name__ == "__main__":
    main()
