"""The files the harness writes from what it computed: each run label's ``.predict`` file and its
companion, ``score``'s report files, ``compare``'s tables, pages and figures and ``select``'s.

Everything here is computed elsewhere (``report``, ``compare``, ``render``, ``figures``); this
module, with ``predictions`` for the ``.predict`` files, only decides the names and writes (the
figures are saved by ``figures`` at the paths named here). The harness's other writers are the
cache (``cache``, driven by the runner), the task generator (``taskgen``) and the experiments.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .compare import Comparison
from .predictions import provenance_path, write_predictions, write_provenance
from .render import comparison_markdown, summary_markdown
from .report import TaskReport, report_frame, report_json
from .selection import Selection, psi_per_axis
from .task_run import TaskRun


def write_run_files(run: TaskRun, label: str, out_dir: str | Path, *, partial: bool = False) -> Path | None:
    """One run label's ``<task>.predict`` and ``<task>.predict.json`` in ``out_dir``; the ``.predict`` path.

    A task whose every model has a value is written as ``<task>.predict`` (models left unmeasured
    by the time budget as the kit writes them, ``"EXCEEDED"``). A task with a failed model gets no
    ``.predict`` (None is returned), unless ``partial``, which writes ``<task>.partial.predict`` (a
    name the kit's scorer does not read). The companion JSON always says what made the values,
    how many were recomputed and which models failed, and why.
    """
    task, out_dir = run.task, Path(out_dir)
    complete = predictions = None
    if not run.failures.get(label):
        complete = predictions = write_predictions(task, run.predictions(label), out_dir)
    elif partial and run.results.get(label):
        values = {model_id: result.value for model_id, result in run.results[label].items()}
        predictions = write_predictions(task, values, out_dir, partial=True)
    write_provenance(provenance_path(out_dir, task.name), run, label, predictions)
    return complete


def write_report(reports: list[TaskReport], out_dir: str | Path, report_path: str | Path | None = None
                 ) -> pd.DataFrame:
    """Write ``report.csv`` and ``report.json`` into ``out_dir`` (and ``report_path`` if given)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = report_frame(reports)
    frame.to_csv(out_dir / "report.csv", index=False)
    write_report_json(reports, out_dir / "report.json")
    if report_path is not None:
        write_report_json(reports, report_path)
    return frame


def write_report_json(reports: list[TaskReport], path: str | Path) -> None:
    """``report_json`` of ``reports`` into ``path`` (its folder made if needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report_json(reports), indent=2, sort_keys=True) + "\n")


def write_comparison(comparison: Comparison, out_dir: str | Path, *, figures: bool = True,
                     partial: bool = False) -> list[Path]:
    """Every run label's ``.predict`` files (in ``<out_dir>/<label>/``), ``comparison.{csv,md}``,
    with a bootstrap ``paired.csv`` and ``mean_intervals.csv`` (and ``summary.md`` over several
    tasks), and with ``figures`` one figure per task and one over tasks. Returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for task, run in comparison.task_runs.items():
        for label in run.results:
            path = write_run_files(run, label, out_dir / label, partial=partial)
            if path is not None:
                written.append(path)
    frame, paired, mean_interval = comparison.frame, comparison.paired, comparison.mean_interval
    frame.to_csv(out_dir / "comparison.csv", index=False)
    (out_dir / "comparison.md").write_text(comparison_markdown(frame, paired, mean_interval))
    written += [out_dir / "comparison.csv", out_dir / "comparison.md"]
    if mean_interval is not None and frame["task"].nunique() > 1:
        (out_dir / "summary.md").write_text(summary_markdown(frame, mean_interval, paired))
        written.append(out_dir / "summary.md")
    if mean_interval is not None:
        paired.to_csv(out_dir / "paired.csv", index=False)
        mean_interval.to_csv(out_dir / "mean_intervals.csv", index=False)
        written += [out_dir / "paired.csv", out_dir / "mean_intervals.csv"]
    if figures:
        from .figures import plot_over_tasks, plot_task
        for task in comparison.task_runs:
            complete = comparison.complete_runs(task)
            if complete:
                written.append(plot_task(task, complete, frame, out_dir / "figures" / f"{task.name}.png"))
        if mean_interval is not None and len(mean_interval) and frame["task"].nunique() > 1:
            written.append(plot_over_tasks(frame, mean_interval, out_dir / "figures" / "over_tasks.png"))
    return written


def write_selection(selection: Selection, text: str, out_dir: str | Path) -> list[Path]:
    """``selection.md`` (``text``, from ``selection.selection_markdown``), ``selection_tasks.csv`` (the
    held-out tasks), ``selection_summary.csv`` (the means) and ``selection_axes.csv`` (the granulated
    tau psi of every axis of every task for every measure: one row per task and axis, one column
    per measure; ``selection.md`` shows some of the measures) in ``out_dir``; the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "selection.md", out_dir / "selection_tasks.csv", out_dir / "selection_summary.csv",
             out_dir / "selection_axes.csv"]
    paths[0].write_text(text)
    selection.held_out.to_csv(paths[1], index=False)
    selection.summary.to_csv(paths[2], index=False)
    psi_per_axis(selection.axes, list(selection.summary["measure"])).to_csv(paths[3])
    return paths
