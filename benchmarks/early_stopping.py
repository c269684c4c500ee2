"""Does adding pairs in rounds until the count's standard error is small pay? A replay.

Reads the dense grids that ``adaptive_rules.py`` stores (results/adaptive_grids/: 2048 default
paths per model, pair seed 0) and, on the default 17-point grid, compares two ways of spending
fewer forward passes than the default's 2048 pairs:

- *fixed*: the first k pairs for every model (k = 256, 512, 1024);
- *rounds*: pairs in rounds of 256, stopping for each model at the first round where the
  standard error of its mean count (sd / sqrt(k)) is at most ``tol`` changes per path.

Pairs are drawn from one seeded stream, so both use a prefix of the default's paths, and every
model's passes are those adaptive counting spends on its paths. Per setting it prints the
share of the default's passes, CMI x100 and Kendall's tau averaged over the tasks, and the mean
absolute change of each task's CMI and tau from the 2048-pair value. A setting pays if it
moves the scores less than a fixed k of the same cost.

Run: `python benchmarks/early_stopping.py` after `make bench-rules` has stored the grids.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from complexity_measure.fragmentation import (DEFAULT_COARSE_POINTS, DEFAULT_N_PAIRS,  # noqa: E402
                                              DEFAULT_N_POINTS, DEFAULT_REFINE_MARGIN)
from pgdl_harness.scoring import score_task  # noqa: E402
from pgdl_harness.tasks import find_tasks  # noqa: E402

from adaptive_rules import SKIP, STORED_POINTS, replay  # noqa: E402

ROUND = 256


def per_path(cache: Path, task, model_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(changes, adaptive evaluations) per default path of one model, on the 17-point grid."""
    stored = np.load(cache / task.name / f"{model_id}.npz")
    step = (STORED_POINTS - 1) // (DEFAULT_N_POINTS - 1)
    changes, _, evaluations = replay(stored["classes"][:, ::step].astype(np.int64),
                                     stored["margins"][:, ::step].astype(np.float64),
                                     DEFAULT_COARSE_POINTS, DEFAULT_REFINE_MARGIN)
    return changes, evaluations


def pairs_used(changes: np.ndarray, tol: float) -> int:
    """The first multiple of ``ROUND`` pairs whose mean count has standard error <= ``tol``."""
    for k in range(ROUND, len(changes) + 1, ROUND):
        if np.std(changes[:k], ddof=1) / np.sqrt(k) <= tol:
            return k
    return len(changes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", default=[REPO / "data", REPO / "dev_data"])
    parser.add_argument("--cache", type=Path, default=REPO / "results" / "adaptive_grids")
    parser.add_argument("--tolerances", type=float, nargs="+", default=[0.005, 0.01, 0.015, 0.02, 0.03])
    args = parser.parse_args()
    tasks = [task for root in args.data if root.is_dir() for task in find_tasks(root) if task.name not in SKIP]
    missing = [task.name for task in tasks if not (args.cache / task.name).is_dir()]
    if missing:
        raise SystemExit(f"no stored grids for {', '.join(missing)} in {args.cache}: run make bench-rules first")
    data = {task.name: (task.model_specs(), {m: per_path(args.cache, task, m) for m in task.model_ids})
            for task in tasks}
    settings = [(f"fixed {k}", lambda changes, k=k: k) for k in (256, 512, 1024, DEFAULT_N_PAIRS)]
    settings += [(f"rounds, tol {tol}", lambda changes, tol=tol: pairs_used(changes, tol)) for tol in args.tolerances]
    reference = {}
    print(f"{len(tasks)} tasks, {sum(len(models) for _, models in data.values())} models; 17-point grid, "
          f"adaptive passes; differences from {DEFAULT_N_PAIRS} pairs, mean over tasks\n")
    print("| pairs | passes (share of 2048 pairs') | mean pairs per model | CMI x100 | tau | mean abs. change "
          "of a task's CMI x100 | of its tau |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = []
    for name, choose in settings:
        cmi, tau, passes, full_passes, pairs = [], [], 0, 0, []
        for task_name, (specs, models) in data.items():
            values = {}
            for model_id, (changes, evaluations) in models.items():
                k = choose(changes)
                pairs.append(k)
                values[model_id] = float(np.mean(changes[:k]))
                passes += evaluations[:k].sum()
                full_passes += evaluations.sum()
            score = score_task(values, specs)
            cmi.append(score.cmi)
            tau.append(score.kendall_tau)
        rows.append((name, passes / full_passes, np.mean(pairs), np.array(cmi), np.array(tau)))
        if name == f"fixed {DEFAULT_N_PAIRS}":
            reference = {"cmi": np.array(cmi), "tau": np.array(tau)}
    for name, share, pairs, cmi, tau in rows:
        print(f"| {name} | {100 * share:.1f}% | {pairs:,.0f} | {cmi.mean():.2f} | {tau.mean():.3f} | "
              f"{np.mean(np.abs(cmi - reference['cmi'])):.2f} | {np.mean(np.abs(tau - reference['tau'])):.3f} |")


if __name__ == "__main__":
    main()
