"""Running a measure over every model of a task, with progress, timing and a resumable cache.

Each model's value is appended to a cache file (one JSON line per model) as soon as it is
computed, so an interrupted or failed run loses nothing: running the same command again picks up
where it stopped. The harness owns all files; measures only ever see a model and arrays.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import tensorflow as tf
from tqdm.auto import tqdm

from complexity_measure.dataset import DEFAULT_MAX_EXAMPLES

from .errors import HarnessError
from .loading import load_arrays, load_model
from .tasks import Task


class MeasureError(HarnessError):
    """A measure failed on a model, or returned something that is not a finite number."""


@dataclass(frozen=True)
class ModelResult:
    model_id: str
    value: float
    seconds: float  # loading the model plus computing the measure, as the kit's budget counts it


class ResultCache:
    """Append-only record of one measure's values on one task's models (JSON lines)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> dict[str, ModelResult]:
        if not self.path.exists():
            return {}
        results = {}
        with open(self.path) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    result = ModelResult(**json.loads(line))
                except (json.JSONDecodeError, TypeError):
                    # A line cut short by a kill mid-write: that model is simply computed again.
                    continue
                results[result.model_id] = result
        return results

    def append(self, result: ModelResult) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(asdict(result)) + "\n")
            handle.flush()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def cache_path(out_dir: Path, task: Task, measure_name: str) -> Path:
    return Path(out_dir) / "cache" / task.name / f"{measure_name}.jsonl"


def run_measure(task: Task, measure: Callable, measure_name: str, out_dir: str | Path, *,
                fresh: bool = False, max_examples: int | None = DEFAULT_MAX_EXAMPLES,
                progress: bool = True) -> dict[str, ModelResult]:
    """``measure(model, inputs, labels)`` on every model of ``task``, resuming from the cache.

    Returns results by model id, in the task's model order. ``fresh=True`` discards cached values.
    """
    return run_measures(task, {measure_name: measure}, out_dir, fresh=fresh, max_examples=max_examples,
                        progress=progress).results[measure_name]


@dataclass
class TaskRun:
    """What ``run_measures`` computed on one task: results by measure and model, and failed measures."""

    results: dict[str, dict[str, ModelResult]]
    failures: dict[str, str] = field(default_factory=dict)  # measure name -> error message


def run_measures(task: Task, measures: Mapping[str, Callable], out_dir: str | Path, *,
                 fresh: bool = False, max_examples: int | None = DEFAULT_MAX_EXAMPLES,
                 progress: bool = True, skip_failing: bool = False) -> TaskRun:
    """Several measures on every model of ``task``: the data is read once and each model loaded once.

    Each value is cached as soon as it is computed. A result's ``seconds`` is loading the model
    plus computing that one measure. A measure that fails raises MeasureError, or with
    ``skip_failing`` is dropped for the rest of the task and its error kept in ``failures`` (for a
    comparison, where one measure that does not apply, such as distance from initialisation on a
    task without initial weights, should not stop the others).
    """
    caches = {name: ResultCache(cache_path(out_dir, task, name)) for name in measures}
    if fresh:
        for cache in caches.values():
            cache.clear()
    results = {name: cache.load() for name, cache in caches.items()}
    failures: dict[str, str] = {}
    model_ids = task.model_ids
    todo = [model_id for model_id in model_ids if any(model_id not in done for done in results.values())]
    if todo:
        inputs, labels = load_arrays(task, "train", max_examples)
        label = next(iter(measures)) if len(measures) == 1 else f"{len(measures)} measures"
        bar = tqdm(todo, desc=f"{task.name} · {label}", unit="model", disable=not progress,
                   initial=len(model_ids) - len(todo), total=len(model_ids))
        for model_id in bar:
            kept = sum(len(done) for done in results.values())
            model, load_seconds = _load_one(task, model_id, kept)
            for name, measure in measures.items():
                if model_id in results[name] or name in failures:
                    continue
                try:
                    value, seconds = _measure_one(task, model_id, model, measure, name, inputs, labels, kept)
                except MeasureError as error:
                    if not skip_failing:
                        raise
                    failures[name] = str(error)
                    continue
                result = ModelResult(model_id, value, load_seconds + seconds)
                caches[name].append(result)
                results[name][model_id] = result
                kept += 1
                if len(measures) == 1:
                    bar.set_postfix(value=f"{value:.4g}", s=f"{result.seconds:.1f}")
    ordered = {name: {model_id: done[model_id] for model_id in model_ids}
               for name, done in results.items() if name not in failures}
    return TaskRun(ordered, failures)


def _kept_note(task: Task, kept: int) -> str:
    return f"{kept} value(s) of {task.name} already computed are kept; rerun to resume"


def _load_one(task: Task, model_id: str, kept: int):
    start = time.perf_counter()
    # As the kit does: a fresh Keras session per model keeps graphs from piling up.
    tf.keras.backend.clear_session()
    try:
        model = load_model(task.model_folder(model_id))
    except HarnessError as error:
        raise type(error)(f"{error} ({_kept_note(task, kept)})") from None
    return model, time.perf_counter() - start


def _measure_one(task, model_id, model, measure, measure_name, inputs, labels, kept) -> tuple[float, float]:
    folder = task.model_folder(model_id)
    start = time.perf_counter()
    try:
        value = measure(model, inputs, labels)
    except Exception as error:
        raise MeasureError(f"measure {measure_name} failed on {folder}: {type(error).__name__}: "
                           f"{error} ({_kept_note(task, kept)})") from error
    seconds = time.perf_counter() - start
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise MeasureError(f"measure {measure_name} returned {type(value).__name__} on {folder}, "
                           f"not a scalar ({_kept_note(task, kept)})") from None
    if not math.isfinite(value):
        raise MeasureError(f"measure {measure_name} returned {value} on {folder}; CMI cannot rank "
                           f"it ({_kept_note(task, kept)})")
    return value, seconds


def write_predictions(task: Task, values: dict[str, float], out_dir: str | Path) -> Path:
    """``<out_dir>/<task>.predict``, in the kit's format (sorted keys, 4-space indent)."""
    path = Path(out_dir) / f"{task.name}.predict"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        json.dump(values, handle, sort_keys=True, indent=4)
    return path


def read_predictions(path: str | Path) -> dict[str, float | str]:
    """A ``.predict`` file's values by model id; the kit's ``"EXCEEDED"`` marker is kept as is."""
    path = Path(path)
    try:
        with open(path) as handle:
            predictions = json.load(handle)
    except FileNotFoundError:
        raise HarnessError(f"{path}: missing") from None
    except json.JSONDecodeError as error:
        raise HarnessError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(predictions, dict):
        raise HarnessError(f"{path}: expected a JSON object of model id -> value")
    for model_id, value in predictions.items():
        if value != "EXCEEDED" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise HarnessError(f"{path}: the value of {model_id} is {value!r}, not a number")
    return predictions
