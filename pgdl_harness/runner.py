"""Running measures over every model of a task, with progress, timing, isolation and a keyed cache.

Each model's value is appended to the cache (``cache``: one JSON line per value, flushed and
fsynced) as soon as it is computed, under the key of everything that made it (``provenance``): an
interrupted run loses nothing, the same command resumes, and a value made by other settings,
other code or other model files is never reused (it is recomputed and counted). A model that
cannot be loaded or measured is recorded with a one-line reason naming the file, and the run goes
on with the next model; that failure is cached too, so a resumed run does not measure the model
again unless asked (``retry_failed``). The harness owns all files; measures only ever see a model
and arrays.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from complexity_measure.dataset import DEFAULT_MAX_EXAMPLES
from complexity_measure.keras_models import check_inputs_fit_model
from complexity_measure.registry import Measure, code_fingerprint

from .cache import ModelResult, ResultCache, cache_path, matching_failures, matching_results
from .errors import HarnessError
from .loading import load_arrays, load_model, shard_paths
from .provenance import files_fingerprint, key_digest, model_fingerprint, project_version
from .scoring import EXCEEDED
from .task_run import TaskRun
from .tasks import Task

# Ends the reason of a failure read from the cache rather than met in this run (``retry_failed``
# measures such a model again).
CACHED_MARK = "(cached)"


class MeasureError(HarnessError):
    """A measure failed on a model, or returned something that is not a finite number."""


@dataclass(frozen=True)
class MeasureRun:
    """A measure as the runner runs it: a label (its cache file and report name), the function
    ``(model, inputs, labels) -> float`` and the key of everything about it that makes its values."""

    label: str
    function: Callable
    key: Mapping[str, Any]

    @classmethod
    def of(cls, label: str, measure) -> "MeasureRun":
        """A registered ``Measure`` (keyed by its name, parameters and the package's code), a
        ``MeasureRun`` as it is, or any callable (keyed by its qualified name and source)."""
        if isinstance(measure, MeasureRun):
            return measure
        if isinstance(measure, Measure):
            return cls(label, measure, {"measure": measure.name, "parameters": measure.parameters,
                                        "code": code_fingerprint()})
        if not callable(measure):
            raise TypeError(f"measure {label!r} is {type(measure).__name__}, not callable")
        try:
            source = inspect.getsource(measure)
        except (OSError, TypeError):
            source = ""
        return cls(label, measure, {"callable": getattr(measure, "__qualname__", repr(measure)),
                                    "source": source})


@dataclass
class ModelOutcome:
    """What measuring one model gave: ``(value, seconds)`` or a one-line reason, by measure label.

    ``seconds`` is loading the model plus computing that measure; ``where`` names the process
    that did it (an engine's worker, or "local").
    """

    model_id: str
    values: dict[str, tuple[float, float]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    where: str = "local"


def process_name(pid: int, node: str | None = None) -> str:
    """How an engine's process is named in ``ModelOutcome.where`` and the run's ``workers`` counts:
    ``"worker pid N"`` on this machine, ``"node ID pid N"`` on a Ray node."""
    return f"worker pid {pid}" if node is None else f"node {node} pid {pid}"


def measure_model(task: Task, model_id: str, runs: Mapping[str, MeasureRun], inputs: np.ndarray,
                  labels: np.ndarray, *, max_parameters: int | None = None) -> ModelOutcome:
    """Load one model and compute every measure of ``runs`` on it; never raises for a bad model.

    The one code path every engine runs: it reads the model folder and nothing else, writes nothing.
    A config asking for more than ``max_parameters`` weights (default ``loading.MAX_PARAMETERS``)
    is refused before anything is built.
    """
    folder = task.model_folder(model_id)
    outcome = ModelOutcome(model_id)
    try:
        model, load_seconds = _load_checked(folder, inputs, labels, task, max_parameters)
    except HarnessError as error:
        outcome.failures = dict.fromkeys(runs, str(error))
        return outcome
    for label, measure_run in runs.items():
        try:
            value, seconds = _measure_one(folder, measure_run, model, inputs, labels)
        except MeasureError as error:
            outcome.failures[label] = str(error)
            continue
        outcome.values[label] = (value, load_seconds + seconds)
    return outcome


class LocalEngine:
    """Measures the models one after the other in this process."""

    name = "local"

    def outcomes(self, task: Task, jobs: list[tuple[str, list[str]]], runs: Mapping[str, MeasureRun],
                 inputs: np.ndarray, labels: np.ndarray, **options):
        """``ModelOutcome`` of each ``(model_id, labels to compute)`` job, in order, computed lazily;
        ``options`` go to ``measure_model``."""
        for model_id, needed in jobs:
            yield measure_model(task, model_id, {label: runs[label] for label in needed}, inputs, labels, **options)


def run_measures(task: Task, measures: Mapping[str, Any], out_dir: str | Path, *,
                 fresh: bool = False, max_examples: int | None = DEFAULT_MAX_EXAMPLES,
                 progress: bool = True, budget: float | None = None, engine=None, retry_failed: bool = False,
                 max_parameters: int | None = None) -> TaskRun:
    """Several measures on every model of ``task``: the data is read once and each model loaded once.

    ``measures`` maps a label to a registered ``Measure``, a ``MeasureRun`` or a plain callable.
    Each value is cached as soon as it is computed, under its keys, by this process alone (an
    ``engine`` only decides where models are measured: ``LocalEngine`` by default, or
    ``ray_engine.RayEngine``, ``workers.WorkerEngine``). A model that cannot be loaded or measured
    is recorded in ``failures`` and in the cache, and the run goes on; a cached failure is reported
    again without measuring the model, unless ``retry_failed``. ``max_parameters``: see
    ``measure_model``. ``budget`` (seconds per model, summed over the task, as the
    kit's ``max_time_per_model``; local engine only): once the seconds spent on the task's models
    pass ``budget x models``, the remaining models are left unmeasured (``exceeded``).
    ``fresh=True`` discards the cached values of these measures first.
    """
    engine = engine or LocalEngine()
    check_budget(budget, engine)
    runs = {label: MeasureRun.of(label, measure) for label, measure in measures.items()}
    caches = _TaskCaches.open(task, runs, out_dir, max_examples, fresh=fresh)
    run = caches.read(retry_failed=retry_failed)
    jobs = _plan_jobs(run, runs)
    if jobs:
        inputs, labels = load_arrays(task, "train", max_examples)
        caches.record_keys()
        clock = _KitClock(budget, run, jobs)
        # Closed on a break or an error too, the engine first: it stops what it still has running.
        with (_progress_bar(task, runs, jobs, progress) as bar,
              contextlib.closing(engine.outcomes(task, jobs, runs, inputs, labels,
                                                 max_parameters=max_parameters)) as outcomes):
            for done, outcome in enumerate(outcomes, start=1):
                caches.write(outcome)
                _record(run, outcome)
                _show(bar, outcome, single=len(runs) == 1)
                clock.count(outcome)
                if clock.out_of_time and done < len(jobs):
                    run.exceeded = [model_id for model_id, _ in jobs[done:]]
                    break
    run.results = _in_task_order(run.results, task.model_ids)
    return run


@dataclass
class _TaskCaches:
    """The caches of a run's labels on one task, with the keys their values are read and written under:
    each label's key (everything that makes its values: the measure's, ``max_examples``, the project's
    version and the training data's fingerprint) and its digest, and each model folder's digest."""

    task: Task
    caches: dict[str, ResultCache]
    keys: dict[str, dict]
    run_keys: dict[str, str]
    model_keys: dict[str, str]

    @classmethod
    def open(cls, task: Task, runs: Mapping[str, MeasureRun], out_dir: str | Path, max_examples: int | None, *,
             fresh: bool) -> "_TaskCaches":
        """The caches of ``runs`` on ``task`` in ``out_dir`` (emptied first if ``fresh``), with their keys."""
        caches = {label: ResultCache(cache_path(out_dir, task, label)) for label in runs}
        if fresh:
            for cache in caches.values():
                cache.clear()
        base_key = {"max_examples": max_examples, "version": project_version(), "data": _data_fingerprint(task)}
        keys = {label: {**run.key, **base_key} for label, run in runs.items()}
        return cls(task, caches, keys, {label: key_digest(key) for label, key in keys.items()},
                   {model_id: model_fingerprint(task.model_folder(model_id)) for model_id in task.model_ids})

    def read(self, *, retry_failed: bool) -> TaskRun:
        """What the caches hold under these keys, as a ``TaskRun``: each model's latest value and, unless
        ``retry_failed``, its latest failure (the reason marked ``CACHED_MARK``); how many values are
        reused, and how many cached models are not (their keys differ)."""
        results, failed, reused, recomputed = {}, {}, {}, {}
        for label, cache in self.caches.items():
            entries = cache.entries()  # the file is read once
            results[label] = matching_results(entries, self.run_keys[label], self.model_keys)
            failed[label] = {} if retry_failed else matching_failures(entries, self.run_keys[label], self.model_keys)
            reused[label] = len(results[label])
            recomputed[label] = len({entry["model_id"] for entry in entries} - set(results[label]) - set(failed[label]))
        failures = {label: {model_id: f"{reasons[model_id]} {CACHED_MARK}" for model_id in self.task.model_ids
                            if model_id in reasons} for label, reasons in failed.items()}
        return TaskRun(task=self.task, results=results, failures=failures, reused=reused, recomputed=recomputed,
                       keys=self.keys, cached_failures={label: len(reasons) for label, reasons in failed.items()})

    def record_keys(self) -> None:
        """Write out what each label's run key stands for, beside its cache."""
        for label, cache in self.caches.items():
            cache.record_key(self.run_keys[label], self.keys[label])

    def write(self, outcome: ModelOutcome) -> None:
        """Append one model's outcome to its labels' caches, failures first, as soon as it arrives."""
        model_key = self.model_keys[outcome.model_id]
        for label, reason in outcome.failures.items():
            self.caches[label].append_failure(outcome.model_id, reason, self.run_keys[label], model_key)
        for label, (value, seconds) in outcome.values.items():
            self.caches[label].append(ModelResult(outcome.model_id, value, seconds), self.run_keys[label], model_key)


def _plan_jobs(run: TaskRun, labels: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Only what the cache lacks is sent out: ``(model_id, labels)`` for each model, in the task's order,
    with the labels it has neither a value nor a cached failure of (none: the model is left out)."""
    jobs = [(model_id, [label for label in labels
                        if model_id not in run.results[label] and model_id not in run.failures[label]])
            for model_id in run.task.model_ids]
    return [(model_id, needed) for model_id, needed in jobs if needed]


class _KitClock:
    """The kit's time budget on one task: ``budget`` seconds per model, summed over the task's models.

    A model measured before counts its slowest cached value's seconds, 0 for a model whose every
    measure failed (a failure is cached without a time, and counts 0 when it happens too); a model
    measured now counts its slowest measure (loading the model included). No ``budget``: never out
    of time.
    """

    def __init__(self, budget: float | None, run: TaskRun, jobs: list[tuple[str, list[str]]]):
        model_ids = run.task.model_ids
        self.limit = None if budget is None else budget * len(model_ids)
        todo = {model_id for model_id, _ in jobs}
        self.spent = sum(max((done[model_id].seconds for done in run.results.values() if model_id in done),
                             default=0.0) for model_id in model_ids if model_id not in todo)

    def count(self, outcome: ModelOutcome) -> None:
        self.spent += max((seconds for _, seconds in outcome.values.values()), default=0.0)

    @property
    def out_of_time(self) -> bool:
        return self.limit is not None and self.spent > self.limit


def _progress_bar(task: Task, labels: Sequence[str], jobs: list, shown: bool) -> tqdm:
    """The task's bar: one step per model, the models the cache settled already done."""
    name = next(iter(labels)) if len(labels) == 1 else f"{len(labels)} measures"
    return tqdm(desc=f"{task.name} · {name}", unit="model", disable=not shown,
                initial=len(task.model_ids) - len(jobs), total=len(task.model_ids))


def _record(run: TaskRun, outcome: ModelOutcome) -> None:
    """Add one model's outcome to ``run``: its values, its failures and the process that measured it."""
    for label, reason in outcome.failures.items():
        run.failures[label][outcome.model_id] = reason
    for label, (value, seconds) in outcome.values.items():
        run.results[label][outcome.model_id] = ModelResult(outcome.model_id, value, seconds)
    run.workers[outcome.where] = run.workers.get(outcome.where, 0) + 1


def _show(bar: tqdm, outcome: ModelOutcome, *, single: bool) -> None:
    """One model done on ``bar``: each distinct failure on a line of its own, and with a ``single``
    measure its value and seconds beside the bar."""
    for reason in dict.fromkeys(outcome.failures.values()):
        bar.write(f"failed: {reason}")
    if single:
        for value, seconds in outcome.values.values():
            bar.set_postfix(value=f"{value:.4g}", s=f"{seconds:.1f}")
    bar.update()


def check_budget(budget: float | None, engine) -> None:
    """The budget rule: the kit's clock measures one model at a time, so a ``budget`` needs the
    in-process ``LocalEngine`` (``engine``: None is that engine). Raises ``HarnessError``."""
    if budget is not None and engine is not None and not isinstance(engine, LocalEngine):
        raise HarnessError("a time budget follows the kit's one-model-at-a-time clock: it needs the in-process "
                           "engine (LocalEngine)")


def run_tasks(tasks: Sequence[Task], measures: Mapping[str, Any], out_dir: str | Path, *,
              budget: float | None = None, **options) -> Iterator[tuple[Task, TaskRun | HarnessError]]:
    """``run_measures`` on each task in turn: ``(task, its TaskRun)``, or ``(task, the error)`` for a task
    whose data cannot be read (the other tasks go on).

    With a ``budget`` the kit's clock runs on across tasks: once a task runs out of time, every
    model of the tasks after it is left unmeasured (``exceeded``), as the kit leaves them.
    """
    check_budget(budget, options.get("engine"))  # before any task, rather than as each task's error
    exceeded = False
    for task in tasks:
        if exceeded:
            yield task, TaskRun(task=task, results={label: {} for label in measures},
                                failures={label: {} for label in measures}, exceeded=list(task.model_ids))
            continue
        try:
            run = run_measures(task, measures, out_dir, budget=budget, **options)
        except HarnessError as error:
            yield task, error
            continue
        exceeded = bool(run.exceeded)
        yield task, run


def _in_task_order(results: Mapping[str, Mapping[str, ModelResult]], model_ids: list[str]) -> dict:
    return {label: {model_id: done[model_id] for model_id in model_ids if model_id in done}
            for label, done in results.items()}


def _data_fingerprint(task: Task) -> str:
    """Fingerprint of the task's training shards (the data every value is computed on)."""
    # In name order, as the fingerprint has always been taken: the keys of cached values stay valid.
    return files_fingerprint(sorted(shard_paths(task, "train")), root=task.dataset_folder / "train")


def _load_checked(folder: Path, inputs: np.ndarray, labels: np.ndarray, task: Task,
                  max_parameters: int | None = None):
    """The model in ``folder``, checked against the task's data; ``(model, seconds)``.

    Raises ModelLoadError naming the file when the model cannot be loaded, its input shape does
    not fit the data, it has fewer outputs than the labels need, or its outputs are not finite.
    """
    from .loading import ModelLoadError

    start = time.perf_counter()
    _clear_session()
    model = load_model(folder, max_parameters=max_parameters)
    config = folder / "config.json"
    try:
        check_inputs_fit_model(model, inputs)  # the measures' own check, here with the file named
    except ValueError as error:
        raise ModelLoadError(f"{config}: {error} (the training data of {task.name})") from None
    outputs = model.output_shape[-1]
    if labels.max() >= outputs or labels.min() < 0:
        raise ModelLoadError(f"{config}: the model has {outputs} outputs, but the training labels of "
                             f"{task.name} run from {labels.min()} to {labels.max()}")
    probe = model(tf.convert_to_tensor(inputs[:64]), training=False)
    if not np.all(np.isfinite(np.asarray(probe))):
        raise ModelLoadError(f"{folder / 'weights.hdf5'}: the model's outputs on training examples are not "
                             f"finite (NaN or inf): the weights are broken")
    return model, time.perf_counter() - start


def _clear_session() -> None:
    """As the kit does, a fresh Keras session per model, so graphs do not pile up.

    Keras 3 also runs a full garbage collection by default, which took 0.3 s per model in a
    long-lived process (70% of loading a small model); reference counting frees the old model.
    """
    if "free_memory" in inspect.signature(tf.keras.backend.clear_session).parameters:
        tf.keras.backend.clear_session(free_memory=False)
    else:  # Keras 2
        tf.keras.backend.clear_session()


def _measure_one(folder: Path, run: MeasureRun, model, inputs, labels) -> tuple[float, float]:
    start = time.perf_counter()
    try:
        value = run.function(model, inputs, labels)
    except Exception as error:
        message = str(error).splitlines()[0] if str(error) else ""
        raise MeasureError(f"measure {run.label} failed on {folder}: {type(error).__name__}: {message}") from error
    seconds = time.perf_counter() - start
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise MeasureError(f"measure {run.label} returned {type(value).__name__} on {folder}, not a scalar") from None
    if not math.isfinite(value):
        raise MeasureError(f"measure {run.label} returned {value} on {folder}; CMI cannot rank it")
    return value, seconds
