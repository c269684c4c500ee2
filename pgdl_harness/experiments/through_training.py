"""Experiment 1: fragmentation through training, beside the training and validation error.

Mouton et al. report that fragmentation tracks the validation error while a network trains.
A small PGDL-like convnet is trained on a subset of MNIST with noisy labels long enough to
memorise the noise (validation error first falls, then rises as the noise is fitted), and after
every epoch ``FragmentationMonitor`` measures, on the same paths each time:

- ``fragmentation``: same-class paths in the input space (the registered default);
- ``fragmentation_middle``: interpolating at the middle hidden layer (the second convolution);
- ``fragmentation_penultimate``: interpolating at the second-to-last layer (``layer=-2``, the
  hidden Dense layer; the tail after it is one linear layer);
- ``parameter_norm`` (sum of squared weights), for the weight-norm experiment.

Writes ``through_training.csv`` (one row per epoch, row 0 the untrained model) and
``through_training.png`` under the output folder.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from complexity_measure.callbacks import FragmentationMonitor

from .training import build, fit, load_split, parameter_count

NAME = "through_training"
MEASURES = ("fragmentation", "fragmentation_middle", "fragmentation_penultimate")


@dataclasses.dataclass(frozen=True)
class Settings:
    dataset: str = "mnist"  # 28x28
    n_train: int = 1000
    n_test: int = 2000  # the validation set
    label_noise: float = 0.2
    width: int = 16  # filters of the first convolution (32 in the second), 64 hidden units
    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 2e-3
    n_pairs: int = 256  # paths per measurement (half the registered default: 60 x 3 measurements)
    seed: int = 0


QUICK = Settings(dataset="mnist14", n_train=100, n_test=100, width=4, epochs=2, n_pairs=16)


def convnet_layers(width: int, n_classes: int = 10) -> list[dict]:
    """Two 3x3 ReLU convolutions with 2x2 max pooling, then a hidden Dense layer and the logits."""
    return [
        {"layer_name": "Conv2D", "filters": width, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"layer_name": "MaxPooling2D", "pool_size": 2},
        {"layer_name": "Conv2D", "filters": 2 * width, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"layer_name": "MaxPooling2D", "pool_size": 2},
        {"layer_name": "Flatten"},
        {"layer_name": "Dense", "units": 4 * width, "activation": "relu"},
        {"layer_name": "Dense", "units": n_classes},
    ]


def monitors(split, settings: Settings, every: int = 1) -> list:
    """The per-epoch monitors: the three fragmentations and the parameter norm, every `every` epochs."""
    common = {"every": every, "verbose": 0, "n_pairs": settings.n_pairs}
    return [
        FragmentationMonitor(split.train_x, split.train_y, measure="fragmentation", **common),
        FragmentationMonitor(split.train_x, split.train_y, measure="fragmentation_middle", **common),
        FragmentationMonitor(split.train_x, split.train_y, measure="fragmentation_penultimate", **common),
        FragmentationMonitor(split.train_x, split.train_y, measure="parameter_norm", every=every, verbose=0),
    ]


def run(out_dir: str | Path, settings: Settings = Settings(), log=print) -> pd.DataFrame:
    """Train, measure every epoch, write the CSV and the figure; return the per-epoch table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    split = load_split(settings.dataset, settings.n_train, settings.n_test, label_noise=settings.label_noise,
                       seed=settings.seed)
    model = build(convnet_layers(settings.width), split.train_x.shape[1:], settings.seed)
    watch = monitors(split, settings)
    # Row 0: the untrained model, measured by the same monitors.
    initial = {"epoch": 0, "train_error": np.nan, "test_error": np.nan, "seconds": 0.0}
    for monitor in watch:
        monitor.set_model(model)
        initial[monitor.name] = monitor.measure_now()
    table = fit(model, split, epochs=settings.epochs, batch_size=settings.batch_size,
                learning_rate=settings.learning_rate, seed=settings.seed, callbacks=watch)
    table = pd.concat([pd.DataFrame([initial]), table], ignore_index=True)
    table["parameters"] = parameter_count(model)
    table["measure_seconds"] = [np.nan] + [sum(m.records[i]["seconds"] for m in watch) for i in range(len(table) - 1)]
    table.to_csv(out_dir / f"{NAME}.csv", index=False)
    plot(table, out_dir / f"{NAME}.png", settings)
    seconds = time.perf_counter() - started
    best = table.loc[table["test_error"].idxmin()]
    log(f"{NAME}: {settings.epochs} epochs in {seconds:.0f} s ({table['measure_seconds'].sum():.0f} s measuring); "
        f"lowest validation error {best['test_error']:.3f} at epoch {int(best['epoch'])}, final "
        f"{table['test_error'].iloc[-1]:.3f}; final train error {table['train_error'].iloc[-1]:.3f}")
    for measure in MEASURES:
        log(f"  {measure}: Spearman with validation error over epochs "
            f"{table[measure].iloc[1:].corr(table['test_error'].iloc[1:], method='spearman'):+.2f}")
    return table


def plot(table: pd.DataFrame, path: Path, settings: Settings) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (errors, frag) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
    errors.plot(table["epoch"], table["train_error"], label="training error (noisy labels)", color="tab:blue")
    errors.plot(table["epoch"], table["test_error"], label="validation error", color="tab:red")
    errors.axhline(settings.label_noise, color="grey", linestyle=":", linewidth=1,
                   label=f"label noise {settings.label_noise:.0%}")
    errors.set_ylabel("error")
    errors.legend(fontsize=8)
    errors.set_title(f"Convnet on {settings.n_train} MNIST digits, {settings.label_noise:.0%} label noise",
                     fontsize=10)
    labels = {"fragmentation": "input space", "fragmentation_middle": "middle layer (conv 2)",
              "fragmentation_penultimate": "penultimate layer (layer=-2)"}
    for measure, color in zip(MEASURES, ("tab:purple", "tab:green", "tab:orange")):
        frag.plot(table["epoch"], table[measure], label=labels[measure], color=color)
    frag.set_ylabel("class changes per same-class path")
    frag.set_xlabel("epoch (0 = untrained)")
    frag.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
