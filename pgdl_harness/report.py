"""Turning predictions into reports: scores per task with their context, and the table over tasks.

Pure: predictions and a task's specs in, a ``TaskReport`` (or a table of them) out; nothing is
written (``outputs`` writes the files, ``render`` the text).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .task_run import TaskRun
from .scoring import EXCEEDED, SCORE_NAMES, InvalidGridError, UndefinedScoreError, score_task
from .tasks import Task, TaskFolderError
from .uncertainty import ChanceLevel, bootstrap_scores, chance_levels, score_interval, seed_summary

# Per score, the columns that put it in context (see ``TaskReport.uncertainty_columns``).
UNCERTAINTY_SUFFIXES = ("low", "high", "chance_mean", "chance_p95", "p_value", "seed_std", "seed_min", "seed_max")
UNCERTAINTY_COLUMNS = tuple(f"{score}_{suffix}" for score in SCORE_NAMES for suffix in UNCERTAINTY_SUFFIXES)


@dataclass
class TaskReport:
    """One measure's scores on one task, or why there are none (made by :func:`task_report`).

    ``n_models`` is how many of the task's models the report's predictions cover: those with a
    value, and those the time budget left unmeasured (the kit's ``"EXCEEDED"``); a failed model
    has no prediction and is not counted (``failed`` lists them), nor is any model of a task
    whose data could not be read.
    """

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
    # Not written: by score, each seed's score (in the order of the runs; only scores every seed has)
    # and the bootstrap scores behind ``interval``, shape (n_seeds, n_resamples), for paired comparisons.
    per_seed: dict[str, list[float]] = field(default_factory=dict, repr=False)
    resamples: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

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
               seed: int = 0, chance: Mapping[str, ChanceLevel] | None = None) -> TaskReport:
    """The report of one run label on one task (named ``measure``, the label by default): :func:`report_runs`."""
    return report_runs(run, [label], measure=measure or label, null=null, bootstrap=bootstrap, seed=seed,
                       chance=chance)


def report_runs(run: TaskRun, labels: Sequence[str], *, measure: str, null: int = 0, bootstrap: int = 0,
                seed: int = 0, chance: Mapping[str, ChanceLevel] | None = None) -> TaskReport:
    """The report of a measure on one task from its run labels (one per seed; :func:`task_report`).

    A task whose every model has a value is scored (models left unmeasured by the time budget
    count as the kit counts them: ``"EXCEEDED"``, scored 0). A task with a failed model (for any
    of the labels) is incomplete: it gets no CMI (never a made-up number) and its note says how
    many models failed and the first reason. The report also says what made the values (the
    first label's parameters), which models failed and how many cached values were recomputed.
    ``null``, ``bootstrap``, ``seed`` and ``chance`` are ``task_report``'s. Writes nothing
    (``outputs.write_run_files`` writes the files).
    """
    task = run.task
    failed_label = next((label for label in labels if run.failures.get(label)), None)
    if failed_label is None:
        report = task_report(task, measure, [run.predictions(label) for label in labels],
                             [[result.seconds for result in run.results.get(label, {}).values()] for label in labels],
                             null=null, bootstrap=bootstrap, seed=seed, chance=chance)
        report.failed = {}
    else:
        failed = run.failures[failed_label]
        seconds = [result.seconds for result in run.results.get(failed_label, {}).values()]
        report = TaskReport(task.name, measure, len(run.predictions(failed_label)),
                            seconds_per_model=float(np.mean(seconds)) if seconds else None,
                            note=f"incomplete: {len(failed)} of {len(task.model_ids)} model(s) failed, no CMI "
                                 f"(first: {next(iter(failed.values()))})")
        report.failed = dict(failed)
    report.parameters = (run.keys.get(labels[0]) or {}).get("parameters")
    report.recomputed = sum(run.recomputed.get(label, 0) for label in labels)
    if report.recomputed:
        stale = (f"{report.recomputed} cached value(s) were recomputed: made by other settings, code, data "
                 f"or model files")
        report.note = f"{report.note}; {stale}" if report.note else stale
    return report


def score_predictions(task: Task, measure: str, predictions: Mapping[str, float | str],
                      seconds: Sequence[float] | None = None, *, null: int = 0, bootstrap: int = 0,
                      seed: int = 0) -> TaskReport:
    """:func:`task_report` of one run: a task's predictions scored, with their chance level and interval."""
    return task_report(task, measure, [predictions], [seconds or []], null=null, bootstrap=bootstrap, seed=seed)


def task_report(task: Task, measure: str, runs: Sequence[Mapping[str, float | str]],
                seconds: Sequence[Sequence[float]] | None = None, *, null: int = 0, bootstrap: int = 0,
                seed: int = 0, chance: Mapping[str, ChanceLevel] | None = None) -> TaskReport:
    """A measure's report on a task from its predictions: its scores, chance levels and intervals.

    The one place a ``TaskReport`` is scored: ``score``, ``evaluate``, ``compare`` and ``select``
    all come here. ``runs`` holds the predictions of each of the measure's seeds (one mapping of
    model id to value or ``"EXCEEDED"`` for a measure run once), ``seconds`` each run's seconds
    per model. With several seeds each score is the mean over the seeds, ``seeds`` their spread.
    Problems (an unreadable ``model_configs.json``, an invalid grid) become the note.

    ``null`` random measures give each score's chance level and p-value (``chance``, the task's
    ``uncertainty.chance_levels``, saves computing them again for each measure of a task);
    ``bootstrap`` resamples of the models give each score's centred 95% interval, pooled over the
    seeds, and the resamples themselves (``resamples``, for paired comparisons); 0 skips either.
    Both are seeded by ``seed``.
    """
    if not runs:
        raise ValueError(f"no predictions of {measure} on {task.name}")
    seconds = list(seconds or [])
    means = [float(np.mean(run_seconds)) for run_seconds in seconds if len(run_seconds)]
    per_seed = [_scored(task, measure, predictions) for predictions in runs]
    if len(per_seed) == 1:
        report = per_seed[0]
    else:
        first = per_seed[0]
        report = TaskReport(task.name, measure, first.n_models, note=first.note)
        for score in SCORE_NAMES:
            values = [getattr(r, score) for r in per_seed]
            if any(value is None for value in values):
                continue
            summary = seed_summary(values)
            setattr(report, score, summary["mean"])
            report.seeds[score] = summary
        report.psi = {name: float(np.mean([r.psi[name] for r in per_seed])) for name in first.psi}
    report.seconds_per_model = float(np.mean(means)) if means else None
    report.per_seed = {score: [getattr(r, score) for r in per_seed] for score in SCORE_NAMES
                       if all(getattr(r, score) is not None for r in per_seed)}
    if report.kendall_tau is None:  # not scored: nothing to put in context
        return report
    source = str(task.model_configs_path)
    specs = task.model_specs()
    if null:
        add_chance(report, chance if chance is not None else chance_levels(specs, null, seed, source=source))
    if bootstrap:
        distributions: dict[str, list[np.ndarray]] = {}
        for predictions in runs:
            for score, scores in bootstrap_scores(predictions, specs, bootstrap, seed, source=source).items():
                distributions.setdefault(score, []).append(scores)
        report.resamples = {score: np.stack(rows) for score, rows in distributions.items()}
        report.interval = {score: score_interval(score, report.resamples[score], getattr(report, score))
                           for score in SCORE_NAMES if score in report.resamples}
    return report


def _scored(task: Task, measure: str, predictions: Mapping[str, float | str]) -> TaskReport:
    """One run's predictions scored against the task's ``model_configs.json``, without context."""
    report = TaskReport(task.name, measure, len(predictions))
    if any(value == EXCEEDED for value in predictions.values()):
        # The kit scores a submission that ran out of time as 0 on every task.
        report.cmi = 0.0
        report.note = "EXCEEDED: the kit's time budget ran out; it scores the submission 0"
        return report
    try:
        specs = task.model_specs()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            score = score_task(dict(predictions), specs, source=str(task.model_configs_path))
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
