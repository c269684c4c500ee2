"""Experiment 4: BatchNorm, sparsity and clustering of hidden representations.

Potgieter, Mouton & Davel (2025, arXiv 2501.14441) train image classifiers with and without
BatchNorm and compare their hidden representations: how sparse they are (per layer and per
channel) and how well they cluster by class. They find that BatchNorm's effect on sparsity does
not explain generalization, while BatchNorm models cluster better. Their set-up, as public
summaries describe it: a four-convolution CNN on MNIST trained with SGD (learning rate 0.01), and
VGG-16 on CIFAR-10; post-ReLU activations of 5,000 training examples; 4 seeds.

Here, at the size this machine trains in minutes, two architectures, each with and without
BatchNorm (before every ReLU), ``seeds`` initialisations each, all trained by one rule (SGD with
momentum 0.9, learning rate 0.01, batch 64, a fixed number of epochs):

- ``cnn4_mnist``: four 3x3 convolutions (16, 16, 32, 32 filters, 2x2 max pooling after the
  second and the fourth), Flatten, Dense logits, on 4,000 MNIST digits at 28x28;
- ``vgg_colour``: the task generator's VGG-like family (two blocks of two 3x3 convolutions, 16
  and 32 filters, max pooling after each) on 4,000 colour digits at 32x32x3.

After training, on the post-ReLU representations of every hidden layer: the fraction of exact
zeros (``|a| <= 1e-6``; the mean of the per-channel zero fractions, the paper's "average channel
sparsity") and of near-zeros (``|a|`` at most 1% of the layer's mean absolute activation), the
spread of the per-channel zero fraction and the dead channels (zero on every example), on
``sparsity_examples`` training examples; class clustering by the Davies-Bouldin
index (lower is better) and the silhouette score (higher is better) on ``clustering_examples``
training examples; and each model's training and test accuracy (1,000 held-out images).

Writes under the output folder (``runs/`` keeps every finished model, so a run resumes):
- ``batchnorm_models.csv``: one row per model (architecture, BatchNorm, seed, accuracies, seconds);
- ``batchnorm_layers.csv``: one row per model and hidden layer;
- ``batchnorm_channels.csv``: one row per model, layer and channel (zero fraction);
- ``batchnorm_differences.csv``: per architecture, layer and property, the mean with and without
  BatchNorm over seeds, their difference and a paired t-test over seeds (scipy);
- ``batchnorm.png``: the properties per layer, BatchNorm against none, mean and range over seeds.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from complexity_measure import representation
from complexity_measure.frameworks import as_classifier

from ..taskgen.families import FAMILIES
from .training import build, load_split, run_folder

NAME = "batchnorm"
PROPERTIES = ("sparsity", "near_zero", "channel_sparsity_std", "dead_channels", "davies_bouldin", "silhouette")


@dataclasses.dataclass(frozen=True)
class Settings:
    architectures: tuple = ("cnn4_mnist", "vgg_colour")
    seeds: tuple = (0, 1, 2, 3)
    n_train: int = 4000
    n_test: int = 1000
    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 0.01
    momentum: float = 0.9
    sparsity_examples: int = 2000
    clustering_examples: int = 1000
    near_zero_share: float = 0.01  # "near zero": |a| <= this share of the layer's mean |a|
    data_seed: int = 0
    small: bool = False  # the miniature: fewer filters (CI)


QUICK = Settings(seeds=(0, 1), n_train=200, n_test=100, epochs=1, sparsity_examples=100, clustering_examples=100,
                 small=True)

# Which image source each architecture trains on.
DATASET = {"cnn4_mnist": "mnist", "vgg_colour": "colour32"}


def _conv(filters: int, batch_norm: bool) -> list[dict]:
    conv = {"layer_name": "Conv2D", "filters": filters, "kernel_size": [3, 3], "padding": "same"}
    if not batch_norm:
        return [{**conv, "activation": "relu"}]
    return [conv, {"layer_name": "BatchNormalization", "momentum": 0.9, "epsilon": 0.001}, {"layer_name": "ReLU"}]


def layers(architecture: str, batch_norm: bool, small: bool = False) -> list[dict]:
    """The ``config.json`` layer list of an architecture, with or without BatchNorm before each ReLU."""
    scale = 4 if small else 1
    if architecture == "cnn4_mnist":
        out: list[dict] = []
        for filters in (16 // scale, 16 // scale):
            out += _conv(filters, batch_norm)
        out.append({"layer_name": "MaxPooling2D", "pool_size": [2, 2]})
        for filters in (32 // scale, 32 // scale):
            out += _conv(filters, batch_norm)
        out.append({"layer_name": "MaxPooling2D", "pool_size": [2, 2]})
        return out + [{"layer_name": "Flatten"}, {"layer_name": "Dense", "units": 10}]
    if architecture == "vgg_colour":
        plain = FAMILIES["vgg"].layers({"width": 16 // scale, "depth": 2, "dropout": 0.0}, 10)
        if not batch_norm:
            return plain
        out = []
        for layer in plain:
            if layer["layer_name"] == "Conv2D":
                out += _conv(layer["filters"], True)
            else:
                out.append(layer)
        return out
    raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(DATASET)}")


def run(out_dir: str | Path, settings: Settings = Settings(), log=print) -> pd.DataFrame:
    """Train and measure every (architecture, BatchNorm, seed); write the CSVs and the figure."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs = run_folder(out_dir, settings, ("architectures", "seeds"))
    models, layer_rows, channel_rows = [], [], []
    for architecture in settings.architectures:
        # The miniature's CNN trains on 14x14 digits: a quarter of the cost.
        dataset = "mnist14" if settings.small and architecture == "cnn4_mnist" else DATASET[architecture]
        split = load_split(dataset, settings.n_train, settings.n_test, seed=settings.data_seed)
        for batch_norm in (False, True):
            for seed in settings.seeds:
                stem = runs / f"{architecture}_bn_{int(batch_norm)}_seed_{seed}"
                paths = [stem.with_name(stem.name + suffix) for suffix in ("_model.json", "_layers.csv", "_channels.csv")]
                if all(path.is_file() for path in paths):
                    model_row = json.loads(paths[0].read_text())
                    layer_table, channel_table = pd.read_csv(paths[1]), pd.read_csv(paths[2])
                else:
                    model_row, layer_table, channel_table = _train_and_measure(split, settings, architecture,
                                                                               batch_norm, seed)
                    layer_table.to_csv(paths[1], index=False)
                    channel_table.to_csv(paths[2], index=False)
                    paths[0].write_text(json.dumps(model_row))
                models.append(model_row)
                layer_rows.append(layer_table)
                channel_rows.append(channel_table)
                log(f"{architecture} batch_norm={batch_norm} seed {seed}: train acc {model_row['train_acc']:.3f}, "
                    f"test acc {model_row['test_acc']:.3f}, {model_row['seconds']:.0f} s")
    models = pd.DataFrame(models)
    layer_table = pd.concat(layer_rows, ignore_index=True)
    models.to_csv(out_dir / f"{NAME}_models.csv", index=False)
    layer_table.to_csv(out_dir / f"{NAME}_layers.csv", index=False)
    pd.concat(channel_rows, ignore_index=True).to_csv(out_dir / f"{NAME}_channels.csv", index=False)
    differences = paired_differences(layer_table, models)
    differences.to_csv(out_dir / f"{NAME}_differences.csv", index=False)
    plot(layer_table, models, out_dir / f"{NAME}.png")
    log(f"{NAME}: {len(models)} models in {time.perf_counter() - started:.0f} s")
    return differences


def _accuracy(model, x, y, batch_size: int = 500) -> float:
    predicted = np.concatenate([np.argmax(model(x[i:i + batch_size], training=False), axis=1)
                                for i in range(0, len(x), batch_size)])
    return float(np.mean(predicted == y))


def _train_and_measure(split, settings: Settings, architecture: str, batch_norm: bool, seed: int):
    started = time.perf_counter()
    model = build(layers(architecture, batch_norm, settings.small), split.train_x.shape[1:], seed)
    model.compile(optimizer=tf.keras.optimizers.SGD(settings.learning_rate, momentum=settings.momentum),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    tf.keras.utils.set_random_seed(seed)
    model.fit(split.train_x, split.train_y, epochs=settings.epochs, batch_size=settings.batch_size, verbose=0,
              shuffle=True)
    row = {"architecture": architecture, "batch_norm": batch_norm, "seed": seed,
           "train_acc": _accuracy(model, split.train_x, split.train_y),
           "test_acc": _accuracy(model, split.test_x, split.test_y)}
    layer_table, channel_table = measure_representations(model, split.train_x, split.train_y, settings)
    for table in (layer_table, channel_table):
        for key in ("architecture", "batch_norm", "seed"):
            table.insert(0, key, row[key])
    row["seconds"] = time.perf_counter() - started
    return row, layer_table, channel_table


def measure_representations(model, inputs, labels, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per hidden (post-ReLU) layer: zero and near-zero fractions, channel sparsity and clustering.

    Returns the per-layer table (``layer`` is the position among the hidden layers, 1 = first,
    ``layer_index`` the Keras layer index) and the per-channel table.
    """
    classifier = as_classifier(model)
    hidden = classifier.activation_layers()
    per_channel = representation.channel_sparsity_per_layer(model, inputs, layers=hidden,
                                                             n_examples=settings.sparsity_examples)
    sample, _ = _sample(inputs, labels, settings.sparsity_examples)
    near = _near_zero_fractions(classifier, sample, hidden, settings.near_zero_share)
    davies = representation.davies_bouldin_per_layer(model, inputs, labels, layers=hidden,
                                                     n_examples=settings.clustering_examples)
    silhouettes = representation.silhouette_per_layer(model, inputs, labels, layers=hidden,
                                                      n_examples=settings.clustering_examples)
    names = [layer.name for layer in classifier.layers()]
    rows, channels = [], []
    for position, index in enumerate(hidden, start=1):
        values = per_channel[index]
        rows.append({"layer": position, "layer_index": index, "layer_type": names[index],
                     # A layer's zero fraction is the mean of its channels' (each has as many values).
                     "channels": len(values), "sparsity": float(np.mean(values)), "near_zero": near[index],
                     "channel_sparsity_std": float(np.std(values)),
                     "dead_channels": int(np.sum(values >= 1.0)),
                     "davies_bouldin": davies[index], "silhouette": silhouettes[index]})
        channels += [{"layer": position, "channel": c, "sparsity": float(v)} for c, v in enumerate(values)]
    return pd.DataFrame(rows), pd.DataFrame(channels)


def _sample(inputs, labels, n):
    from complexity_measure.sampling import sample_indices

    chosen = sample_indices(inputs, labels, n, 0)
    return inputs[chosen], labels[chosen]


def _near_zero_fractions(model, inputs, hidden, share: float) -> dict[int, float]:
    """Per layer: the fraction of activations with ``|a| <= share x mean |a|`` (the layer's own scale)."""
    outputs = [[] for _ in hidden]
    for batch in model.layer_outputs(inputs, hidden, 256):
        for part, output in zip(outputs, batch):
            part.append(np.abs(output).ravel())
    fractions = {}
    for index, parts in zip(hidden, outputs):
        values = np.concatenate(parts)
        fractions[index] = float(np.mean(values <= share * values.mean()))
    return fractions


def paired_differences(layer_table: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """Per architecture, layer and property (and test accuracy): BatchNorm minus none over seeds.

    Seeds are paired by their number (the same seed initialises both); the p-value is scipy's
    paired t-test (``ttest_rel``), NaN when the differences have no spread.
    """
    from scipy import stats

    rows = []
    per_model = models.assign(layer="model").rename(columns={"test_acc": "value"})
    for architecture in layer_table["architecture"].unique():
        subsets = [(p, layer_table[layer_table["architecture"] == architecture], p) for p in PROPERTIES]
        subsets.append(("test_acc", per_model[per_model["architecture"] == architecture], "value"))
        for name, table, column in subsets:
            for layer, group in table.groupby("layer", sort=True):
                pivot = group.pivot(index="seed", columns="batch_norm", values=column)
                if False not in pivot or True not in pivot:
                    continue
                pivot = pivot.dropna()
                difference = pivot[True] - pivot[False]
                p = (float(stats.ttest_rel(pivot[True], pivot[False]).pvalue)
                     if len(pivot) > 1 and np.ptp(difference) > 0 else float("nan"))
                rows.append({"architecture": architecture, "property": name, "layer": layer, "seeds": len(pivot),
                             "without_batchnorm": float(pivot[False].mean()), "with_batchnorm": float(pivot[True].mean()),
                             "difference": float(difference.mean()), "difference_std": float(difference.std(ddof=1))
                             if len(pivot) > 1 else float("nan"), "p_value": p})
    return pd.DataFrame(rows)


def plot(layer_table: pd.DataFrame, models: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    architectures = list(layer_table["architecture"].unique())
    shown = (("sparsity", "zero fraction (|a| <= 1e-6)"), ("near_zero", "near-zero fraction (<= 1% of mean |a|)"),
             ("davies_bouldin", "Davies-Bouldin (lower: better clustered)"),
             ("silhouette", "silhouette (higher: better clustered)"))
    fig, axes = plt.subplots(len(architectures), len(shown), figsize=(4 * len(shown), 3.2 * len(architectures)),
                             squeeze=False)
    for row, architecture in enumerate(architectures):
        table = layer_table[layer_table["architecture"] == architecture]
        accuracy = models[models["architecture"] == architecture].groupby("batch_norm")["test_acc"].mean()
        for column, (name, title) in enumerate(shown):
            axis = axes[row][column]
            for batch_norm, color in ((False, "tab:blue"), (True, "tab:red")):
                grouped = table[table["batch_norm"] == batch_norm].groupby("layer")[name]
                mean, low, high = grouped.mean(), grouped.min(), grouped.max()
                label = f"{'BatchNorm' if batch_norm else 'no BatchNorm'} (test acc {accuracy.get(batch_norm, np.nan):.3f})"
                axis.plot(mean.index, mean.to_numpy(), marker="o", color=color, label=label)
                axis.fill_between(mean.index, low.to_numpy(), high.to_numpy(), color=color, alpha=0.2, linewidth=0)
            axis.set_title(f"{architecture}: {title}", fontsize=8)
            axis.set_xlabel("hidden layer")
            axis.set_xticks(sorted(table["layer"].unique()))
            if column == 0:
                axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
