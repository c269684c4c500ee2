"""Benchmark: seconds per model with the local engine and with Ray (one worker, two workers).

Runs the default measure on every model of a bundled task (default mnist_vgg) three times from an
empty cache: local engine, a local Ray cluster of 1 CPU, and one of 2 CPUs (one model per CPU at a
time). Prints wall seconds per model for each, the speed-up over local, and Ray's overhead per
model (one worker's wall time minus the local engine's, per model: object store, task dispatch,
each worker's TensorFlow start-up spread over its models). Timings on shared machines vary by 30%:
read the ratios. Usage: python benchmarks/bench_engines.py [TASK]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every Ray process on the loopback
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from complexity_measure.registry import DEFAULT_MEASURE, get_measure  # noqa: E402
from pgdl_harness.ray_engine import RayEngine  # noqa: E402
from pgdl_harness.runner import LocalEngine, run_measures  # noqa: E402
from pgdl_harness.tasks import find_tasks  # noqa: E402


def timed_run(task, engine, out: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    run = run_measures(task, {DEFAULT_MEASURE: get_measure(DEFAULT_MEASURE)}, out, engine=engine, progress=False)
    assert run.complete(DEFAULT_MEASURE), run.failures
    return time.perf_counter() - start, {m: r.value for m, r in run.results[DEFAULT_MEASURE].items()}


def main() -> None:
    task = find_tasks(REPO / "data", [sys.argv[1] if len(sys.argv) > 1 else "mnist_vgg"])[0]
    n = len(task.model_ids)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        seconds, local = timed_run(task, LocalEngine(), Path(scratch) / "local")
        rows.append(("local engine", seconds))
        for cpus in (1, 2):
            with RayEngine(num_cpus=cpus) as engine:
                started = time.perf_counter()
                engine.check_task_folder(task)  # the cluster is up and a worker has run
                ready = time.perf_counter() - started
                seconds, values = timed_run(task, engine, Path(scratch) / f"ray{cpus}")
            assert values == local, "the Ray engine gave other values than the local engine"
            rows.append((f"ray, {cpus} worker{'s' * (cpus > 1)}", seconds))
            print(f"ray with {cpus} CPU(s): cluster up and first task run in {ready:.1f} s (not counted below)")
    print(f"\n{task.name}: {n} models, measure {DEFAULT_MEASURE}, values identical on every engine")
    print(f"{'engine':<18} {'s/model':>8} {'speed-up':>9}")
    for name, seconds in rows:
        print(f"{name:<18} {seconds / n:>8.2f} {rows[0][1] / seconds:>8.2f}x")
    print(f"ray overhead per model (1 worker vs local): {(rows[1][1] - rows[0][1]) / n:+.2f} s")


if __name__ == "__main__":
    main()
