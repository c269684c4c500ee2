"""Benchmark: the local engine in one process against worker processes, and the task generator's workers.

1. ``score`` (the default measure) and ``compare`` (the default, ``davies_bouldin`` and
   ``parameter_norm``) on every model of the bundled image tasks, from an empty cache, in this
   process and with 2 worker processes (and more where the machine has the cores), twice with
   the same engine: the first pass counts the workers' start-up (TensorFlow's import in each, what
   a user waits for once per command), the second is the throughput of workers already running
   (what a command over many models gets). The values must be identical.
2. The task generator: two small tasks of the development suite's shape built one after the
   other and by two workers at once (models per minute), and the built tasks' accuracies compared.

Prints seconds per model (first pass, and warm: the second pass), models per minute and the
speed-ups, all from one run (timings on
shared machines vary by 30% between runs: read the ratios). Usage: python benchmarks/bench_workers.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from complexity_measure.registry import DEFAULT_MEASURE, get_measure  # noqa: E402
from pgdl_harness.runner import LocalEngine, run_measures  # noqa: E402
from pgdl_harness.tasks import find_tasks  # noqa: E402
from pgdl_harness.workers import WorkerEngine, machine_cores  # noqa: E402

IMAGE_TASKS = ("mnist_vgg", "mnist_nin_bn")
JOBS = {"score": (DEFAULT_MEASURE,), "compare": (DEFAULT_MEASURE, "davies_bouldin", "parameter_norm")}


def timed(tasks, names, engine_factory, out: Path) -> tuple[list[float], dict]:
    """Wall seconds of two passes over every model of ``tasks`` with one engine (its start-up in the
    first), each from an empty cache, and the values (the same in both passes)."""
    passes, values = [], None
    start = time.perf_counter()
    with engine_factory() as engine:
        for attempt in ("cold", "warm"):
            found = {}
            for task in tasks:
                run = run_measures(task, {name: get_measure(name) for name in names}, out / attempt,
                                   engine=engine, progress=False)
                assert all(run.complete(name) for name in names), run.failures
                found[task.name] = {name: {m: r.value for m, r in run.results[name].items()} for name in names}
            assert values is None or found == values, "the two passes gave other values"
            values = found
            passes.append(time.perf_counter() - start)
            start = time.perf_counter()
    return passes, values


class _InProcess(LocalEngine):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def engines() -> list[tuple[str, object]]:
    counts = sorted({2, machine_cores()} - {1})
    return [("1 process", _InProcess)] + [(f"{n} workers", lambda n=n: WorkerEngine(n)) for n in counts]


def bench_engines() -> None:
    tasks = find_tasks(REPO / "data", list(IMAGE_TASKS))
    models = sum(len(task.model_ids) for task in tasks)
    print(f"{' + '.join(IMAGE_TASKS)}: {models} models; machine cores: {machine_cores()}")
    print(f"{'command':<8} {'engine':<10} {'s/model':>8} {'speed-up':>9} {'s/model warm':>13} {'speed-up':>9}")
    with tempfile.TemporaryDirectory() as scratch:
        for job, names in JOBS.items():
            baseline, reference = None, None
            for label, factory in engines():
                seconds, values = timed(tasks, names, factory, Path(scratch) / f"{job}-{label}")
                if reference is None:
                    baseline, reference = seconds, values
                assert values == reference, f"{label} gave other values than one process"
                print(f"{job:<8} {label:<10} {seconds[0] / models:>8.2f} {baseline[0] / seconds[0]:>8.2f}x "
                      f"{seconds[1] / models:>13.2f} {baseline[1] / seconds[1]:>8.2f}x")
    print("values identical for every engine")


def bench_generator() -> None:
    from pgdl_harness.taskgen.suite import TaskSpec, generate_suite

    grid = {"width": [8, 16], "depth": [1, 2], "dropout": [0.0, 0.5], "weight_decay": [0.0],
            "batch_size": [32]}
    tasks = [TaskSpec(f"gen_{family}", family, "mnist14", grid=dict(grid, **extra), n_train=300, n_test=1000,
                      max_epochs=30) for family, extra in (("vgg", {}), ("nin", {"batch_norm": [True]}))]
    models = sum(task.num_models() for task in tasks)
    rows, accuracies = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for workers in (1, 2):
            out = Path(scratch) / f"w{workers}"
            start = time.perf_counter()
            generate_suite(out, tasks, summary_name="suite.json", workers=workers, progress=False)
            rows.append((workers, time.perf_counter() - start))
            accuracies[workers] = {task.name: json.loads((out / task.name / "model_configs.json").read_text())
                                   for task in tasks}
    print(f"\ntask generator: {len(tasks)} tasks, {models} models")
    print(f"{'workers':<8} {'models/min':>10} {'speed-up':>9}")
    for workers, seconds in rows:
        print(f"{workers:<8} {models / seconds * 60:>10.1f} {rows[0][1] / seconds:>8.2f}x")
    largest = 0.0
    for name, configs in accuracies[1].items():
        for model_id, entry in configs.items():
            other = accuracies[2][name][model_id]
            for key in ("train_acc", "test_acc"):
                largest = max(largest, abs(entry["metrics"][key] - other["metrics"][key]))
    print(f"largest difference in a model's train or test accuracy, 1 vs 2 workers: {largest:.4f}")


if __name__ == "__main__":
    bench_engines()
    bench_generator()
