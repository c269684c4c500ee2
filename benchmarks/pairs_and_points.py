"""How a task's scores move with the number of pairs and points per path, over pair seeds.

One dense evaluation per model and seed gives every cell of the table: the pairs of
``n_pairs=k`` are the first k of 2048 (``draw_pairs`` draws pair by pair from one seeded stream)
and the 9/17/33-point grids are every 8th/4th/2nd point of the 65-point grid over the same
``t`` range. Per model and seed it stores the class and top-2 margin at every point of 2048
same-class paths (65 points, t in [-0.5, 1.5]).

Run: `make bench-pairs` (collects into results/bench_pairs/, resumable, 30-60 min on a
2-core CPU for the two bundled image tasks and 3 seeds), then it prints the table.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from complexity_measure.fragmentation import (DEFAULT_COARSE_POINTS, DEFAULT_EXTEND,  # noqa: E402
                                              DEFAULT_REFINE_MARGIN, adaptive_classes, draw_pairs,
                                              path_point_predictions, path_positions)
from pgdl_harness.loading import load_arrays, load_model  # noqa: E402
from pgdl_harness.scoring import score_task  # noqa: E402
from pgdl_harness.tasks import find_tasks  # noqa: E402

IMAGE_TASKS = ["mnist_vgg", "mnist_nin_bn"]
MAX_PAIRS = 2048
MAX_POINTS = 65
PAIR_COUNTS = [32, 64, 128, 256, 512, 1024, 2048]
POINT_COUNTS = [9, 17, 33, 65]


def cache_file(cache: Path, task, model_id: str, seed: int) -> Path:
    return cache / task.name / f"{model_id}_seed{seed}.npz"


def collect(tasks, seeds, cache: Path) -> None:
    """Evaluate and store every (task, model, seed) not yet in ``cache``; seed by seed."""
    positions = path_positions(MAX_POINTS, DEFAULT_EXTEND)
    for seed in seeds:
        for task in tasks:
            inputs, labels = load_arrays(task)
            first, second = draw_pairs(inputs, labels, n_pairs=MAX_PAIRS, seed=seed)
            for model_id in task.model_ids:
                path = cache_file(cache, task, model_id, seed)
                if path.exists():
                    continue
                start = time.perf_counter()
                model = load_model(task.model_folder(model_id))
                classes, margins = path_point_predictions(model, inputs[first], inputs[second], positions)
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(path, classes=classes.astype(np.int8), margins=margins.astype(np.float16))
                print(f"{task.name} {model_id} seed {seed}: {time.perf_counter() - start:.1f} s", flush=True)


def load_classes(cache: Path, task, seed: int) -> dict:
    """``{model_id: classes (2048, 65)}`` for one task and seed from the cache."""
    return {model_id: np.load(cache_file(cache, task, model_id, seed))["classes"] for model_id in task.model_ids}


def mean_changes(classes: np.ndarray, n_pairs: int, n_points: int) -> float:
    """The default measure's value from the first ``n_pairs`` paths on the ``n_points`` sub-grid."""
    step = (MAX_POINTS - 1) // (n_points - 1)
    grid = classes[:n_pairs, ::step]
    return float(np.mean(np.sum(grid[:, 1:] != grid[:, :-1], axis=1)))


def adaptive_passes_per_path(cache: Path, task, seed: int, n_points: int) -> float:
    """Mean forward passes per path of adaptive counting (the defaults) on the ``n_points`` sub-grid."""
    step = (MAX_POINTS - 1) // (n_points - 1)
    passes = []
    for model_id in task.model_ids:
        stored = np.load(cache_file(cache, task, model_id, seed))
        classes, margins = stored["classes"][:, ::step].astype(np.int64), stored["margins"][:, ::step].astype(float)
        _, evaluations = adaptive_classes(lambda rows, columns: (classes[rows, columns], margins[rows, columns]),
                                          len(classes), n_points, coarse_points=DEFAULT_COARSE_POINTS,
                                          refine_margin=DEFAULT_REFINE_MARGIN)
        passes.append(evaluations.mean())
    return float(np.mean(passes))


def table(tasks, seeds, cache: Path) -> None:
    """Print, per task, CMI and tau for every (n_pairs, n_points): mean +- sd over seeds (and range).

    Then the cheapest cell (in adaptive forward passes) whose mean CMI and mean tau are both within
    one standard deviation (over seeds) of the most expensive cell's, on every task.
    """
    within = {}
    for task in tasks:
        specs = task.model_specs()
        by_seed = [load_classes(cache, task, seed) for seed in seeds]
        passes = {n_points: adaptive_passes_per_path(cache, task, seeds[0], n_points) for n_points in POINT_COUNTS}
        print(f"\n{task.name}: CMI x100 and Kendall's tau over pair seeds {seeds}: mean +- sd (min - max); "
              f"passes per model of adaptive counting (dense: n_pairs x n_points)\n")
        print("| n_pairs | n_points | adaptive passes | CMI x100 | tau |")
        print("|---:|---:|---:|---|---|")
        cells = {}
        for n_points in POINT_COUNTS:
            for n_pairs in PAIR_COUNTS:
                scores = [score_task({model_id: mean_changes(c, n_pairs, n_points) for model_id, c in classes.items()},
                                     specs) for classes in by_seed]
                cmi = np.array([score.cmi for score in scores])
                tau = np.array([score.kendall_tau for score in scores])
                cells[n_pairs, n_points] = cmi, tau
                print(f"| {n_pairs} | {n_points} | {n_pairs * passes[n_points]:,.0f} | {cmi.mean():.2f} +- "
                      f"{cmi.std(ddof=1):.2f} ({cmi.min():.2f} - {cmi.max():.2f}) | {tau.mean():.3f} +- "
                      f"{tau.std(ddof=1):.3f} ({tau.min():.3f} - {tau.max():.3f}) |", flush=True)
        cmi_best, tau_best = cells[max(PAIR_COUNTS), max(POINT_COUNTS)]
        for cell, (cmi, tau) in cells.items():
            ok = (abs(cmi.mean() - cmi_best.mean()) <= cmi_best.std(ddof=1)
                  and abs(tau.mean() - tau_best.mean()) <= tau_best.std(ddof=1))
            within.setdefault(cell, []).append((ok, cell[0] * passes[cell[1]]))
    good = [(sum(cost for _, cost in results), cell) for cell, results in within.items()
            if all(ok for ok, _ in results)]
    cost, (n_pairs, n_points) = min(good)
    print(f"\ncheapest setting within one sd (over seeds) of n_pairs={max(PAIR_COUNTS)}, n_points={max(POINT_COUNTS)} "
          f"on CMI and tau of every task: n_pairs={n_pairs}, n_points={n_points} "
          f"({cost / len(tasks):,.0f} adaptive passes per model on average)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data")
    parser.add_argument("--cache", type=Path, default=REPO / "results" / "bench_pairs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--table-only", action="store_true", help="print the table from the cache")
    args = parser.parse_args()
    tasks = find_tasks(args.data, IMAGE_TASKS)
    if not args.table_only:
        collect(tasks, args.seeds, args.cache)
    table(tasks, args.seeds, args.cache)


if __name__ == "__main__":
    main()
