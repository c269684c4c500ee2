"""What chance levels and bootstrap intervals cost per task, against scoring the task once.

For each bundled task and a synthetic 96-model grid (2^5 x 3, the size of a large PGDL task
family), prints the seconds of one ``score_task``, of the null (1000 random measures) and of the
bootstrap (1000 resamples), and their ratios to 1000 plain ``score_task`` calls, the obvious
alternative (timings on shared machines vary by ~30%: read the ratios within one run).
Run: ``python benchmarks/bench_uncertainty.py``.
"""

import itertools
import json
import time
from pathlib import Path

import numpy as np

from pgdl_harness.scoring import generalization_gaps, score_task
from pgdl_harness.uncertainty import bootstrap_scores, chance_levels

DATA = Path(__file__).resolve().parents[1] / "data"
DRAWS = 1000


def synthetic_grid(shape=(2, 2, 2, 2, 2, 3), seed=0):
    rng = np.random.default_rng(seed)
    specs = {}
    for mid, combination in enumerate(itertools.product(*map(range, shape))):
        specs[str(mid)] = {"hparams": {f"h{k}": {"possible_values": list(range(n)), "current_value": v}
                                       for k, (n, v) in enumerate(zip(shape, combination))},
                           "metrics": {"train_acc": 1.0, "test_acc": 1.0 - 0.1 * rng.random()}}
    return specs


def seconds(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main():
    tasks = {path.name: json.loads((path / "model_configs.json").read_text())
             for path in sorted(DATA.iterdir()) if (path / "model_configs.json").exists()}
    tasks["synthetic_96"] = synthetic_grid()
    print(f"{'task':<14} {'models':>6} {'score once':>10} {'null':>7} {'bootstrap':>9} "
          f"{'null / 1000 scores':>19} {'bootstrap / 1000 scores':>24}")
    for name, specs in tasks.items():
        gaps = generalization_gaps(specs)
        rng = np.random.default_rng(0)
        predictions = {mid: gap + np.std(list(gaps.values())) * rng.normal() for mid, gap in gaps.items()}
        once = min(seconds(lambda: score_task(predictions, specs)) for _ in range(5))
        null = seconds(lambda: chance_levels(specs, DRAWS))
        boot = seconds(lambda: bootstrap_scores(predictions, specs, DRAWS))
        print(f"{name:<14} {len(specs):>6} {once:>10.4f} {null:>7.2f} {boot:>9.2f} "
              f"{null / (DRAWS * once):>19.2f} {boot / (DRAWS * once):>24.2f}")


if __name__ == "__main__":
    main()
