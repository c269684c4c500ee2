"""Worker processes as the engine of ``score`` and ``compare``: every core busy, and a model that
crashes, hangs or asks for the whole machine loses only itself.

``WorkerEngine(n)`` starts ``n`` processes (``spawn``: a fresh interpreter each, no forked
TensorFlow state), each with a fixed share of the cores: TensorFlow's intra-op threads and the
numeric libraries' thread pools are set to ``cores // n``, so ``n`` workers never ask for more
threads than the machine has. Each worker runs ``runner.measure_model`` (load the model once,
compute every requested measure, return values or one-line reasons), the very function the local
engine runs; the driver alone writes the cache, as each outcome arrives, so the cache, the reports
and the ``.predict`` files are those of a local run.

A worker that dies while measuring a model (a native crash, the kernel's OOM killer, any signal or
a non-zero exit) or that runs past ``model_timeout`` seconds on one model is replaced, and that
model is reported as failed with a one-line reason ("worker killed by signal 9 (SIGKILL) while
measuring model_7"); the other models go on. The driver hands each worker one model at a time
(``multiprocessing.connection.wait`` on the workers' pipes and process sentinels), so it always
knows which model a dead worker was measuring.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections import deque
from multiprocessing.connection import wait
from typing import Iterator, Mapping

import numpy as np

from .errors import HarnessError, OptionError
from .quiet import run_after_tensorflow
from .runner import MeasureRun, ModelOutcome, measure_model, process_name
from .tasks import Task

# The thread pools of TensorFlow's CPU kernels and of numpy's BLAS, set in each worker before
# either is imported.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                     "TF_NUM_INTEROP_THREADS")
# Seconds a worker is given to exit after it is asked to, before it is killed.
_EXIT_GRACE = 10.0


def machine_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system reports one)."""
    with contextlib.suppress(AttributeError):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


# Sets the default number of workers (e.g. 1 on a machine shared with other jobs).
WORKERS_VARIABLE = "PGDL_HARNESS_WORKERS"


def default_workers() -> int:
    """Worker processes ``score`` and ``compare`` start by default: ``$PGDL_HARNESS_WORKERS``, or one per core.

    One process per core was the fastest here (see ``benchmarks/bench_workers.py`` and
    docs/harness.md); on a single core that is the in-process engine (``1``).
    """
    text = os.environ.get(WORKERS_VARIABLE)
    if text:
        try:
            workers = int(text)
        except ValueError:
            raise HarnessError(f"${WORKERS_VARIABLE} must be a whole number of workers, got {text!r}") from None
        if workers < 1:
            raise HarnessError(f"${WORKERS_VARIABLE} must be 1 or more, got {workers}")
        return workers
    return machine_cores()


class WorkerEngine:
    """Measures models in ``workers`` processes, one model per worker at a time.

    ``model_timeout``: seconds one model may take (loading it and every requested measure) before
    its worker is stopped and the model reported as failed; None waits as long as it takes.
    ``threads``: TensorFlow and BLAS threads per worker (default: the machine's cores shared out).
    ``verbose``: let the workers show TensorFlow's start-up lines. Use as a context manager (or
    call ``close``) to stop the workers. ``replaced`` counts the workers replaced so far (after a
    crash or a timeout), ``timed_out`` the models stopped for running past ``model_timeout``.
    """

    name = "workers"

    def __init__(self, workers: int, *, model_timeout: float | None = None, threads: int | None = None,
                 verbose: bool = False):
        if workers < 1:
            raise OptionError("workers", f"must be 1 or more, got {workers}")
        if model_timeout is not None and not model_timeout > 0:
            raise OptionError("model_timeout", f"must be a positive number of seconds, got {model_timeout}")
        self.workers = workers
        self.model_timeout = model_timeout
        self.threads = threads or max(1, machine_cores() // workers)
        self.verbose = verbose
        self._context = multiprocessing.get_context("spawn")
        self._pool: list[_Worker] = []
        self.replaced = 0  # workers replaced after a crash or a timeout
        self.timed_out = 0  # models stopped for running past model_timeout

    def close(self) -> None:
        """Stop every worker (asked first, killed if it does not exit)."""
        for worker in self._pool:
            worker.stop()
        self._pool = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def outcomes(self, task: Task, jobs: list[tuple[str, list[str]]], runs: Mapping[str, MeasureRun],
                 inputs: np.ndarray, labels: np.ndarray, **options) -> Iterator[ModelOutcome]:
        """``ModelOutcome`` of each job as its worker finishes it (not in job order); ``options`` go
        to ``measure_model``."""
        data = (f"{task.folder}:{id(inputs)}:{len(inputs)}", inputs, labels)
        queue = deque(jobs)
        # worker -> (model_id, needed, deadline); a model's clock starts when its worker is ready
        # (TensorFlow imported): until then its deadline is infinite.
        busy: dict[_Worker, tuple[str, list[str], float]] = {}
        while len(self._pool) < min(self.workers, len(jobs)):
            self._pool.append(_Worker(self._context, self.threads, self.verbose))
        try:
            while queue or busy:
                for index, worker in enumerate(self._pool):
                    if worker not in busy and queue:
                        if not worker.process.is_alive():  # died between models (killed from outside)
                            worker.kill()
                            worker = self._pool[index] = _Worker(self._context, self.threads, self.verbose)
                        model_id, needed = queue.popleft()
                        busy[worker] = (model_id, needed, self._deadline(worker))
                        with contextlib.suppress(OSError):  # a worker that dies now is met below, by its exit
                            worker.send_job(task, model_id, {label: runs[label] for label in needed}, data, options)
                soonest = min(deadline for _, _, deadline in busy.values())
                timeout = None if soonest == float("inf") else max(0.0, soonest - time.monotonic())
                wait([handle for worker in busy for handle in (worker.connection, worker.process.sentinel)], timeout)
                for worker in list(busy):
                    model_id, needed, deadline = busy[worker]
                    starting = not worker.ready
                    outcome = worker.poll()
                    if starting and worker.ready:
                        deadline = self._deadline(worker)
                        busy[worker] = (model_id, needed, deadline)
                    if outcome is None and worker.process.is_alive() and time.monotonic() < deadline:
                        continue  # still starting or measuring
                    del busy[worker]
                    if outcome is None:
                        if not worker.ready and not worker.process.is_alive():
                            raise WorkerStartError(
                                f"a worker process could not start ({describe_exit(worker.process.exitcode)}, "
                                f"before it measured anything; a script that starts workers must guard its "
                                f"top-level code with `if __name__ == '__main__':`)")
                        reason = self._lost(worker, model_id, timed_out=worker.process.is_alive())
                        outcome = ModelOutcome(model_id, failures=dict.fromkeys(
                            needed, f"{task.model_folder(model_id)}: {reason}"), where=worker.where)
                    yield outcome
        finally:
            for worker in busy:  # an interrupted driver: what is still running is abandoned
                worker.kill()
                self._pool.remove(worker)

    def _deadline(self, worker: "_Worker") -> float:
        """When the model ``worker`` measures runs out of time: never while it is still starting."""
        if self.model_timeout is None or not worker.ready:
            return float("inf")
        return time.monotonic() + self.model_timeout

    def _lost(self, worker: "_Worker", model_id: str, *, timed_out: bool) -> str:
        """Replace a worker that died or overran on ``model_id``; the one-line reason."""
        if timed_out:
            worker.kill()
            reason = f"took longer than the model timeout of {self.model_timeout:g} s; its worker was stopped"
            self.timed_out += 1
        else:
            worker.process.join()
            reason = f"{describe_exit(worker.process.exitcode)} while measuring {model_id}"
        self._pool[self._pool.index(worker)] = _Worker(self._context, self.threads, self.verbose)
        self.replaced += 1
        return reason


def describe_exit(exitcode: int | None) -> str:
    """What a worker's exit code says: "worker killed by signal 9 (SIGKILL)", "worker exited with code 3"."""
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"worker killed by signal {-exitcode} ({signal.Signals(-exitcode).name})"
        return f"worker killed by signal {-exitcode}"
    return f"worker exited with code {exitcode}"


class WorkerStartError(HarnessError):
    """A worker process died before it was ready to measure (not a model's fault)."""


class _Worker:
    """One worker process and the driver's end of its pipe."""

    def __init__(self, context, threads: int, verbose: bool = False):
        self.connection, child = context.Pipe()
        # The process starts in quiet.py, which imports TensorFlow quietly before this module (and
        # the runner's TensorFlow with it) is imported there to find _serve.
        with _environment({name: str(threads) for name in _THREAD_VARIABLES}):
            self.process = context.Process(target=run_after_tensorflow,
                                           args=(verbose, f"{__name__}:{_serve.__name__}", child), daemon=True)
            self.process.start()
        child.close()
        self.where = process_name(self.process.pid)
        self.ready = False  # the worker has imported TensorFlow and waits for work
        self._data_token = None

    def send_job(self, task: Task, model_id: str, runs: Mapping[str, MeasureRun], data, options) -> None:
        token, inputs, labels = data
        if token != self._data_token:  # a task's arrays go to each worker once
            self.connection.send(("data", (token, inputs, labels)))
            self._data_token = token
        self.connection.send(("job", (task, model_id, dict(runs), options)))

    def poll(self) -> ModelOutcome | None:
        """The finished outcome, or None (still running, or the worker is gone)."""
        try:
            while self.connection.poll():
                kind, payload = self.connection.recv()
                if kind == "ready":
                    self.ready = True
                else:
                    return payload
        except (EOFError, OSError):
            pass
        return None

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.connection.send(("stop", None))
            self.process.join(_EXIT_GRACE)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.connection.close()


@contextlib.contextmanager
def _environment(values: Mapping[str, str]):
    """``os.environ`` with ``values`` set (what a spawned process inherits), restored afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _serve(connection) -> None:
    """A worker's loop, once TensorFlow is imported (its thread pools sized by _THREAD_VARIABLES):
    receive a task's arrays or a model to measure, send back its outcome."""
    connection.send(("ready", None))
    data = None
    while True:
        kind, payload = connection.recv()
        if kind == "stop":
            return
        if kind == "data":
            data = payload
            continue
        task, model_id, runs, options = payload
        _, inputs, labels = data
        outcome = measure_model(task, model_id, runs, inputs, labels, **options)
        outcome.where = process_name(os.getpid())
        connection.send(("outcome", outcome))
