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

Also the count over every path at the initial weights, which the fifth round's
``fragmentation_fitted_relative_init_davies_bouldin_quarter`` divides by.

Run: ``python benchmarks/depth_mechanism.py [--data data --task mnist_vgg --out results/depth_mechanism.csv
--pairs 2048 --figure docs/figures/depth_mechanism.png]`` (fewer pairs for a quick look at a large task;
``--from-csv`` draws the figure from an earlier run's ``--out``).
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

from complexity_measure.classifier import ModelRefused  # noqa: E402
from complexity_measure.fragmentation import DEFAULT_N_PAIRS, fragmentation_score  # noqa: E402
from complexity_measure.frameworks import as_classifier  # noqa: E402
from pgdl_harness.figures import pyplot  # noqa: E402
from pgdl_harness.loading import load_arrays, load_model  # noqa: E402
from pgdl_harness.scoring import generalization_gaps  # noqa: E402
from pgdl_harness.tasks import find_tasks  # noqa: E402


def counts(model, inputs, labels, n_pairs: int, ends: str = "fitted") -> dict:
    """Mean class changes per path inside [0, 1] and beyond it (the default measure's paths, dense)."""
    return {part: fragmentation_score(model, inputs, labels, n_pairs=n_pairs, ends=ends, counting="dense", part=part)
            for part in ("inside", "beyond")}


def measure(task, out_path: Path, n_pairs: int = DEFAULT_N_PAIRS) -> pd.DataFrame:
    inputs, labels = load_arrays(task)
    specs = task.model_specs()
    gaps = generalization_gaps(specs)
    rows = []
    for model_id in task.model_ids:
        model = as_classifier(load_model(task.model_folder(model_id)))
        spec = specs.get(model_id, specs.get(model_id.removeprefix("model_")))  # bare ids or model_<id>
        hparams = {name: value["current_value"] for name, value in spec["hparams"].items()}
        hidden = model.activation_layers()
        row = {"model": model_id, **hparams, "gap": gaps[model_id], **counts(model, inputs, labels, n_pairs),
               "first_hidden": fragmentation_score(model, inputs, labels, layer=hidden[0], ends="fitted", n_pairs=n_pairs),
               "last_hidden": fragmentation_score(model, inputs, labels, layer=hidden[-1], ends="fitted", n_pairs=n_pairs)}
        try:
            with model.at_initial_weights():
                at_init = counts(model, inputs, labels, n_pairs)
                # What fragmentation_fitted_relative_init_davies_bouldin_quarter divides by: every path.
                row["all_paths_at_init"] = fragmentation_score(model, inputs, labels, n_pairs=n_pairs, counting="dense")
            row["inside_at_init"], row["beyond_at_init"] = at_init["inside"], at_init["beyond"]
        except ModelRefused:  # no weights_init.hdf5
            pass
        rows.append(row)
        print(f"{model_id}: depth {hparams.get('depth')}, gap {row['gap']:.3f}, inside {row['inside']:.3f}, beyond "
              f"{row['beyond']:.3f}, at init {row.get('inside_at_init', float('nan')):.3f} / "
              f"{row.get('beyond_at_init', float('nan')):.3f}", flush=True)
    table = pd.DataFrame(rows)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_path, index=False)
    return table


def figure(table: pd.DataFrame, path: Path, title: str) -> None:
    """Per depth: the changes inside and beyond, trained and at initialisation, and the mean gap."""
    plt = pyplot()
    means = table.groupby("depth").mean(numeric_only=True)
    depths = means.index.to_numpy()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [2.2, 1]})
    bars = [("inside", "inside [0, 1], trained", "tab:red", None), ("beyond", "beyond the ends, trained", "tab:blue", None),
            ("inside_at_init", "inside, at init", "tab:red", "//"), ("beyond_at_init", "beyond, at init", "tab:blue", "//")]
    bars = [bar for bar in bars if bar[0] in means]
    width = 0.8 / len(bars)
    for k, (column, label, colour, hatch) in enumerate(bars):
        left.bar(np.arange(len(depths)) + (k - (len(bars) - 1) / 2) * width, means[column], width, label=label,
                 color=colour if hatch is None else "white", edgecolor=colour, hatch=hatch)
    left.set_xticks(np.arange(len(depths)), [str(d) for d in depths])
    left.set_xlabel("convolutions per block (depth)")
    left.set_ylabel("class changes per fitted path")
    left.set_ylim(0, 1.4 * max(means[column].max() for column, *_ in bars))
    left.legend(fontsize=7, loc="upper center", ncol=2)
    right.plot(depths, means["gap"], "ko-")
    right.set_xticks(depths)
    right.set_xlabel("depth")
    right.set_ylabel("mean generalization gap")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary(table: pd.DataFrame) -> str:
    columns = [c for c in ("gap", "inside", "beyond", "inside_at_init", "beyond_at_init", "all_paths_at_init",
                           "first_hidden", "last_hidden") if c in table]
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
    parser.add_argument("--figure", type=Path, help="also draw the means per depth into this PNG")
    parser.add_argument("--from-csv", action="store_true", help="read --out instead of measuring again")
    arguments = parser.parse_args()
    out = Path(arguments.out)
    if arguments.from_csv:
        table = pd.read_csv(out)
    else:
        table = measure(find_tasks(arguments.data, [arguments.task])[0], out, arguments.pairs)
    print("\n" + summary(table))
    if arguments.figure:
        figure(table, arguments.figure, f"{arguments.task}: where the class changes are, by depth")


if __name__ == "__main__":
    main()
