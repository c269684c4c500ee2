"""Scores of a complexity measure on one PGDL task.

A PGDL task is a complete grid of trained models: every combination of the
task's hyperparameter values occurs exactly once. A complexity measure gives
one number per model, and is scored on how well it ranks the models'
generalization gaps (``train_acc - test_acc``). Three scores are offered, and
for all three *higher is better*: a measure should be larger for models that
generalize worse.

- :func:`conditional_mutual_information`: the official PGDL score, computed
  exactly as the organisers' scoring program does (see ``docs/PGDL.md``).
- :func:`kendall_tau`: Kendall's rank correlation (tau-a) between measure and
  gap over all models.
- :func:`granulated_kendall_tau`: Jiang et al.'s granulated Kendall
  coefficient, which only compares models that differ in one hyperparameter.

The inputs are the organisers' formats, already parsed: ``model_specs`` is the
content of a task's ``model_configs.json`` and ``predictions`` the content of a
``<task>.predict`` file, ``{"model_<id>": value}``. Inputs are checked once, at
the public functions; the numeric core trusts them. Nothing here reads files
or needs TensorFlow.
"""

# The organisers' reference implementation is scoring_program/ in the public
# starting kit (e.g. GitHub cadurosar/pgdl); this is an independent, vectorised
# version that reproduces its numbers.

import itertools
import math
import warnings
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy import sparse

__all__ = [
    "EXCEEDED",
    "InvalidGridError",
    "PairTables",
    "SCORES",
    "SCORE_DEFINITIONS",
    "SCORE_NAMES",
    "ScoreDefinition",
    "TaskScore",
    "UndefinedScoreError",
    "conditional_mutual_information",
    "generalization_gaps",
    "granulated_kendall_tau",
    "granulated_kendall_taus",
    "kendall_tau",
    "ordered_values",
    "population_conditional_mutual_information",
    "score_task",
    "validate_hyperparameter_grid",
]

#: What the kit's ingestion program writes instead of a value once the
#: measure ran out of time.
EXCEEDED = "EXCEEDED"

# The organisers compute entropies as -sum p * log2(p + 1e-12); the constant
# shifts results by ~1e-12, so it is kept to match their numbers exactly.
_ENTROPY_EPS = 1e-12

# How many offending models or combinations an error message lists.
_MAX_LISTED = 5


@dataclass(frozen=True)
class ScoreDefinition:
    """One score as every report shows it: its names and the decimals of each place it is printed."""

    name: str  # the key in TaskScore, CSVs and JSON
    title: str  # the title of a comparison's or a selection's table ("CMI x100")
    column: str  # its column in the plain table of ``score`` and ``evaluate`` ("CMI x100", "tau")
    short: str  # in compact lists and figure titles ("within chance: CMI tau")
    digits: int  # decimals in the markdown pages (comparison, summary, selection)
    table_digits: int  # decimals in the plain table
    context_digits: int  # decimals of intervals and chance levels in the plain table, and in figure titles
    low: float  # the range the score can take
    high: float


#: The three scores, in report order; higher is better for all. CMI is x100 everywhere.
SCORES = (
    ScoreDefinition("cmi", title="CMI x100", column="CMI x100", short="CMI", digits=2, table_digits=3,
                    context_digits=1, low=0.0, high=100.0),
    ScoreDefinition("kendall_tau", title="Kendall's tau", column="tau", short="tau", digits=3, table_digits=3,
                    context_digits=2, low=-1.0, high=1.0),
    ScoreDefinition("granulated_kendall_tau", title="granulated tau (psi)", column="psi", short="psi", digits=3,
                    table_digits=3, context_digits=2, low=-1.0, high=1.0),
)
SCORE_NAMES = tuple(score.name for score in SCORES)
#: Each score's definition by name.
SCORE_DEFINITIONS = {score.name: score for score in SCORES}


class InvalidGridError(ValueError):
    """The models of a task do not form a complete hyperparameter grid."""


class UndefinedScoreError(ValueError):
    """A score is not defined for this task (e.g. CMI with one hyperparameter)."""


@dataclass(frozen=True)
class TaskScore:
    """All scores of a complexity measure on one task; higher is better.

    Attributes
    ----------
    cmi : float or None
        Conditional mutual information x 100, in [0, 100]; None when the task
        has fewer than two hyperparameters and CMI is undefined.
    kendall_tau : float
        Kendall's tau-a over all models, in [-1, 1].
    granulated_kendall_tau : float
        Mean of ``psi`` over the hyperparameters, in [-1, 1].
    psi : dict of str to float
        Granulated tau per hyperparameter name, each in [-1, 1].
    n_models : int
        Number of models in the task.
    """

    cmi: float | None
    kendall_tau: float
    granulated_kendall_tau: float
    psi: dict[str, float]
    n_models: int


@dataclass(frozen=True)
class _Grid:
    """A validated task: models in ``model_specs`` order, values as indices."""

    model_ids: list[str]  # "model_<id>"
    hparam_names: list[str]  # the first model's order, as the organisers use
    possible_values: list[list]  # per hyperparameter
    value_index: np.ndarray  # (n_models, n_hparams) index into possible_values
    gaps: np.ndarray  # (n_models,) train_acc - test_acc


# --------------------------------------------------------------------------
# Input checking


def _model_key(mid):
    # The organisers' rule: bare ids get a "model_" prefix, others are kept.
    mid = str(mid)
    return mid if "model" in mid else f"model_{mid}"


def _list_some(items):
    items = list(items)
    shown = ", ".join(str(item) for item in items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        shown += f", ... ({len(items)} in all)"
    return shown


def _normalised_specs(model_specs, source):
    if not isinstance(model_specs, dict) or not model_specs:
        raise InvalidGridError(f"{source}: expected a non-empty mapping of model id to model spec")
    specs = {}
    for mid, spec in model_specs.items():
        key = _model_key(mid)
        if key in specs:
            raise InvalidGridError(f"{source}: model ids {mid!r} and another both name {key}")
        specs[key] = spec
    return specs


def _gap_vector(specs, source):
    gaps = np.empty(len(specs))
    for row, (mid, spec) in enumerate(specs.items()):
        try:
            metrics = spec["metrics"]
            gaps[row] = float(metrics["train_acc"]) - float(metrics["test_acc"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{source}: {mid} has no numeric metrics.train_acc and metrics.test_acc ({exc!r})"
            ) from None
    return gaps


def _parse_grid(model_specs, source):
    """Check that ``model_specs`` is a complete grid and index its values."""
    specs = _normalised_specs(model_specs, source)
    model_ids = list(specs)

    def hparams_of(mid):
        hparams = specs[mid].get("hparams") if isinstance(specs[mid], dict) else None
        if not isinstance(hparams, dict):
            raise InvalidGridError(f"{source}: {mid} has no 'hparams' mapping")
        return hparams

    # The first model defines names and possible values, as in the organisers'
    # code; here every other model must agree with it.
    first = model_ids[0]
    reference = hparams_of(first)
    names = list(reference)
    if not names:
        raise InvalidGridError(f"{source}: {first} has no hyperparameters")
    possible_values = []
    for name in names:
        values = reference[name].get("possible_values") if isinstance(reference[name], dict) else None
        if not isinstance(values, list) or not values:
            raise InvalidGridError(
                f"{source}: {first}: hyperparameter {name!r} has no non-empty 'possible_values' list"
            )
        # list.index (equality, as the organisers use) must identify a value.
        repeated = [v for i, v in enumerate(values) if values.index(v) != i]
        if repeated:
            raise InvalidGridError(
                f"{source}: possible_values of {name!r} list {_list_some(map(repr, repeated))} more than once"
            )
        possible_values.append(values)

    value_index = np.empty((len(model_ids), len(names)), dtype=np.intp)
    for row, mid in enumerate(model_ids):
        hparams = hparams_of(mid)
        if set(hparams) != set(names):
            raise InvalidGridError(
                f"{source}: {mid} has hyperparameters {sorted(hparams)}, but {first} has {sorted(names)}"
            )
        for col, (name, values) in enumerate(zip(names, possible_values)):
            entry = hparams[name]
            if not isinstance(entry, dict) or "current_value" not in entry:
                raise InvalidGridError(f"{source}: {mid}: hyperparameter {name!r} has no 'current_value'")
            if entry.get("possible_values") != values:
                raise InvalidGridError(
                    f"{source}: {mid} gives possible_values {entry.get('possible_values')!r} for {name!r}, "
                    f"but {first} gives {values!r}"
                )
            try:
                value_index[row, col] = values.index(entry["current_value"])
            except ValueError:
                raise InvalidGridError(
                    f"{source}: {mid} has {name}={entry['current_value']!r}, "
                    f"which is not among its possible_values {values!r}"
                ) from None

    # Every combination of value indices exactly once.
    models_at = defaultdict(list)
    for mid, combination in zip(model_ids, map(tuple, value_index)):
        models_at[combination].append(mid)

    def describe(combination):
        pairs = (f"{name}={values[i]!r}" for name, values, i in zip(names, possible_values, combination))
        return "{" + ", ".join(pairs) + "}"

    problems = []
    shape = [len(values) for values in possible_values]
    missing = [c for c in itertools.product(*map(range, shape)) if c not in models_at]
    if missing:
        problems.append(
            f"the grid is not complete: {len(missing)} of {math.prod(shape)} combinations have no model, "
            f"e.g. {_list_some(map(describe, missing))}"
        )
    repeated = [(c, mids) for c, mids in models_at.items() if len(mids) > 1]
    if repeated:
        problems.append(
            f"combinations are not unique: {len(repeated)} have more than one model: "
            + "; ".join(f"{describe(c)} is shared by {_list_some(mids)}" for c, mids in repeated[:_MAX_LISTED])
        )
    if problems:
        raise InvalidGridError(f"{source}: " + "; ".join(problems))

    return _Grid(model_ids, names, possible_values, value_index, _gap_vector(specs, source))


def ordered_values(values, model_ids, what, reference="model_configs.json"):
    """``values`` ({"model_<id>": number}, one for each of ``model_ids``) as an array in that order.

    Checked at the door: a ValueError names missing, extra, ``"EXCEEDED"`` or non-numeric values
    (``what`` names the mapping in the message); NaN is kept, with a warning (it ties with all).
    """
    if not isinstance(values, dict):
        raise ValueError(f"{what}: expected a mapping of model id to value, got {type(values).__name__}")
    missing = [mid for mid in model_ids if mid not in values]
    known = set(model_ids)
    extra = [mid for mid in values if mid not in known]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"no value for {_list_some(missing)}")
        if extra:
            parts.append(f"values for models not in {reference}: {_list_some(extra)}")
        raise ValueError(f"{what}: " + "; ".join(parts))
    exceeded = [mid for mid in model_ids if isinstance(values[mid], str) and values[mid] == EXCEEDED]
    if exceeded:
        raise ValueError(
            f"{what}: the measure ran out of time ({EXCEEDED!r}) on {_list_some(exceeded)}; "
            "the kit scores such a submission 0 overall"
        )
    out = np.empty(len(model_ids))
    for row, mid in enumerate(model_ids):
        value = values[mid]
        try:
            if isinstance(value, str):
                raise TypeError
            out[row] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: the value for {mid} is not a number: {value!r}") from None
    if np.isnan(out).any():
        nan_ids = [mid for mid, v in zip(model_ids, out) if np.isnan(v)]
        # NaN compares false with everything: it ties with every model, which
        # is also what the organisers' CMI makes of it.
        warnings.warn(
            f"{what}: NaN for {_list_some(nan_ids)}; NaN counts as tied with every other model",
            RuntimeWarning,
            stacklevel=3,
        )
    return out


# --------------------------------------------------------------------------
# Numeric core (inputs trusted): the pair tables every score is computed from

# Draws scored per sparse product: bounds the (batch, n_models**2) pair table to ~20 MB at 96
# models.
_BATCH = 256


class PairTables:
    """The one numerical core of every score: a task's model pairs, tabulated once.

    Each score is a ratio of sums over ordered model pairs (i, j) of ``[m_i > m_j] * w_i * w_j``
    (numerators) or ``w_i * w_j`` (denominators) against fixed per-pair coefficients; the
    coefficients are the columns of two sparse (n_models**2, n_columns) matrices. With every
    weight 1 the sums are the organisers' integer counts: the plain scores (``score_task``) are
    this core at weight 1, and the resampled ones (``uncertainty``) at the resamples' weights.

    Parameters
    ----------
    value_index : ndarray of int, shape (n_models, n_hparams)
        Each model's value of each hyperparameter, as an index into its values.
    n_values : sequence of int
        The number of values of each hyperparameter.
    gaps : ndarray, shape (n_models,)
        The generalization gaps.
    hparam_names : sequence of str
        The hyperparameters' names (psi is reported by name).

    A task has one model per grid cell (``PairTables.of_task``); a population from which tasks
    are drawn may have several (``population_conditional_mutual_information``). Inputs are
    trusted: validate them at the door.
    """

    def __init__(self, value_index, n_values, gaps, hparam_names):
        value_index = np.asarray(value_index, dtype=np.intp).reshape(len(gaps), len(n_values))
        gaps = np.asarray(gaps, dtype=np.float64)
        n = len(gaps)
        self.n_models = n
        self.hparam_names = list(hparam_names)
        self.model_ids: list[str] | None = None  # "model_<id>" in row order, for a task (of_task)
        # Ties and self-pairs count as "minus" in CMI (the organisers' rule).
        gap_above = (gaps[:, None] > gaps[None, :]).astype(np.intp).ravel()
        gap_sign = ((gaps[:, None] > gaps[None, :]).astype(np.int64) - (gaps[:, None] < gaps[None, :])).ravel()
        distinct = ~np.eye(n, dtype=bool).ravel()
        pair = np.arange(n * n)
        shape = [int(values) for values in n_values]

        numerator, denominator = [], []  # (rows, columns, values) per block of columns
        column = 0

        # CMI: per ordered hyperparameter pair, a column per (bin, gap sign): the summed weight of
        # the pairs with m_i > m_j (numerator) and of all pairs (denominator).
        self.cmi_blocks: list[tuple[int, int]] = []  # (first column, bins)
        if len(shape) >= 2:
            for a, b in itertools.permutations(range(len(shape)), 2):
                n_a, n_b = shape[a], shape[b]
                v_a, v_b = value_index[:, a], value_index[:, b]
                bin_ = (((v_a[:, None] * n_a + v_a[None, :]) * n_b + v_b[:, None]) * n_b + v_b[None, :]).ravel()
                n_bins = n_a * n_a * n_b * n_b
                columns = column + 2 * bin_ + gap_above
                numerator.append((pair, columns, np.ones(n * n)))
                denominator.append((pair, columns, np.ones(n * n)))
                self.cmi_blocks.append((column, n_bins))
                column += 2 * n_bins

        # Kendall's tau: sum over i != j of [m_i > m_j] sign(g_i - g_j) w_i w_j is half the
        # concordance sum (sign is antisymmetric), over the summed weight of the pairs.
        self.tau_column = column
        numerator.append((pair[distinct], np.full(distinct.sum(), column), gap_sign[distinct]))
        denominator.append((pair[distinct], np.full(distinct.sum(), column), np.ones(distinct.sum())))
        column += 1

        # psi_k: the same per group of models that differ only in hyperparameter k.
        self.psi_blocks: list[tuple[str, int, int]] = []  # (name, first column, groups)
        for k, name in enumerate(self.hparam_names):
            if shape[k] < 2:
                continue  # no two models differ only in k, as in scoring
            others = [j for j in range(len(shape)) if j != k]
            if others:
                group = np.ravel_multi_index(value_index[:, others].T, [shape[j] for j in others])
            else:
                group = np.zeros(n, dtype=np.intp)
            n_groups = int(np.prod([shape[j] for j in others]))
            same = ((group[:, None] == group[None, :]).ravel()) & distinct
            columns = column + np.repeat(group, n)[same]
            numerator.append((pair[same], columns, gap_sign[same]))
            denominator.append((pair[same], columns, np.ones(same.sum())))
            self.psi_blocks.append((name, column, n_groups))
            column += n_groups
        self.n_columns = column
        self.numerator = self._matrix(numerator)
        self.denominator = self._matrix(denominator)
        # Weights all 1: the denominators do not change from draw to draw.
        self.unit_denominator = np.asarray(self.denominator.sum(axis=0)).ravel()

    @classmethod
    def of_task(cls, model_specs: dict, source: str = "model_configs.json") -> "PairTables":
        """The tables of a task's ``model_configs.json`` (validated: a complete grid)."""
        return _tables(_parse_grid(model_specs, source))

    def _matrix(self, blocks) -> sparse.csr_matrix:
        rows, columns, values = (np.concatenate(parts) for parts in zip(*blocks))
        return sparse.csr_matrix((values.astype(np.float64), (rows, columns)),
                                 shape=(self.n_models ** 2, self.n_columns))

    def scores(self, measures: np.ndarray, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Scores of a batch of measures (and multisets), each row scored on its own.

        Parameters
        ----------
        measures : ndarray, shape (n_draws, n_models) or (n_models,)
            Measure values in the grid's model order; NaN ties with everything, as in scoring.
        weights : ndarray, shape (n_draws, n_models), optional
            Non-negative integer multiplicity of each model in each multiset; None: each once.

        Returns
        -------
        scores : dict of str to ndarray, shape (n_draws,)
            ``cmi`` (x100; absent when the task has fewer than two hyperparameters),
            ``kendall_tau``, ``granulated_kendall_tau`` and ``psi/<name>`` per hyperparameter
            with two values or more (absent when there is none).
        """
        measures = np.atleast_2d(measures)
        if weights is not None:
            weights = np.broadcast_to(np.atleast_2d(weights), measures.shape)
        parts = []
        for start in range(0, len(measures), _BATCH):
            batch = measures[start:start + _BATCH]
            above = (batch[:, :, None] > batch[:, None, :]).reshape(len(batch), -1).astype(np.float64)
            if weights is None:
                numerator = (self.numerator.T @ above.T).T
                denominator = np.broadcast_to(self.unit_denominator, numerator.shape)
            else:
                w = weights[start:start + _BATCH].astype(np.float64)
                pair_weight = (w[:, :, None] * w[:, None, :]).reshape(len(batch), -1)
                numerator = (self.numerator.T @ (above * pair_weight).T).T
                denominator = (self.denominator.T @ pair_weight.T).T
            # C order: the per-block slices below are then views, not copies.
            parts.append(self._ratios(np.ascontiguousarray(numerator), np.ascontiguousarray(denominator)))
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    def _ratios(self, numerator: np.ndarray, denominator: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        if self.cmi_blocks:
            per_pair = []
            for first, n_bins in self.cmi_blocks:
                above = numerator[:, first:first + 2 * n_bins].reshape(-1, n_bins, 2)
                total = denominator[:, first:first + 2 * n_bins].reshape(-1, n_bins, 2)
                # (draw, bin, gap sign, measure sign), as scoring's tables.
                table = np.stack([total - above, above], axis=-1)
                per_pair.append(_mi_over_gap_entropy(table))
            # + 0.0 turns -0.0 into 0.0, as scoring does.
            out["cmi"] = 100.0 * (np.min(np.stack(per_pair), axis=0) + 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            tau = 2 * numerator[:, self.tau_column] / denominator[:, self.tau_column]
            out["kendall_tau"] = tau
            psis = []
            for name, first, n_groups in self.psi_blocks:
                num = 2 * numerator[:, first:first + n_groups]
                den = denominator[:, first:first + n_groups]
                defined = den > 0
                ratio = np.where(defined, num / np.where(defined, den, 1.0), 0.0)
                out[f"psi/{name}"] = ratio.sum(axis=1) / defined.sum(axis=1)
                psis.append(out[f"psi/{name}"])
            if psis:  # none when no hyperparameter has two values
                stacked = np.stack(psis, axis=1)
                defined = ~np.isnan(stacked)
                out["granulated_kendall_tau"] = np.where(defined, stacked, 0.0).sum(axis=1) / defined.sum(axis=1)
        return out


def _mi_over_gap_entropy(table: np.ndarray) -> np.ndarray:
    """Mean MI over mean gap-sign entropy of (draws, K, 2, 2) tables of (weighted) pair counts.

    Axis 2 is the gap sign, axis 3 the measure sign. Bins that hold no pair (they occur in
    resamples only: a complete grid fills every bin) are left out of both means. Entropies are
    ``-sum p log2(p + 1e-12)``, the organisers' formula.
    """
    total = table.sum(axis=(2, 3))
    filled = total > 0
    safe_total = np.where(filled, total, 1.0)
    gap_counts = table.sum(axis=3)
    measure_counts = table.sum(axis=2)
    joint = table / safe_total[:, :, None, None]
    p_gap = gap_counts / safe_total[:, :, None]
    p_measure = measure_counts / safe_total[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = joint * np.log2(joint / (p_gap[:, :, :, None] * p_measure[:, :, None, :]))
    mi = np.where(joint > 0, terms, 0.0).sum(axis=(2, 3))
    gap_entropy = -(p_gap * np.log2(p_gap + _ENTROPY_EPS)).sum(axis=2)
    n_filled = filled.sum(axis=1)
    mean_mi = np.where(filled, mi, 0.0).sum(axis=1) / n_filled
    mean_entropy = np.where(filled, gap_entropy, 0.0).sum(axis=1) / n_filled
    return mean_mi / mean_entropy


def _organisers_key_problems(grid):
    """Hyperparameter pairs on which the organisers' string bin names break.

    The organisers name a bin by concatenating ``str(value)`` over the pair's
    hyperparameter values (e.g. values 1 and 11 give "1"+"11" == "11"+"1"),
    and look a model pair's bin up by the same string built from the models'
    ``current_value``.
    """
    problems = []
    for a, b in itertools.permutations(range(len(grid.hparam_names)), 2):
        name_a, name_b = grid.hparam_names[a], grid.hparam_names[b]
        per_hparam = [
            [str(v) + str(w) for v in grid.possible_values[h] for w in grid.possible_values[h]] for h in (a, b)
        ]
        keys = ["".join(parts) for parts in itertools.product(*per_hparam)]
        if len(set(keys)) < len(keys):
            seen, clash = set(), None
            for key in keys:
                if key in seen:
                    clash = key
                    break
                seen.add(key)
            problems.append(f"({name_a}, {name_b}): different value pairs share the bin name {clash!r}")
    return problems


def _written_differently(grid, model_specs):
    # A current_value equal to a possible value but printed differently
    # (1 vs 1.0) makes the organisers' bin lookup fail; they skip such pairs.
    odd = []
    for spec, mid, row in zip(model_specs.values(), grid.model_ids, grid.value_index):
        for name, values, i in zip(grid.hparam_names, grid.possible_values, row):
            if str(spec["hparams"][name]["current_value"]) != str(values[i]):
                odd.append(f"{mid}.{name}")
    return odd


def _warn_if_organisers_bins_differ(grid, model_specs):
    problems = _organisers_key_problems(grid)
    odd = _written_differently(grid, model_specs)
    if odd:
        problems.append(f"current_value printed differently from its possible value at {_list_some(odd)}")
    if problems:
        warnings.warn(
            "the organisers' scorer names CMI bins by concatenating str() of hyperparameter values; on "
            "this task it would merge bins (its score for such a hyperparameter pair becomes NaN, which "
            "its min() then skips or returns) or drop model pairs, so results may differ from theirs: "
            + "; ".join(problems),
            UserWarning,
            stacklevel=3,
        )


def population_conditional_mutual_information(measure, gaps, value_index, n_values):
    """CMI x100 of a population: models given as arrays, any number of models per grid cell.

    The organisers' computation (``conditional_mutual_information``) on ``measure`` and ``gaps``
    of shape (n_models,), ``value_index`` (n_models, n_hparams) the index of each model's value
    of each hyperparameter and ``n_values`` the number of values of each. A task has one model
    per cell; a population from which tasks are drawn (``benchmarks/interval_coverage.py``) has
    several, and its CMI is the "true" score a task's estimate is compared with. Memory grows
    with the square of the models (about 1.5 GB at 1,000). Inputs are trusted.
    """
    tables = PairTables(value_index, n_values, gaps, [f"h{k}" for k in range(len(n_values))])
    return float(tables.scores(np.asarray(measure, dtype=np.float64))["cmi"][0])


# --------------------------------------------------------------------------
# Public API


def generalization_gaps(model_specs):
    """Generalization gap of each model of a task.

    Parameters
    ----------
    model_specs : dict
        Parsed ``model_configs.json``: model id (bare, like ``"20"``, or
        ``"model_20"``) to ``{"hparams": ..., "metrics": {"train_acc": a,
        "test_acc": b}}``. Not modified.

    Returns
    -------
    gaps : dict of str to float
        ``{"model_<id>": train_acc - test_acc}`` in the input's order. Larger
        means the model generalizes worse.
    """
    specs = _normalised_specs(model_specs, "model_configs.json")
    return dict(zip(specs, _gap_vector(specs, "model_configs.json").tolist()))


def validate_hyperparameter_grid(model_specs, source="model_configs.json"):
    """Check that a task's models form a complete hyperparameter grid.

    Accepts what the organisers' ``check_data_validity`` accepts: each
    combination of the hyperparameters' possible values occurs exactly once,
    and each model's ``current_value`` is one of the ``possible_values``
    (compared with ``==``). Stricter than theirs in one respect: all models
    must agree with the first on the hyperparameter names and possible values
    (theirs only reads the first model's).

    Parameters
    ----------
    model_specs : dict
        Parsed ``model_configs.json``. Not modified.
    source : str, default="model_configs.json"
        Where ``model_specs`` came from, named in error messages.

    Raises
    ------
    InvalidGridError
        Naming ``source`` and the problem: the first few missing
        combinations, the models sharing a combination, or the offending value.
    """
    _parse_grid(model_specs, source)


def conditional_mutual_information(predictions, model_specs):
    """Conditional mutual information between measure and gap (official score).

    The organisers' score: for each ordered pair of distinct hyperparameters,
    the mutual information between ``sign(m_i - m_j)`` and ``sign(g_i - g_j)``
    over ordered model pairs, conditioned on the pair's values of the two
    hyperparameters and divided by the entropy of the gap sign; the score is
    the minimum over hyperparameter pairs. Self-pairs and ties count as
    "minus", so a measure should *increase* with the gap.

    Parameters
    ----------
    predictions : dict of str to float
        The measure per model, ``{"model_<id>": value}``, one entry for every
        model of ``model_specs`` and no other.
    model_specs : dict
        Parsed ``model_configs.json`` of the task; must be a complete grid.
        Not modified.

    Returns
    -------
    cmi : float
        x 100, in [0, 100] as every report shows it: 100 when the measure
        orders the models exactly as the gap, 0 for a constant measure (a
        perfect measure may exceed 100 by a few 1e-10, from the +1e-12 inside
        the organisers' entropy log). Higher is better.

    Raises
    ------
    UndefinedScoreError
        If the task has fewer than two hyperparameters.
    InvalidGridError
        If ``model_specs`` is not a complete grid.
    ValueError
        If a prediction is missing, extra, ``"EXCEEDED"`` or not a number.

    Warns
    -----
    UserWarning
        When the organisers' scorer would file model pairs under the wrong
        bin on this task (its string bin names collide, or a current_value is
        written differently from its possible value); this function uses the
        correct bins, so its result may then differ from theirs.
    """
    grid = _parse_grid(model_specs, "model_configs.json")
    if len(grid.hparam_names) < 2:
        raise UndefinedScoreError(
            "conditional mutual information needs at least two hyperparameters; "
            f"this task has {len(grid.hparam_names)} ({', '.join(grid.hparam_names)})"
        )
    measure = ordered_values(predictions, grid.model_ids, "predictions")
    _warn_if_organisers_bins_differ(grid, model_specs)
    return float(_tables(grid).scores(measure)["cmi"][0])


def kendall_tau(predictions, gaps):
    """Kendall's tau-a between a measure and the generalization gaps.

    ``tau = mean over ordered pairs i != j of sign(m_i - m_j) * sign(g_i - g_j)``;
    a tie in either gives 0. Unlike tau-b (:func:`scipy.stats.kendalltau`),
    ties are not corrected for, so with ties ``|tau| < 1`` even for a perfect
    measure; both agree when there are no ties.

    Parameters
    ----------
    predictions : dict of str to float
        The measure per model, ``{"model_<id>": value}``.
    gaps : dict of str to float
        The gap per model with the same keys, as from
        :func:`generalization_gaps`.

    Returns
    -------
    tau : float
        In [-1, 1]. Higher is better: 1 when the measure orders all models as
        the gap does, -1 when it reverses them, 0 for a constant.
    """
    model_ids = list(gaps)
    gap_values = ordered_values(gaps, model_ids, "gaps")
    measure = ordered_values(predictions, model_ids, "predictions", reference="gaps")
    if len(model_ids) < 2:
        raise UndefinedScoreError("Kendall's tau needs at least two models")
    return float(PairTables(np.zeros((len(model_ids), 0)), [], gap_values, []).scores(measure)["kendall_tau"][0])


def granulated_kendall_taus(predictions, model_specs):
    """Granulated Kendall's tau per hyperparameter (psi_k).

    For hyperparameter k, psi_k is the mean, over every fixed setting of all
    the other hyperparameters, of Kendall's tau-a (:func:`kendall_tau`) among
    the models that differ only in k (Jiang et al., "Fantastic Generalization
    Measures and Where to Find Them", ICLR 2020).

    Parameters
    ----------
    predictions : dict of str to float
        The measure per model, ``{"model_<id>": value}``.
    model_specs : dict
        Parsed ``model_configs.json`` of the task; must be a complete grid.
        Not modified.

    Returns
    -------
    psi : dict of str to float
        Hyperparameter name to psi_k in [-1, 1], higher is better.
        Hyperparameters with a single possible value are left out: no two
        models differ only in them.
    """
    grid = _parse_grid(model_specs, "model_configs.json")
    measure = ordered_values(predictions, grid.model_ids, "predictions")
    return _psi(grid, _tables(grid).scores(measure))


def granulated_kendall_tau(predictions, model_specs):
    """Granulated Kendall coefficient Psi: the mean of psi_k over hyperparameters.

    See :func:`granulated_kendall_taus` for psi_k and the parameters.

    Returns
    -------
    psi : float
        In [-1, 1]; higher is better.

    Raises
    ------
    UndefinedScoreError
        If no hyperparameter has two or more possible values.
    """
    psi = granulated_kendall_taus(predictions, model_specs)
    if not psi:
        raise UndefinedScoreError("the granulated Kendall tau needs a hyperparameter with two or more values")
    return float(np.mean(list(psi.values())))


def score_task(predictions, model_specs, source="model_configs.json"):
    """Every score of a complexity measure on one task.

    Parameters
    ----------
    predictions : dict of str to float
        The measure per model, ``{"model_<id>": value}`` (a ``.predict`` file).
    model_specs : dict
        Parsed ``model_configs.json`` of the task. Not modified.
    source : str, default="model_configs.json"
        Where ``model_specs`` came from, named in grid errors.

    Returns
    -------
    score : TaskScore
        CMI x 100 (None when undefined), Kendall's tau, the granulated tau and
        its per-hyperparameter terms; higher is better for all.

    Raises
    ------
    InvalidGridError, ValueError
        As :func:`conditional_mutual_information`, except that fewer than two
        hyperparameters give ``cmi=None``.
    """
    grid = _parse_grid(model_specs, source)
    measure = ordered_values(predictions, grid.model_ids, "predictions")
    scores = _tables(grid).scores(measure)
    psi = _psi(grid, scores)
    if not psi:
        # A complete grid whose hyperparameters all have one value: one model.
        raise UndefinedScoreError(f"{source}: a task needs at least two models to be scored")
    if len(grid.hparam_names) < 2:
        cmi = None
    else:
        _warn_if_organisers_bins_differ(grid, model_specs)
        cmi = float(scores["cmi"][0])
    return TaskScore(
        cmi=cmi,
        kendall_tau=float(scores["kendall_tau"][0]),
        granulated_kendall_tau=float(scores["granulated_kendall_tau"][0]),
        psi=psi,
        n_models=len(grid.model_ids),
    )


def _tables(grid):
    tables = PairTables(grid.value_index, [len(v) for v in grid.possible_values], grid.gaps, grid.hparam_names)
    tables.model_ids = grid.model_ids
    return tables


def _psi(grid, scores):
    return {name: float(scores[f"psi/{name}"][0]) for name in grid.hparam_names if f"psi/{name}" in scores}
