"""Adaptive against dense counting on every model of the bundled image tasks, same finest grid.

For each model: the default paths (same-class pairs, ``n_pairs`` and ``n_points`` of the
default measure, t in [-0.5, 1.5]), counted once on the dense grid and once adaptively at the
default coarse grid and refinement rule (every adaptive point is a point of the dense grid).
Prints per task and overall `adaptive counting: same count on P% of paths with F% of the forward
passes`, plus the changes lost and the seconds of each. Run: `make bench` (or this file alone).
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

from complexity_measure.fragmentation import (DEFAULT_COARSE_POINTS, DEFAULT_EXTEND, DEFAULT_N_PAIRS,  # noqa: E402
                                              DEFAULT_N_POINTS, DEFAULT_REFINE_MARGIN,
                                              class_changes, draw_pairs, path_classes, path_positions)
from pgdl_harness.loading import load_arrays, load_model  # noqa: E402
from pgdl_harness.tasks import find_tasks  # noqa: E402

IMAGE_TASKS = ["mnist_vgg", "mnist_nin_bn"]


def summary(same, paths, passes, dense_passes):
    return (f"adaptive counting: same count on {100 * same / paths:.2f}% of paths "
            f"with {100 * passes / dense_passes:.1f}% of the forward passes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data")
    parser.add_argument("--tasks", nargs="+", default=IMAGE_TASKS)
    parser.add_argument("--coarse-points", type=int, default=DEFAULT_COARSE_POINTS)
    parser.add_argument("--refine-margin", type=float, default=DEFAULT_REFINE_MARGIN)
    parser.add_argument("--n-points", type=int, default=DEFAULT_N_POINTS)
    args = parser.parse_args()
    positions = path_positions(args.n_points, DEFAULT_EXTEND)
    print(f"{DEFAULT_N_PAIRS} same-class paths x {args.n_points} points per model; adaptive: "
          f"{args.coarse_points} coarse points, refine_margin {args.refine_margin}")
    totals = np.zeros(6)
    for task in find_tasks(args.data, args.tasks):
        inputs, labels = load_arrays(task)
        first, second = draw_pairs(inputs, labels, n_pairs=DEFAULT_N_PAIRS)
        starts, ends = inputs[first], inputs[second]
        sums = np.zeros(6)  # same, paths, passes, dense passes, dense seconds, adaptive seconds
        lost = []
        for model_id in task.model_ids:
            model = load_model(task.model_folder(model_id))
            path_classes(model, starts[:8], ends[:8], positions, counting="dense")  # warm up TensorFlow's kernels
            start = time.perf_counter()
            dense = class_changes(path_classes(model, starts, ends, positions, counting="dense").classes)
            middle = time.perf_counter()
            adaptive = path_classes(model, starts, ends, positions, coarse_points=args.coarse_points,
                                    refine_margin=args.refine_margin)
            changes, evaluations = class_changes(adaptive.classes), adaptive.evaluations
            end = time.perf_counter()
            if np.any(changes > dense):
                raise AssertionError(f"{task.name}/{model_id}: adaptive counted more than dense")
            sums += [np.sum(changes == dense), len(dense), evaluations.sum(), dense.size * len(positions),
                     middle - start, end - middle]
            lost.append(np.sum(dense - changes) / max(1, np.sum(dense)))
        print(f"{task.name} ({len(task.model_ids)} models): {summary(*sums[:4])}; changes lost: "
              f"{100 * np.mean(lost):.3f}% (worst model {100 * np.max(lost):.2f}%); seconds per model: dense "
              f"{sums[4] / len(lost):.2f}, adaptive {sums[5] / len(lost):.2f} ({sums[4] / sums[5]:.1f}x)", flush=True)
        totals += sums
    print(f"overall: {summary(*totals[:4])}; dense/adaptive time {totals[4] / totals[5]:.1f}x")


if __name__ == "__main__":
    main()
