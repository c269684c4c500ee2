"""Tests of pgdl_harness.uncertainty: chance levels, the bootstrap over grid cells, paired comparisons."""

import itertools
import json
import math

import numpy as np
import pytest

from pgdl_harness.scoring import generalization_gaps, score_task
from pgdl_harness.uncertainty import (
    bootstrap_scores,
    bootstrap_weights,
    chance_levels,
    multiset_scores,
    paired_win_fraction,
    centred_interval,
    percentile_interval,
    score_interval,
    seed_summary,
)

from ..conftest import DATA, GOLDEN_DIR
from .test_scoring import make_specs

GOLDEN_PATH = GOLDEN_DIR / "golden_cmi.json"


def task_specs(name):
    return json.loads((DATA / name / "model_configs.json").read_text())


def random_grid(rng, shape, tied_gaps=False):
    """A complete grid with the given numbers of values per hyperparameter and random gaps."""
    names = [f"h{k}" for k in range(len(shape))]
    possible = {name: list(range(n)) for name, n in zip(names, shape)}
    gaps = {}

    def gap(combination):
        value = rng.integers(0, 3) / 10 if tied_gaps else rng.random() / 10
        gaps[combination] = value
        return value

    return make_specs(possible, gap)


def organisers_cmi_of_multiset(measure, gaps, value_index, shape, weights):
    """CMI x100 of the expanded list of models (model i repeated weights[i] times), by loops.

    The organisers' definition written out: for each ordered pair of hyperparameters, a 2x2 table
    of (gap sign, measure sign) over all ordered pairs of list entries (self-pairs included, ties
    as "minus") per bin of the two hyperparameters' values; MI and gap entropy averaged over the
    bins that hold a pair; the minimum over hyperparameter pairs.
    """
    entries = [i for i, w in enumerate(weights) for _ in range(int(w))]
    scores = []
    for a, b in itertools.permutations(range(len(shape)), 2):
        tables = {}
        for i, j in itertools.product(entries, entries):
            key = (value_index[i][a], value_index[j][a], value_index[i][b], value_index[j][b])
            table = tables.setdefault(key, np.zeros((2, 2)))
            table[int(gaps[i] > gaps[j]), int(measure[i] > measure[j])] += 1
        mis, entropies = [], []
        for table in tables.values():
            joint = table / table.sum()
            p_gap, p_measure = joint.sum(axis=1), joint.sum(axis=0)
            mis.append(sum(joint[g, m] * math.log2(joint[g, m] / (p_gap[g] * p_measure[m]))
                           for g in range(2) for m in range(2) if joint[g, m] > 0))
            entropies.append(-sum(p * math.log2(p + 1e-12) for p in p_gap))
        scores.append(np.mean(mis) / np.mean(entropies))
    return 100 * (min(scores) + 0.0)


# --------------------------------------------------------------------------
# Multiset scores


@pytest.mark.parametrize("shape", [(2, 2, 2), (3, 2), (2, 3, 2, 2), (4,)])
def test_weights_one_give_exactly_score_task(shape):
    rng = np.random.default_rng(sum(shape))
    for trial in range(5):
        specs = random_grid(rng, shape, tied_gaps=trial % 2 == 1)
        # Rounded values tie some models, as real measures sometimes do.
        predictions = dict(zip(generalization_gaps(specs), np.round(rng.normal(size=math.prod(shape)), 1)))
        expected = score_task(predictions, specs)
        got = multiset_scores(predictions, specs, np.ones(math.prod(shape)))
        assert got.get("cmi") == expected.cmi  # None == None when CMI is undefined
        assert got["kendall_tau"] == expected.kendall_tau
        assert got["granulated_kendall_tau"] == expected.granulated_kendall_tau
        assert {name: got[f"psi/{name}"] for name in expected.psi} == expected.psi


def test_weights_one_reproduce_the_organisers_golden_values():
    specs = task_specs("toy_data")
    for case in json.loads(GOLDEN_PATH.read_text())["cases"].values():
        got = multiset_scores(case["predictions"], specs, np.ones(18))
        assert got["cmi"] == pytest.approx(case["cmi_x100"], rel=0, abs=1e-9)
        assert got["kendall_tau"] == pytest.approx(case["kendall_tau"], rel=0, abs=1e-12)
        assert got["granulated_kendall_tau"] == pytest.approx(case["granulated_kendall_tau"], rel=0, abs=1e-12)


def test_multiset_scores_count_each_copy():
    rng = np.random.default_rng(3)
    specs = random_grid(rng, (2, 3, 2), tied_gaps=True)
    model_ids = list(generalization_gaps(specs))
    measure = np.round(rng.normal(size=12), 1)
    gaps = np.array(list(generalization_gaps(specs).values()))
    names = list(specs["0"]["hparams"])
    value_index = [[specs[str(i)]["hparams"][n]["current_value"] for n in names] for i in range(12)]
    weights = np.array([2, 0, 1, 3, 0, 1, 1, 0, 2, 1, 0, 1])
    got = multiset_scores(dict(zip(model_ids, measure)), specs, dict(zip(model_ids, weights.tolist())))
    assert got["cmi"] == pytest.approx(
        organisers_cmi_of_multiset(measure, gaps, value_index, (2, 3, 2), weights), abs=1e-9)
    # Kendall's tau: concordance averaged over pairs of distinct models, pair (i, j) counted w_i w_j.
    num = den = 0.0
    for i, j in itertools.permutations(range(12), 2):
        num += weights[i] * weights[j] * np.sign(measure[i] - measure[j]) * np.sign(gaps[i] - gaps[j])
        den += weights[i] * weights[j]
    assert got["kendall_tau"] == pytest.approx(num / den, abs=1e-12)
    # Doubling every weight changes neither tau nor psi (copies are never compared with each other).
    doubled = multiset_scores(dict(zip(model_ids, measure)), specs, 2 * weights)
    assert doubled["kendall_tau"] == pytest.approx(got["kendall_tau"], abs=1e-12)
    assert doubled["granulated_kendall_tau"] == pytest.approx(got["granulated_kendall_tau"], abs=1e-12)


def test_multiset_weights_are_checked():
    specs = task_specs("toy_data")
    gaps = generalization_gaps(specs)
    with pytest.raises(ValueError, match="18 non-negative integers"):
        multiset_scores(gaps, specs, np.full(18, 0.5))
    with pytest.raises(ValueError, match="18 non-negative integers"):
        multiset_scores(gaps, specs, np.ones(17))


# --------------------------------------------------------------------------
# Chance levels


def test_null_of_tau_is_centred_and_the_true_gap_beats_every_draw():
    specs = task_specs("toy_data")
    chance = chance_levels(specs, n_draws=1000, seed=0)
    tau = chance["kendall_tau"]
    # Random rankings: tau has mean 0 and variance 2 (2n + 5) / (9 n (n - 1)) (Kendall; sd 0.17
    # on 18 models), so the mean of 1000 draws is within 4 standard errors (0.022) of 0.
    assert tau.draws.std() == pytest.approx(math.sqrt(2 * (2 * 18 + 5) / (9 * 18 * 17)), rel=0.1)
    assert abs(tau.mean) < 4 * tau.draws.std() / math.sqrt(1000)
    truth = score_task(generalization_gaps(specs), specs)
    for score in ("cmi", "kendall_tau", "granulated_kendall_tau"):
        assert chance[score].p_value(getattr(truth, score)) == 1 / 1001
        assert not chance[score].within_chance(getattr(truth, score))
    assert chance["cmi"].p_value(0.0) == 1.0 and chance["cmi"].within_chance(0.0)


def test_null_is_reproducible_with_its_seed():
    specs = make_specs({"a": [0, 1], "b": [0, 1], "c": [0, 1]}, gap=lambda c: 0.1 * c[0] + 0.03 * c[1] - 0.02 * c[2])
    first, again = chance_levels(specs, 200, seed=7), chance_levels(specs, 200, seed=7)
    other = chance_levels(specs, 200, seed=8)
    assert np.array_equal(first["cmi"].draws, again["cmi"].draws)
    assert not np.array_equal(first["cmi"].draws, other["cmi"].draws)
    assert 0 <= first["cmi"].draws.min() and first["cmi"].draws.max() <= 100 + 1e-9


@pytest.mark.parametrize("task, issue_mean, issue_p95", [
    # The issue's figures, each from 100 random measures.
    ("toy_data", 13.5, 21.9), ("mnist_vgg", 1.8, 3.8), ("mnist_nin_bn", 1.8, 3.8)])
def test_chance_cmi_reproduces_the_issues_figures(task, issue_mean, issue_p95):
    chance = chance_levels(task_specs(task), n_draws=1000, seed=0)["cmi"]
    # The issue's mean of 100 draws and ours of 1000 differ by sampling error alone: within 3
    # standard errors of their difference (the 95th percentile is noisier, hence 25%).
    sd = chance.draws.std()
    assert abs(chance.mean - issue_mean) < 3 * sd * math.sqrt(1 / 100 + 1 / 1000) + 0.1
    assert chance.p95 == pytest.approx(issue_p95, rel=0.25)


# --------------------------------------------------------------------------
# Bootstrap


def noisy_measure(specs, rng, noise):
    gaps = generalization_gaps(specs)
    spread = np.std(list(gaps.values()))
    return {mid: gap + noise * spread * rng.normal() for mid, gap in gaps.items()}


def test_bootstrap_interval_contains_the_point_estimate():
    specs = task_specs("mnist_vgg")
    predictions = noisy_measure(specs, np.random.default_rng(0), noise=1.0)
    point = score_task(predictions, specs)
    distributions = bootstrap_scores(predictions, specs, n_resamples=500, seed=0)
    for score in ("cmi", "kendall_tau", "granulated_kendall_tau"):
        low, high = percentile_interval(distributions[score])
        assert low < getattr(point, score) < high
    # Resample r is the same multiset for any measure: the weights depend on the seed only.
    assert np.array_equal(bootstrap_weights(32, 500, 0), bootstrap_weights(32, 500, 0))
    assert bootstrap_weights(32, 500, 0).sum(axis=1).tolist() == [32] * 500


def test_centred_interval_contains_the_estimate_and_removes_the_resamples_bias():
    rng = np.random.default_rng(5)
    specs = random_grid(rng, (2, 2, 2, 2, 3))
    # A random measure: CMI on resamples that repeat models lies mostly above the score.
    predictions = {f"model_{mid}": value for mid, value in zip(specs, rng.random(len(specs)))}
    estimate = score_task(predictions, specs).cmi
    resampled = bootstrap_scores(predictions, specs, 400, seed=0)["cmi"]
    assert np.median(resampled) > estimate
    plain_low, plain_high = percentile_interval(resampled)
    # The same spread, moved down by the resamples' bias; for CMI clipped at its floor of 0.
    shift = estimate - np.median(resampled)
    assert centred_interval(resampled, estimate) == (pytest.approx(plain_low + shift), pytest.approx(plain_high + shift))
    low, high = score_interval("cmi", resampled, estimate)
    assert 0.0 <= low <= estimate <= high
    assert low == pytest.approx(max(plain_low + shift, 0.0)) and high == pytest.approx(plain_high + shift)
    # Clipped to the score's range, and the estimate always inside.
    assert score_interval("kendall_tau", [0.9, 1.0, 1.0, 1.0], 0.5) == (pytest.approx(0.4075), 0.5)
    assert score_interval("kendall_tau", [-1.0, -1.0, -0.9], -0.95) == (-0.95, pytest.approx(-0.855))
    assert centred_interval([5.0, 6.0, 7.0], 1.0) == (pytest.approx(0.05), pytest.approx(1.95))
    assert np.isnan(centred_interval([], 1.0)[0])


def test_bootstrap_interval_shrinks_with_more_models():
    rng = np.random.default_rng(1)
    widths = []
    for shape in [(2, 2, 2, 2), (4, 4, 2, 2)]:  # 16, then 64 models
        specs = random_grid(rng, shape)
        predictions = noisy_measure(specs, rng, noise=1.0)
        low, high = percentile_interval(bootstrap_scores(predictions, specs, 400, seed=0)["kendall_tau"])
        widths.append(high - low)
    # Four times the models: about half the width (1 / sqrt(4)).
    assert widths[1] < 0.7 * widths[0]


# --------------------------------------------------------------------------
# Paired comparison and seeds


def test_paired_comparison():
    specs = task_specs("mnist_vgg")
    rng = np.random.default_rng(2)
    good = bootstrap_scores(noisy_measure(specs, rng, 0.3), specs, 300)["kendall_tau"]
    bad = bootstrap_scores(noisy_measure(specs, rng, 3.0), specs, 300)["kendall_tau"]
    assert paired_win_fraction(good, good) == 0.5  # a measure against itself: all ties
    assert paired_win_fraction(good, bad) > 0.95
    assert paired_win_fraction(good, bad) + paired_win_fraction(bad, good) == pytest.approx(1.0)
    # Several seeds of one measure against one seed of another: every pair of seeds counts.
    assert paired_win_fraction(np.stack([good, bad]), bad) == pytest.approx(
        (paired_win_fraction(good, bad) + 0.5) / 2)
    with pytest.raises(ValueError, match="same resamples"):
        paired_win_fraction(good, bad[:10])


def test_seed_summary():
    assert seed_summary([1.0, 3.0, 2.0]) == {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0, "seeds": 3}
    assert seed_summary([4.0])["std"] == 0.0


# --------------------------------------------------------------------------
# Reports


def test_reports_carry_chance_levels_and_intervals(toy_task, tmp_path):
    from pgdl_harness.outputs import write_report
    from pgdl_harness.render import format_table
    from pgdl_harness.report import score_predictions

    specs = toy_task.model_specs()
    truth = {f"model_{mid}": gap for mid, gap in zip(specs, generalization_gaps(specs).values())}
    noise = dict(zip(truth, np.random.default_rng(4).random(18)))
    reports = [score_predictions(toy_task, name, values, null=400, bootstrap=300, seed=3)
               for name, values in (("truth", truth), ("noise", noise))]
    chance = chance_levels(specs, 400, seed=3)
    for report, values in zip(reports, (truth, noise)):
        assert report.chance["cmi"]["p95"] == chance["cmi"].p95
        assert report.chance["kendall_tau"]["p_value"] == chance["kendall_tau"].p_value(report.kendall_tau)
        expected = score_interval("granulated_kendall_tau",
                                  bootstrap_scores(values, specs, 300, seed=3)["granulated_kendall_tau"],
                                  report.granulated_kendall_tau)
        assert report.interval["granulated_kendall_tau"] == expected
    assert reports[0].within_chance == [] and reports[0].chance["cmi"]["p_value"] == 1 / 401
    assert "kendall_tau" in reports[1].within_chance
    frame = write_report(reports, tmp_path)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["toy_data"]["noise"]["within_chance"] == reports[1].within_chance
    assert saved["toy_data"]["truth"]["interval_95"]["cmi"] == list(reports[0].interval["cmi"])
    assert frame.loc[1, "kendall_tau_chance_p95"] == chance["kendall_tau"].p95
    table = format_table(frame)
    assert "CMI 95%" in table and "tau chance" in table and "within chance" in table
    # Without a null and a bootstrap the table is what it was.
    plain = format_table(write_report([score_predictions(toy_task, "noise", noise)], tmp_path / "plain"))
    assert "chance" not in plain and "95%" not in plain
