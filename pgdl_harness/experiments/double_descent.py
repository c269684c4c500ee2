"""Experiment 2: model-wise double descent, and fragmentation against width.

Mouton et al. report that fragmentation follows the double-descent curve, peaking where the
model first interpolates its training data. The set-up is Belkin et al.'s (2019): two-layer ReLU
networks (Flatten, Dense(width), Dense(10)) of growing width on 4,000 MNIST digits at 28x28 with
20% of the training labels replaced by another class, tested on 1,000 clean digits; every width
trained with the same optimizer and budget (Adam 1e-3, batch 128, 200 epochs, no early stopping).
Each seed draws its own split, label noise and initialisation. After training: training error
(on the noisy labels), test error (clean labels) and, on the same paths for every width,
fragmentation in the input space (same-class pairs, and different-class pairs) and at the hidden
layer (``layer=-2``). The *interpolation threshold* is the smallest width whose training error on
the noisy labels is at most ``fit_tolerance`` (mean over seeds).

Writes under the output folder (``runs/`` keeps every finished run, so an interrupted sweep resumes
and more seeds can be added to a finished one):
- ``double_descent.csv``: one row per (width, seed) with the final values;
- ``double_descent_epochs.csv``: every ``measure_every`` epochs of every run (for the weight-norm
  experiment);
- ``double_descent_summary.csv``: where each curve peaks and how fragmentation follows the test
  error over widths (Spearman's rho of the means over seeds);
- ``double_descent.png``: errors and fragmentation against width, with the seed spread.

``CONV`` is the convolutional version (``python -m pgdl_harness.experiments double_descent_conv``):
Nakkiran et al.'s (2019) model-wise sweep at the scale a 2-core CPU allows, a small CNN of three
convolutions of width k, 2k and 4k (3x3, ReLU, each followed by 2x2 max pooling; Flatten;
Dense(10)) on 1,000 colour digits at 32x32x3 with 20% label noise, tested on 1,000 clean ones,
Adam 1e-3, batch 128, 100 epochs. Without Nakkiran's BatchNorm, so that the network is the same
kind of ReLU network as the MLP sweep's. The width is k; the hidden layer of
``fragmentation_penultimate`` is the flattened last pooling output.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from complexity_measure.callbacks import FragmentationMonitor

from ..taskgen.images import DATASETS
from .training import build, fit, load_split, parameter_count, run_folder

NAME = "double_descent"
CONV_NAME = "double_descent_conv"  # the convolutional sweep's name, and its folder beside this one's
MEASURES = ("fragmentation", "fragmentation_different_class", "fragmentation_penultimate")


@dataclasses.dataclass(frozen=True)
class Settings:
    # Belkin et al.'s MNIST set-up at the size this 2-core CPU trains in minutes: with 4,000 digits
    # and 20% label noise the test error rises from width ~8 to a peak near the interpolation
    # threshold (~32-64 hidden units) and falls again towards width 1024.
    architecture: str = "mlp"  # "mlp": Flatten, Dense(width), Dense(10); "cnn": see conv_layers
    dataset: str = "mnist"
    n_train: int = 4000
    n_test: int = 1000
    label_noise: float = 0.2
    widths: tuple = (2, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128, 256, 512, 1024)
    seeds: tuple = (0, 1, 2)  # each seed: its own split, label noise, initialisation and shuffling
    epochs: int = 200
    batch_size: int = 128
    learning_rate: float = 1e-3
    steps_per_execution: int = 32  # one compiled call per epoch (4,000 / 128 = 32 steps)
    measure_every: int = 50
    n_pairs: int = 512
    fit_tolerance: float = 0.005  # "fits the training set": at most 0.5% of the training labels missed
    data_seed: int = 0  # seed s uses data seed data_seed + s


QUICK = Settings(dataset="mnist14", n_train=100, n_test=100, widths=(2, 8, 32), seeds=(0,), epochs=2,
                 measure_every=1, n_pairs=16, steps_per_execution=1)


# In a one-seed trial of this set-up the test error fell from 0.270 (k=1) to 0.226 (k=2), rose to
# 0.272 at k=16 (training error 0.014) and fell to 0.232 at k=32 (training error 0): the widths
# stop at 32, whose runs take ~10 minutes each here (k=64 would take four times longer).
CONV = Settings(architecture="cnn", dataset="colour32", n_train=1000, n_test=1000, label_noise=0.2,
                widths=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32), seeds=(0, 1, 2), epochs=100,
                steps_per_execution=8, measure_every=25)
CONV_QUICK = dataclasses.replace(CONV, dataset="digits", n_train=100, n_test=100, widths=(1, 4), seeds=(0,),
                                 epochs=2, measure_every=1, n_pairs=16, steps_per_execution=1)


def layers(settings: Settings, width: int, n_classes: int = 10) -> list[dict]:
    """The sweep's network at one width, as a PGDL layer list."""
    if settings.architecture == "mlp":
        return mlp_layers(width, n_classes)
    if settings.architecture == "cnn":
        return conv_layers(width, n_classes)
    raise ValueError(f"unknown architecture {settings.architecture!r}; known: mlp, cnn")


def conv_layers(width: int, n_classes: int = 10) -> list[dict]:
    """Three 3x3 ReLU convolutions of width k, 2k, 4k, each followed by 2x2 max pooling; Dense(n_classes)."""
    stack = []
    for filters in (width, 2 * width, 4 * width):
        stack += [{"layer_name": "Conv2D", "filters": filters, "kernel_size": [3, 3], "padding": "same",
                   "activation": "relu"}, {"layer_name": "MaxPooling2D", "pool_size": [2, 2]}]
    return [*stack, {"layer_name": "Flatten"}, {"layer_name": "Dense", "units": n_classes}]


def mlp_layers(width: int, n_classes: int = 10) -> list[dict]:
    return [{"layer_name": "Flatten"}, {"layer_name": "Dense", "units": width, "activation": "relu"},
            {"layer_name": "Dense", "units": n_classes}]


def read_tables(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A finished sweep's per-run and per-epoch tables, as ``run`` wrote them into ``folder``."""
    return pd.read_csv(folder / f"{NAME}.csv"), pd.read_csv(folder / f"{NAME}_epochs.csv")


def interpolation_threshold(table: pd.DataFrame, tolerance: float) -> float:
    """Smallest width whose mean (over seeds) final training error is <= ``tolerance``; NaN if none."""
    errors = table.groupby("width")["train_error"].mean()
    fitting = errors.index[errors <= tolerance]
    return float(fitting.min()) if len(fitting) else float("nan")


def run(out_dir: str | Path, settings: Settings = Settings(), log=print) -> pd.DataFrame:
    """Train every width and seed, write the CSVs and the figure; return the per-run table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs = run_folder(out_dir, settings, ("widths", "seeds"))
    finals, epochs = [], []
    for width in settings.widths:
        for seed in settings.seeds:
            stem = f"width_{width}_seed_{seed}"
            final_csv, epochs_csv = runs / f"{stem}.csv", runs / f"{stem}_epochs.csv"
            if final_csv.is_file() and epochs_csv.is_file():
                # Finished in an earlier call with the same settings: a sweep can be resumed or given more seeds.
                final, table = pd.read_csv(final_csv).iloc[0].to_dict(), pd.read_csv(epochs_csv)
            else:
                split = load_split(settings.dataset, settings.n_train, settings.n_test,
                                   label_noise=settings.label_noise, seed=settings.data_seed + seed)
                final, table = _train_one(split, settings, width, seed)
                table.to_csv(epochs_csv, index=False)
                pd.DataFrame([final]).to_csv(final_csv, index=False)
            finals.append(final)
            epochs.append(table)
            log(f"width {width:4d} seed {seed}: train error {final['train_error']:.3f}, test error "
                f"{final['test_error']:.3f}, fragmentation {final['fragmentation']:.3f} (different class "
                f"{final['fragmentation_different_class']:.3f}, hidden {final['fragmentation_penultimate']:.3f}),"
                f" {final['seconds']:.0f} s")
    finals = pd.DataFrame(finals)
    columns = ["width", "seed", "parameters", "train_error", "test_error", "noisy_fitted", *MEASURES,
               "parameter_norm", "loss", "epoch", "seconds"]
    finals = finals[columns]
    finals.to_csv(out_dir / f"{NAME}.csv", index=False)
    pd.concat(epochs, ignore_index=True).to_csv(
        out_dir / f"{NAME}_epochs.csv", index=False)
    threshold = interpolation_threshold(finals, settings.fit_tolerance)
    plot(finals, threshold, out_dir / f"{NAME}.png", settings)
    summary = summarise(finals, threshold)
    pd.DataFrame([summary]).to_csv(out_dir / f"{NAME}_summary.csv", index=False)
    log(f"{NAME}: {len(finals)} runs in {time.perf_counter() - started:.0f} s; " + "; ".join(
        f"{k} {v}" for k, v in summary.items()))
    return finals


def _train_one(split, settings: Settings, width: int, seed: int) -> tuple[dict, pd.DataFrame]:
    """Train one width from one seed: its final values and its table of measured epochs."""
    started = time.perf_counter()
    model = build(layers(settings, width), split.train_x.shape[1:], seed)
    common = {"every": settings.measure_every, "verbose": 0}
    watch = [FragmentationMonitor(split.train_x, split.train_y, measure=m, n_pairs=settings.n_pairs, **common)
             for m in MEASURES]
    watch.append(FragmentationMonitor(split.train_x, split.train_y, measure="parameter_norm", **common))
    table = fit(model, split, epochs=settings.epochs, batch_size=settings.batch_size,
                learning_rate=settings.learning_rate, seed=seed, callbacks=watch,
                errors_every=settings.measure_every, steps_per_execution=settings.steps_per_execution)
    # The last epoch is measured whatever measure_every is: that is the model the sweep compares.
    for monitor in watch:
        if np.isnan(table[monitor.name].iloc[-1]):
            table.loc[table.index[-1], monitor.name] = monitor.measure_now()
    final = table.iloc[-1].to_dict()
    final.update(width=width, seed=seed, parameters=parameter_count(model),
                 noisy_fitted=_fraction_of_noisy_labels_fitted(model, split),
                 seconds=time.perf_counter() - started)
    table.insert(0, "seed", seed)
    table.insert(0, "width", width)
    return final, table.dropna(subset=["fragmentation"])


def summarise(finals: pd.DataFrame, threshold: float) -> dict:
    """Where the test error and each fragmentation peak (``double_descent_peak`` of the means over seeds), the
    threshold, and how each fragmentation follows the test error over widths: Spearman's rho of
    the means over seeds (with its p-value), over all widths and over the widths up to the
    test error's peak and from it on (the rise and the second descent)."""
    from scipy import stats

    mean = finals.groupby("width").mean(numeric_only=True)
    peak = int(double_descent_peak(mean["test_error"]))
    summary = {"interpolation threshold width": threshold, "peak test error width": peak,
               "peak test error": round(float(mean["test_error"].loc[peak]), 4),
               "test error at the smallest width": round(float(mean["test_error"].iloc[0]), 4),
               "test error at the largest width": round(float(mean["test_error"].iloc[-1]), 4)}
    for measure in MEASURES:
        summary[f"peak {measure} width"] = int(double_descent_peak(mean[measure]))
        for part, rows in (("all widths", mean), ("up to the peak", mean.loc[:peak]), ("from the peak", mean.loc[peak:])):
            if len(rows) >= 3 and np.ptp(rows[measure]) > 0:
                result = stats.spearmanr(rows[measure], rows["test_error"])
                summary[f"{measure} rho, {part}"] = round(float(result.statistic), 3)
                summary[f"{measure} p, {part}"] = round(float(result.pvalue), 4)
    return summary


def double_descent_peak(curve: pd.Series):
    """The width of a curve's double-descent peak: its maximum after its first local minimum.

    A test error first falls with width (under-fitting), rises to a peak near interpolation and
    falls again; the largest value at the smallest widths is not that peak. A curve that never
    rises again has no such peak: its global maximum's width is returned.
    """
    values = curve.to_numpy()
    rises = np.flatnonzero(np.diff(values) > 0)
    if len(rises) == 0:
        return curve.idxmax()
    return curve.iloc[rises[0]:].idxmax()


def _fraction_of_noisy_labels_fitted(model, split) -> float:
    """Share of the mislabelled training examples the model predicts with their *noisy* label."""
    noisy = split.noisy
    if not noisy.any():
        return float("nan")
    predicted = np.argmax(model(split.train_x[noisy], training=False), axis=1)
    return float(np.mean(predicted == split.train_y[noisy]))


def plot(finals: pd.DataFrame, threshold: float, path: Path, settings: Settings) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = finals.groupby("width")
    mean, low, high = grouped.mean(numeric_only=True), grouped.min(numeric_only=True), grouped.max(numeric_only=True)
    widths = mean.index.to_numpy()
    fig, (errors, frag) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
    for column, label, color in (("train_error", "training error (noisy labels)", "tab:blue"),
                                 ("test_error", "test error", "tab:red")):
        errors.plot(widths, mean[column], marker="o", markersize=3, label=label, color=color)
        errors.fill_between(widths, low[column], high[column], color=color, alpha=0.2, linewidth=0)
    errors.set_ylabel("error")
    side = "x".join(map(str, DATASETS[settings.dataset].input_shape[:2]))
    networks, images = (("Two-layer MLPs", "MNIST digits") if settings.architecture == "mlp"
                        else ("CNNs of widths k, 2k, 4k", "colour digits" if settings.dataset == "colour32" else "digits"))
    errors.set_title(f"{networks} on {settings.n_train} {images} ({side}), {settings.label_noise:.0%} "
                     f"label noise,\n{settings.epochs} epochs of Adam; mean and range over {len(settings.seeds)} "
                     "seed(s)", fontsize=9)
    for measure, label, color in (("fragmentation", "input space, same-class pairs", "tab:purple"),
                                  ("fragmentation_different_class", "input space, different-class pairs",
                                   "tab:green"),
                                  ("fragmentation_penultimate", "hidden layer (layer=-2), same-class pairs",
                                   "tab:orange")):
        frag.plot(widths, mean[measure], marker="o", markersize=3, label=label, color=color)
        frag.fill_between(widths, low[measure], high[measure], color=color, alpha=0.2, linewidth=0)
    frag.set_ylabel("class changes per path")
    frag.set_xlabel("hidden units (log scale)" if settings.architecture == "mlp" else
                    "width k: channels of the first convolution (log scale)")
    for axis in (errors, frag):
        axis.set_xscale("log", base=2)
        if np.isfinite(threshold):
            axis.axvline(threshold, color="black", linestyle="--", linewidth=1,
                         label=f"interpolation threshold (width {threshold:g})")
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
