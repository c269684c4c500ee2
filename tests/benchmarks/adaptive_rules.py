"""Which intervals must adaptive counting refine? A measurement on stored dense evaluations.

Reads the classes and margins that ``pairs_and_points.py`` stored (65 points per path, 2048
same-class paths per model and seed) and replays ``count_changes_adaptively`` on them with a
lookup in place of the network, for several coarse grids and ``refine_margin`` values, at the
33-point resolution of the default (every 2nd stored point) and at 65 points. Prints, per task,
the share of paths whose count equals the dense count (P) and the share of forward passes (F).

Run: `python tests/benchmarks/adaptive_rules.py [--seed 0] [--paths 512]` after pairs_and_points.py.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from complexity_measure.fragmentation import count_changes_adaptively  # noqa: E402
from pgdl_harness.tasks import find_tasks  # noqa: E402

from pairs_and_points import IMAGE_TASKS, cache_file  # noqa: E402


def replay(classes, margins, coarse_points, refine_margin):
    """(same-count share, pass share, dense counts, adaptive counts) of the rule on stored grids."""
    def classify(rows, columns):
        return classes[rows, columns], margins[rows, columns]

    changes, evaluations = count_changes_adaptively(classify, len(classes), classes.shape[1],
                                                    coarse_points=coarse_points, refine_margin=refine_margin)
    dense = np.sum(classes[:, 1:] != classes[:, :-1], axis=1)
    return changes, dense, evaluations


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data")
    parser.add_argument("--cache", type=Path, default=REPO / "results" / "bench_pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--paths", type=int, default=512)
    parser.add_argument("--points", type=int, nargs="+", default=[33])
    parser.add_argument("--coarse", type=int, nargs="+", default=[3, 5, 9])
    parser.add_argument("--margins", type=float, nargs="+", default=[0, 0.5, 1, 1.5, 2, 3])
    args = parser.parse_args()
    tasks = find_tasks(args.data, IMAGE_TASKS)
    stored = {}
    for task in tasks:
        for model_id in task.model_ids:
            path = cache_file(args.cache, task, model_id, args.seed)
            if path.exists():
                data = np.load(path)
                stored.setdefault(task.name, []).append((data["classes"][:args.paths].astype(np.int64),
                                          data["margins"][:args.paths].astype(np.float64)))
    print(f"models: {', '.join(f'{name} {len(models)}' for name, models in stored.items())}; "
          f"{args.paths} paths per model, seed {args.seed}")
    for n_points in args.points:
        step = (next(iter(stored.values()))[0][0].shape[1] - 1) // (n_points - 1)
        print(f"\n{n_points} points: P = same count as dense, F = share of dense passes, "
              f"missed = changes lost per 1000 paths")
        print(f"{'coarse':>6} {'refine':>6}  " + "  ".join(f"{name:>30}" for name in stored))
        for coarse in args.coarse:
            for refine in args.margins:
                cells = []
                for models in stored.values():
                    same = passes = total = missed = 0
                    for classes, margins in models:
                        changes, dense, evaluations = replay(classes[:, ::step], margins[:, ::step], coarse, refine)
                        same += np.sum(changes == dense)
                        passes += evaluations.sum()
                        total += len(dense)
                        missed += np.sum(dense - changes)
                    cells.append(f"P {100 * same / total:6.2f} F {100 * passes / (total * n_points):5.1f} "
                                 f"missed {1000 * missed / total:5.1f}")
                print(f"{coarse:>6} {refine:>6}  " + "  ".join(f"{cell:>30}" for cell in cells), flush=True)


if __name__ == "__main__":
    main()
