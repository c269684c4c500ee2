"""The keyed cache of measure values: one JSON line per value, under the key of everything that made it.

``<out>/cache/<task>/<label>.jsonl`` holds a measure's values on a task's models, appended (flushed
and fsynced) as soon as each is computed, each with its ``run_key`` (the digest of the measure's
settings, code, data and ``max_examples``: ``provenance``) and its ``model_key`` (the digest of
the model folder's files). Values under several keys live side by side; ``<label>.keys.json``
spells out each run key. A model that could not be measured (its folder is broken, the measure
raised, its worker crashed or ran out of time) is recorded the same way, as a line with a
``failure`` reason instead of a value, so that a resumed run does not measure it again unless
asked to. Only the driver process writes here (an engine only decides where a model is measured).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from .tasks import Task


@dataclass(frozen=True)
class ModelResult:
    model_id: str
    value: float
    seconds: float  # loading the model plus computing the measure, as the kit's budget counts it


class ResultCache:
    """Append-only record of one measure's values on one task's models (JSON lines).

    Each line holds the value with its ``run_key`` (the digest of the measure's settings, code,
    data and ``max_examples``) and its ``model_key`` (the digest of the model folder's files);
    values under several keys live side by side, and ``<label>.keys.json`` beside the file spells
    out each run key.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def keys_path(self) -> Path:
        return self.path.with_suffix(".keys.json")

    def entries(self) -> list[dict]:
        """Every whole line of the file, oldest first; a line cut short by a kill is skipped."""
        if not self.path.exists():
            return []
        entries = []
        with open(self.path) as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                    if isinstance(entry.get("failure"), str):
                        str(entry["model_id"])
                    else:
                        ModelResult(entry["model_id"], float(entry["value"]), float(entry["seconds"]))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                    continue  # that model is simply computed again
                entries.append(entry)
        return entries

    def append(self, result: ModelResult, run_key: str | None = None, model_key: str | None = None) -> None:
        self._append_line({**asdict(result), "run_key": run_key, "model_key": model_key})

    def append_failure(self, model_id: str, reason: str, run_key: str | None = None,
                       model_key: str | None = None) -> None:
        """Record that ``model_id`` could not be measured, with its one-line reason."""
        self._append_line({"model_id": model_id, "failure": reason, "run_key": run_key, "model_key": model_key})

    def _append_line(self, record: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record) + "\n"
        with open(self.path, "a+b") as handle:
            # After a kill mid-write the file ends in a partial line: start a new line, never join it.
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    line = "\n" + line
            handle.write(line.encode())
            handle.flush()
            os.fsync(handle.fileno())

    def record_key(self, run_key: str, key: Mapping[str, Any]) -> None:
        """Write out what ``run_key`` stands for (once per key)."""
        known = json.loads(self.keys_path.read_text()) if self.keys_path.exists() else {}
        if run_key in known:
            return
        known[run_key] = key
        self.keys_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.keys_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, self.keys_path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        self.keys_path.unlink(missing_ok=True)


def matching_results(entries: list[dict], run_key: str | None = None,
                     model_keys: Mapping[str, str] | None = None) -> dict[str, ModelResult]:
    """From cache ``entries`` (oldest first), the latest value of each model whose keys match."""
    results = {}
    for entry in _matching(entries, run_key, model_keys):
        if "failure" not in entry:
            results[entry["model_id"]] = ModelResult(entry["model_id"], float(entry["value"]),
                                                     float(entry["seconds"]))
    return results


def matching_failures(entries: list[dict], run_key: str | None = None,
                      model_keys: Mapping[str, str] | None = None) -> dict[str, str]:
    """From cache ``entries``, the latest recorded failure of each model that has no matching value."""
    failures, valued = {}, set()
    for entry in _matching(entries, run_key, model_keys):
        if "failure" in entry:
            failures[entry["model_id"]] = entry["failure"]
        else:
            valued.add(entry["model_id"])
    return {model_id: reason for model_id, reason in failures.items() if model_id not in valued}


def _matching(entries: list[dict], run_key: str | None, model_keys: Mapping[str, str] | None):
    for entry in entries:
        if run_key is not None and entry.get("run_key") != run_key:
            continue
        if model_keys is not None and entry.get("model_key") != model_keys.get(entry["model_id"]):
            continue
        yield entry


def cache_path(out_dir: Path, task: Task, measure_name: str) -> Path:
    return Path(out_dir) / "cache" / task.name / f"{measure_name}.jsonl"
