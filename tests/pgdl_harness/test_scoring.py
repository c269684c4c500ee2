"""Tests of pgdl_harness.scoring against the organisers' golden values."""

import copy
import itertools
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from pgdl_harness.scoring import (
    InvalidGridError,
    TaskScore,
    UndefinedScoreError,
    conditional_mutual_information,
    generalization_gaps,
    granulated_kendall_tau,
    granulated_kendall_taus,
    kendall_tau,
    score_task,
    validate_hyperparameter_grid,
)

REPO = Path(__file__).resolve().parents[2]
TOY_CONFIGS = REPO / "data" / "toy_data" / "model_configs.json"
GOLDEN_PATH = REPO / "tests" / "golden" / "golden_cmi.json"  # vendored: see tests/golden/README.md
GOLDEN = json.loads(GOLDEN_PATH.read_text())


@pytest.fixture
def toy_specs():
    return json.loads(TOY_CONFIGS.read_text())


def make_specs(possible_values, gap=lambda combination: 0.0):
    """A complete grid over ``possible_values`` ({name: values}), ids 0, 1, ..."""
    names = list(possible_values)
    specs = {}
    for mid, combination in enumerate(itertools.product(*possible_values.values())):
        specs[str(mid)] = {
            "hparams": {
                name: {"possible_values": list(possible_values[name]), "current_value": value}
                for name, value in zip(names, combination)
            },
            "metrics": {"train_acc": 1.0, "test_acc": 1.0 - gap(combination)},
        }
    return specs


def gap_predictions(specs):
    return generalization_gaps(specs)


# --------------------------------------------------------------------------
# Golden values from the organisers' scorer on the kit's toy task


@pytest.mark.parametrize(
    "case",
    sorted(GOLDEN["cases"]),
)
def test_golden_scores(case, toy_specs):
    expected = GOLDEN["cases"][case]
    predictions = expected["predictions"]

    cmi = conditional_mutual_information(predictions, toy_specs)
    assert cmi == pytest.approx(expected["cmi_x100"], rel=0, abs=1e-9)
    tau = kendall_tau(predictions, generalization_gaps(toy_specs))
    assert tau == pytest.approx(expected["kendall_tau"], rel=0, abs=1e-12)
    psi = granulated_kendall_tau(predictions, toy_specs)
    assert psi == pytest.approx(expected["granulated_kendall_tau"], rel=0, abs=1e-12)

    score = score_task(predictions, toy_specs)
    assert score.cmi == pytest.approx(expected["cmi_x100"], rel=0, abs=1e-9)
    assert score.kendall_tau == pytest.approx(expected["kendall_tau"], rel=0, abs=1e-12)
    assert score.granulated_kendall_tau == pytest.approx(expected["granulated_kendall_tau"], rel=0, abs=1e-12)
    assert score.n_models == 18


def test_golden_task_is_the_toy_task(toy_specs):
    # The golden values were computed against the organisers' toy task, bundled as data/toy_data.
    assert GOLDEN["reference"] == "toy_data/model_configs.json"
    assert json.loads((REPO / "data" / GOLDEN["reference"]).read_text()) == toy_specs
    assert len(GOLDEN["cases"]) == 6


# --------------------------------------------------------------------------
# Properties of the scores


def test_true_gap_scores_100_and_constant_0(toy_specs):
    gaps = generalization_gaps(toy_specs)
    assert conditional_mutual_information(gaps, toy_specs) == pytest.approx(100.0, rel=0, abs=1e-9)
    constant = dict.fromkeys(gaps, 0.5)
    assert conditional_mutual_information(constant, toy_specs) == 0.0
    assert kendall_tau(constant, gaps) == 0.0
    assert granulated_kendall_tau(constant, toy_specs) == 0.0


def test_cmi_is_invariant_to_increasing_transforms(toy_specs):
    rng = np.random.default_rng(0)
    measure = dict(zip(generalization_gaps(toy_specs), rng.normal(size=18)))
    # Ties too: rounding makes some models equal, and stays equal under f.
    measure["model_3"] = measure["model_4"]
    cmi = conditional_mutual_information(measure, toy_specs)
    assert cmi > 0
    for transform in (np.exp, np.arctan, lambda x: 3.0 * x + 7.0, lambda x: x**3):
        transformed = {mid: float(transform(value)) for mid, value in measure.items()}
        assert conditional_mutual_information(transformed, toy_specs) == cmi


def test_cmi_direction_ties_count_as_minus(toy_specs):
    # Not symmetric: the negated gap is not as good as the gap (golden 58.35),
    # because ties and self-pairs always fall on the "minus" side.
    gaps = generalization_gaps(toy_specs)
    negated = {mid: -gap for mid, gap in gaps.items()}
    assert conditional_mutual_information(negated, toy_specs) == pytest.approx(58.3479, abs=1e-4)


def test_cmi_with_exactly_two_hyperparameters_is_zero():
    # Every (value, value, value, value) bin then holds exactly one model
    # pair, so there is no information within a bin: the organisers' CMI is 0
    # for any measure (theirs returns -0.0; we return 0.0).
    specs = make_specs({"a": [1, 2, 3], "b": ["x", "y"]}, gap=lambda c: c[0] / 10 + len(c[1]) / 100)
    cmi = conditional_mutual_information(gap_predictions(specs), specs)
    assert cmi == 0.0 and math.copysign(1.0, cmi) == 1.0


def test_cmi_of_a_hand_built_task():
    # Three binary hyperparameters, each moving the gap by its own amount.
    specs = make_specs({"a": [0, 1], "b": [0, 1], "c": [0, 1]}, gap=lambda c: 0.1 * c[0] + 0.01 * c[1] + 0.001 * c[2])
    gaps = gap_predictions(specs)
    perfect = conditional_mutual_information(gaps, specs)
    assert perfect == pytest.approx(100.0, abs=1e-7)
    # A measure that gets a and b right but c backwards.
    combos = dict(zip(gaps, itertools.product([0, 1], repeat=3)))
    partial = {mid: 0.1 * a + 0.01 * b - 0.001 * c for mid, (a, b, c) in combos.items()}
    assert 0.0 < conditional_mutual_information(partial, specs) < perfect
    # When two hyperparameters determine the gap, the gap sign is constant in
    # every bin of that pair: no entropy left, and the organisers' CMI is 0
    # for any measure, the gap itself included.
    specs = make_specs({"a": [0, 1], "b": [0, 1], "c": [0, 1]}, gap=lambda c: 0.1 * c[0] + 0.01 * c[1])
    assert conditional_mutual_information(gap_predictions(specs), specs) == 0.0


def test_kendall_tau_equals_scipy_without_ties_and_differs_with_ties():
    rng = np.random.default_rng(1)
    ids = [f"model_{i}" for i in range(12)]
    gaps, measure = rng.normal(size=12), rng.normal(size=12)
    tau = kendall_tau(dict(zip(ids, measure)), dict(zip(ids, gaps)))
    assert tau == pytest.approx(stats.kendalltau(measure, gaps).statistic, rel=0, abs=1e-12)

    # With ties scipy's tau-b divides by fewer pairs; tau-a keeps all n(n-1).
    tied = np.round(measure)
    tau_a = kendall_tau(dict(zip(ids, tied)), dict(zip(ids, gaps)))
    tau_b = stats.kendalltau(tied, gaps).statistic
    assert abs(tau_a) < abs(tau_b)


def test_kendall_tau_by_hand():
    gaps = {"model_0": 1.0, "model_1": 2.0, "model_2": 3.0}
    assert kendall_tau({"model_0": 0.0, "model_1": 1.0, "model_2": 2.0}, gaps) == 1.0
    assert kendall_tau({"model_0": 2.0, "model_1": 1.0, "model_2": 0.0}, gaps) == -1.0
    # One tie (models 0, 1) out of three unordered pairs: 2 of 3 concordant.
    assert kendall_tau({"model_0": 0.0, "model_1": 0.0, "model_2": 2.0}, gaps) == pytest.approx(2 / 3)


def test_granulated_kendall_tau_by_hand():
    # Grid a x b in {0, 1}^2. Gaps 1, 3, 2, 4 for (a, b) = 00, 01, 10, 11;
    # the measure swaps the order of the last two models.
    specs = make_specs({"a": [0, 1], "b": [0, 1]}, gap=lambda c: (1 + 2 * c[1] + c[0]) / 10)
    measure = {"model_0": 1.0, "model_1": 4.0, "model_2": 2.0, "model_3": 3.0}
    # a varies within b = 0: (1, 2) vs (1, 2): +1; within b = 1: (3, 4) vs (4, 3): -1.
    # b varies within a = 0: (1, 3) vs (1, 4): +1; within a = 1: (2, 4) vs (2, 3): +1.
    assert granulated_kendall_taus(measure, specs) == pytest.approx({"a": 0.0, "b": 1.0})
    assert granulated_kendall_tau(measure, specs) == pytest.approx(0.5)
    # Over all 6 unordered pairs only (model_1, model_3) is discordant.
    assert kendall_tau(measure, generalization_gaps(specs)) == pytest.approx(4 / 6)


def test_score_task(toy_specs):
    score = score_task(generalization_gaps(toy_specs), toy_specs)
    assert isinstance(score, TaskScore)
    assert score.cmi == pytest.approx(100.0, abs=1e-9)
    assert set(score.psi) == {"num_units", "num_layers", "activation_function"}
    assert score.granulated_kendall_tau == pytest.approx(np.mean(list(score.psi.values())))
    assert score.n_models == 18


def test_inputs_are_not_modified(toy_specs):
    before = copy.deepcopy(toy_specs)
    predictions = generalization_gaps(toy_specs)
    predictions_before = dict(predictions)
    score_task(predictions, toy_specs)
    conditional_mutual_information(predictions, toy_specs)
    assert toy_specs == before
    assert predictions == predictions_before


def test_bare_and_prefixed_ids_are_the_same(toy_specs):
    prefixed = {f"model_{mid}": spec for mid, spec in toy_specs.items()}
    gaps = generalization_gaps(toy_specs)
    assert generalization_gaps(prefixed) == gaps
    assert list(gaps)[:3] == ["model_0", "model_1", "model_2"]
    assert gaps["model_16"] == pytest.approx(0.02)
    assert score_task(gaps, prefixed) == score_task(gaps, toy_specs)


# --------------------------------------------------------------------------
# Undefined scores and bad inputs


def test_fewer_than_two_hyperparameters_is_undefined():
    specs = make_specs({"depth": [1, 2, 3]}, gap=lambda c: c[0] / 10)
    gaps = gap_predictions(specs)
    with pytest.raises(UndefinedScoreError, match="at least two hyperparameters"):
        conditional_mutual_information(gaps, specs)
    score = score_task(gaps, specs)
    assert score.cmi is None
    assert score.kendall_tau == 1.0 and score.psi == {"depth": 1.0}


def test_toy_grid_is_valid(toy_specs):
    validate_hyperparameter_grid(toy_specs)


def test_missing_model_is_rejected(toy_specs):
    del toy_specs["5"]
    with pytest.raises(InvalidGridError, match=r"task1/model_configs\.json.*not complete.*1 of 18") as info:
        validate_hyperparameter_grid(toy_specs, source="task1/model_configs.json")
    assert "num_units=64, num_layers=3, activation_function='tanh'" in str(info.value)


def test_duplicated_combination_is_rejected(toy_specs):
    toy_specs["18"] = copy.deepcopy(toy_specs["4"])
    with pytest.raises(InvalidGridError, match=r"task1/model_configs\.json.*not unique.*model_4, model_18"):
        validate_hyperparameter_grid(toy_specs, source="task1/model_configs.json")


def test_value_not_among_possible_values_is_rejected(toy_specs):
    toy_specs["7"]["hparams"]["num_layers"]["current_value"] = 4
    with pytest.raises(InvalidGridError, match=r"task1/model_configs\.json: model_7 has num_layers=4"):
        validate_hyperparameter_grid(toy_specs, source="task1/model_configs.json")


def test_models_must_agree_on_hyperparameters(toy_specs):
    toy_specs["3"]["hparams"]["num_units"]["possible_values"] = [64, 128]
    with pytest.raises(InvalidGridError, match="model_3 gives possible_values"):
        validate_hyperparameter_grid(toy_specs)
    del toy_specs["3"]["hparams"]["num_units"]
    with pytest.raises(InvalidGridError, match="model_3 has hyperparameters"):
        validate_hyperparameter_grid(toy_specs)


def test_scores_check_the_grid(toy_specs):
    predictions = generalization_gaps(toy_specs)
    del toy_specs["5"], predictions["model_5"]
    with pytest.raises(InvalidGridError, match="not complete"):
        conditional_mutual_information(predictions, toy_specs)
    with pytest.raises(InvalidGridError, match="not complete"):
        score_task(predictions, toy_specs)


def test_bad_predictions_are_rejected(toy_specs):
    gaps = generalization_gaps(toy_specs)
    exceeded = {**gaps, "model_4": "EXCEEDED", "model_9": "EXCEEDED"}
    with pytest.raises(ValueError, match=r"EXCEEDED.*model_4, model_9"):
        score_task(exceeded, toy_specs)
    missing = {mid: g for mid, g in gaps.items() if mid != "model_12"}
    with pytest.raises(ValueError, match="no value for model_12"):
        conditional_mutual_information(missing, toy_specs)
    with pytest.raises(ValueError, match="not in model_configs.json: model_99"):
        conditional_mutual_information({**gaps, "model_99": 0.0}, toy_specs)
    with pytest.raises(ValueError, match="model_2 is not a number"):
        kendall_tau({**gaps, "model_2": "0.1"}, gaps)


def test_nan_counts_as_a_tie_with_a_warning(toy_specs):
    gaps = generalization_gaps(toy_specs)
    with pytest.warns(RuntimeWarning, match="NaN for model_0"):
        score = score_task({**gaps, "model_0": float("nan")}, toy_specs)
    # The organisers' scorer on these predictions (every model's own gap, model_0's NaN).
    assert score.cmi == pytest.approx(85.636372848627, abs=1e-9)
    # The gaps themselves are concordant with every pair they do not tie; model_0's NaN ties it
    # with every other model, so its untied pairs move from concordant to tied.
    untied = sum(gap != gaps["model_0"] for model_id, gap in gaps.items() if model_id != "model_0")
    pairs = len(gaps) * (len(gaps) - 1) // 2
    assert score.kendall_tau == pytest.approx(score_task(gaps, toy_specs).kendall_tau - untied / pairs, abs=1e-12)


def test_warns_where_organisers_bin_names_collide():
    # Their bin name for values (1, 11) is "1" + "11" == "11" + "1".
    specs = make_specs({"a": [1, 11], "b": [0, 1], "c": [0, 1]}, gap=lambda c: c[0] / 100 + c[1] / 10 + c[2] / 1000)
    with pytest.warns(UserWarning, match=r"organisers' scorer.*\(a, b\).*'111"):
        cmi = conditional_mutual_information(gap_predictions(specs), specs)
    assert cmi == pytest.approx(100.0, abs=1e-7)


def test_no_warning_on_the_toy_task(toy_specs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score_task(generalization_gaps(toy_specs), toy_specs)


def test_population_cmi_is_the_task_cmi_with_one_model_per_cell():
    from pgdl_harness.scoring import population_conditional_mutual_information

    rng = np.random.default_rng(7)
    shape = (3, 2, 2)
    specs = make_specs({"a": [0, 1, 2], "b": [0, 1], "c": [0, 1]}, gap=lambda c: rng.random() / 10)
    gaps = gap_predictions(specs)
    measure = {mid: gap + 0.05 * rng.normal() for mid, gap in gaps.items()}
    index = np.array(list(itertools.product(*map(range, shape))))
    ordered = list(gaps)
    value = population_conditional_mutual_information([measure[m] for m in ordered], [gaps[m] for m in ordered],
                                                      index, shape)
    assert value == pytest.approx(score_task(measure, specs).cmi, abs=1e-9)  # x100, as every score
