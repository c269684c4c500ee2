"""Finding PGDL tasks in a data root, in both of the organisers' layouts.

- Toy layout (the starting kit's ``sample_data``): ``<root>/<task>/`` holds ``dataset_1/``, the
  ``model_*/`` folders and ``model_configs.json`` side by side.
- Released layout (the public data): ``<root>/input_data/<task>/`` holds ``dataset_1/`` and the
  models; ``<root>/reference_data/<task>/model_configs.json`` the hyperparameters and accuracies.

A root that is itself a task folder (it holds ``dataset_1/``) is a root with one task.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import HarnessError

# Entries the organisers' programs skip everywhere (macOS archive debris).
IGNORED_NAMES = (".DS_Store", "__MACOSX")


class TaskFolderError(HarnessError):
    """A data root or task folder is missing something or is not laid out as PGDL lays it out."""


@dataclass(frozen=True)
class Task:
    """One PGDL task: where its models and data are, and where its ``model_configs.json`` is.

    Its folder is listed, and its ``model_configs.json`` parsed, once (on first use): a task is a
    snapshot of its folder, taken when it is first asked about.
    """

    name: str
    folder: Path
    model_configs_path: Path | None

    @property
    def dataset_folder(self) -> Path:
        return self.folder / "dataset_1"

    @property
    def model_ids(self) -> list[str]:
        """Model folder names as the kit lists them: entries naming ``model`` but not ``json``, sorted."""
        return list(self._model_ids)

    @functools.cached_property
    def _model_ids(self) -> tuple[str, ...]:
        return tuple(sorted(entry.name for entry in self.folder.iterdir()
                            if "model" in entry.name and "json" not in entry.name and not _ignored(entry.name)))

    def model_folder(self, model_id: str) -> Path:
        return self.folder / model_id

    def model_specs(self) -> dict:
        """The parsed ``model_configs.json``: hyperparameters and accuracies by bare model id (a copy)."""
        return copy.deepcopy(self._model_specs)

    @functools.cached_property
    def _model_specs(self) -> dict:
        if self.model_configs_path is None:
            raise TaskFolderError(f"task {self.name}: no model_configs.json was found for it "
                                  f"(looked beside {self.folder} and in a reference_data folder)")
        try:
            with open(self.model_configs_path) as handle:
                specs = json.load(handle)
        except json.JSONDecodeError as error:
            raise TaskFolderError(f"{self.model_configs_path}: not valid JSON ({error})") from None
        except OSError as error:
            raise TaskFolderError(f"{self.model_configs_path}: cannot be read ({error.strerror})") from None
        if not isinstance(specs, dict) or not specs:
            raise TaskFolderError(f"{self.model_configs_path}: expected a non-empty JSON object keyed by model id")
        return specs


def find_tasks(root: str | Path, names: list[str] | None = None) -> list[Task]:
    """The tasks under ``root`` (sorted by name), optionally only those called ``names``."""
    root = Path(root)
    if not root.is_dir():
        raise TaskFolderError(f"data root {root} does not exist or is not a folder")
    if (root / "dataset_1").is_dir():
        tasks = [Task(root.name, root, _existing(root / "model_configs.json"))]
    elif (root / "input_data").is_dir():
        reference = root / "reference_data"
        tasks = [Task(folder.name, folder, _existing(reference / folder.name / "model_configs.json")
                      or _existing(folder / "model_configs.json"))
                 for folder in _task_folders(root / "input_data")]
    else:
        tasks = [Task(folder.name, folder, _existing(folder / "model_configs.json"))
                 for folder in _task_folders(root)]
    if not tasks:
        raise TaskFolderError(f"no PGDL task under {root}: expected task folders holding dataset_1/ "
                              f"and model_*/ (toy layout) or an input_data/ folder (released layout)")
    if names:
        by_name = {task.name: task for task in tasks}
        missing = [name for name in names if name not in by_name]
        if missing:
            raise TaskFolderError(f"no task named {', '.join(missing)} under {root}; "
                                  f"found: {', '.join(sorted(by_name))}")
        tasks = [by_name[name] for name in names]
    return tasks


def _task_folders(parent: Path) -> list[Path]:
    return sorted((entry for entry in parent.iterdir()
                   if entry.is_dir() and not _ignored(entry.name) and (entry / "dataset_1").is_dir()),
                  key=lambda entry: entry.name)


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def _ignored(name: str) -> bool:
    return any(ignored in name for ignored in IGNORED_NAMES)
