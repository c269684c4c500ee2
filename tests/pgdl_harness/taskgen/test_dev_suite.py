"""The development suite: its specification follows the issue's rules; generating it is resumable."""

import itertools
import json

import pytest

from pgdl_harness.taskgen.dev_suite import DEV_SUITE, SUMMARY_NAME, TaskSpec, generate_suite, main
from pgdl_harness.taskgen.spec import grid_points

SEVEN_AXES = {"width", "depth", "dropout", "weight_decay", "batch_size", "learning_rate", "batch_norm"}


def test_suite_has_enough_tasks_each_with_enough_axes_and_models():
    assert len(DEV_SUITE) >= 8
    assert len({task.name for task in DEV_SUITE}) == len(DEV_SUITE)
    for task in DEV_SUITE:
        assert len(task.varied_axes()) >= 3, task.name
        assert task.num_models() >= 16, task.name


def test_suite_covers_the_families_datasets_and_axes_pgdl_varied():
    assert {task.family for task in DEV_SUITE} == {"vgg", "nin", "allconv", "mlp"}
    assert {task.dataset for task in DEV_SUITE} == {"mnist14", "mnist", "digits"}
    assert set().union(*(task.varied_axes() for task in DEV_SUITE)) >= SEVEN_AXES
    # All-convolutional nets with and without BatchNorm, as PGDL's tasks 4 and 5.
    allconv_bn = {tuple(task.spec()["grid"]["batch_norm"]) for task in DEV_SUITE if task.family == "allconv"}
    assert {(True,), (False,)} <= allconv_bn


def test_suite_grids_are_complete_and_sizes_favour_a_wide_gap_spread():
    for task in DEV_SUITE:
        grid = task.spec()["grid"]
        points = grid_points(grid)
        combos = {tuple(point.settings.values()) for point in points}
        assert combos == set(itertools.product(*grid.values())), task.name
        assert len(points) == len(combos), task.name
        # Fewer training images than the bundled tasks' 1,000, more test images than their 3,000
        # where the source has them (the 8x8 digits have only 1,797 images).
        assert 200 <= task.n_train <= 600, task.name
        assert task.n_test >= (1400 if task.dataset == "digits" else 4000), task.name


MINIATURE = (
    TaskSpec("mini_mlp", "mlp", "digits", n_train=60, n_test=40, num_shards=2, max_epochs=2, grid={
        "width": [8, 16], "depth": [1], "dropout": [0.0], "weight_decay": [0.0], "batch_size": [32],
        "learning_rate": [0.003, 0.01]}),
    TaskSpec("mini_allconv", "allconv", "digits", n_train=60, n_test=40, num_shards=2, max_epochs=2, grid={
        "batch_norm": [False, True], "width": [4], "depth": [1], "dropout": [0.0], "max_pool": [False, True],
        "weight_decay": [0.0], "batch_size": [32]}),
)


def weight_times(out_dir):
    return {path: path.stat().st_mtime_ns for path in sorted(out_dir.glob("*/model_*/weights.hdf5"))}


def test_a_miniature_suite_generates_then_skips_then_resumes(tmp_path, capsys):
    pytest.importorskip("tensorflow")
    rows = generate_suite(tmp_path, MINIATURE, progress=True)
    assert [row["task"] for row in rows] == ["mini_mlp", "mini_allconv"]
    summary = json.loads((tmp_path / SUMMARY_NAME).read_text())
    assert summary == rows
    for row in rows:
        configs = json.loads((tmp_path / row["task"] / "model_configs.json").read_text())
        gaps = sorted(e["metrics"]["train_acc"] - e["metrics"]["test_acc"] for e in configs.values())
        assert row["models"] == len(configs) == 4
        assert row["gap"]["min"] == pytest.approx(gaps[0]) and row["gap"]["max"] == pytest.approx(gaps[-1])
        assert (row["n_train"], row["n_test"]) == (60, 40)
        assert row["minutes"] > 0 and row["mib"] > 0
    first = weight_times(tmp_path)
    assert len(first) == 8
    capsys.readouterr()

    # Run again: both tasks are complete and skipped, nothing is rewritten.
    generate_suite(tmp_path, MINIATURE, progress=True)
    assert "mini_mlp: complete, skipped" in capsys.readouterr().err
    assert weight_times(tmp_path) == first

    # As if interrupted while the second task was being made: it is resumed, model by model.
    configs = (tmp_path / "mini_allconv" / "model_configs.json").read_text()
    (tmp_path / "mini_allconv" / "README.md").unlink()
    lost = tmp_path / "mini_allconv" / "model_3" / "weights.hdf5"
    lost.unlink()
    generate_suite(tmp_path, MINIATURE, progress=True)
    assert "mini_allconv: resuming" in capsys.readouterr().err
    again = weight_times(tmp_path)
    assert lost.is_file() and again[lost] != first[lost]
    assert {p: t for p, t in again.items() if p != lost} == {p: t for p, t in first.items() if p != lost}
    # The remade model is the same model: seeded by its id alone.
    assert (tmp_path / "mini_allconv" / "model_configs.json").read_text() == configs
    assert (tmp_path / "mini_allconv" / "README.md").is_file()


def test_main_lists_the_suite_and_rejects_unknown_tasks(capsys):
    assert main(["--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in listed] == [task.name for task in DEV_SUITE]
    assert main(["--task", "no_such_task", "--list"]) == 2
    assert "no task no_such_task" in capsys.readouterr().err
