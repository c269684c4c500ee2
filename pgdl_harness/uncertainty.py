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

Every score here and in :func:`pgdl_harness.scoring.score_task` comes from one core,
:class:`pgdl_harness.scoring.PairTables`: the plain scores are the multiset scores with every
weight 1. The scores are linear in the pair table ``[m_i > m_j] * w_i * w_j``, so one sparse
product scores a whole batch of draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scoring import SCORE_NAMES, SCORES, PairTables, UndefinedScoreError, ordered_values

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
#: The range each score can take (CMI x100, tau, psi): a centred interval is clipped to it.
SCORE_RANGES = {score.name: (score.low, score.high) for score in SCORES}



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
    scorer = PairTables.of_task(model_specs, source)
    measure = ordered_values(predictions, scorer.model_ids, "predictions")
    if isinstance(weights, dict):
        weights = ordered_values(weights, scorer.model_ids, "weights")
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
    scorer = PairTables.of_task(model_specs, source)
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
    scorer = PairTables.of_task(model_specs, source)
    measure = ordered_values(predictions, scorer.model_ids, "predictions")
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
