"""Turning predictions into reports: scores per task with their context, and the table over tasks.

Pure: predictions and a task's specs in, a ``TaskReport`` (or a table of them) out; nothing is
written (``outputs`` writes the files, ``render`` the text).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .task_run import TaskRun
from .scoring import EXCEEDED, SCORE_NAMES, InvalidGridError, UndefinedScoreError, score_task
from .tasks import Task, TaskFolderError
from .uncertainty import bootstrap_scores, chance_levels, score_interval

# Per score, the columns that put it in context (see ``TaskReport.uncertainty_columns``).
UNCERTAINTY_SUFFIXES = ("low", "high", "chance_mean", "chance_p95", "p_value", "seed_std", "seed_min", "seed_max")
UNCERTAINTY_COLUMNS = tuple(f"{score}_{suffix}" for score in SCORE_NAMES for suffix in UNCERTAINTY_SUFFIXES)


@dataclass
class TaskReport:
    """One measure's scores on one task, or why there are none."""

    task: str
    measure: str
    n_models: int
    cmi: float | None = None  # x100, as reports show it; None when undefined or not scored
    kendall_tau: float | None = None
    granulated_kendall_tau: float | None = None
    psi: dict[str, float] = field(default_factory=dict)
    seconds_per_model: float | None = None
    note: str = ""
    parameters: dict | None = None  # the measure's parameters, defaults included (None: not a registered measure)
    failed: dict[str, str] = field(default_factory=dict)  # model id -> one-line reason
    recomputed: int = 0  # cached values not reused because what made them differs
    # Context of each score (pgdl_harness.uncertainty), by score name; empty when not computed.
    # chance: {"mean", "p95", "p_value", "draws", "within"} of random measures on the task.
    chance: dict[str, dict[str, float]] = field(default_factory=dict)
    # interval: the centred 95% bootstrap interval (over resampled models, and seeds if any).
    interval: dict[str, tuple[float, float]] = field(default_factory=dict)
    # seeds: {"mean", "std", "min", "max", "seeds"} over seeds, for a measure run with several;
    # the score itself is then the mean over seeds.
    seeds: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"measure": self.measure, "n_models": self.n_models, **self.scores(), "psi": self.psi,
                "seconds_per_model": self.seconds_per_model, "note": self.note,
                "parameters": self.parameters, "failed": self.failed, "recomputed": self.recomputed,
                **self.uncertainty_json()}

    def scores(self) -> dict[str, float | None]:
        """Each score by name (``scoring.SCORE_NAMES``), None where there is none."""
        return {score: getattr(self, score) for score in SCORE_NAMES}

    @property
    def within_chance(self) -> list[str]:
        """The scores at or below the 95th percentile of random measures' scores on the task."""
        return [score for score, level in self.chance.items() if level.get("within")]

    def uncertainty_json(self) -> dict:
        out = {}
        if self.chance:
            out["chance"] = self.chance
            out["within_chance"] = self.within_chance
        if self.interval:
            out["interval_95"] = {score: list(bounds) for score, bounds in self.interval.items()}
        if self.seeds:
            out["seeds"] = self.seeds
        return out

    def uncertainty_columns(self) -> dict:
        """``<score>_<suffix>`` for the suffixes of UNCERTAINTY_SUFFIXES (None where not computed)."""
        row = dict.fromkeys(UNCERTAINTY_COLUMNS)
        for score in SCORE_NAMES:
            if score in self.interval:
                row[f"{score}_low"], row[f"{score}_high"] = self.interval[score]
            if score in self.chance:
                level = self.chance[score]
                row[f"{score}_chance_mean"], row[f"{score}_chance_p95"] = level["mean"], level["p95"]
                row[f"{score}_p_value"] = level.get("p_value")
            if score in self.seeds:
                spread = self.seeds[score]
                row[f"{score}_seed_std"], row[f"{score}_seed_min"], row[f"{score}_seed_max"] = (
                    spread["std"], spread["min"], spread["max"])
        row["within_chance"] = " ".join(self.within_chance)
        return row


def report_run(run: TaskRun, label: str, *, measure: str | None = None, null: int = 0, bootstrap: int = 0,
               seed: int = 0) -> TaskReport:
    """The report of one run label on one task (named ``measure``, the label by default).

    A task whose every model has a value is scored (models left unmeasured by the time budget
    count as the kit counts them: ``"EXCEEDED"``, scored 0). A task with a failed model is
    incomplete: it gets no CMI (never a made-up number) and its note says how many models failed
    and the first reason. The report also says what made the values, which models failed and how
    many cached values were recomputed. ``null``, ``bootstrap`` and ``seed`` are
    ``score_predictions``'s. Writes nothing (``outputs.write_run_files`` writes the files).
    """
    task = run.task
    results = run.results.get(label, {})
    failed = run.failures.get(label, {})
    seconds = [result.seconds for result in results.values()]
    name = measure or label
    if not failed:
        report = score_predictions(task, name, run.predictions(label), seconds, null=null, bootstrap=bootstrap,
                                   seed=seed)
    else:
        report = TaskReport(task.name, name, len(results),
                            seconds_per_model=float(np.mean(seconds)) if seconds else None,
                            note=f"incomplete: {len(failed)} of {len(task.model_ids)} model(s) failed, no CMI "
                                 f"(first: {next(iter(failed.values()))})")
    key = run.keys.get(label) or {}
    report.parameters = key.get("parameters")
    report.failed = dict(failed)
    report.recomputed = run.recomputed.get(label, 0)
    if report.recomputed:
        stale = (f"{report.recomputed} cached value(s) were recomputed: made by other settings, code, data "
                 f"or model files")
        report.note = f"{report.note}; {stale}" if report.note else stale
    return report


def score_predictions(task: Task, measure: str, predictions: dict, seconds: list[float] | None = None, *,
                      null: int = 0, bootstrap: int = 0, seed: int = 0) -> TaskReport:
    """Score a task's predictions against its ``model_configs.json``; problems become the note.

    ``null`` random measures give each score's chance level and p-value, ``bootstrap`` resamples
    of the models its 95% interval (0 skips either); both are seeded by ``seed``.
    """
    report = TaskReport(task.name, measure, len(predictions),
                        seconds_per_model=float(np.mean(seconds)) if seconds else None)
    if any(value == EXCEEDED for value in predictions.values()):
        # The kit scores a submission that ran out of time as 0 on every task.
        report.cmi = 0.0
        report.note = "EXCEEDED: the kit's time budget ran out; it scores the submission 0"
        return report
    try:
        specs = task.model_specs()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            score = score_task(predictions, specs, source=str(task.model_configs_path))
    except (TaskFolderError, InvalidGridError, UndefinedScoreError, ValueError) as error:
        report.note = f"not scored: {error}"
        return report
    report.cmi = score.cmi
    report.kendall_tau = score.kendall_tau
    report.granulated_kendall_tau = score.granulated_kendall_tau
    report.psi = score.psi
    notes = [str(warning.message) for warning in caught]
    if score.cmi is None:
        notes.insert(0, "CMI undefined: the task has fewer than two hyperparameters")
    report.note = "; ".join(notes)
    if null:
        add_chance(report, chance_levels(specs, null, seed, source=str(task.model_configs_path)))
    if bootstrap:
        distributions = bootstrap_scores(predictions, specs, bootstrap, seed, source=str(task.model_configs_path))
        report.interval = {score: score_interval(score, distributions[score], getattr(report, score))
                           for score in SCORE_NAMES if score in distributions}
    return report


def add_chance(report: TaskReport, chance: dict) -> None:
    """Set ``report.chance`` from ``uncertainty.chance_levels`` of its task, with each score's p-value."""
    report.chance = {}
    for score, level in chance.items():
        observed = getattr(report, score)
        report.chance[score] = {"mean": level.mean, "p95": level.p95, "draws": len(level.draws),
                                "p_value": None if observed is None else level.p_value(observed),
                                "within": observed is not None and level.within_chance(observed)}


def reports_table(reports: list[TaskReport]) -> pd.DataFrame:
    """One row per (task, measure): models, CMI x100, tau, psi, seconds per model, note."""
    rows = [{"task": r.task, "measure": r.measure, "models": r.n_models, "failed": len(r.failed), **r.scores(),
             "seconds_per_model": r.seconds_per_model, "note": r.note, **r.uncertainty_columns()}
            for r in reports]
    return pd.DataFrame(rows, columns=["task", "measure", "models", "failed", *SCORE_NAMES, "seconds_per_model",
                                       "note", *UNCERTAINTY_COLUMNS, "within_chance"])


def report_frame(reports: list[TaskReport]) -> pd.DataFrame:
    """``reports_table``, plus per measure a ``mean`` row over its scored tasks."""
    frame = reports_table(reports)
    means = []
    for measure, group in frame.groupby("measure", sort=False):
        if len(group) < 2:
            continue
        scored = group[list(SCORE_NAMES)].astype(float)
        means.append({"task": "mean", "measure": measure, "models": int(group["models"].sum()),
                      "failed": int(group["failed"].sum()),
                      **{column: _mean_or_none(scored[column]) for column in SCORE_NAMES},
                      "seconds_per_model": _mean_or_none(group["seconds_per_model"].astype(float)),
                      "note": f"over the {int(scored['cmi'].notna().sum())} task(s) with a CMI"})
    if means:
        frame = pd.concat([frame, pd.DataFrame(means)], ignore_index=True)
    return frame


def _mean_or_none(column: pd.Series) -> float | None:
    column = column.dropna()
    return float(column.mean()) if len(column) else None


def report_json(reports: list[TaskReport]) -> dict:
    """The ``--report`` file: an object keyed by task (by task, then measure, for several measures)."""
    measures = {r.measure for r in reports}
    if len(measures) <= 1:
        return {r.task: r.as_json() for r in reports}
    nested: dict[str, dict] = {}
    for r in reports:
        nested.setdefault(r.task, {})[r.measure] = r.as_json()
    return nested
