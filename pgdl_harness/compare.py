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

from .report import TaskReport, report_run, report_runs, reports_table
from .task_run import TaskRun
from .scoring import SCORE_NAMES
from .tasks import Task
from .uncertainty import DEFAULT_SEED, chance_levels, paired_win_fraction, score_interval

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
        by_measure: dict[str, list[str]] = {}
        for label in run.results:
            by_measure.setdefault(labels[label].measure, []).append(label)
        # A measure incomplete for any seed is incomplete: reported after the complete ones.
        complete = {m: runs for m, runs in by_measure.items() if all(run.complete(label) for label in runs)}
        incomplete = [report_run(run, next(label for label in runs if not run.complete(label)), measure=m)
                      for m, runs in by_measure.items() if m not in complete]
        chance = chance_levels(task.model_specs(), null, seed, source=str(task.model_configs_path)) \
            if null and complete else None
        task_reports = {}
        for measure, runs in complete.items():
            report = report_runs(run, runs, measure=measure, null=null, bootstrap=bootstrap, seed=seed, chance=chance)
            seed_scores[(task.name, measure)] = report.per_seed
            distributions[(task.name, measure)] = report.resamples
            task_reports[measure] = report
        reports.extend(task_reports.values())
        reports.extend(incomplete)
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


