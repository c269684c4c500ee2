"""How often a 95% interval of a task's CMI contains the "true" CMI: a simulation.

A task's models are one draw from many that could have been trained: each grid cell could hold
another model of the same settings, with another gap and another measure value. The simulation
makes such a population (every cell of a PGDL-sized grid holds ``--replicates`` models; a cell's
gap is a sum of random per-axis effects plus an interaction, each model's gap that plus noise;
the measure is a random mix of the gap, a random per-axis confounder and noise, so measures
range from useless to good), takes its CMI over every model as the true score, then draws tasks
of one model per cell and checks whether each interval contains the true score:

- ``percentile``: the bootstrap's 2.5th and 97.5th percentiles (resamples repeat models, which
  inflates CMI: the interval sits above the estimate);
- ``centred``: the same interval moved so that the resamples' median is the estimate (what the
  reports print, ``uncertainty.centred_interval``);
- ``basic``: ``[2 T - q97.5, 2 T - q2.5]``, the bias corrected twice over;
- ``subsample``: m-out-of-n without replacement (m = n/2), scaled by sqrt(m / n).

It prints, per grid shape and method, the coverage of the true score, how often the interval
contains the estimate itself, and the mean width. Run:
``python benchmarks/interval_coverage.py [--shapes 3,2,2,2,2,2 3,3,3,2 3,2,2,2,2] [--populations 30]``
(about 2 minutes per shape at the defaults on 2 cores).
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from pgdl_harness.scoring import population_conditional_mutual_information, score_task
from pgdl_harness.uncertainty import bootstrap_weights, centred_interval, percentile_interval, resampled_scores

METHODS = ("percentile", "centred", "basic", "subsample")


def task_specs(shape, gaps):
    """model_configs.json of a grid of ``shape`` with one model per cell and these gaps."""
    specs = {}
    for mid, combination in enumerate(itertools.product(*map(range, shape))):
        specs[str(mid)] = {"hparams": {f"h{k}": {"possible_values": list(range(n)), "current_value": v}
                                       for k, (n, v) in enumerate(zip(shape, combination))},
                           "metrics": {"train_acc": 1.0, "test_acc": 1.0 - float(gaps[mid])}}
    return specs


def population(rng, shape, replicates):
    """(value_index, gaps, measure) of a population with ``replicates`` models per cell."""
    cells = np.array(list(itertools.product(*map(range, shape))))
    index = np.repeat(cells, replicates, axis=0)
    cell_gap = sum(rng.normal(0, 1, n)[cells[:, k]] * rng.uniform(0, 1) for k, n in enumerate(shape))
    cell_gap = cell_gap + rng.normal(0, 0.5, len(cells))
    gaps = np.repeat(cell_gap, replicates) + rng.normal(0, rng.uniform(0.2, 1.0), len(index))
    confounder = sum(rng.normal(0, 1, n)[index[:, k]] * rng.uniform(0, 1) for k, n in enumerate(shape))
    standard = (gaps - gaps.mean()) / gaps.std()
    measure = rng.uniform(0, 0.9) * standard + rng.uniform(0, 1) * confounder + rng.normal(0, 1, len(index))
    # Gaps in (0, 0.5], as accuracies differences are.
    gaps = 0.5 * (gaps - gaps.min() + 1e-3) / (gaps.max() - gaps.min() + 1e-3)
    return index, gaps, measure


def intervals(rng, specs, predictions, estimate, resamples):
    n = len(specs)
    boot = resampled_scores(predictions, specs, bootstrap_weights(n, resamples, int(rng.integers(2**31))))["cmi"]
    low, high = percentile_interval(boot)
    m = n // 2
    subsets = np.zeros((resamples, n), dtype=np.int64)
    for row in subsets:
        row[rng.choice(n, m, replace=False)] = 1
    sub_low, sub_high = percentile_interval(resampled_scores(predictions, specs, subsets)["cmi"])
    scale = np.sqrt(m / n)
    return {"percentile": (low, high), "centred": centred_interval(boot, estimate, bounds=(0.0, 100.0)),
            "basic": (max(0.0, 2 * estimate - high), 2 * estimate - low),
            "subsample": (max(0.0, estimate - scale * (sub_high - estimate)), estimate - scale * (sub_low - estimate))}


def coverage(shape, populations, tasks_per_population, replicates, resamples, seed):
    rng = np.random.default_rng(seed)
    counts = {method: {"covers": 0, "contains": 0, "width": 0.0} for method in METHODS}
    draws = 0
    n_cells = int(np.prod(shape))
    for _ in range(populations):
        index, gaps, measure = population(rng, shape, replicates)
        truth = population_conditional_mutual_information(measure, gaps, index, shape)  # x100
        for _ in range(tasks_per_population):
            pick = np.arange(n_cells) * replicates + rng.integers(0, replicates, n_cells)
            specs = task_specs(shape, gaps[pick])
            predictions = {f"model_{mid}": float(v) for mid, v in enumerate(measure[pick])}
            estimate = score_task(predictions, specs).cmi
            for method, (low, high) in intervals(rng, specs, predictions, estimate, resamples).items():
                counts[method]["covers"] += low <= truth <= high
                counts[method]["contains"] += low <= estimate <= high
                counts[method]["width"] += high - low
            draws += 1
    return {method: {key: value / draws for key, value in row.items()} for method, row in counts.items()}, draws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["3,2,2,2,2,2", "3,3,3,2", "3,2,2,2,2"],
                        help="grid shapes: values per hyperparameter (96, 54 and 48 models by default)")
    parser.add_argument("--populations", type=int, default=30, help="populations (measures) per shape")
    parser.add_argument("--tasks", type=int, default=10, help="tasks drawn from each population")
    parser.add_argument("--replicates", type=int, default=10, help="models per cell in a population")
    parser.add_argument("--resamples", type=int, default=300, help="bootstrap resamples and subsamples per task")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'grid':<14} {'models':>6} {'method':<11} {'covers truth':>12} {'contains estimate':>17} {'width':>6}")
    for text in args.shapes:
        shape = tuple(int(v) for v in text.split(","))
        result, draws = coverage(shape, args.populations, args.tasks, args.replicates, args.resamples, args.seed)
        for method, row in result.items():
            print(f"{text:<14} {int(np.prod(shape)):>6} {method:<11} {row['covers']:>12.3f} "
                  f"{row['contains']:>17.3f} {row['width']:>6.2f}   ({draws} tasks)", flush=True)


if __name__ == "__main__":
    main()
