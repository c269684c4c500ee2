"""The files a run leaves: the kit's ``.predict`` files and their provenance companions.

``<task>.predict`` is the organisers' format (a JSON object of model id to value, sorted keys,
4-space indent; ``"EXCEEDED"`` where the kit's time budget ran out). ``<task>.predict.json``
says what made the values and what is missing and why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from .errors import HarnessError
from .provenance import canonical_json
from .scoring import EXCEEDED
from .tasks import Task

if TYPE_CHECKING:
    from .task_run import TaskRun


def predictions_path(folder: str | Path, task_name: str, *, partial: bool = False) -> Path:
    """Where a task's predictions live in ``folder``: ``<task>.predict``, or ``<task>.partial.predict``
    for the values of a task with a failed model (a name the kit's scorer does not read)."""
    return Path(folder) / f"{task_name}{'.partial' if partial else ''}.predict"


def provenance_path(folder: str | Path, task_name: str) -> Path:
    """The companion of a task's predictions in ``folder`` (complete or partial): ``<task>.predict.json``."""
    return Path(folder) / f"{task_name}.predict.json"


def write_predictions(task: Task, values: Mapping[str, float | str], out_dir: str | Path, *,
                      partial: bool = False) -> Path:
    """``predictions_path(out_dir, task)`` in the kit's format (sorted keys, 4-space indent); the path."""
    path = predictions_path(out_dir, task.name, partial=partial)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        json.dump(dict(values), handle, sort_keys=True, indent=4)
    return path


def write_provenance(path: Path, run: TaskRun, label: str, predictions: Path | None) -> Path:
    """The ``.predict`` file's companion JSON: what made its values, and what is missing and why."""
    content = {
        "task": run.task.name, "measure": label, "predictions": predictions.name if predictions else None,
        "complete": run.complete(label), "key": run.keys.get(label), "models": len(run.task.model_ids),
        "computed": len(run.results.get(label, {})) - run.reused.get(label, 0),
        "reused_from_cache": run.reused.get(label, 0), "recomputed_stale": run.recomputed.get(label, 0),
        "failed": run.failures.get(label, {}), "exceeded": run.exceeded, "workers": run.workers,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    canonical_json(content)  # every value must be plain JSON
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
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
        if value != EXCEEDED and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise HarnessError(f"{path}: the value of {model_id} is {value!r}, not a number")
    return predictions
