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

from . import fragmentation

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
register("fragmentation_any", fragmentation.fragmentation_score,
         "class changes per path between any two training examples, input space", pairs="any")
register("fragmentation_different_class", fragmentation.fragmentation_score,
         "class changes per path between training examples of different classes, input space",
         pairs="different_class")
register("fragmentation_penultimate", fragmentation.fragmentation_score,
         "class changes per path between same-class pairs, interpolating the representations at "
         "the output of the second-to-last layer", layer=-2)
