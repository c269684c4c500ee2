"""Reports and comparisons as text: the plain table ``score`` and ``evaluate`` print, and the
markdown pages of ``compare`` (``comparison.md``, ``summary.md``). Pure: tables in, text out."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .compare import PAIRED_SCORES, score_table
from .report import UNCERTAINTY_COLUMNS
from .scoring import SCORE_DEFINITIONS, SCORES


def format_table(frame: pd.DataFrame) -> str:
    """The report as a plain-text table: each score to its ``table_digits``, seconds to 2."""
    shown = frame.copy()
    for score in SCORES:
        shown[score.name] = shown[score.name].map(
            lambda v, digits=score.table_digits: "undefined" if _missing(v) else f"{v:.{digits}f}")
    shown["seconds_per_model"] = shown["seconds_per_model"].map(lambda v: "" if _missing(v) else f"{v:.2f}")
    shown = _shown_uncertainty(shown)
    shown = shown.rename(columns={score.name: score.column for score in SCORES} | {"seconds_per_model": "s/model"})
    if not shown["note"].astype(bool).any():
        shown = shown.drop(columns="note")
    if not shown["failed"].astype(bool).any():
        shown = shown.drop(columns="failed")
    return shown.to_string(index=False)


def _shown_uncertainty(shown: pd.DataFrame) -> pd.DataFrame:
    """The uncertainty columns as text: per score ``[low, high]`` and chance ``mean/95th``."""
    columns = [c for c in ("task", "measure", "models") if c in shown]
    for definition in SCORES:
        score, digits = definition.name, definition.context_digits
        columns.append(score)
        if f"{score}_low" in shown and shown[f"{score}_low"].notna().any():
            name = f"{definition.short} 95%"
            shown[name] = [("" if _missing(low) else f"[{low:.{digits}f}, {high:.{digits}f}]")
                           for low, high in zip(shown[f"{score}_low"], shown[f"{score}_high"])]
            columns.append(name)
        if f"{score}_chance_mean" in shown and shown[f"{score}_chance_mean"].notna().any():
            name = f"{definition.short} chance"
            shown[name] = [("" if _missing(mean) else f"{mean:.{digits}f}/{p95:.{digits}f}")
                           for mean, p95 in zip(shown[f"{score}_chance_mean"], shown[f"{score}_chance_p95"])]
            columns.append(name)
    if "within_chance" in shown and shown["within_chance"].fillna("").astype(bool).any():
        shown["within chance"] = shown["within_chance"].fillna("").map(
            lambda names: ", ".join(SCORE_DEFINITIONS[name].short for name in names.split()))
        columns.append("within chance")
    rest = [c for c in shown if c not in columns and c not in UNCERTAINTY_COLUMNS and c != "within_chance"]
    return shown[columns + rest]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def comparison_markdown(frame: pd.DataFrame, paired: pd.DataFrame | None = None,
                        mean_interval: pd.DataFrame | None = None) -> str:
    """Per score a markdown table (measures x tasks + mean) of value, spread and interval, the
    chance level of each task, the paired comparison with the best measure, then seconds per model.

    ``paired`` and ``mean_interval`` are the long tables of a ``compare.Comparison``.
    """
    sections = []
    n_seeds = int(frame["seeds"].max()) if "seeds" in frame and frame["seeds"].notna().any() else 1
    for definition in SCORES:
        score, title, digits = definition.name, definition.title, definition.digits
        table = score_table(frame, score)
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
            title = SCORE_DEFINITIONS[score].title
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
            title, digits = SCORE_DEFINITIONS[score].title, SCORE_DEFINITIONS[score].digits
            value = table.loc[measure, "mean"]
            if (score, measure) in intervals.index:
                row = intervals.loc[(score, measure)]
                cells[title] = _cell(value, row["seed_std"], row["low"], row["high"], False, digits)
            else:
                cells[title] = "n/a" if pd.isna(value) else f"{value:.{digits}f}"
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


