"""How a task's scores move with the number of pairs and points per path, over pair seeds.

One dense evaluation per model and seed gives every cell of the table: the pairs of
``n_pairs=k`` are the first k of 2048 (``draw_pairs`` draws pair by pair from one seeded stream)
and the 9/17/33-point grids are every 8th/4th/2nd point of the 65-point grid over the same
``t`` range. Per model and seed it stores the class and top-2 margin at every point of 2048
same-class paths (65 points, t in [-0.5, 1.5]); ``adaptive_rules.py`` reads the same files.

Run: `make bench-pairs` (collects into results/bench_pairs/, resumable, ~30 min on a 2-core CPU
for the two bundled image tasks and 3 seeds), then it prints the table.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from complexity_measure.fragmentation import (DEFAULT_EXTEND, draw_pairs, path_point_predictions,  # noqa: E402
                                              path_positions)
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


def table(tasks, seeds, cache: Path) -> None:
    """Print, per task, CMI and tau for every (n_pairs, n_points): mean +- sd over seeds (and range)."""
    for task in tasks:
        specs = task.model_specs()
        by_seed = [load_classes(cache, task, seed) for seed in seeds]
        print(f"\n{task.name}: CMI x100 and Kendall's tau, mean +- sd over pair seeds {seeds}\n")
        print("| n_pairs | n_points | passes/model | CMI | tau |")
        print("|---:|---:|---:|---|---|")
        for n_points in POINT_COUNTS:
            for n_pairs in PAIR_COUNTS:
                scores = [score_task({f"model_{m}".replace("model_model_", "model_"): mean_changes(c, n_pairs, n_points)
                                      for m, c in classes.items()}, specs) for classes in by_seed]
                cmi = np.array([s.cmi for s in scores])
                tau = np.array([s.kendall_tau for s in scores])
                print(f"| {n_pairs} | {n_points} | {n_pairs * n_points} | {cmi.mean():.2f} +- {cmi.std(ddof=1):.2f} "
                      f"({cmi.min():.2f}-{cmi.max():.2f}) | {tau.mean():.3f} +- {tau.std(ddof=1):.3f} "
                      f"({tau.min():.3f}-{tau.max():.3f}) |", flush=True)


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
