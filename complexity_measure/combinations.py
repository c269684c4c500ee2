"""Fragmentation combined with a second signal, in the form the PGDL winner used.

Natekar & Sharma's winning entry multiplied a clustering index by the error on mixed-up
training points (``natekar_sharma.natekar_sharma_score``). Here fragmentation is the main term
and the mixup error the second: a model whose paths change class often *and* which misclassifies
the midpoints of same-class pairs is expected to generalize worst. Why this pair: on PGDL-style
grids fragmentation ranks some axes backwards (deeper VGG-like nets fragment more in input space
yet generalize better), and the mixup error follows the gap on other axes; a product keeps the
order of either factor where the other is flat.
"""

from __future__ import annotations

from . import fragmentation, natekar_sharma


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
    changes = fragmentation.fragmentation_score(model, inputs, labels, seed=seed)
    error = natekar_sharma.mixup_error(model, inputs, labels, n_pairs=n_mixup_pairs, seed=seed)
    return float(changes * (error + 1.0 / n_mixup_pairs))
