import json

import numpy as np
import pandas as pd
import pytest

from complexity_measure.registry import get_measure
from pgdl_harness.cli import main
from pgdl_harness.compare import RunLabel, compare_runs, score_table, seeded_measures
from pgdl_harness.outputs import write_comparison
from pgdl_harness.cache import ModelResult
from pgdl_harness.task_run import TaskRun
from pgdl_harness.scoring import score_task
from pgdl_harness.tasks import Task

from ..conftest import DATA, GOLDEN_DIR

GOLDEN = json.loads((GOLDEN_DIR / "golden_cmi.json").read_text())["cases"]


def as_results(case, seconds=1.0):
    return {m: ModelResult(m, v, seconds) for m, v in GOLDEN[case]["predictions"].items()}


def test_comparison_scores_each_measure_and_ranks_them(toy_task, tmp_path):
    broken = {m: r for m, r in as_results("true_gap").items() if m != "model_3"}
    results = {toy_task: TaskRun(task=toy_task,
                                 results={"negated": as_results("negated_gap"), "truth": as_results("true_gap"),
                                          "kit": as_results("kit_toy_predict", 2.0), "broken": broken},
                                 failures={"broken": {"model_3": "measure broken failed on model_3: ValueError: no"}})}
    reports, frame, written = compared(results, tmp_path)
    cmi = score_table(frame, "cmi")
    assert list(cmi.index) == ["truth", "negated", "kit", "broken"]
    assert frame.set_index("measure").loc["broken", "note"] == (
        "incomplete: 1 of 18 model(s) failed, no CMI (first: measure broken failed on model_3: ValueError: no)")
    assert not (tmp_path / "broken" / "toy_data.predict").exists()
    assert json.loads((tmp_path / "broken" / "toy_data.predict.json").read_text())["failed"] == {
        "model_3": "measure broken failed on model_3: ValueError: no"}
    assert cmi.loc["truth", "toy_data"] == pytest.approx(100.0, abs=1e-9)
    assert cmi.loc["kit", "mean"] == pytest.approx(GOLDEN["kit_toy_predict"]["cmi_x100"], abs=1e-9)
    assert score_table(frame, "kendall_tau").loc["negated", "toy_data"] == pytest.approx(
        GOLDEN["negated_gap"]["kendall_tau"], abs=1e-12)
    assert json.loads((tmp_path / "kit" / "toy_data.predict").read_text()) == GOLDEN["kit_toy_predict"]["predictions"]
    markdown = (tmp_path / "comparison.md").read_text()
    # The page's tables hold the golden scores, best first.
    cmi_table = markdown.split("**CMI x100**")[1].split("**")[0]
    assert [line.split("|")[1].strip() for line in cmi_table.splitlines()
            if line.startswith("| ") and "measure" not in line] == ["truth", "negated", "kit", "broken"]
    for name, case in (("truth", "true_gap"), ("negated", "negated_gap"), ("kit", "kit_toy_predict")):
        cmi, tau = GOLDEN[case]["cmi_x100"], GOLDEN[case]["kendall_tau"]
        assert f"| {name:<9} | {cmi:10.2f} | {cmi:6.2f} |" in cmi_table, name
        assert f"| {name:<9} | {tau:10.3f} | {tau:6.3f} |" in markdown, name
    assert "| truth     |     100.00 | 100.00 |" in markdown and "| broken    |        n/a |    n/a |" in markdown
    # One 3.4 x 3.0 inch panel per complete measure (the broken one has none), at 110 dpi.
    assert png_size(tmp_path / "figures" / "toy_data.png") == (round(3 * 3.4 * 110), round(3.0 * 110))
    assert {r.measure for r in reports} == {"negated", "truth", "kit", "broken"}
    assert (tmp_path / "comparison.csv").read_text().splitlines()[0].startswith("task,measure,models,failed,cmi")


def png_size(path):
    """(width, height) in pixels, from a PNG file's header."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG file"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def compared(task_runs, out_dir, labels=None, *, figures=True, null=0, bootstrap=0):
    """compare_runs, then write_comparison: the reports, the long table and the paths written."""
    comparison = compare_runs(task_runs, labels, null=null, bootstrap=bootstrap)
    return comparison.reports, comparison.frame, write_comparison(comparison, out_dir, figures=figures)


NOISY = {RunLabel("noisy", seed).name: RunLabel("noisy", seed) for seed in (None, 1, 2)}


def noisy_results(seed, noise=0.01):
    rng = np.random.default_rng(seed)
    return {m: ModelResult(m, v + noise * rng.normal(), 1.0) for m, v in GOLDEN["true_gap"]["predictions"].items()}


def test_a_comparison_report_is_the_score_report_of_the_same_run(toy_task):
    # compare and score build their reports in one place: the same note on recomputed values,
    # the same chance levels and intervals.
    from pgdl_harness.report import report_run

    run = TaskRun(task=toy_task, results={"truth": as_results("true_gap")}, recomputed={"truth": 3},
                  keys={"truth": {"parameters": {"a": 1}}})
    compared_report = compare_runs({toy_task: run}, null=50, bootstrap=40, seed=1).reports[0]
    scored = report_run(run, "truth", null=50, bootstrap=40, seed=1)
    assert compared_report.note == scored.note == (
        "3 cached value(s) were recomputed: made by other settings, code, data or model files")
    assert compared_report.as_json() == scored.as_json()
    assert compared_report.n_models == 18 and compared_report.parameters == {"a": 1}


def test_seeds_are_summarised_with_intervals_chance_and_paired_comparison(toy_task, tmp_path):
    runs = {"noisy": noisy_results(0), "noisy#seed=1": noisy_results(1), "noisy#seed=2": noisy_results(2),
            "truth": as_results("true_gap"), "kit": as_results("kit_toy_predict")}
    reports, frame, written = compared({toy_task: TaskRun(task=toy_task, results=runs)}, tmp_path, NOISY, null=300,
                                       bootstrap=200)
    by_measure = {r.measure: r for r in reports}
    assert set(by_measure) == {"noisy", "truth", "kit"}
    noisy = by_measure["noisy"]
    seed_cmis = [score_task({m: r.value for m, r in runs[label].items()}, toy_task.model_specs()).cmi
                 for label in ("noisy", "noisy#seed=1", "noisy#seed=2")]
    assert len(set(seed_cmis)) == 3
    assert noisy.cmi == pytest.approx(np.mean(seed_cmis), abs=1e-12)
    assert noisy.seeds["cmi"]["std"] == pytest.approx(np.std(seed_cmis, ddof=1), abs=1e-12)
    assert noisy.seeds["cmi"]["seeds"] == 3 and not by_measure["kit"].seeds
    low, high = noisy.interval["kendall_tau"]
    assert low < noisy.kendall_tau < high
    # The kit's sample predictions are within chance on the toy task (CMI 12.0, chance mean ~14).
    assert by_measure["kit"].within_chance == ["cmi", "kendall_tau", "granulated_kendall_tau"]
    assert by_measure["truth"].within_chance == [] and by_measure["truth"].chance["cmi"]["p_value"] == 1 / 301
    paired = pd.read_csv(tmp_path / "paired.csv")
    tau = paired[(paired["task"] == "toy_data") & (paired["score"] == "kendall_tau")].set_index("measure")
    assert (tau["best"] == "truth").all() and tau.loc["truth", "wins"] == 0.5
    assert tau.loc["kit", "wins"] < 0.05
    csv = pd.read_csv(tmp_path / "comparison.csv").set_index("measure")
    assert csv.loc["noisy", "cmi_seed_std"] == pytest.approx(noisy.seeds["cmi"]["std"])
    assert csv.loc["kit", "cmi_chance_p95"] == pytest.approx(by_measure["kit"].chance["cmi"]["p95"])
    markdown = (tmp_path / "comparison.md").read_text()
    assert f"{noisy.cmi:.2f} ± {noisy.seeds['cmi']['std']:.2f} [" in markdown
    assert "*chance: random measure, mean / 95th pct*" in markdown and "°" in markdown
    assert "paired with the best measure" in markdown
    # A label is never parsed: without the RunLabels, each seed's label is a measure of its own.
    assert {r.measure for r in compare_runs({toy_task: TaskRun(task=toy_task, results=runs)}).reports} == set(runs)
    # One file per seed, as the runner caches them.
    assert (tmp_path / "noisy#seed=2" / "toy_data.predict").exists()


def test_seeded_measures_label_each_seed_of_a_sampling_measure():
    measures = {name: get_measure(name) for name in ("fragmentation", "parameter_norm")}
    labelled = seeded_measures(measures, 3)
    assert [label.name for label in labelled] == ["fragmentation", "fragmentation#seed=1", "fragmentation#seed=2",
                                                  "parameter_norm"]
    assert list(labelled)[:3] == [RunLabel("fragmentation"), RunLabel("fragmentation", 1), RunLabel("fragmentation", 2)]
    assert [labelled[label].parameters["seed"] for label in list(labelled)[:3]] == [0, 1, 2]
    assert seeded_measures(measures, 1) == {RunLabel(name): measure for name, measure in measures.items()}


@pytest.mark.slow
def test_compare_seeds_on_the_toy_task(tmp_path):
    assert main(["compare", "--data", str(DATA), "--task", "toy_data", "--measures", "fragmentation",
                 "parameter_norm", "--seeds", "2", "--out", str(tmp_path), "--null", "100", "--bootstrap", "100",
                 "--no-progress", "--no-figures"]) == 0
    values = {label: json.loads((tmp_path / label / "toy_data.predict").read_text())
              for label in ("fragmentation", "fragmentation#seed=1", "parameter_norm")}
    assert values["fragmentation"] != values["fragmentation#seed=1"]  # another draw of pairs
    assert not (tmp_path / "parameter_norm#seed=1").exists()  # nothing to resample
    frame = pd.read_csv(tmp_path / "comparison.csv").set_index("measure")
    assert frame.loc["fragmentation", "seeds"] == 2 and frame.loc["parameter_norm", "seeds"] == 1
    assert frame.loc["fragmentation", "cmi_seed_std"] > 0 and pd.isna(frame.loc["parameter_norm", "cmi_seed_std"])


def test_the_mean_over_tasks_has_a_seed_spread_an_interval_and_a_figure(toy_task, tmp_path):
    # The toy task under a second name is a second task with the same models and gaps.
    other = Task("toy_copy", toy_task.folder, toy_task.model_configs_path)
    labels = ("noisy", "noisy#seed=1", "noisy#seed=2")
    runs = {task: TaskRun(task=task, results={**{label: noisy_results(10 * i + k, noise=0.02)
                                                 for k, label in enumerate(labels)}, "truth": as_results("true_gap")})
            for i, task in enumerate((toy_task, other))}
    reports, frame, written = compared(runs, tmp_path, NOISY, null=50, bootstrap=100)
    per_seed = [np.mean([score_task({m: r.value for m, r in runs[task].results[label].items()},
                                    task.model_specs()).cmi for task in runs]) for label in labels]
    intervals = pd.read_csv(tmp_path / "mean_intervals.csv").set_index(["score", "measure"])
    assert intervals.loc[("cmi", "noisy"), "seed_std"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-9)
    assert intervals.loc[("cmi", "noisy"), "seeds"] == 3 and intervals.loc[("cmi", "noisy"), "tasks"] == 2
    assert np.isnan(intervals.loc[("cmi", "truth"), "seed_std"])
    low, high = intervals.loc[("kendall_tau", "noisy"), ["low", "high"]]
    assert low <= frame[frame["measure"] == "noisy"]["kendall_tau"].mean() <= high
    markdown = (tmp_path / "comparison.md").read_text()
    assert f"{np.mean(per_seed):.2f} ± {np.std(per_seed, ddof=1):.2f} [" in markdown
    # Two panels (CMI, tau), a row per measure: 5.2 inches wide each, 0.32 inch per measure + 1.4.
    assert png_size(tmp_path / "figures" / "over_tasks.png") == (round(2 * 5.2 * 110), round((0.32 * 2 + 1.4) * 110))
    summary = (tmp_path / "summary.md").read_text().splitlines()
    rows = [line for line in summary if line.startswith("| noisy") or line.startswith("| truth")]
    assert rows[0].startswith("| truth") and " best |" in rows[0] and " 2/2 |" in rows[0]
    assert rows[0].endswith(" 1.00 |")
    assert f"{np.mean(per_seed):.2f} ± {np.std(per_seed, ddof=1):.2f} [" in rows[1]
