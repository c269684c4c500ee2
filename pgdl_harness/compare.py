"""Comparing measures side by side: every measure once per model, one table, one figure per task.

Each model is loaded once and the task's data read once for all the measures (see
``runner.run_measures``); values are cached per measure, so adding a measure to a finished
comparison computes only that measure.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .report import TaskReport, report_task_run, reports_table
from .runner import TaskRun
from .tasks import Task

SCORES = (("cmi", "CMI x100"), ("kendall_tau", "Kendall's tau"), ("granulated_kendall_tau", "granulated tau (psi)"))


def score_table(frame: pd.DataFrame, score: str) -> pd.DataFrame:
    """Measures x tasks for one score, with a ``mean`` column over tasks; best measure first by mean."""
    table = frame.pivot(index="measure", columns="task", values=score).astype(float)
    table["mean"] = table.mean(axis=1)
    return table.sort_values("mean", ascending=False)


def comparison_markdown(frame: pd.DataFrame) -> str:
    """One markdown table per score (measures x tasks + mean), then seconds per model."""
    sections = []
    for score, title in SCORES:
        table = score_table(frame, score)
        digits = 2 if score == "cmi" else 3
        sections.append(f"**{title}** (higher is better)\n\n{table.to_markdown(floatfmt=f'.{digits}f')}")
    seconds = frame.pivot(index="measure", columns="task", values="seconds_per_model").astype(float)
    sections.append(f"**seconds per model** (loading included)\n\n{seconds.to_markdown(floatfmt='.2f')}")
    return "\n\n".join(sections) + "\n"


def write_comparison(task_runs: dict[Task, TaskRun], out_dir: str | Path, *, figures: bool = True,
                     partial: bool = False) -> tuple[list[TaskReport], pd.DataFrame, list[Path]]:
    """Score every (task, measure), write predictions, ``comparison.{csv,md}`` and figures.

    ``task_runs`` maps each task to what ``run_measures`` computed on it; a measure that failed on
    some model of a task is incomplete there: its row has no scores and its note says why.
    Returns the reports, the long table and the paths of the files written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reports, written = [], []
    for task, run in task_runs.items():
        for measure in run.results:
            reports.append(report_task_run(run, measure, out_dir / measure, partial=partial))
            if run.complete(measure):
                written.append(out_dir / measure / f"{task.name}.predict")
    frame = reports_table(reports)
    frame.to_csv(out_dir / "comparison.csv", index=False)
    (out_dir / "comparison.md").write_text(comparison_markdown(frame))
    written += [out_dir / "comparison.csv", out_dir / "comparison.md"]
    if figures:
        for task, run in task_runs.items():
            complete = {name: results for name, results in run.results.items() if run.complete(name)}
            if complete:
                written.append(plot_task(task, complete, frame, out_dir / "figures"))
    return reports, frame, written


def plot_task(task: Task, by_measure: dict[str, dict], frame: pd.DataFrame, folder: Path) -> Path:
    """``<folder>/<task>.png``: each measure's value against the generalization gap, a panel each."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("figures need matplotlib: pip install -e '.[plots]' (or pass --no-figures)") from None
    from .scoring import generalization_gaps

    gaps = generalization_gaps(task.model_specs())
    names = list(by_measure)
    columns = min(4, len(names))
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.8 * rows), squeeze=False)
    scores = frame[frame["task"] == task.name].set_index("measure")
    for axis, name in zip(axes.flat, names):
        results = by_measure[name]
        axis.scatter([results[m].value for m in results], [gaps[m] for m in results], s=14)
        cmi = scores.loc[name, "cmi"]
        tau = scores.loc[name, "kendall_tau"]
        subtitle = "CMI n/a" if pd.isna(cmi) else f"CMI {cmi:.1f}, tau {tau:.2f}"
        axis.set_title(f"{name}\n{subtitle}", fontsize=8)
        axis.set_xlabel("measure", fontsize=7)
        axis.set_ylabel("gap", fontsize=7)
        axis.tick_params(labelsize=6)
    for axis in list(axes.flat)[len(names):]:
        axis.axis("off")
    figure.suptitle(f"{task.name}: measure vs generalization gap ({len(gaps)} models)", fontsize=10)
    figure.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task.name}.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
