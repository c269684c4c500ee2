"""A task's settings: the defaults, the checked spec, the grid of model points and its command line.

The spec is every setting that determines a task's content, as plain JSON values: it is stored in
``generation_log.json``, compared on resume, and spelled out as the command that regenerates the
task.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from typing import Any, Mapping, Sequence

from .errors import TaskGenerationError
from .families import FAMILIES, Family
from .images import DATASETS

GENERATOR_FORMAT = 1

DEFAULTS = {
    "seed": 0,
    "n_train": 1000,
    "n_test": 3000,
    "num_shards": 4,
    "max_epochs": 100,
    "target_train_acc": 0.995,
    "learning_rate": 3e-3,
}


@dataclasses.dataclass(frozen=True)
class ModelPoint:
    """One point of the grid: its id, all its settings, and the varied ones (its PGDL hparams)."""

    model_id: int
    settings: dict[str, Any]
    hparams: dict[str, Any]

    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.hparams.items())


def resolve_grid(family: Family, overrides: Mapping[str, Sequence] | None) -> dict[str, list]:
    """The family's default grid with ``overrides`` applied, values normalised to their axis's type."""
    grid = {name: list(values) for name, values in family.default_grid.items()}
    for name, values in (overrides or {}).items():
        if name not in family.axes:
            raise TaskGenerationError(
                f"family has no hyperparameter {name!r}; its hyperparameters are {sorted(family.axes)}"
            )
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise TaskGenerationError(f"grid values of {name!r} must be a non-empty list, got {values!r}")
        grid[name] = [family.axes[name].normalise(name, v) for v in values]
        if len(set(grid[name])) != len(grid[name]):
            raise TaskGenerationError(f"grid values of {name!r} repeat: {values!r}")
    varied = [name for name, values in grid.items() if len(values) > 1]
    if len(varied) < 2:
        # PGDL's score conditions on pairs of hyperparameters: fewer than two makes it undefined.
        raise TaskGenerationError(f"a task needs at least 2 varied hyperparameters, the grid varies {varied}")
    return grid


def grid_points(grid: Mapping[str, list]) -> list[ModelPoint]:
    """Every combination of the grid's values, in product order (the last axis varies fastest)."""
    names = list(grid)
    points = []
    for model_id, combo in enumerate(itertools.product(*grid.values())):
        settings = dict(zip(names, combo))
        hparams = {n: settings[n] for n in names if len(grid[n]) > 1}
        points.append(ModelPoint(model_id, settings, hparams))
    return points


def validated_spec(family: str, dataset: str, seed: int, grid: Mapping | None, **numbers: Any) -> dict:
    """All settings that determine the task's content, checked, as plain JSON values.

    ``numbers`` holds every key of DEFAULTS but ``seed``. A ``learning_rate`` grid axis replaces
    the task-wide learning rate, which must then keep its default (one rate, stated once).
    """
    if family not in FAMILIES:
        raise TaskGenerationError(f"unknown family {family!r}; known families: {sorted(FAMILIES)}")
    if dataset not in DATASETS:
        raise TaskGenerationError(f"unknown dataset {dataset!r}; known datasets: {sorted(DATASETS)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise TaskGenerationError(f"seed must be an integer in [0, 2**31), got {seed!r}")
    for key in ("n_train", "n_test", "num_shards", "max_epochs"):
        value = numbers[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TaskGenerationError(f"{key} must be a positive integer, got {value!r}")
    if numbers["num_shards"] > min(numbers["n_train"], numbers["n_test"]):
        raise TaskGenerationError(
            f"num_shards={numbers['num_shards']} is more than the images of a split"
            f" (n_train={numbers['n_train']}, n_test={numbers['n_test']})"
        )
    for key in ("target_train_acc", "learning_rate"):
        if isinstance(numbers[key], bool) or not isinstance(numbers[key], (int, float)):
            raise TaskGenerationError(f"{key} must be a number, got {numbers[key]!r}")
    if not 0 < numbers["target_train_acc"] <= 1:
        raise TaskGenerationError(f"target_train_acc must be in (0, 1], got {numbers['target_train_acc']!r}")
    if not 0 < numbers["learning_rate"] < 1:
        raise TaskGenerationError(f"learning_rate must be in (0, 1), got {numbers['learning_rate']!r}")
    if grid and "learning_rate" in grid and numbers["learning_rate"] != DEFAULTS["learning_rate"]:
        raise TaskGenerationError(
            f"learning_rate is given twice: {numbers['learning_rate']!r} for the task and"
            f" {list(grid['learning_rate'])!r} in the grid; give it in one place"
        )
    grid = resolve_grid(FAMILIES[family], grid)
    side = min(DATASETS[dataset].input_shape[:2])
    for point in grid_points(grid):
        if side < 2 ** FAMILIES[family].pooling_stages(point.settings):
            raise TaskGenerationError(
                f"{dataset!r} images ({side} pixels a side) are too small for the 2x2 poolings of"
                f" {family} with " + ", ".join(f"{k}={v}" for k, v in point.settings.items())
            )
    spec = {
        "format": GENERATOR_FORMAT,
        "family": family,
        "dataset": dataset,
        "seed": seed,
        **{key: numbers[key] for key in DEFAULTS if key != "seed"},
        "grid": grid,
    }
    spec["target_train_acc"] = float(spec["target_train_acc"])
    spec["learning_rate"] = float(spec["learning_rate"])
    return json.loads(json.dumps(spec))  # as it reads back from generation_log.json


def learning_rate(spec: Mapping[str, Any], settings: Mapping[str, Any]) -> float:
    """The Adam learning rate of one model: its grid value if the grid has the axis, else the task's."""
    return settings.get("learning_rate", spec["learning_rate"])


def command_line(name: str, out_dir: str | os.PathLike, spec: Mapping[str, Any]) -> str:
    """The exact command that regenerates a task with ``spec`` (every setting spelled out)."""
    parts = ["python -m pgdl_harness.make_task", name, "--out", str(out_dir), "--family", spec["family"],
             "--dataset", spec["dataset"], "--seed", str(spec["seed"]), "--n-train", str(spec["n_train"]),
             "--n-test", str(spec["n_test"]), "--shards", str(spec["num_shards"]),
             "--max-epochs", str(spec["max_epochs"]), "--target-train-acc", repr(spec["target_train_acc"]),
             "--learning-rate", repr(spec["learning_rate"])]
    for axis, values in spec["grid"].items():
        parts += ["--grid", f"{axis}=" + ",".join(json.dumps(v) for v in values)]
    return " ".join(parts)
