"""The benchmark suite: PGDL-scale grids over PGDL's families and axes, and the colour digits."""

import itertools

import numpy as np
import pytest

from pgdl_harness.taskgen.benchmark_suite import BENCHMARK_SUITE, REPORTING_SUITE, SUPPLEMENTARY, main
from pgdl_harness.taskgen.images import DATASETS
from pgdl_harness.taskgen.spec import grid_points

SEVEN_AXES = {"width", "depth", "dropout", "weight_decay", "batch_size", "learning_rate", "batch_norm"}


def test_the_suite_is_at_pgdls_scale_over_its_families_and_axes():
    assert len(BENCHMARK_SUITE) >= 6
    assert len({task.name for task in BENCHMARK_SUITE}) == len(BENCHMARK_SUITE)
    sizes = [task.num_models() for task in BENCHMARK_SUITE]
    assert min(sizes) >= 48 and 96 in sizes
    assert {task.family for task in BENCHMARK_SUITE} == {"vgg", "nin", "allconv", "mlp"}
    assert set().union(*(task.varied_axes() for task in BENCHMARK_SUITE)) >= SEVEN_AXES
    # All-convolutional nets with and without BatchNorm, as PGDL's tasks 4 and 5.
    allconv = {tuple(task.spec()["grid"]["batch_norm"]) for task in BENCHMARK_SUITE if task.family == "allconv"}
    assert {(True,), (False,)} <= allconv
    for task in BENCHMARK_SUITE:
        grid = task.spec()["grid"]
        combos = {tuple(point.settings.values()) for point in grid_points(grid)}
        assert combos == set(itertools.product(*grid.values())), task.name
        # Convnets on CIFAR-shaped colour images; the MLP and one NiN on 28x28 digits.
        assert task.dataset in ("colour32", "mnist"), task.name
        assert task.n_test >= 3000 and task.n_train + task.n_test <= 5000, task.name


def test_colour_digits_are_cifar_shaped_and_painted_per_image():
    source = DATASETS["colour32"]
    images, labels = source.load()
    assert images.shape == (5000, 32, 32, 3) and images.dtype == np.float32
    assert source.input_shape == (32, 32, 3) and np.bincount(labels).tolist() == [500] * 10
    assert 0.0 <= images.min() and images.max() <= 1.0
    # The 2-pixel border is background: one colour per image, at most half brightness.
    border = images[:, 0, :, :]
    np.testing.assert_allclose(border, border[:, :1, :].repeat(32, axis=1), atol=1e-7)
    assert border.max() <= 0.5
    # Colours differ between images and carry no class: every class has images of every hue.
    colours = border[:, 0, :]
    assert len(np.unique(colours.round(3), axis=0)) > 4900
    dominant = colours.argmax(axis=1)
    for label in range(10):
        assert set(dominant[labels == label]) == {0, 1, 2}
    # The same images every time (the colours come from a fixed seed).
    again, _ = source.load()
    np.testing.assert_array_equal(images, again)


def test_main_lists_the_suite(capsys):
    assert main(["--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in listed] == [task.name for task in BENCHMARK_SUITE]
    assert main(["--task", "nope", "--list"]) == 2
    assert "no task nope" in capsys.readouterr().err


def test_the_reporting_suite_is_the_suites_grids_from_another_seed():
    """Every reporting task repeats a suite task's grid and split sizes; only the seed and name differ."""
    assert len(REPORTING_SUITE) == len(BENCHMARK_SUITE)
    for suite_task, reporting_task in zip(BENCHMARK_SUITE, REPORTING_SUITE):
        assert reporting_task.name == suite_task.name + "_s1"
        assert reporting_task.seed != suite_task.seed
        suite_spec, reporting_spec = suite_task.spec(), reporting_task.spec()
        assert {**reporting_spec, "seed": suite_spec["seed"]} == suite_spec
    assert not {task.name for task in REPORTING_SUITE} & {task.name for task in BENCHMARK_SUITE}


def test_main_lists_the_alternative_task_lists_and_refuses_two_at_once(capsys):
    assert main(["--reporting", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in listed] == [task.name for task in REPORTING_SUITE]
    assert main(["--supplementary", "--list"]) == 0
    assert [line.split(":")[0] for line in capsys.readouterr().out.splitlines()] == [t.name for t in SUPPLEMENTARY]
    with pytest.raises(SystemExit):
        main(["--reporting", "--supplementary", "--list"])
    assert "not allowed with" in capsys.readouterr().err


@pytest.mark.slow
def test_two_workers_build_the_same_tasks_as_one(tmp_path, capfd):
    pytest.importorskip("tensorflow")
    from pgdl_harness.taskgen.suite import TaskSpec, generate_suite

    tasks = (
        TaskSpec("mini_a", "mlp", "digits", n_train=60, n_test=40, num_shards=2, max_epochs=2, grid={
            "width": [8, 16], "depth": [1], "dropout": [0.0], "weight_decay": [0.0], "batch_size": [32],
            "learning_rate": [0.003, 0.01]}),
        TaskSpec("mini_b", "vgg", "digits", n_train=60, n_test=40, num_shards=2, max_epochs=2, grid={
            "width": [2, 4], "depth": [1], "dropout": [0.0, 0.5], "weight_decay": [0.0], "batch_size": [32]}),
    )
    one = generate_suite(tmp_path / "one", tasks, summary_name="suite.json", workers=1, progress=False)
    capfd.readouterr()
    two = generate_suite(tmp_path / "two", tasks, summary_name="suite.json", workers=2, progress=False)
    # The worker processes import TensorFlow with its start-up lines kept off the terminal.
    worker_output = capfd.readouterr()
    assert "oneDNN" not in worker_output.err + worker_output.out
    assert "absl::InitializeLog" not in worker_output.err + worker_output.out
    for row_one, row_two in zip(one, two):
        assert row_one["task"] == row_two["task"]
        configs_one = (tmp_path / "one" / row_one["task"] / "model_configs.json").read_text()
        configs_two = (tmp_path / "two" / row_two["task"] / "model_configs.json").read_text()
        assert configs_one == configs_two  # the same accuracies, to the last digit
        # The weights agree to float32 round-off: a worker's TensorFlow runs on its share of the
        # cores, and another thread count sums in another order (differences of ~1e-9).
        for model in (tmp_path / "one" / row_one["task"]).glob("model_*/weights.hdf5"):
            twin = tmp_path / "two" / row_two["task"] / model.parent.name / "weights.hdf5"
            import h5py
            with h5py.File(model) as a, h5py.File(twin) as b:
                names = []
                a.visit(names.append)
                for name in names:
                    if isinstance(a[name], h5py.Dataset):
                        np.testing.assert_allclose(a[name][()], b[name][()], rtol=1e-5, atol=1e-7)


def test_every_task_trains_with_one_thread_whatever_the_worker_count(monkeypatch, tmp_path):
    """A rebuild gives the same models only with the same thread count: the suites fix it at one,
    in a worker process even with one worker (TensorFlow's threads are set before it starts)."""
    from pgdl_harness.taskgen import suite

    calls = []

    def record(out_dir, tasks, workers, progress, threads):
        calls.append((workers, threads, [task.name for task in tasks]))
        raise SystemExit(0)

    monkeypatch.setattr(suite, "_generate_in_workers", record)
    for workers in ("1", "2"):
        with pytest.raises(SystemExit):
            main(["--out", str(tmp_path), "--task", "bench_mlp_wide_colour", "--workers", workers, "--quiet"])
    assert calls == [(1, 1, ["bench_mlp_wide_colour"]), (2, 1, ["bench_mlp_wide_colour"])]
    assert not any(tmp_path.iterdir())  # nothing was trained
