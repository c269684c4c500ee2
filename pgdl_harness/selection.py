"""Choosing a measure on some tasks and reporting it on the others: leave one family out.

A default chosen on the same tasks that report its score is flattered by the choice. Here the
tasks are split by model family: for each family in turn, the candidate with the best mean CMI
over the tasks of the *other* families is chosen, and its scores are read on the held-out
family's tasks only. Put together over the folds, every task is scored by a measure that was
chosen without it: that is the selection rule's score on tasks it was not chosen on, to be
compared with any fixed measure on the same tasks.

The protocol's functions (``leave_one_family_out``, ``chosen_on_all``, ``held_out_summary``,
``selection_markdown``) are pure: scores and bootstrap distributions in, tables out. ``run_selection``
and ``task_family`` read files: a ``compare`` run's ``.predict`` files, the tasks'
``model_configs.json`` and ``generation_log.json``. Nothing here writes (``outputs.write_selection``
does).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import HarnessError
from .predictions import predictions_path, read_predictions
from .report import task_report
from .scoring import SCORE_DEFINITIONS
from .tasks import Task
from .uncertainty import DEFAULT_DRAWS, DEFAULT_SEED, chance_levels, paired_win_fraction, score_interval

SELECTION_SCORE = "cmi"
REPORTED_SCORES = ("cmi", "kendall_tau")


@dataclasses.dataclass(frozen=True)
class Fold:
    """One fold: the family held out, the candidate chosen without it, and the means it was chosen by."""

    held_out: str
    tasks: tuple[str, ...]  # the held-out family's tasks
    chosen: str
    selection_means: Mapping[str, float]  # candidate -> mean CMI over the other families' tasks


def leave_one_family_out(scores: pd.DataFrame, families: Mapping[str, str], candidates: Sequence[str]) -> list[Fold]:
    """The candidate chosen for each held-out family: the best mean score over the other families' tasks.

    Parameters
    ----------
    scores : DataFrame, measures x tasks
        The selection score (CMI x100) of each measure on each task.
    families : mapping of task to family
        Every task of ``scores``; at least two families.
    candidates : measures to choose among (rows of ``scores``). A tie goes to the earlier one.
    """
    missing = [c for c in candidates if c not in scores.index]
    if missing:
        raise HarnessError(f"no scores for candidate(s) {', '.join(missing)}")
    unknown = [t for t in scores.columns if t not in families]
    if unknown:
        raise HarnessError(f"no family for task(s) {', '.join(unknown)}")
    by_family: dict[str, list[str]] = {}
    for task in scores.columns:
        by_family.setdefault(families[task], []).append(task)
    if len(by_family) < 2:
        raise HarnessError(f"leaving one family out needs two families or more, the tasks have {sorted(by_family)}")
    folds = []
    for family, held_out in sorted(by_family.items()):
        others = [t for t in scores.columns if families[t] != family]
        means = {c: float(scores.loc[c, others].mean()) for c in candidates}
        chosen = max(candidates, key=lambda c: (means[c], -candidates.index(c)))
        folds.append(Fold(family, tuple(held_out), chosen, means))
    return folds


def chosen_on_all(scores: pd.DataFrame, candidates: Sequence[str]) -> str:
    """The candidate with the best mean score over every task (a tie goes to the earlier one)."""
    means = scores.loc[list(candidates)].mean(axis=1)
    return max(candidates, key=lambda c: (means[c], -candidates.index(c)))


@dataclasses.dataclass(frozen=True)
class Selection:
    """The outcome of the protocol on a set of tasks (see ``run_selection``)."""

    folds: list[Fold]
    held_out: pd.DataFrame  # one row per task: family, chosen, its scores, the reference's, chance
    summary: pd.DataFrame  # one row per measure (the rule, then fixed measures): held-out means
    chosen_on_all: str
    axes: pd.DataFrame  # one row per (task, axis, measure): the granulated tau psi of that axis


def held_out_summary(folds: Sequence[Fold], scores: Mapping[str, pd.DataFrame],
                     distributions: Mapping[tuple[str, str], Mapping[str, np.ndarray]],
                     fixed: Sequence[str], reference: str) -> pd.DataFrame:
    """Mean scores over every task of the selection rule (each task scored by its fold's choice)
    and of each fixed measure, with centred 95% intervals and the paired win fraction against
    ``reference`` (the fraction of the same resamples in which the mean beats the reference's).

    ``scores`` maps a score name to a measures x tasks frame; ``distributions`` maps (task,
    measure) to that measure's bootstrap scores on the task (the same resamples for every measure).
    """
    assignment = {task: fold.chosen for fold in folds for task in fold.tasks}
    tasks = list(assignment)
    # The reference's mean over tasks, resample by resample: the same for every row.
    reference_resampled = {score: np.mean([distributions[(t, reference)][score] for t in tasks], axis=0)
                           for score in REPORTED_SCORES}
    rows = []
    rules = [("leave-one-family-out choice", assignment)] + [(m, {t: m for t in tasks}) for m in fixed]
    for label, measure_of in rules:
        row = {"measure": label}
        for score in REPORTED_SCORES:
            values = [scores[score].loc[measure_of[t], t] for t in tasks]
            mean = float(np.mean(values))
            resampled = np.mean([distributions[(t, measure_of[t])][score] for t in tasks], axis=0)
            low, high = score_interval(score, resampled, mean)
            row[score] = mean
            row[f"{score}_low"], row[f"{score}_high"] = low, high
            row[f"{score}_vs_{reference}"] = paired_win_fraction(resampled, reference_resampled[score])
        rows.append(row)
    return pd.DataFrame(rows)


class UnknownFamilyError(HarnessError):
    """A task's model family is neither given nor readable from its ``generation_log.json``;
    ``task`` is the task's name (``run_selection`` takes its family in ``families``)."""

    def __init__(self, message: str, task: str):
        super().__init__(message, task)  # both in args, so that a copy (pickle) is made the same way
        self.message, self.task = message, task

    def __str__(self) -> str:
        return self.message


def task_family(task: Task) -> str:
    """A generated task's model family, from its ``generation_log.json``; ``UnknownFamilyError`` if unreadable."""
    log = task.folder / "generation_log.json"
    try:
        return json.loads(log.read_text())["spec"]["family"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UnknownFamilyError(f"{log}: cannot read the task's family ({error})", task.name) from None


def run_selection(tasks: Sequence[Task], results_dir: Path, candidates: Sequence[str], fixed: Sequence[str], *,
                  reference: str, families: Mapping[str, str] | None = None, bootstrap: int = DEFAULT_DRAWS,
                  null: int = DEFAULT_DRAWS, seed: int = DEFAULT_SEED) -> Selection:
    """The protocol on ``tasks`` from a ``compare`` run's predictions in ``results_dir/<measure>/<task>.predict``.

    ``candidates`` are chosen among by mean CMI (leave one family out); ``fixed`` measures are
    reported on the same tasks without any choice; ``reference`` (a candidate or fixed measure,
    usually the current default) is what the paired columns compare with. ``families``: a task's
    family by task name; a task not in it is read with ``task_family``.
    """
    families = {task.name: (families or {}).get(task.name) or task_family(task) for task in tasks}
    measures = list(dict.fromkeys([*candidates, *fixed, reference]))
    per_score: dict[str, dict[str, dict[str, float]]] = {s: {} for s in REPORTED_SCORES}
    distributions, reports, axes = {}, {}, []
    for task in tasks:
        chance = chance_levels(task.model_specs(), null, seed, source=str(task.model_configs_path)) if null else None
        for measure in measures:
            path = predictions_path(results_dir / measure, task.name)
            if not path.is_file():
                raise HarnessError(f"{path}: no predictions of {measure} on {task.name}; run compare first")
            report = task_report(task, measure, [read_predictions(path)], null=null, bootstrap=bootstrap, seed=seed,
                                 chance=chance)
            if report.kendall_tau is None:
                raise HarnessError(f"{path}: {measure} on {task.name} {report.note}")
            reports[(task.name, measure)] = report
            for name in REPORTED_SCORES:
                per_score[name].setdefault(measure, {})[task.name] = getattr(report, name)
            axes += [{"task": task.name, "family": families[task.name], "axis": axis, "measure": measure, "psi": psi}
                     for axis, psi in report.psi.items()]
            distributions[(task.name, measure)] = {score: resamples[0] for score, resamples in report.resamples.items()}
    scores = {name: pd.DataFrame(table).T for name, table in per_score.items()}  # measures x tasks
    folds = leave_one_family_out(scores[SELECTION_SCORE], families, list(candidates))
    rows = []
    for fold in folds:
        for task in fold.tasks:
            chosen = reports[(task, fold.chosen)]
            rows.append({"task": task, "family": fold.held_out, "chosen": fold.chosen,
                         "cmi": scores["cmi"].loc[fold.chosen, task],
                         "kendall_tau": scores["kendall_tau"].loc[fold.chosen, task],
                         f"{reference} cmi": scores["cmi"].loc[reference, task],
                         f"{reference} kendall_tau": scores["kendall_tau"].loc[reference, task],
                         **{f"{name}_chance_p95": chosen.chance[name]["p95"] if name in chosen.chance else float("nan")
                            for name in REPORTED_SCORES},
                         "within chance": ", ".join(SCORE_DEFINITIONS[name].short for name in chosen.within_chance)})
    held_out = pd.DataFrame(rows)
    summary = held_out_summary(folds, scores, distributions, list(dict.fromkeys([reference, *fixed, *candidates])),
                               reference)
    return Selection(folds, held_out, summary, chosen_on_all(scores[SELECTION_SCORE], list(candidates)),
                     pd.DataFrame(axes, columns=["task", "family", "axis", "measure", "psi"]))


def psi_per_axis(axes: pd.DataFrame, measures: list[str]) -> pd.DataFrame:
    """``Selection.axes`` as a table: one row per task, family and axis, one column per measure of
    ``measures`` that has a psi (in that order)."""
    table = axes[axes["measure"].isin(measures)].pivot_table(index=["task", "family", "axis"], columns="measure",
                                                             values="psi", sort=False)
    return table[[m for m in measures if m in table.columns]]


def selection_markdown(selection: Selection, reference: str) -> str:
    """The folds, the held-out tasks and the summary as markdown."""
    cmi_digits = SCORE_DEFINITIONS[SELECTION_SCORE].digits
    folds = pd.DataFrame([{"held-out family": f.held_out, "held-out tasks": ", ".join(f.tasks), "chosen": f.chosen,
                           "its mean CMI on the other families": f"{f.selection_means[f.chosen]:.{cmi_digits}f}",
                           f"{reference} there": f"{f.selection_means.get(reference, float('nan')):.{cmi_digits}f}"}
                          for f in selection.folds])
    held = selection.held_out
    summary = selection.summary.copy()
    table = pd.DataFrame({"measure": summary["measure"]})
    for score in (SCORE_DEFINITIONS[name] for name in REPORTED_SCORES):
        name, digits = score.name, score.digits
        table[f"{score.title} [95%]"] = [f"{r[name]:.{digits}f} [{r[f'{name}_low']:.{digits}f}, "
                                          f"{r[f'{name}_high']:.{digits}f}]" for _, r in summary.iterrows()]
    for score in (SCORE_DEFINITIONS[name] for name in REPORTED_SCORES):
        table[f"{score.short} vs {reference} (paired)"] = [
            f"{v:.2f}" for v in summary[f"{score.name}_vs_{reference}"]]
    # Per axis: the reference, the choices, and the three other measures with the best mean CMI.
    shown = list(dict.fromkeys([reference, selection.chosen_on_all, *(f.chosen for f in selection.folds)]))
    ranked = summary.iloc[1:].sort_values("cmi", ascending=False)["measure"]
    best_fixed = [m for m in ranked if m not in shown][:3]
    per_axis = psi_per_axis(selection.axes, shown + best_fixed).droplevel("family")
    return "\n\n".join([
        "**Folds** (each family held out in turn; the candidate with the best mean CMI on the other families' "
        "tasks is chosen)\n\n" + folds.to_markdown(index=False),
        "**Held-out tasks** (each scored by the measure its fold chose)\n\n"
        + held.to_markdown(index=False, floatfmt=".3f"),
        f"**Means over the {len(held)} tasks**: the rule (each task scored by the choice made without its family) and "
        f"each measure as it is; `[a, b]`: 95% bootstrap interval, centred; paired: fraction of the same resamples "
        f"in which the mean beats {reference}'s (0.50: as good)\n\n" + table.to_markdown(index=False),
        f"**Chosen on all tasks**: {selection.chosen_on_all}",
        "**Granulated tau per axis** (psi of each hyperparameter: the mean tau among models that differ in it "
        "alone; negative: the measure ranks that axis backwards)\n\n" + per_axis.to_markdown(floatfmt=".2f"),
    ]) + "\n"
