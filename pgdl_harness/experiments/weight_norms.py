"""Experiment 3: is fragmentation more than the weight norm?

Mouton et al. report that fragmentation is not a direct consequence of growing weight norms.
No new training: this reads what the other two experiments measured on the same models
(running them first if their CSVs are missing) and correlates fragmentation with the parameter
norm (sum of squared weights, the registered ``parameter_norm``) in three settings:

- ``sweep``: the final model of every width of the double-descent sweep;
- ``sweep_training``: every measured epoch of every width of the sweep;
- ``convnet_training``: every epoch of the through-training convnet;
- ``conv_sweep`` and ``conv_sweep_training``: the same two for the convolutional width sweep
  (``double_descent_conv``), when it has been run (it is not run for this: it takes half an hour
  a seed).

For each, Pearson's r (with its 95% interval) and Spearman's rho (with p-values, scipy) of
fragmentation against the norm, both against the test (validation) error, and the partial
Spearman correlation of fragmentation with the test error given the norm: if fragmentation were
only the norm in disguise, that partial correlation would be near zero.

Writes ``weight_norms.csv`` (one row per setting and fragmentation variant) and ``weight_norms.png``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import double_descent, through_training

NAME = "weight_norms"


def partial_spearman(x, y, z) -> tuple[float, float]:
    """Spearman correlation of ``x`` and ``y`` with ``z`` partialled out, and its two-sided p-value.

    The first-order partial correlation of the three pairwise Spearman coefficients; its p-value
    from Student's t with ``n - 3`` degrees of freedom.
    """
    rxy, rxz, ryz = (stats.spearmanr(a, b).statistic for a, b in ((x, y), (x, z), (y, z)))
    denominator = math.sqrt(max((1 - rxz ** 2) * (1 - ryz ** 2), 0.0))
    if denominator == 0:
        return float("nan"), float("nan")
    r = (rxy - rxz * ryz) / denominator
    dof = len(x) - 3
    if dof < 1 or abs(r) >= 1:
        return float(r), float("nan")
    t = r * math.sqrt(dof / (1 - r ** 2))
    return float(r), float(2 * stats.t.sf(abs(t), dof))


def correlations(frame: pd.DataFrame, measure: str, error: str = "test_error") -> dict:
    """Correlations of ``measure`` with ``parameter_norm`` and ``error`` over the rows of ``frame``."""
    frame = frame.dropna(subset=[measure, "parameter_norm", error])
    x, norm, err = frame[measure].to_numpy(), frame["parameter_norm"].to_numpy(), frame[error].to_numpy()
    row = {"measure": measure, "n": len(frame)}
    if len(frame) < 4 or np.ptp(x) == 0:
        return row
    pearson = stats.pearsonr(x, norm)
    interval = pearson.confidence_interval(0.95)
    spearman = stats.spearmanr(x, norm)
    partial, partial_p = partial_spearman(x, err, norm)
    row.update({
        "pearson_with_norm": pearson.statistic, "pearson_with_norm_low": interval.low,
        "pearson_with_norm_high": interval.high, "pearson_with_norm_p": pearson.pvalue,
        "spearman_with_norm": spearman.statistic, "spearman_with_norm_p": spearman.pvalue,
        "spearman_with_error": stats.spearmanr(x, err).statistic,
        "spearman_norm_with_error": stats.spearmanr(norm, err).statistic,
        "partial_spearman_with_error_given_norm": partial, "partial_spearman_p": partial_p,
    })
    return row


def _inputs(root: Path, quick: bool, log) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The other experiments' tables under ``root``, running an experiment whose CSV is missing."""
    tt_csv = root / through_training.NAME / f"{through_training.NAME}.csv"
    dd_csv = root / double_descent.NAME / f"{double_descent.NAME}.csv"
    if not tt_csv.is_file():
        log(f"{tt_csv} is missing: running {through_training.NAME} first")
        through_training.run(tt_csv.parent, through_training.QUICK if quick else through_training.Settings(), log)
    if not dd_csv.is_file():
        log(f"{dd_csv} is missing: running {double_descent.NAME} first")
        double_descent.run(dd_csv.parent, double_descent.QUICK if quick else double_descent.Settings(), log)
    return (pd.read_csv(tt_csv), *double_descent.read_tables(dd_csv.parent))


def run(out_dir: str | Path, quick: bool = False, log=print) -> pd.DataFrame:
    """Correlate, write the CSV and the figure; return the table of correlations."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    convnet, sweep, sweep_epochs = _inputs(out_dir.parent, quick, log)
    convnet = convnet[convnet["epoch"] > 0]  # the untrained model has no errors
    settings = [("sweep", sweep, double_descent.MEASURES),
                ("sweep_training", sweep_epochs, double_descent.MEASURES),
                ("convnet_training", convnet, through_training.MEASURES)]
    conv_folder = out_dir.parent / double_descent.CONV_NAME
    conv_csv = conv_folder / f"{double_descent.NAME}.csv"
    if conv_csv.is_file():
        conv_sweep, conv_epochs = double_descent.read_tables(conv_folder)
        settings += [("conv_sweep", conv_sweep, double_descent.MEASURES),
                     ("conv_sweep_training", conv_epochs, double_descent.MEASURES)]
    else:
        log(f"{conv_csv} is missing: no rows for the convolutional sweep "
            f"(python -m pgdl_harness.experiments {double_descent.CONV_NAME} trains it)")
    rows = []
    for setting, frame, measures in settings:
        rows += [{"setting": setting, **correlations(frame, measure)} for measure in measures]
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / f"{NAME}.csv", index=False)
    plot(convnet, sweep, sweep_epochs, out_dir / f"{NAME}.png")
    for row in table.itertuples():
        if hasattr(row, "spearman_with_norm") and np.isfinite(getattr(row, "spearman_with_norm", np.nan)):
            log(f"{row.setting:16s} {row.measure:26s} n={row.n:3d}: with norm Pearson {row.pearson_with_norm:+.2f} "
                f"Spearman {row.spearman_with_norm:+.2f}; with error Spearman {row.spearman_with_error:+.2f} "
                f"(norm with error {row.spearman_norm_with_error:+.2f}); partial given norm "
                f"{row.partial_spearman_with_error_given_norm:+.2f} (p={row.partial_spearman_p:.2g})")
    return table


def plot(convnet: pd.DataFrame, sweep: pd.DataFrame, sweep_epochs: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(12, 4))
    final = sweep.groupby("width").mean(numeric_only=True).reset_index()
    points = left.scatter(final["parameter_norm"], final["fragmentation"], c=np.log2(final["width"]),
                          cmap="viridis")
    for row in final.itertuples():
        left.annotate(str(int(row.width)), (row.parameter_norm, row.fragmentation), fontsize=7,
                      xytext=(3, 3), textcoords="offset points")
    left.set_title("width sweep, final models (labels: width)", fontsize=9)
    fig.colorbar(points, ax=left, label="log2 width")
    for (width, _), group in sweep_epochs.groupby(["width", "seed"]):
        middle.plot(group["parameter_norm"], group["fragmentation"], marker="o", markersize=2, linewidth=0.8,
                    color=plt.cm.viridis((np.log2(width) - 1) / max(1.0, np.log2(sweep_epochs["width"].max()) - 1)))
    middle.set_title("width sweep through training (one line per run, colours as left)", fontsize=9)
    points = right.scatter(convnet["parameter_norm"], convnet["fragmentation"], c=convnet["epoch"], cmap="magma",
                           s=12)
    right.set_title("convnet through training", fontsize=9)
    fig.colorbar(points, ax=right, label="epoch")
    for axis in (left, middle, right):
        axis.set_xlabel("parameter norm (sum of squared weights)")
        axis.set_ylabel("fragmentation (input space)")
    for axis in (left, middle):
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(NullFormatter())  # the minor labels of a log axis overlap
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
