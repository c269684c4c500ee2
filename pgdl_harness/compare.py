"""Comparing measures side by side: every measure once per model, one table, one figure per task.

Each model is loaded once and the task's data read once for all the measures (see
``runner.run_measures``); values are cached per measure, so adding a measure to a finished
comparison computes only that measure.

Every score comes with its context (``pgdl_harness.uncertainty``): a measure that samples (pairs,
examples, mixup partners) can be run with several seeds (:func:`seeded_measures`; its score is then
the mean over seeds, with their spread), each score gets a centred 95% bootstrap interval over the task's
models (and the seeds), the task's chance level (random measures) and, against the best measure
of the task, the fraction of the same resamples in which it wins.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .report import TaskReport, add_chance, report_task_run, reports_table, score_predictions
from .runner import TaskRun
from .scoring import SCORES as SCORE_TABLE
from .tasks import Task
from .uncertainty import (DEFAULT_SEED, bootstrap_scores, chance_levels, paired_win_fraction, score_interval,
                          seed_summary)

# (name, title) of each score, from the one table in scoring.
SCORES = tuple((score.name, score.title) for score in SCORE_TABLE)
DIGITS = {score.name: score.digits for score in SCORE_TABLE}
# Scores on which each measure is compared with the best one in the same resamples.
PAIRED_SCORES = ("cmi", "kendall_tau")
# What separates a measure's name from its seed in a run label (and a cache file name).
SEED_MARK = "#seed="


def measure_of(label: str) -> str:
    """The measure name of a run label (``"fragmentation#seed=2"`` -> ``"fragmentation"``)."""
    return label.split(SEED_MARK, 1)[0]


def seeded_measures(measures: dict, n_seeds: int) -> dict:
    """Each measure that samples (``Measure.samples``) once per seed 0..n_seeds-1, by run label.

    Measures that do not sample, and every measure when ``n_seeds`` is 1, are run once as they
    are. The measure's own (default) seed, 0 for every registered measure, keeps the plain name,
    so its cached values are reused; seed k is labelled ``<name>#seed=k`` and cached apart.
    """
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be at least 1, got {n_seeds}")
    labelled = {}
    for name, measure in measures.items():
        if n_seeds == 1 or not getattr(measure, "samples", False):
            labelled[name] = measure
            continue
        default_seed = measure.parameters.get("seed")
        for seed in range(n_seeds):
            label = name if seed == default_seed else f"{name}{SEED_MARK}{seed}"
            labelled[label] = measure.with_params(seed=seed)
    return labelled


def score_table(frame: pd.DataFrame, score: str) -> pd.DataFrame:
    """Measures x tasks for one score, with a ``mean`` column over tasks; best measure first by mean."""
    table = frame.pivot(index="measure", columns="task", values=score).astype(float)
    table["mean"] = table.mean(axis=1)
    return table.sort_values("mean", ascending=False)


def comparison_markdown(frame: pd.DataFrame, paired: pd.DataFrame | None = None,
                        mean_interval: pd.DataFrame | None = None) -> str:
    """Per score a markdown table (measures x tasks + mean) of value, spread and interval, the
    chance level of each task, the paired comparison with the best measure, then seconds per model.

    ``paired`` and ``mean_interval`` are the long tables of :func:`write_comparison`.
    """
    sections = []
    n_seeds = int(frame["seeds"].max()) if "seeds" in frame and frame["seeds"].notna().any() else 1
    for score, title in SCORES:
        table = score_table(frame, score)
        digits = DIGITS[score]
        shown = _cells(frame, score, table, digits, mean_interval)
        chance = _chance_row(frame, score, table.columns, digits)
        if chance is not None:
            shown.loc["*chance: random measure, mean / 95th pct*"] = chance
        sections.append(f"**{title}** (higher is better)\n\n{_markdown(shown)}")
    legend = ["value: the score (the mean over seeds for a measure run with several seeds)"]
    if n_seeds > 1:
        legend.append(f"`± s`: standard deviation over the {n_seeds} seeds of a measure that samples (in the "
                      "mean column: of the mean over tasks taken seed by seed)")
    if frame.get("cmi_low") is not None and frame["cmi_low"].notna().any():
        legend.append("`[a, b]`: 95% bootstrap interval over the task's models (resampled with replacement)"
                      + (" and the seeds" if n_seeds > 1 else "") + ", centred on the score (docs/uncertainty.md)")
    if frame.get("cmi_chance_p95") is not None and frame["cmi_chance_p95"].notna().any():
        legend.append("`°`: within chance, not above the 95th percentile of random measures' scores on the task")
    sections.insert(0, "; ".join(legend) + ".")
    if paired is not None and len(paired):
        for score in PAIRED_SCORES:
            wins = paired[paired["score"] == score].pivot(index="measure", columns="task", values="wins")
            order = [m for m in score_table(frame, score).index if m in wins.index]
            columns = [c for c in score_table(frame, score).columns if c in wins.columns]
            wins = wins.loc[order, columns]
            best = paired[paired["score"] == score].groupby("task")["best"].first()
            text = wins.apply(lambda column: [_win_cell(v, m == best.get(column.name))
                                              for m, v in zip(column.index, column)])
            title = dict(SCORES)[score]
            sections.append(f"**{title}, paired with the best measure**: fraction of the same bootstrap resamples "
                            "(x pairs of seeds) in which the measure scores higher than the task's best (0.50: as "
                            f"good; below 0.05 or so: reliably worse)\n\n{_markdown(text)}")
    seconds = frame.pivot(index="measure", columns="task", values="seconds_per_model").astype(float)
    sections.append(f"**seconds per model** (loading included)\n\n{seconds.to_markdown(floatfmt='.2f')}")
    return "\n\n".join(sections) + "\n"


def summary_markdown(frame: pd.DataFrame, mean_interval: pd.DataFrame, paired: pd.DataFrame) -> str:
    """One row per measure, best mean CMI first: the means over tasks of CMI and tau with their
    seed spread and 95% interval, how often the measure beats the best mean CMI in the paired
    resamples, on how many tasks its CMI is above chance, and its seconds per model."""
    cmi = score_table(frame, "cmi")
    tau = score_table(frame, "kendall_tau")
    intervals = mean_interval.set_index(["score", "measure"])
    wins = paired[(paired["task"] == "mean") & (paired["score"] == "cmi")].set_index("measure")
    rows = []
    for measure in cmi.index:
        cells = {"measure": measure}
        for score, table in (("cmi", cmi), ("kendall_tau", tau)):
            digits = DIGITS[score]
            value = table.loc[measure, "mean"]
            if (score, measure) in intervals.index:
                row = intervals.loc[(score, measure)]
                cells[dict(SCORES)[score]] = _cell(value, row["seed_std"], row["low"], row["high"], False, digits)
            else:
                cells[dict(SCORES)[score]] = "n/a" if pd.isna(value) else f"{value:.{digits}f}"
        best = measure in wins.index and wins.loc[measure, "best"] == measure
        cells["CMI vs best (paired)"] = ("best" if best else f"{wins.loc[measure, 'wins']:.2f}"
                                         if measure in wins.index else "")
        scored = frame[(frame["measure"] == measure) & frame["cmi"].notna()]
        if "within_chance" in scored and scored["cmi_chance_p95"].notna().any():
            above = sum(not (isinstance(w, str) and "cmi" in w.split()) for w in scored["within_chance"])
            cells["CMI above chance"] = f"{above}/{len(scored)}"
        cells["s/model"] = f"{frame[frame['measure'] == measure]['seconds_per_model'].astype(float).mean():.2f}"
        rows.append(cells)
    tasks = frame["task"].nunique()
    seeds = int(mean_interval["seeds"].max()) if len(mean_interval) else 1
    legend = (f"Means over {tasks} tasks, best mean CMI first. `± s`: standard deviation over {seeds} seed(s) of "
              "the mean over tasks (measures that sample); `[a, b]`: 95% bootstrap interval of the mean, centred (each "
              "task's models resampled); \"CMI vs best\": fraction of the same resamples in which the measure's "
              "mean CMI is higher than the best one's (below 0.05: reliably behind); \"CMI above chance\": "
              "tasks where the CMI is above the 95th percentile of random measures; \"s/model\": seconds per model "
              "and seed, loading included.")
    return legend + "\n\n" + pd.DataFrame(rows).set_index("measure").to_markdown(
        colalign=("left",) + ("right",) * (len(rows[0]) - 1), disable_numparse=True) + "\n"


def _markdown(table: pd.DataFrame) -> str:
    """A table of text cells as markdown: measure names left, values right-aligned."""
    return table.to_markdown(colalign=("left",) + ("right",) * len(table.columns))


def _win_cell(value, is_best: bool) -> str:
    if is_best:
        return "best"
    return "" if pd.isna(value) else f"{value:.2f}"


def _cells(frame, score, table, digits, mean_interval) -> pd.DataFrame:
    """The score table as text: ``value ± seed std [low, high]°``."""
    rows = frame.set_index(["measure", "task"])
    shown = pd.DataFrame(index=table.index, columns=table.columns, dtype=object)
    for measure in table.index:
        for task in table.columns:
            value = table.loc[measure, task]
            if pd.isna(value):
                shown.loc[measure, task] = "n/a"
                continue
            if task == "mean":
                row = None if mean_interval is None else mean_interval.loc[
                    (mean_interval["measure"] == measure) & (mean_interval["score"] == score)]
                low, high, spread = (np.nan, np.nan, np.nan) if row is None or not len(row) else (
                    row["low"].iloc[0], row["high"].iloc[0], row["seed_std"].iloc[0])
                shown.loc[measure, task] = _cell(value, spread, low, high, False, digits)
                continue
            row = rows.loc[(measure, task)]
            within = isinstance(row.get("within_chance"), str) and score in row["within_chance"].split()
            shown.loc[measure, task] = _cell(value, row.get(f"{score}_seed_std", np.nan), row.get(f"{score}_low"),
                                             row.get(f"{score}_high"), within, digits)
    return shown


def _cell(value, spread, low, high, within, digits) -> str:
    text = f"{value:.{digits}f}"
    if spread is not None and not pd.isna(spread):
        text += f" ± {spread:.{digits}f}"
    if low is not None and not pd.isna(low):
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text + ("°" if within else "")


def _chance_row(frame, score, columns, digits) -> list[str] | None:
    if f"{score}_chance_mean" not in frame or frame[f"{score}_chance_mean"].isna().all():
        return None
    chance = frame.groupby("task")[[f"{score}_chance_mean", f"{score}_chance_p95"]].first()
    row = []
    for task in columns:
        if task in chance.index and not pd.isna(chance.loc[task].iloc[0]):
            row.append(f"{chance.loc[task].iloc[0]:.{digits}f} / {chance.loc[task].iloc[1]:.{digits}f}")
        elif task == "mean" and len(chance):
            means = chance.mean()
            row.append(f"{means.iloc[0]:.{digits}f} / –")
        else:
            row.append("")
    return row


def write_comparison(task_runs: dict[Task, TaskRun], out_dir: str | Path, *, figures: bool = True,
                     partial: bool = False, null: int = 0, bootstrap: int = 0, seed: int = DEFAULT_SEED
                     ) -> tuple[list[TaskReport], pd.DataFrame, list[Path]]:
    """Score every (task, measure), write predictions, ``comparison.{csv,md}`` and figures.

    ``task_runs`` maps each task to what ``run_measures`` computed on it, keyed by run label
    (:func:`seeded_measures`: a measure run with several seeds has one label per seed, and one
    report whose scores are the means over its seeds). Each label gets its ``.predict`` and
    companion JSON (``report.report_task_run``); a measure that failed on some model of a task is
    incomplete there: its row has no scores and its note says why. ``null`` random measures per
    task give the chance levels, ``bootstrap`` resamples per task the intervals and the paired
    comparison with the best measure (0 skips either). The paired comparison goes to ``paired.csv``.
    Returns the reports, the long table and the paths of the files written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reports, written, distributions, paired_rows, seed_scores = [], [], {}, [], {}
    for task, run in task_runs.items():
        by_measure: dict[str, dict[str, dict]] = {}
        incomplete: dict[str, TaskReport] = {}
        provenance: dict[str, TaskReport] = {}
        for label, results in run.results.items():
            label_report = report_task_run(run, label, out_dir / label, partial=partial)
            measure = measure_of(label)
            provenance.setdefault(measure, label_report)
            if run.complete(label):
                written.append(out_dir / label / f"{task.name}.predict")
                by_measure.setdefault(measure, {})[label] = results
            elif measure not in incomplete:
                label_report.measure = measure
                incomplete[measure] = label_report
        for measure in incomplete:  # a measure incomplete for any seed is incomplete
            by_measure.pop(measure, None)
        chance = chance_levels(task.model_specs(), null, seed) if null and by_measure else None
        task_reports = {}
        for measure, runs in by_measure.items():
            report, dists, per_seed = _report_over_seeds(task, measure, runs, bootstrap, seed)
            seed_scores[(task.name, measure)] = per_seed
            if chance is not None and report.kendall_tau is not None:
                add_chance(report, chance)
            report.parameters = provenance[measure].parameters
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
    frame.to_csv(out_dir / "comparison.csv", index=False)
    (out_dir / "comparison.md").write_text(comparison_markdown(frame, paired, mean_interval))
    written += [out_dir / "comparison.csv", out_dir / "comparison.md"]
    if mean_interval is not None and frame["task"].nunique() > 1:
        (out_dir / "summary.md").write_text(summary_markdown(frame, mean_interval, paired))
        written.append(out_dir / "summary.md")
    if bootstrap:
        paired.to_csv(out_dir / "paired.csv", index=False)
        mean_interval.to_csv(out_dir / "mean_intervals.csv", index=False)
        written += [out_dir / "paired.csv", out_dir / "mean_intervals.csv"]
    if figures:
        for task, run in task_runs.items():
            complete = {name: results for name, results in run.results.items() if run.complete(name)}
            if complete:
                written.append(plot_task(task, complete, frame, out_dir / "figures"))
        if mean_interval is not None and len(mean_interval) and frame["task"].nunique() > 1:
            written.append(plot_over_tasks(frame, mean_interval, out_dir / "figures" / "over_tasks.png"))
    return reports, frame, written


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
        for score, _ in SCORES:
            values = [getattr(r, score) for r in per_seed]
            if any(value is None for value in values):
                continue
            summary = seed_summary(values)
            setattr(report, score, summary["mean"])
            report.seeds[score] = summary
        report.psi = {name: float(np.mean([r.psi[name] for r in per_seed])) for name in first.psi}
    dists = {score: np.stack(rows) for score, rows in dists.items()}
    report.interval = {score: score_interval(score, dists[score], getattr(report, score))
                       for score, _ in SCORES if score in dists}
    per_seed_scores = {score: [getattr(r, score) for r in per_seed] for score, _ in SCORES
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
    for score, _ in SCORES:
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


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("figures need matplotlib: pip install -e '.[plots]' (or pass --no-figures)") from None
    return plt


def plot_over_tasks(frame: pd.DataFrame, mean_interval: pd.DataFrame, path: Path) -> Path:
    """``path``: per score (CMI, tau) each measure's mean over tasks with its 95% interval, and its
    score on each task as a small dot, best mean at the top; the dashed line is the mean chance
    level of random measures. The evidence for choosing a measure, in one figure."""
    plt = _pyplot()
    panels = [(score, title) for score, title in SCORES if score in PAIRED_SCORES]
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


def plot_task(task: Task, by_label: dict[str, dict], frame: pd.DataFrame, folder: Path) -> Path:
    """``<folder>/<task>.png``: each measure's value against the generalization gap, a panel each.

    For a measure run with several seeds the point is the mean over seeds and the horizontal bar
    spans the seeds' values (min to max); the title gives the score with its spread, its 95%
    bootstrap interval and the task's chance level.
    """
    plt = _pyplot()
    from .scoring import generalization_gaps

    gaps = generalization_gaps(task.model_specs())
    by_measure: dict[str, list[dict]] = {}
    for label, results in by_label.items():
        by_measure.setdefault(measure_of(label), []).append(results)
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
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task.name}.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _figure_subtitle(row: pd.Series, n_seeds: int) -> str:
    cmi, tau = row["cmi"], row["kendall_tau"]
    if pd.isna(tau):
        return "not scored"
    parts = ["CMI n/a" if pd.isna(cmi) else f"CMI {cmi:.1f}", f"tau {tau:.2f}"]
    for i, score in enumerate(("cmi", "kendall_tau")):
        if pd.isna(row[score]):
            continue
        digits = 1 if score == "cmi" else 2
        if n_seeds > 1 and not pd.isna(row.get(f"{score}_seed_std")):
            parts[i] += f"±{row[f'{score}_seed_std']:.{digits}f}"
        if not pd.isna(row.get(f"{score}_low")):
            parts[i] += f" [{row[f'{score}_low']:.{digits}f}, {row[f'{score}_high']:.{digits}f}]"
    text = ", ".join(parts)
    if not pd.isna(row.get("cmi_chance_p95")):
        text += f"\nchance CMI {row['cmi_chance_mean']:.1f} (95th {row['cmi_chance_p95']:.1f})"
    return text
