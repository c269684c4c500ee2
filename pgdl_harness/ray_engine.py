"""Ray as the engine of ``score`` and ``compare``: the same models measured on a cluster.

An engine only decides *where* a model is measured: each Ray task runs ``runner.measure_model``
(load the model once, compute every requested measure, return values or one-line reasons), the
very function the local engine runs, and the driver alone writes the cache, as each result
arrives. So the cache, the reports and the ``.predict`` files are those of a local run, a driver
killed part-way resumes like a local run, and values already cached are never sent out.

A task's training arrays are put in Ray's object store once; every worker of a node reads the same
copy. The data root must be readable at the same path from every node (shared storage): before
any work starts, a Ray task lists the task folder where it runs and the driver compares it with
its own listing. Ray is an optional dependency (``pip install -e .[ray]``), imported only here.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Mapping

import numpy as np

from .errors import HarnessError
from .runner import MeasureRun, ModelOutcome, measure_model, process_name
from .tasks import Task

# A lost worker (a crashed or killed process, a node gone) is retried this many times; a model
# whose measure raises is not retried: measure_model reports it as that model's failure.
LOST_WORKER_RETRIES = 3

# Ray turns 127.0.0.1 into the machine's network address unless it runs as a single-machine
# installation; this variable (read when ray is imported) makes every Ray process of a cluster on
# this machine bind to and talk over the loopback only.
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def is_loopback(address: str | None) -> bool:
    """Whether ``address`` (None: a new local cluster) is a cluster on this machine's loopback."""
    if address is None:
        return True
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


class ClusterDataError(HarnessError):
    """A Ray worker does not see the task folder the driver sees."""


def task_listing(folder: str) -> dict:
    """What a node sees of a task folder: model ids and a fingerprint of file names and sizes."""
    from .tasks import find_tasks

    task = find_tasks(folder)[0]
    files = sorted(path for path in Path(folder).rglob("*") if path.is_file())
    sizes = "\n".join(f"{path.relative_to(folder)} {path.stat().st_size}" for path in files)
    return {"model_ids": task.model_ids, "fingerprint": hashlib.sha256(sizes.encode()).hexdigest()}


class RayEngine:
    """Measures models as Ray tasks, one task per model, on a local or an existing cluster.

    ``address``: an existing cluster ("auto", or "HOST:PORT"); None starts a local one bound to
    127.0.0.1, stopped by ``close``. ``task_cpus``/``task_gpus``: resources each model's task asks for.
    A cluster on this machine (no address, or a 127.x address) is kept on the loopback
    (``LOOPBACK_ONLY``); a remote one is reached at its own address.
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, task_cpus: float = 1, task_gpus: float = 0,
                 num_cpus: int | None = None):
        if is_loopback(address):
            if "ray" in sys.modules and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") != "0":
                raise HarnessError("Ray was imported before the engine could keep it on the loopback: set "
                                   "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before importing ray")
            os.environ.update(LOOPBACK_ONLY)
        try:
            import ray
        except ImportError:
            raise HarnessError("the Ray engine needs Ray: pip install -e '.[ray]'") from None
        self._ray = ray
        self.task_cpus, self.task_gpus = task_cpus, task_gpus
        self._started = False
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False, logging_level="ERROR")
            else:
                # A new local cluster ("local": never one left behind by an earlier run), on the loopback.
                ray.init(address="local", _node_ip_address="127.0.0.1", num_cpus=num_cpus,
                         include_dashboard=False, log_to_driver=False, logging_level="ERROR")
                self._started = True
        self._measure = ray.remote(max_retries=LOST_WORKER_RETRIES, retry_exceptions=False)(_measure_remote)
        self._listing = ray.remote(max_retries=LOST_WORKER_RETRIES)(task_listing)

    def close(self) -> None:
        """Stop the local cluster this engine started (an existing cluster is left running)."""
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def check_task_folder(self, task: Task) -> None:
        """Fail unless a worker sees the same task folder as the driver (shared storage)."""
        here = task_listing(str(task.folder))
        try:
            there = self._ray.get(self._listing.options(num_cpus=0).remote(str(task.folder)))
        except self._ray.exceptions.RayTaskError as error:
            raise ClusterDataError(f"a Ray worker cannot read the task folder {task.folder} "
                                   f"({error.cause if hasattr(error, 'cause') else error}): the data root "
                                   f"must be at the same path on every node (shared storage)") from None
        if there != here:
            raise ClusterDataError(
                f"a Ray worker sees the task folder {task.folder} differently from the driver "
                f"({len(there['model_ids'])} models there, {len(here['model_ids'])} here; file listings "
                f"{'differ' if there['fingerprint'] != here['fingerprint'] else 'agree'}): the data root must "
                f"be the same shared storage on every node")

    def outcomes(self, task: Task, jobs: list[tuple[str, list[str]]], runs: Mapping[str, MeasureRun],
                 inputs: np.ndarray, labels: np.ndarray, **options):
        """``ModelOutcome`` of each job as its Ray task finishes (not in job order); ``options`` go
        to ``measure_model``."""
        ray = self._ray
        self.check_task_folder(task)
        inputs_ref, labels_ref = ray.put(inputs), ray.put(labels)
        # SPREAD: models go to every node from the start, rather than filling the driver's node first
        # and spilling over only once its workers are busy (a short task would then run on one node).
        resources = {"num_cpus": self.task_cpus, "num_gpus": self.task_gpus, "scheduling_strategy": "SPREAD"}
        pending = {self._measure.options(**resources).remote(task, model_id, {label: runs[label] for label in needed},
                                                           inputs_ref, labels_ref, options): (model_id, needed)
                   for model_id, needed in jobs}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                model_id, needed = pending.pop(ready[0])
                try:
                    yield ray.get(ready[0])
                except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                        ray.exceptions.RayTaskError, ray.exceptions.ObjectLostError) as error:
                    cause = getattr(error, "cause", None)  # a task's own exception, not Ray's wrapper
                    reason = (f"{type(cause).__name__}: {cause}" if cause is not None
                              else f"{type(error).__name__}: {error}").strip().splitlines()[0]
                    yield ModelOutcome(model_id, failures=dict.fromkeys(
                        needed, f"{task.model_folder(model_id)}: the Ray worker measuring it was lost "
                                f"{LOST_WORKER_RETRIES} times ({reason})"))
        finally:
            for ref in pending:  # an interrupted or budget-stopped driver cancels what is left
                ray.cancel(ref, force=True)


def _measure_remote(task: Task, model_id: str, runs, inputs, labels, options) -> ModelOutcome:
    import ray
    outcome = measure_model(task, model_id, runs, inputs, labels, **options)
    outcome.where = process_name(os.getpid(), ray.get_runtime_context().get_node_id()[:12])
    return outcome
