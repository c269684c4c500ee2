"""Every measure by name, with the parameters that make it, so the harness can run any subset.

A registered measure is called as ``measure(model, inputs, labels) -> float`` on a trained
classifier and (a sample of) its training data, and returns a value that is larger where the
generalization gap is expected to be larger. The measures themselves are plain functions in
their own modules; this module only names configurations of them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from . import baselines, fragmentation, natekar_sharma, representation

DEFAULT_MEASURE = "fragmentation"


@dataclass(frozen=True)
class Measure:
    name: str
    function: Callable[..., float]
    description: str

    def __call__(self, model, inputs, labels) -> float:
        return float(self.function(model, inputs, labels))


MEASURES: dict[str, Measure] = {}


def register(name: str, function: Callable[..., float], description: str, **parameters) -> Measure:
    """Register ``function`` with fixed keyword ``parameters`` under ``name``."""
    if name in MEASURES:
        raise ValueError(f"a measure named {name!r} is already registered")
    bound = functools.partial(function, **parameters) if parameters else function
    MEASURES[name] = Measure(name, bound, description)
    return MEASURES[name]


def get_measure(name: str) -> Measure:
    """The registered measure called ``name``; a KeyError lists the known names otherwise."""
    try:
        return MEASURES[name]
    except KeyError:
        raise KeyError(f"unknown measure {name!r}; registered measures: {', '.join(sorted(MEASURES))}") from None


register("fragmentation", fragmentation.fragmentation_score,
         "class changes per path between same-class training pairs, input space, paths extended "
         "by half their length beyond both ends (the default measure)")
register("fragmentation_dense", fragmentation.fragmentation_score,
         "the default measure counted on every point of its grid (adaptive counting, the default, "
         "agrees on >= 99.9% of the bundled image tasks' paths)", counting="dense")
register("fragmentation_any", fragmentation.fragmentation_score,
         "class changes per path between any two training examples, input space", pairs="any")
register("fragmentation_different_class", fragmentation.fragmentation_score,
         "class changes per path between training examples of different classes, input space",
         pairs="different_class")
register("fragmentation_penultimate", fragmentation.fragmentation_score,
         "class changes per path between same-class pairs, interpolating the representations at "
         "the output of the second-to-last layer", layer=-2)
register("fragmentation_middle", fragmentation.fragmentation_score,
         "class changes per path between same-class pairs, interpolating the representations at "
         "the middle hidden layer with a nonlinearity", layer="middle")

# Representations (Potgieter, Mouton & Davel 2025): sparsity and class clustering per hidden layer.
register("sparsity", representation.sparsity_measure,
         "negated mean fraction of near-zero (|a| <= 1e-6) activations over the hidden layers with a "
         "nonlinearity, 1,000 examples (denser = larger gap: a hypothesis, see the docstring)")
register("davies_bouldin", representation.davies_bouldin_measure,
         "mean Davies-Bouldin index of the hidden layers' representations with the classes as "
         "clusters, 500 examples (worse clustering = larger gap)")
register("davies_bouldin_penultimate", representation.davies_bouldin_measure,
         "Davies-Bouldin index of the representations at the second-to-last layer, 500 examples",
         layers=[-2])
register("silhouette", representation.silhouette_measure,
         "negated mean silhouette score of the hidden layers' representations with the classes as "
         "clusters, 500 examples (worse clustering = larger gap)")

# The PGDL winner (Natekar & Sharma 2020) and its two factors.
register("natekar_sharma", natekar_sharma.natekar_sharma_score,
         "PGDL winner: Davies-Bouldin index of the first conv/pool layer's 4x4-max-pooled "
         "representations (10 groups of 120 examples) x (1 - accuracy on 4,096 same-class midpoints)")
register("natekar_sharma_dbi", natekar_sharma.early_layer_davies_bouldin,
         "the winner's first factor alone: early-layer pooled Davies-Bouldin index")
register("mixup_error", natekar_sharma.mixup_error,
         "the winner's second factor alone: 1 - accuracy on midpoints of same-class training pairs")

# The starting kit's baselines and the output margin.
register("distance_from_init", baselines.distance_from_initialization,
         "Frobenius distance of all weights from model.initial_weights (needs weights_init.hdf5)")
register("jacobian_norm", baselines.jacobian_norm,
         "mean Frobenius norm of d logits / d inputs over 512 training examples (exact)")
register("output_margin", baselines.output_margin,
         "negated 10th percentile of the logit margin (true minus best other) on 2,000 training examples")
register("parameter_norm", baselines.parameter_norm,
         "sum of squared weights (the kit's sample submission)")
