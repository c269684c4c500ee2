"""Which intervals must adaptive counting refine? A measurement on stored dense evaluations.

For every model of the bundled image tasks and of the development suite (``make dev-suite``),
stores once the class and top-2 margin at every point of the default paths (2048 same-class
pairs, pair seed 0, t in [-0.5, 1.5]) on a 33-point grid, in results/adaptive_grids/
(resumable). Then replays ``adaptive_classes`` on them with a lookup in place of the
network, for several coarse grids and ``refine_margin`` values, at 17 points (every 2nd stored
point, the default) and at 33. Prints, per rule, the share of paths whose count equals the dense
count (P) and the share of forward passes (F): worst task, mean over tasks, and per task.

The same is stored and replayed for the two PGDL-sized architectures of ``bench_fragmentation.py``
(a task1-like VGG and a task2-like NiN at 32x32x3) trained on colour digits: the bundled and
development tasks are small models on 14x14 and 28x28 digits, and a rule must also hold on
models of PGDL's size. Each rule also gets the mean CMI and Kendall's tau over the tasks that its
counts give, next to those of the dense counts.

It also prints a floor no rule can beat while seeing every change it counts: the ends of each
path plus both grid points around every change (an oracle that knows where the changes are).

Run: `make bench-rules` (or `python benchmarks/adaptive_rules.py --data data dev_data`).
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from complexity_measure.fragmentation import (DEFAULT_COARSE_POINTS, DEFAULT_EXTEND, DEFAULT_N_PAIRS,  # noqa: E402
                                              DEFAULT_REFINE_MARGIN, adaptive_classes, class_changes, draw_pairs,
                                              path_point_predictions, path_positions)
from pgdl_harness.loading import load_arrays, load_model  # noqa: E402
from pgdl_harness.scoring import score_task  # noqa: E402
from pgdl_harness.tasks import find_tasks  # noqa: E402

from bench_fragmentation import TRAINED_ARCHITECTURES, trained  # noqa: E402

STORED_POINTS = 33
PGDL_SIZED = "pgdl_sized"
# The bundled toy task is not an image task (and has too few models to say much).
SKIP = {"toy_data"}


def store_grid(path: Path, model, inputs, labels) -> None:
    """Store the class and top-2 margin at every point of the model's default paths (33 points)."""
    first, second = draw_pairs(inputs, labels, n_pairs=DEFAULT_N_PAIRS, seed=0)
    classes, margins = path_point_predictions(model, inputs[first], inputs[second],
                                              path_positions(STORED_POINTS, DEFAULT_EXTEND))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, classes=classes.astype(np.int16), margins=margins.astype(np.float32))


def collect(tasks, cache: Path) -> None:
    """Store the dense grids of every model of ``tasks`` not yet in ``cache``."""
    for task in tasks:
        missing = [m for m in task.model_ids if not (cache / task.name / f"{m}.npz").exists()]
        if not missing:
            continue
        inputs, labels = load_arrays(task)
        for model_id in missing:
            start = time.perf_counter()
            store_grid(cache / task.name / f"{model_id}.npz", load_model(task.model_folder(model_id)), inputs, labels)
            tf.keras.backend.clear_session()
            print(f"stored {task.name} {model_id} ({time.perf_counter() - start:.1f} s)", flush=True)


def collect_pgdl_sized(cache: Path) -> None:
    """Store the dense grids of the two trained PGDL-sized benchmark models (trained if needed)."""
    for name, (build, epochs) in TRAINED_ARCHITECTURES.items():
        path = cache / PGDL_SIZED / f"{name}.npz"
        if not path.exists():
            model, (inputs, labels), _ = trained(name, build, epochs)
            store_grid(path, model, inputs, labels)
            print(f"stored {name}", flush=True)


def replay(classes, margins, coarse_points, refine_margin):
    """(adaptive counts, dense counts, evaluations per path) of the rule on stored grids."""
    filled, evaluations = adaptive_classes(lambda rows, columns: (classes[rows, columns], margins[rows, columns]),
                                           len(classes), classes.shape[1],
                                           coarse_points=coarse_points, refine_margin=refine_margin)
    return class_changes(filled), class_changes(classes), evaluations


def oracle_share(classes) -> float:
    """Share of grid points an oracle evaluates: both ends and both sides of every change."""
    change = classes[:, 1:] != classes[:, :-1]
    seen = np.zeros(classes.shape, dtype=bool)
    seen[:, [0, -1]] = True
    seen[:, :-1] |= change
    seen[:, 1:] |= change
    return float(seen.mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", default=[REPO / "data", REPO / "dev_data"])
    parser.add_argument("--cache", type=Path, default=REPO / "results" / "adaptive_grids")
    parser.add_argument("--points", type=int, nargs="+", default=[17, 33])
    parser.add_argument("--coarse", type=int, nargs="+", default=[2, 3, 5])
    parser.add_argument("--margins", type=float, nargs="+", default=[0, 0.5, 1, 1.25, 1.5, 2])
    args = parser.parse_args()
    tasks = [task for root in args.data if root.is_dir() for task in find_tasks(root) if task.name not in SKIP]
    if not tasks:
        raise SystemExit(f"no tasks under {', '.join(map(str, args.data))}")
    collect(tasks, args.cache)
    collect_pgdl_sized(args.cache)

    def grids(folder, names):
        return [(z["classes"].astype(np.int64), z["margins"].astype(np.float64))
                for z in (np.load(args.cache / folder / f"{name}.npz") for name in names)]

    stored = {task.name: grids(task.name, task.model_ids) for task in tasks}
    specs = {task.name: (task.model_specs(), task.model_ids) for task in tasks}
    stored.update({name: grids(PGDL_SIZED, [name]) for name in TRAINED_ARCHITECTURES})
    print(f"{len(tasks)} tasks, {sum(len(stored[task.name]) for task in tasks)} models, and the trained "
          f"{' and '.join(TRAINED_ARCHITECTURES)}; {DEFAULT_N_PAIRS} same-class paths per model (pair seed 0); "
          f"default rule: {DEFAULT_COARSE_POINTS} coarse points, refine_margin {DEFAULT_REFINE_MARGIN}")
    names = [name.removeprefix("dev_") for name in stored]

    def scores(counts):
        """Mean CMI x100 and tau over the tasks of per-model counts {task: [counts per path, ...]}."""
        results = [score_task({m: float(np.mean(c)) for m, c in zip(specs[name][1], counts[name])}, specs[name][0])
                   for name in specs]
        return np.mean([r.cmi for r in results]), np.mean([r.kendall_tau for r in results])

    for n_points in args.points:
        step = (STORED_POINTS - 1) // (n_points - 1)
        dense_counts = {name: [np.sum(c[:, ::step][:, 1:] != c[:, ::step][:, :-1], axis=1) for c, _ in models]
                        for name, models in stored.items()}
        cmi, tau = scores(dense_counts)
        print(f"\n{n_points} points. P: paths whose count equals the dense count; F: share of the dense "
              f"grid's forward passes. Over the {len(tasks)} tasks: worst task and mean, and the mean CMI x100 "
              f"and tau of the counts (dense: {cmi:.2f}, {tau:.3f}); then per task (and PGDL-sized model) P/F.")
        floor = [np.mean([oracle_share(classes[:, ::step]) for classes, _ in models]) for models in stored.values()]
        changes = [np.mean([c.mean() for c in counts]) for counts in dense_counts.values()]
        print(f"oracle floor F (ends and both sides of every change): max {100 * max(floor[:len(tasks)]):.1f}% mean "
              f"{100 * np.mean(floor[:len(tasks)]):.1f}% | " + " ".join(
                  f"{name} {100 * f:.1f}% ({c:.2f} changes/path)" for name, f, c in zip(names, floor, changes)))
        for coarse in args.coarse:
            for refine in args.margins:
                cells, counts = [], {}
                for name, models in stored.items():
                    same = passes = total = 0
                    for classes, margins in models:
                        counted, dense, evaluations = replay(classes[:, ::step], margins[:, ::step], coarse, refine)
                        counts.setdefault(name, []).append(counted)
                        same += np.sum(counted == dense)
                        passes += evaluations.sum()
                        total += len(dense)
                    cells.append((100 * same / total, 100 * passes / (total * n_points)))
                p, f = np.array(cells[:len(tasks)]).T
                cmi, tau = scores(counts)
                print(f"coarse {coarse} refine {refine:<4}: P min {p.min():6.2f} mean {p.mean():6.2f} | F max "
                      f"{f.max():5.1f} mean {f.mean():5.1f} | CMI {cmi:.2f} tau {tau:.3f} | "
                      + " ".join(f"{name} {pc:.2f}/{fc:.1f}" for name, (pc, fc) in zip(names, cells)), flush=True)


if __name__ == "__main__":
    main()
