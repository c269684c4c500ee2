"""How far a task's scores are from chance, and how much they would move on other models or seeds.

A score on one small task is a noisy number: 18 to 96 models, gaps measured on a few thousand
test images, and measures that draw pairs or examples at random. Three things put a score in
context, all computed from the predictions and ``model_configs.json`` alone (no model is run):

- :func:`chance_levels`: the scores of random measures (uniform noise per model, i.e. a random
  ranking of the models) on the task, a seeded permutation null. A score at or below the null's
  95th percentile is "within chance"; :meth:`ChanceLevel.p_value` gives its p-value.
- :func:`bootstrap_scores`: the scores on resampled tasks. A resample draws the task's models
  (whole cells of its hyperparameter grid) with replacement and scores the multiset; the
  centred interval (:func:`centred_interval`: the percentile interval moved so that the
  resamples' median falls on the score) says how much the score depends on which models the
  grid happened to hold and on their noisy gaps. Moving it removes the resamples' known upward
  bias in CMI (repeated models inflate it); its coverage is checked by simulation
  (``benchmarks/interval_coverage.py``).
- :func:`paired_win_fraction`: for two measures scored on the *same* resamples (and, for measures
  that sample, over their seeds), the fraction of resamples in which one beats the other.

Scores of a multiset (:func:`multiset_scores`): model ``i`` taken ``w_i`` times.

- CMI counts each ordered model pair ``w_i * w_j`` times in its contingency tables, self-pairs
  included, exactly as the organisers' scorer would count the expanded list of models; a
  conditioning bin that no pair reaches (a value absent from the resample) is left out of the
  means over bins.
- Kendall's tau and psi average the concordance over pairs of *distinct* models, pair (i, j)
  weighted ``w_i * w_j``. Copies of one model are not compared with each other: they would be
  ties that pull every resampled tau towards 0 (by half on psi's two-model groups). A psi group
  with fewer than two distinct models drawn is left out of psi's mean over groups.

With every weight 1 all three equal :func:`pgdl_harness.scoring.score_task` exactly (same
integer counts, same floating-point operations). The scores are linear in the pair table
``[m_i > m_j] * w_i * w_j``, so one sparse product scores a whole batch of draws.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from .scoring import UndefinedScoreError, _ENTROPY_EPS, _parse_grid, _value_vector

__all__ = [
    "DEFAULT_DRAWS",
    "DEFAULT_SEED",
    "SCORE_NAMES",
    "ChanceLevel",
    "bootstrap_scores",
    "bootstrap_weights",
    "centred_interval",
    "chance_levels",
    "multiset_scores",
    "paired_win_fraction",
    "resampled_scores",
    "percentile_interval",
    "score_interval",
    "seed_summary",
]

#: Random measures for the null and resamples for the bootstrap, by default: the null's 95th
#: percentile and a 95% interval's ends are then known to about +-1 percentile point.
DEFAULT_DRAWS = 1000
#: Seed of the null's random measures and of the bootstrap's resamples.
DEFAULT_SEED = 0
#: The scores handled here, by their names in reports: CMI x100, Kendall's tau, granulated tau.
SCORE_NAMES = ("cmi", "kendall_tau", "granulated_kendall_tau")
#: The range each score can take (CMI x100, tau, psi): a centred interval is clipped to it.
SCORE_RANGES = {"cmi": (0.0, 100.0), "kendall_tau": (-1.0, 1.0), "granulated_kendall_tau": (-1.0, 1.0)}

# Draws scored per sparse product: bounds the (batch, n_models**2) pair table to ~20 MB at 96
# models.
_BATCH = 256


@dataclass(frozen=True)
class ChanceLevel:
    """One score's distribution over random measures on one task.

    Attributes
    ----------
    draws : ndarray, shape (n_draws,)
        The score of each random measure (CMI x100, tau or psi).
    """

    draws: np.ndarray

    @property
    def mean(self) -> float:
        """What a measure unrelated to the gap scores on average."""
        return float(np.mean(self.draws))

    @property
    def p95(self) -> float:
        """The null's 95th percentile: a score at or below it is within chance."""
        return float(np.percentile(self.draws, 95))

    def p_value(self, observed: float) -> float:
        """``(1 + #draws >= observed) / (1 + n_draws)``: the one-sided permutation p-value.

        Small means a random measure rarely scores as high; at least ``1 / (n_draws + 1)``.
        """
        return float((1 + np.count_nonzero(self.draws >= observed)) / (1 + len(self.draws)))

    def within_chance(self, observed: float) -> bool:
        """Whether ``observed`` is not above the null's 95th percentile."""
        return bool(observed <= self.p95)


class _PairScorer:
    """A task's pair tables, built once and reused for every draw or resample.

    Each score is a ratio of sums over ordered model pairs (i, j) of ``[m_i > m_j] * w_i * w_j``
    (numerators) or ``w_i * w_j`` (denominators) against fixed per-pair coefficients; the
    coefficients are the columns of two sparse (n_models**2, n_columns) matrices.
    """

    def __init__(self, model_specs: dict, source: str = "model_configs.json"):
        grid = _parse_grid(model_specs, source)
        self.grid = grid
        n = len(grid.model_ids)
        self.n_models = n
        gaps = grid.gaps
        # Ties and self-pairs count as "minus" in CMI (the organisers' rule).
        gap_above = (gaps[:, None] > gaps[None, :]).astype(np.intp).ravel()
        gap_sign = ((gaps[:, None] > gaps[None, :]).astype(np.int64) - (gaps[:, None] < gaps[None, :])).ravel()
        distinct = ~np.eye(n, dtype=bool).ravel()
        pair = np.arange(n * n)
        shape = [len(values) for values in grid.possible_values]

        numerator, denominator = [], []  # (rows, columns, values) per block of columns
        column = 0

        # CMI: per ordered hyperparameter pair, a column per (bin, gap sign): the summed weight of
        # the pairs with m_i > m_j (numerator) and of all pairs (denominator).
        self.cmi_blocks: list[tuple[int, int]] = []  # (first column, bins)
        if len(shape) >= 2:
            for a, b in itertools.permutations(range(len(shape)), 2):
                n_a, n_b = shape[a], shape[b]
                v_a, v_b = grid.value_index[:, a], grid.value_index[:, b]
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
        for k, name in enumerate(grid.hparam_names):
            if shape[k] < 2:
                continue  # no two models differ only in k, as in scoring
            others = [j for j in range(len(shape)) if j != k]
            if others:
                group = np.ravel_multi_index(grid.value_index[:, others].T, [shape[j] for j in others])
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
            ``kendall_tau``, ``granulated_kendall_tau`` and ``psi/<name>`` per hyperparameter.
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
            if not psis:
                raise UndefinedScoreError("the granulated Kendall tau needs a hyperparameter with two or more values")
            stacked = np.stack(psis, axis=1)
            defined = ~np.isnan(stacked)
            out["granulated_kendall_tau"] = np.where(defined, stacked, 0.0).sum(axis=1) / defined.sum(axis=1)
        return out


def _mi_over_gap_entropy(table: np.ndarray) -> np.ndarray:
    """Mean MI over mean gap-sign entropy of (draws, K, 2, 2) tables of (weighted) pair counts.

    The same operations as :func:`pgdl_harness.scoring._mi_over_gap_entropy`, per draw, with
    bins that hold no pair left out of both means (they occur in resamples only).
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


# --------------------------------------------------------------------------
# Public API


def multiset_scores(predictions: dict, model_specs: dict, weights: dict | np.ndarray,
                    source: str = "model_configs.json") -> dict[str, float]:
    """Every score of a measure on a multiset of the task's models.

    Parameters
    ----------
    predictions : dict of str to float
        The measure per model, ``{"model_<id>": value}``, every model of the task.
    model_specs : dict
        Parsed ``model_configs.json``; a complete grid.
    weights : dict of str to int, or ndarray of shape (n_models,)
        How many times each model is taken (0 leaves it out), by model id or in
        ``model_specs`` order.

    Returns
    -------
    scores : dict of str to float
        ``cmi`` (x100, absent with fewer than two hyperparameters), ``kendall_tau``,
        ``granulated_kendall_tau`` and ``psi/<name>``; higher is better. With all weights 1,
        equal to :func:`pgdl_harness.scoring.score_task`. NaN where the multiset leaves a score
        undefined (fewer than two distinct models).
    """
    scorer = _PairScorer(model_specs, source)
    measure = _value_vector(predictions, scorer.grid.model_ids, "predictions")
    if isinstance(weights, dict):
        weights = _value_vector(weights, scorer.grid.model_ids, "weights")
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (scorer.n_models,) or (weights < 0).any() or (weights != np.round(weights)).any():
        raise ValueError(f"weights: expected {scorer.n_models} non-negative integers, one per model, "
                         f"got shape {weights.shape}")
    return {key: float(value[0]) for key, value in scorer.scores(measure, weights[None, :]).items()}


def chance_levels(model_specs: dict, n_draws: int = DEFAULT_DRAWS, seed: int = DEFAULT_SEED,
                  source: str = "model_configs.json") -> dict[str, ChanceLevel]:
    """The scores of ``n_draws`` random measures on the task: the null a real measure must beat.

    A random measure is uniform noise per model, i.e. a uniformly random ranking of the models
    (every score here depends on the ranking only), scored with the same CMI, tau and psi.

    Parameters
    ----------
    model_specs : dict
        Parsed ``model_configs.json``; a complete grid.
    n_draws : int
        Random measures drawn, >= 1.
    seed : int
        Seed of the draws: the same seed gives the same null.

    Returns
    -------
    chance : dict of str to ChanceLevel
        By score name (``cmi`` x100, absent with fewer than two hyperparameters;
        ``kendall_tau``; ``granulated_kendall_tau``).
    """
    if n_draws < 1:
        raise ValueError(f"n_draws must be at least 1, got {n_draws}")
    scorer = _PairScorer(model_specs, source)
    noise = np.random.default_rng(seed).random((n_draws, scorer.n_models))
    scores = scorer.scores(noise)
    return {name: ChanceLevel(scores[name]) for name in SCORE_NAMES if name in scores}


def bootstrap_weights(n_models: int, n_resamples: int = DEFAULT_DRAWS, seed: int = DEFAULT_SEED) -> np.ndarray:
    """How often each model is drawn in each resample of ``n_models`` with replacement.

    Returns
    -------
    weights : ndarray of int, shape (n_resamples, n_models)
        Each row sums to ``n_models``. The same (n_models, n_resamples, seed) gives the same
        resamples, so measures bootstrapped separately are compared on the same resamples.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_models, np.full(n_models, 1.0 / n_models), size=n_resamples)


def bootstrap_scores(predictions: dict, model_specs: dict, n_resamples: int = DEFAULT_DRAWS,
                     seed: int = DEFAULT_SEED, source: str = "model_configs.json") -> dict[str, np.ndarray]:
    """A measure's scores on ``n_resamples`` bootstrap resamples of the task's models.

    Each resample draws the models (whole hyperparameter-grid cells, each with its measure value
    and its gap) with replacement and scores the multiset as :func:`multiset_scores` does.

    Returns
    -------
    scores : dict of str to ndarray, shape (n_resamples,)
        By score name as :func:`multiset_scores`; resample r is the same multiset for every
        measure of the task, so two measures' arrays can be compared element by element
        (:func:`paired_win_fraction`). NaN where a resample leaves a score undefined.
    """
    return resampled_scores(predictions, model_specs, bootstrap_weights(len(model_specs), n_resamples, seed), source)


def resampled_scores(predictions: dict, model_specs: dict, weights: np.ndarray,
                     source: str = "model_configs.json") -> dict[str, np.ndarray]:
    """A measure's scores on many multisets of the task's models at once.

    Parameters
    ----------
    weights : ndarray, shape (n_multisets, n_models)
        Non-negative integer multiplicities in ``model_specs`` order: bootstrap draws
        (:func:`bootstrap_weights`), or 0/1 rows for subsamples without replacement.

    Returns
    -------
    scores : dict of str to ndarray, shape (n_multisets,)
        As :func:`multiset_scores`, row by row.
    """
    scorer = _PairScorer(model_specs, source)
    measure = _value_vector(predictions, scorer.grid.model_ids, "predictions")
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] != scorer.n_models or (weights < 0).any():
        raise ValueError(f"weights: expected non-negative rows of {scorer.n_models} (one per model), "
                         f"got shape {weights.shape}")
    return scorer.scores(np.broadcast_to(measure, weights.shape), weights)


def percentile_interval(distribution, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of a bootstrap distribution (NaNs ignored).

    For CMI it is biased: resamples repeat models, which inflates CMI (for random measures on
    the bundled 32-model tasks the resamples' median is ~2.3 points above the score, which lies
    below this interval for about 40% of them; Efron's bias-corrected percentiles do not help).
    Reports print :func:`centred_interval` instead.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    values = np.asarray(distribution, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if not len(values):
        return (float("nan"), float("nan"))
    low, high = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def centred_interval(distribution, estimate: float, level: float = 0.95,
                     bounds: tuple[float, float] = (-np.inf, np.inf)) -> tuple[float, float]:
    """The ``level`` percentile interval of a bootstrap distribution, moved to centre on ``estimate``.

    The interval is shifted by ``estimate - median(distribution)`` and clipped to ``bounds`` (a
    score's range, ``SCORE_RANGES``), so it always contains the estimate; the reports print it.
    Why: CMI on a resample that repeats models is biased upwards (for random measures on
    32-model tasks the resamples' median is ~2.3 points above the score, which then lies below
    the plain percentile interval for ~40% of them); the shift removes that bias and keeps the
    resamples' spread. Its coverage of a population's CMI is measured by simulation in
    ``benchmarks/interval_coverage.py`` (see docs/uncertainty.md). Tau's and psi's resamples are
    centred already: for them the shift is small.

    Parameters
    ----------
    distribution : array_like
        Bootstrap scores (NaNs ignored).
    estimate : float
        The score the interval is for (the task's score, or its mean over seeds or tasks).
    level : float
        Coverage, in (0, 1).
    bounds : (float, float)
        The score's range.

    Returns
    -------
    (low, high) : tuple of float
        NaN, NaN when the distribution or the estimate is missing.
    """
    low, high = percentile_interval(distribution, level)
    values = np.asarray(distribution, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if not len(values) or estimate is None or np.isnan(estimate):
        return (float("nan"), float("nan"))
    shift = float(estimate) - float(np.median(values))
    lower, upper = bounds
    return (float(min(max(low + shift, lower), estimate)), float(max(min(high + shift, upper), estimate)))


def score_interval(score: str, distribution, estimate: float, level: float = 0.95) -> tuple[float, float]:
    """:func:`centred_interval` of a score by name (``SCORE_NAMES``; ``psi/<name>`` as psi), in its range."""
    bounds = SCORE_RANGES.get(score, SCORE_RANGES["granulated_kendall_tau"])
    return centred_interval(distribution, estimate, level, bounds)


def paired_win_fraction(a, b) -> float:
    """How often measure A's score beats B's on the same resamples; a tie counts half.

    Parameters
    ----------
    a, b : array_like, shape (n_seeds_a, n_resamples) and (n_seeds_b, n_resamples)
        Bootstrap scores (one row per seed of a measure that samples; a 1-d array is one seed),
        column r being the same resample for both.

    Returns
    -------
    fraction : float
        Mean over resamples and all pairs of seeds of ``[a > b] + [a == b] / 2``, in [0, 1]:
        0.5 for a measure against itself, near 1 when A is reliably better. Resamples where
        either score is undefined (NaN) are left out.
    """
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must hold the same resamples, got {a.shape[1]} and {b.shape[1]}")
    left, right = a[:, None, :], b[None, :, :]
    defined = ~(np.isnan(left) | np.isnan(right))
    wins = (left > right) + 0.5 * (left == right)
    counted = np.broadcast_to(defined, wins.shape).sum()
    if not counted:
        return float("nan")
    return float(np.where(defined, wins, 0.0).sum() / counted)


def seed_summary(values) -> dict[str, float]:
    """Mean, standard deviation (ddof=1; 0 for one seed), min and max of a score over seeds."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        raise UndefinedScoreError("no seed to summarise")
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()), "max": float(values.max()), "seeds": int(len(values))}
