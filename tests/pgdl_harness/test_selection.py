"""Leaving one family out: each task is scored by a measure chosen on the other families alone."""

import numpy as np
import pandas as pd
import pytest

from pgdl_harness.errors import HarnessError
from pgdl_harness.selection import chosen_on_all, held_out_summary, leave_one_family_out

FAMILIES = {"vgg_a": "vgg", "nin_a": "nin", "nin_b": "nin", "mlp_a": "mlp"}


def scores_frame():
    # "local" wins on vgg and mlp, "wide" on both nin tasks by far: it has the best mean overall.
    return pd.DataFrame({"vgg_a": [10.0, 2.0, 1.0], "nin_a": [1.0, 30.0, 0.0], "nin_b": [2.0, 20.0, 0.0],
                         "mlp_a": [8.0, 3.0, 9.0]}, index=["local", "wide", "zoo"])


def test_each_family_is_scored_by_the_choice_made_without_it():
    folds = {fold.held_out: fold for fold in leave_one_family_out(scores_frame(), FAMILIES, ["local", "wide"])}
    assert set(folds) == {"vgg", "nin", "mlp"}
    # Without the nin tasks "wide" has no lead: "local" is chosen for them.
    assert folds["nin"].chosen == "local" and folds["nin"].tasks == ("nin_a", "nin_b")
    assert folds["nin"].selection_means == {"local": 9.0, "wide": 2.5}
    assert folds["vgg"].chosen == "wide" and folds["mlp"].chosen == "wide"
    assert chosen_on_all(scores_frame(), ["local", "wide"]) == "wide"
    # A tie goes to the candidate named first.
    tied = pd.DataFrame({"vgg_a": [1.0, 1.0], "nin_a": [1.0, 1.0]}, index=["b", "a"])
    assert [f.chosen for f in leave_one_family_out(tied, {"vgg_a": "vgg", "nin_a": "nin"}, ["b", "a"])] == ["b", "b"]


def test_bad_inputs_are_named():
    with pytest.raises(HarnessError, match="no scores for candidate.*nope"):
        leave_one_family_out(scores_frame(), FAMILIES, ["local", "nope"])
    with pytest.raises(HarnessError, match="no family for task.*mlp_a"):
        leave_one_family_out(scores_frame(), {k: v for k, v in FAMILIES.items() if k != "mlp_a"}, ["local"])
    with pytest.raises(HarnessError, match="two families or more"):
        leave_one_family_out(scores_frame(), dict.fromkeys(FAMILIES, "vgg"), ["local"])


def test_the_rules_held_out_mean_takes_each_task_from_its_folds_choice():
    frame = scores_frame()
    folds = leave_one_family_out(frame, FAMILIES, ["local", "wide"])
    rng = np.random.default_rng(0)
    # Resamples scattered around each score, the same resample index for every measure of a task.
    noise = {task: rng.normal(0, 0.5, 200) for task in frame.columns}
    distributions = {(task, measure): {"cmi": frame.loc[measure, task] + noise[task],
                                       "kendall_tau": frame.loc[measure, task] / 100 + noise[task] / 100}
                     for task in frame.columns for measure in frame.index}
    scores = {"cmi": frame, "kendall_tau": frame / 100}
    summary = held_out_summary(folds, scores, distributions, ["local", "wide"], "local").set_index("measure")
    # vgg_a and mlp_a by "wide", the nin tasks by "local": (2 + 1 + 2 + 3) / 4.
    assert summary.loc["leave-one-family-out choice", "cmi"] == pytest.approx(2.0)
    assert summary.loc["local", "cmi"] == pytest.approx(5.25) and summary.loc["wide", "cmi"] == pytest.approx(13.75)
    for measure, row in summary.iterrows():
        assert row["cmi_low"] <= row["cmi"] <= row["cmi_high"]
    assert summary.loc["local", "cmi_vs_local"] == 0.5
    assert summary.loc["wide", "cmi_vs_local"] == 1.0 and summary.loc["leave-one-family-out choice", "cmi_vs_local"] == 0.0


def test_select_reads_a_compare_run_and_writes_its_report(tmp_path, capsys):
    import shutil

    from pgdl_harness.cli import main
    from pgdl_harness.predictions import write_predictions
    from pgdl_harness.scoring import generalization_gaps
    from pgdl_harness.tasks import find_tasks

    from ..conftest import TOY_TASK

    root = tmp_path / "data"
    for name in ("toy_a", "toy_b"):
        shutil.copytree(TOY_TASK, root / name)
    results = tmp_path / "results"
    rng = np.random.default_rng(0)
    for task in find_tasks(root):
        gaps = generalization_gaps(task.model_specs())
        # "good" follows the gap with a little noise, "noise" is unrelated to it.
        for measure, values in (("good", {m: g + 0.001 * rng.normal() for m, g in gaps.items()}),
                                ("noise", dict(zip(gaps, rng.random(len(gaps)))))):
            write_predictions(task, values, results / measure)
    code = main(["select", "--data", str(root), "--results", str(results), "--candidates", "noise", "good",
                 "--reference", "noise", "--family", "toy_a=one", "--family", "toy_b=two",
                 "--bootstrap", "50", "--null", "50"])
    assert code == 0
    text = (results / "selection.md").read_text()
    out = capsys.readouterr().out
    assert text in out and (f"wrote: {results / 'selection.md'}, selection_tasks.csv, selection_summary.csv, "
                            f"selection_axes.csv") in out
    tasks = pd.read_csv(results / "selection_tasks.csv")
    assert tasks["chosen"].tolist() == ["good", "good"]  # chosen on the other task each time
    # Each held-out task's chance levels are the report's: tau's beside CMI's, every score within chance named.
    assert (tasks["kendall_tau_chance_p95"] > 0).all() and (tasks["kendall_tau"] > tasks["kendall_tau_chance_p95"]).all()
    assert tasks["within chance"].isna().all()  # "good" follows the gap: above chance on every score
    summary = pd.read_csv(results / "selection_summary.csv").set_index("measure")
    assert summary.loc["leave-one-family-out choice", "cmi"] == pytest.approx(summary.loc["good", "cmi"])
    assert summary.loc["good", "cmi_vs_noise"] > 0.9
    assert "**Chosen on all tasks**: good" in text and "Granulated tau per axis" in text
    # Every measure's psi per axis, for every axis of both tasks.
    axes = pd.read_csv(results / "selection_axes.csv")
    assert list(axes.columns) == ["task", "family", "axis", "noise", "good"]
    assert set(axes["task"]) == {"toy_a", "toy_b"} and axes["family"].tolist().count("one") == len(axes) / 2
    assert (axes["good"] > 0.5).all() and (axes["good"] > axes["noise"]).mean() > 0.5
    # A missing prediction file is named.
    (results / "good" / "toy_b.predict").unlink()
    assert main(["select", "--data", str(root), "--results", str(results), "--candidates", "good",
                 "--family", "toy_a=one", "--family", "toy_b=two", "--reference", "good"]) == 2
    assert "toy_b.predict: no predictions of good on toy_b" in capsys.readouterr().err

