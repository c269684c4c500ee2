"""Fragmentation combined with a second signal, in the form the PGDL winner used.

Natekar & Sharma's winning entry multiplied a clustering index by the error on mixed-up
training points (``natekar_sharma.natekar_sharma_score``). Two products are built on that form:

- ``fragmentation_times_mixup_error``: fragmentation is the main term and the mixup error the
  second: a model whose paths change class often *and* which misclassifies the midpoints of
  same-class pairs is expected to generalize worst.
- ``fragmentation_times_davies_bouldin``: the winner's product with its mixup error replaced by
  fragmentation. The mixup error asks of one point per same-class pair (the midpoint) whether it
  is misclassified; fragmentation counts every class change along the whole (extended) path, so
  it is the winner's second factor measured finely. The first factor is the Davies-Bouldin index
  of the hidden layers (``representation.davies_bouldin_measure``), Potgieter et al.'s clustering.
  Why this pair: on the benchmark suite's grids input-space fragmentation ranks the depth axis
  backwards (deeper nets change class more often along input-space paths, yet generalize better)
  while the hidden layers' clustering ranks depth forwards; a product (a sum of logarithms, for
  ranking) keeps the order of either factor where the other is flat.
  With ``ends="fitted"`` the fragmentation factor counts only the paths between training examples
  the model fits (``fragmentation_score``'s ``ends``).

Why products and not weighted sums: CMI and Kendall's tau depend only on each task's order of
models, and a product's order does not depend on either factor's unit or scale, so no weight has
to be fitted on the tasks that are then used to score it. The one weight a product has is the
power of a factor (``power``: the product of ``F ** power`` and the index orders models as
``power * log F + log DB`` does). It is not fitted on the tasks that report a score: its values
are registered before a round (``fragmentation_fitted_davies_bouldin_half`` and ``_quarter``,
docs/benchmark.md's fourth round), chosen between on the benchmark suite and reported on the
reporting suite.
"""

from __future__ import annotations

from . import fragmentation, natekar_sharma, representation
from .classifier import names_refusals
from .frameworks import as_classifier


@names_refusals
def fragmentation_times_mixup_error(model, inputs, labels, *, seed: int = fragmentation.DEFAULT_SEED,
                                    n_mixup_pairs: int = natekar_sharma.DEFAULT_MIXUP_PAIRS) -> float:
    """``fragmentation_score * (mixup_error + 1 / n_mixup_pairs)``, both at their defaults.

    Parameters
    ----------
    model, inputs, labels : as ``fragmentation.fragmentation_score``.
    seed : the seed of both the fragmentation pairs and the mixup pairs.
    n_mixup_pairs : same-class midpoints the mixup error is measured on. The error is floored at
        one midpoint's worth (``1 / n_mixup_pairs``) so that models with no mixup error are still
        ordered by their fragmentation rather than tied at 0.

    Returns
    -------
    float >= 0; larger means a larger expected generalization gap.
    """
    model = as_classifier(model)
    changes = fragmentation.fragmentation_score(model, inputs, labels, seed=seed)
    error = natekar_sharma.mixup_error(model, inputs, labels, n_pairs=n_mixup_pairs, seed=seed)
    return float(changes * (error + 1.0 / n_mixup_pairs))


@names_refusals
def fragmentation_times_davies_bouldin(model, inputs, labels, *, seed: int = fragmentation.DEFAULT_SEED,
                                       ends: str = fragmentation.DEFAULT_ENDS, power: float = 1.0,
                                       floor: float = 0.0, part: str = fragmentation.DEFAULT_PART,
                                       relative_to_initial: bool = False) -> float:
    """``max(fragmentation_score, floor) ** power * davies_bouldin_measure``, both at their defaults.

    Parameters
    ----------
    model, inputs, labels : as ``fragmentation.fragmentation_score``.
    seed : the seed of both the fragmentation pairs and the Davies-Bouldin sample.
    ends : ``fragmentation_score``'s: ``"fitted"`` counts only the paths whose two ends the model
        classifies as their labels.
    power : the weight of fragmentation in the product's logarithm (``power * log F + log DB``,
        which orders the models as the product does); 1 is the plain product, smaller powers let
        the clustering index decide more of the order. ``power`` must be > 0.
    floor : the least value the fragmentation factor takes (>= 0). 0 (the default) leaves it as it
        is, so a model with no class change on any counted path gets 0 whatever its clustering;
        ``1 / DEFAULT_N_PAIRS`` (one change on one path of the default 2048) keeps the index's
        order among such models.
    part : ``fragmentation_score``'s: ``"beyond"`` counts only the changes beyond the two
        examples, ``"inside"`` only those between them.
    relative_to_initial : divide the fragmentation factor by the same count on the same network
        at its initial weights (``Classifier.at_initial_weights``; every path counted there, the
        untrained network fitting no training data), both floored at ``floor``: the changes the
        training made, relative to those the architecture makes before any training. Needs the
        initial weights (``model.initial_weights``, which the PGDL loaders set).

    Returns
    -------
    float >= 0; larger means a larger expected generalization gap (paths that change class often,
    hidden representations that cluster the classes poorly).
    """
    if not power > 0:
        raise ValueError(f"power must be > 0, got {power!r}")
    if not floor >= 0:
        raise ValueError(f"floor must be >= 0, got {floor!r}")
    model = as_classifier(model)
    changes = max(fragmentation.fragmentation_score(model, inputs, labels, seed=seed, ends=ends, part=part), floor)
    if relative_to_initial:
        with model.at_initial_weights():
            before = fragmentation.fragmentation_score(model, inputs, labels, seed=seed, part=part)
        if not max(before, floor) > 0:
            raise ValueError("the network changes class on no path at its initial weights: give a floor > 0 "
                             "to measure relative to initialisation")
        changes /= max(before, floor)
    clustering = representation.davies_bouldin_measure(model, inputs, labels, seed=seed)
    return float(changes ** power * clustering)
