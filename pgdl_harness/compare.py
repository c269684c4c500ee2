"""Comparing measures side by side: the aggregation of every (task, measure) into one comparison.

Each model is loaded once and the task's data read once for all the measures (see
``runner.run_measures``); values are cached per run label, so adding a measure to a finished
comparison computes only that measure.

Every score comes with its context (``pgdl_harness.uncertainty``): a measure that samples (pairs,
examples, mixup partners) can be run with several seeds (:func:`seeded_measures`; its score is then
the mean over seeds, with their spread), each score gets a centred 95% bootstrap interval over the task's
models (and the seeds), the task's chance level (random measures) and, against the best measure
of the task, the fraction of the same resamples in which it wins.

:func:`compare_runs` is pure: runs in, a frozen :class:`Comparison` out. Its tables are rendered as
markdown by ``render``, drawn by ``figures`` and written to files by ``outputs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from .report import TaskReport, add_chance, report_run, reports_table, score_predictions
from .task_run import TaskRun
from .scoring import SCORE_NAMES
from .tasks import Task
from .uncertainty import (DEFAULT_SEED, bootstrap_scores, chance_levels, paired_win_fraction, score_interval,
                          seed_summary)

# Scores on which each measure is compared with the best one in the same resamples.
PAIRED_SCORES = ("cmi", "kendall_tau")


@dataclass(frozen=True)
class RunLabel:
    """Which measure a run is of, and with which seed (None: the measure as registered).

    ``name`` is the run's label: its cache file, its ``.predict`` folder and its key in a
    ``TaskRun`` (``"fragmentation"``, or ``"fragmentation#seed=2"`` for another seed). The name is
    made from the label, never parsed back into one.
    """

    measure: str
    seed: int | None = None

    @property
    def name(self) -> str:
        return self.measure if self.seed is None else f"{self.measure}#seed={self.seed}"


def seeded_measures(measures: dict, n_seeds: int) -> dict[RunLabel, object]:
    """Each measure that samples (``Measure.samples``) once per seed 0..n_seeds-1, by run label.

    Measures that do not sample, and every measure when ``n_seeds`` is 1, are run once as they
    are (``RunLabel(name)``). The measure's own (default) seed, 0 for every registered measure,
    keeps the plain label, so its cached values are reused; seed k is ``RunLabel(name, k)``,
    cached apart.
    """
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be at least 1, got {n_seeds}")
    labelled = {}
    for name, measure in measures.items():
        if n_seeds == 1 or not getattr(measure, "samples", False):
            labelled[RunLabel(name)] = measure
            continue
        default_seed = measure.parameters.get("seed")
        for seed in range(n_seeds):
            label = RunLabel(name) if seed == default_seed else RunLabel(name, seed)
            labelled[label] = measure.with_params(seed=seed)
    return labelled


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare_runs` made of the runs: one report per (task, measure) and the tables.

    ``frame``: the long table, a row per (task, measure) (``report.reports_table`` plus ``seeds``);
    ``paired``: each measure against the best one on the same resamples, per task and for the mean
    over tasks (empty without a bootstrap); ``mean_interval``: the interval and seed spread of each
    measure's mean over tasks (None without a bootstrap). ``task_runs`` and ``labels`` are what it
    was made from (the ``.predict`` files and figures are drawn from them).
    """

    reports: list[TaskReport]
    frame: pd.DataFrame
    paired: pd.DataFrame
    mean_interval: pd.DataFrame | None
    task_runs: Mapping[Task, TaskRun]
    labels: Mapping[str, RunLabel]

    def complete_runs(self, task: Task) -> dict[str, list[dict]]:
        """By measure, the values of each of its seeds on ``task`` (labels with a value for every model)."""
        run = self.task_runs[task]
        by_measure: dict[str, list[dict]] = {}
        for label, results in run.results.items():
            if run.complete(label):
                by_measure.setdefault(self.labels[label].measure, []).append(results)
        return by_measure


def compare_runs(task_runs: Mapping[Task, TaskRun], labels: Mapping[str, RunLabel] | None = None, *,
                 null: int = 0, bootstrap: int = 0, seed: int = DEFAULT_SEED) -> Comparison:
    """Score every (task, measure) of ``task_runs``; no file is read but the tasks' own, none written.

    ``task_runs`` maps each task to what ``run_measures`` computed on it, keyed by run label;
    ``labels`` says which measure and seed each label is (:func:`seeded_measures`; a label it does
    not name is a measure of its own). A measure run with several seeds gets one report whose
    scores are the means over its seeds. A measure that failed on some model of a task is
    incomplete there: its report has no scores and its note says why. ``null`` random measures per
    task give the chance levels, ``bootstrap`` resamples per task the intervals and the paired
    comparison with the best measure (0 skips either).
    """
    labels = {label: RunLabel(label) for run in task_runs.values() for label in run.results} | dict(labels or {})
    reports, distributions, paired_rows, seed_scores = [], {}, [], {}
    for task, run in task_runs.items():
        by_measure: dict[str, dict[str, dict]] = {}
        incomplete: dict[str, TaskReport] = {}
        for label, results in run.results.items():
            measure = labels[label].measure
            if run.complete(label):
                by_measure.setdefault(measure, {})[label] = results
            elif measure not in incomplete:
                incomplete[measure] = report_run(run, label, measure=measure)
        for measure in incomplete:  # a measure incomplete for any seed is incomplete
            by_measure.pop(measure, None)
        chance = chance_levels(task.model_specs(), null, seed) if null and by_measure else None
        task_reports = {}
        for measure, runs in by_measure.items():
            report, dists, per_seed = _report_over_seeds(task, measure, runs, bootstrap, seed)
            seed_scores[(task.name, measure)] = per_seed
            if chance is not None and report.kendall_tau is not None:
                add_chance(report, chance)
            report.parameters = (run.keys.get(next(iter(runs))) or {}).get("parameters")
            report.recomputed = sum(run.recomputed.get(label, 0) for label in runs)
            task_reports[measure] = report
            distributions[(task.name, measure)] = dists
        reports.extend(task_reports.values())
        reports.extend(incomplete.values())
        if bootstrap:
            paired_rows += _paired_with_best(task.name, task_reports, distributions)
    frame = reports_table(reports)
    frame["seeds"] = [r.seeds.get("kendall_tau", {}).get("seeds", 1) for r in reports]
    mean_interval, mean_paired = _over_tasks(frame, distributions, seed_scores) if bootstrap else (None, [])
    paired = pd.DataFrame(paired_rows + mean_paired, columns=["task", "score", "measure", "best", "wins"])
    return Comparison(reports, frame, paired, mean_interval, task_runs, labels)


def score_table(frame: pd.DataFrame, score: str) -> pd.DataFrame:
    """Measures x tasks for one score, with a ``mean`` column over tasks; best measure first by mean."""
    table = frame.pivot(index="measure", columns="task", values=score).astype(float)
    table["mean"] = table.mean(axis=1)
    return table.sort_values("mean", ascending=False)


def _report_over_seeds(task: Task, measure: str, runs: dict[str, dict], bootstrap: int, seed: int
                       ) -> tuple[TaskReport, dict[str, np.ndarray], dict[str, list[float]]]:
    """One report for a measure's seeds: mean scores, their spread, the pooled bootstrap interval.

    Returns the report, by score the bootstrap scores as (n_seeds, n_resamples) arrays, and by
    score the score of each seed (in the order of ``runs``).
    """
    per_seed, dists = [], {}
    for results in runs.values():
        values = {model_id: result.value for model_id, result in results.items()}
        per_seed.append(score_predictions(task, measure, values, [r.seconds for r in results.values()]))
        if bootstrap and per_seed[-1].kendall_tau is not None:
            for score, scores in bootstrap_scores(values, task.model_specs(), bootstrap, seed).items():
                dists.setdefault(score, []).append(scores)
    if len(per_seed) == 1:
        report = per_seed[0]
    else:
        first = per_seed[0]
        report = TaskReport(task.name, measure, first.n_models, note=first.note,
                            seconds_per_model=float(np.mean([r.seconds_per_model for r in per_seed])))
        for score in SCORE_NAMES:
            values = [getattr(r, score) for r in per_seed]
            if any(value is None for value in values):
                continue
            summary = seed_summary(values)
            setattr(report, score, summary["mean"])
            report.seeds[score] = summary
        report.psi = {name: float(np.mean([r.psi[name] for r in per_seed])) for name in first.psi}
    dists = {score: np.stack(rows) for score, rows in dists.items()}
    report.interval = {score: score_interval(score, dists[score], getattr(report, score))
                       for score in SCORE_NAMES if score in dists}
    per_seed_scores = {score: [getattr(r, score) for r in per_seed] for score in SCORE_NAMES
                       if all(getattr(r, score) is not None for r in per_seed)}
    return report, dists, per_seed_scores


def _paired_with_best(task: str, reports: dict[str, TaskReport], distributions: dict) -> list[dict]:
    """Each measure against the task's best (highest score) on the same resamples."""
    rows = []
    for score in PAIRED_SCORES:
        scored = {m: getattr(r, score) for m, r in reports.items()
                  if getattr(r, score) is not None and score in distributions[(task, m)]}
        if not scored:
            continue
        best = max(scored, key=scored.get)
        for measure in scored:
            rows.append({"task": task, "score": score, "measure": measure, "best": best,
                         "wins": paired_win_fraction(distributions[(task, measure)][score],
                                                     distributions[(task, best)][score])})
    return rows


def _over_tasks(frame: pd.DataFrame, distributions: dict, seed_scores: dict | None = None
                ) -> tuple[pd.DataFrame, list[dict]]:
    """Intervals of each measure's mean over tasks, and the paired comparison of that mean.

    Tasks are resampled independently, so resample r of the mean is the mean of the tasks'
    resamples r (seed k with seed k). Only measures scored on every task that has the score are
    compared, so that each mean is over the same tasks. With ``seed_scores`` (by (task, measure),
    by score, the score of each seed) the mean over tasks is also taken seed by seed, and
    ``seed_std`` is the standard deviation of those means over the seeds every task has (NaN
    for one seed): the spread a user who runs the measure once should expect of the mean.
    """
    rows, paired = [], []
    for score in SCORE_NAMES:
        tasks = sorted({task for (task, _), dists in distributions.items() if score in dists})
        mean_score = score_table(frame, score)["mean"]
        means = {}
        for measure in frame["measure"].unique():
            parts = [distributions.get((task, measure), {}).get(score) for task in tasks]
            if not tasks or any(part is None for part in parts):
                continue
            seeds = min(len(part) for part in parts)  # seed k on every task
            means[measure] = np.mean([part[:seeds] for part in parts], axis=0)
            low, high = score_interval(score, means[measure], mean_score[measure])
            seed_std = np.nan
            if seed_scores is not None and seeds > 1:
                per_seed = np.mean([seed_scores[(task, measure)][score][:seeds] for task in tasks], axis=0)
                seed_std = float(np.std(per_seed, ddof=1))
            rows.append({"score": score, "measure": measure, "tasks": len(tasks), "seeds": seeds,
                         "seed_std": seed_std, "low": low, "high": high})
        if score in PAIRED_SCORES and means:
            best = max(means, key=lambda m: mean_score[m])
            paired += [{"task": "mean", "score": score, "measure": m, "best": best,
                        "wins": paired_win_fraction(means[m], means[best])} for m in means]
    return pd.DataFrame(rows, columns=["score", "measure", "tasks", "seeds", "seed_std", "low", "high"]), paired


