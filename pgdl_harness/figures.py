"""The figures of a comparison: each measure against the gap on one task, and the means over tasks.

Drawn with matplotlib (the ``plots`` extra) and saved as PNG files at the paths ``outputs`` names;
the data come from a ``compare.Comparison``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .compare import PAIRED_SCORES, score_table
from .scoring import SCORE_DEFINITIONS, SCORES, generalization_gaps
from .tasks import Task


def pyplot():
    """matplotlib's ``pyplot`` on the file-only Agg backend; ImportError naming the extra that installs it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("figures need matplotlib: pip install -e '.[plots]'") from None
    return plt


def plot_over_tasks(frame: pd.DataFrame, mean_interval: pd.DataFrame, path: Path) -> Path:
    """``path``: per score (CMI, tau) each measure's mean over tasks with its 95% interval, and its
    score on each task as a small dot, best mean at the top; the dashed line is the mean chance
    level of random measures. The evidence for choosing a measure, in one figure."""
    plt = pyplot()
    panels = [(score.name, score.title) for score in SCORES if score.name in PAIRED_SCORES]
    order = list(score_table(frame, "cmi").index)
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 0.32 * len(order) + 1.4),
                                squeeze=False, sharey=True)
    for axis, (score, title) in zip(axes[0], panels):
        table = score_table(frame, score).reindex(order)
        tasks = [column for column in table.columns if column != "mean"]
        intervals = mean_interval[mean_interval["score"] == score].set_index("measure")
        for row, measure in enumerate(order):
            y = len(order) - 1 - row
            values = table.loc[measure, tasks].astype(float)
            axis.scatter(values, y + np.linspace(-0.22, 0.22, len(tasks)), s=7, color="0.65", zorder=1)
            if measure in intervals.index:
                low, high = intervals.loc[measure, "low"], intervals.loc[measure, "high"]
                axis.plot([low, high], [y, y], color="C0", linewidth=2.2, zorder=2)
            axis.scatter([table.loc[measure, "mean"]], [y], s=26, color="black", zorder=3)
        chance = frame.groupby("task")[f"{score}_chance_mean"].first().astype(float)
        if f"{score}_chance_mean" in frame and chance.notna().any():
            axis.axvline(chance.mean(), color="C3", linestyle="--", linewidth=1, label="chance (mean over tasks)")
            axis.legend(fontsize=7, loc="lower right")
        axis.set_yticks(range(len(order)))
        axis.set_yticklabels(list(reversed(order)), fontsize=7)
        axis.set_xlabel(f"{title}: mean over {len(tasks)} tasks (black), 95% interval (blue), per task (grey)",
                        fontsize=7)
        axis.tick_params(labelsize=7)
        axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_task(task: Task, by_measure: dict[str, list[dict]], frame: pd.DataFrame, path: Path) -> Path:
    """``path``: each measure's value against the generalization gap on ``task``, a panel each.

    ``by_measure``: by measure, the values of each of its seeds (``Comparison.complete_runs``). For
    a measure run with several seeds the point is the mean over seeds and the horizontal bar spans
    the seeds' values (min to max); the title gives the score with its spread, its 95% bootstrap
    interval and the task's chance level.
    """
    plt = pyplot()
    gaps = generalization_gaps(task.model_specs())
    names = list(by_measure)
    columns = min(4, len(names))
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3.0 * rows), squeeze=False)
    scores = frame[frame["task"] == task.name].set_index("measure")
    for axis, name in zip(axes.flat, names):
        models = list(by_measure[name][0])
        values = np.array([[results[m].value for m in models] for results in by_measure[name]])
        y = [gaps[m] for m in models]
        center = values.mean(axis=0)
        if len(values) > 1:
            spread = np.stack([center - values.min(axis=0), values.max(axis=0) - center])
            axis.errorbar(center, y, xerr=spread, fmt="o", markersize=3, elinewidth=0.8, capsize=1.5)
        else:
            axis.scatter(center, y, s=14)
        axis.set_title(f"{name}\n{_figure_subtitle(scores.loc[name], len(values))}", fontsize=7)
        axis.set_xlabel("measure" + (f" (mean, min-max of {len(values)} seeds)" if len(values) > 1 else ""),
                        fontsize=7)
        axis.set_ylabel("gap", fontsize=7)
        axis.tick_params(labelsize=6)
    for axis in list(axes.flat)[len(names):]:
        axis.axis("off")
    figure.suptitle(f"{task.name}: measure vs generalization gap ({len(gaps)} models)", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _figure_subtitle(row: pd.Series, n_seeds: int) -> str:
    if pd.isna(row["kendall_tau"]):
        return "not scored"
    parts = []
    for score in (SCORE_DEFINITIONS[name] for name in ("cmi", "kendall_tau")):
        value, digits = row[score.name], score.context_digits
        if pd.isna(value):
            parts.append(f"{score.short} n/a")
            continue
        part = f"{score.short} {value:.{digits}f}"
        if n_seeds > 1 and not pd.isna(row.get(f"{score.name}_seed_std")):
            part += f"±{row[f'{score.name}_seed_std']:.{digits}f}"
        if not pd.isna(row.get(f"{score.name}_low")):
            part += f" [{row[f'{score.name}_low']:.{digits}f}, {row[f'{score.name}_high']:.{digits}f}]"
        parts.append(part)
    text = ", ".join(parts)
    if not pd.isna(row.get("cmi_chance_p95")):
        digits = SCORE_DEFINITIONS["cmi"].context_digits
        text += f"\nchance CMI {row['cmi_chance_mean']:.{digits}f} (95th {row['cmi_chance_p95']:.{digits}f})"
    return text
