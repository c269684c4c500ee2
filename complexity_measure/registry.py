"""Every measure by name, with the parameters that make it, so the harness can run any subset.

A registered measure is called as ``measure(model, inputs, labels) -> float`` on a trained
classifier and (a sample of) its training data, and returns a value that is larger where the
generalization gap is expected to be larger. The measures themselves are plain functions in
their own modules; this module only names configurations of them.

A ``Measure`` knows all of its parameters, defaults included (``Measure.parameters``), so a value
can be keyed by everything that made it; ``Measure.with_params`` sets some of them, checked
against the function's signature, and ``parse_parameter`` reads ``name=value`` from a command line.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from . import baselines, combinations, fragmentation, natekar_sharma, representation, weightwatcher_metrics
from .classifier import ModelRefused

# Chosen by the benchmark suite's fourth-round protocol (docs/benchmark.md): the candidate with the
# best mean CMI over the choice suite's six tasks, chosen for every family when that family was left
# out, its lead over the previous default (fragmentation_fitted_davies_bouldin) holding in every
# paired resample.
DEFAULT_MEASURE = "fragmentation_fitted_davies_bouldin_quarter"

# The first three arguments of every measure function; the rest are its parameters.
_DATA_ARGUMENTS = ("model", "inputs", "labels")


@dataclass(frozen=True)
class Measure:
    """A measure function with some of its keyword parameters fixed, under a name."""

    name: str
    function: Callable[..., float]
    description: str
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, model, inputs, labels) -> float:
        """The measure's value on ``model`` (any classifier ``classifier.as_classifier`` takes).

        Raises ``ModelRefused``, naming this measure, when the model cannot give what it needs.
        """
        try:
            return float(self.function(model, inputs, labels, **self.fixed))
        except ModelRefused as refusal:
            raise refusal.named(self.name) from None

    @property
    def parameters(self) -> dict[str, Any]:
        """Every parameter the function is called with, defaults included, by name (sorted)."""
        values = {name: parameter.default for name, parameter in _parameters(self.function).items()}
        values.update(self.fixed)
        return dict(sorted(values.items()))

    @property
    def samples(self) -> bool:
        """Whether the value depends on a random draw (the measure has a ``seed`` parameter)."""
        return "seed" in _parameters(self.function)

    def with_params(self, **overrides) -> "Measure":
        """The same measure with ``overrides`` set; a ValueError names an unknown or ill-typed one."""
        known = _parameters(self.function)
        hints = _type_hints(self.function)
        for name, value in overrides.items():
            if name not in known:
                raise ValueError(f"measure {self.name} has no parameter {name!r}; its parameters: "
                                 f"{', '.join(sorted(known)) or 'none'}")
            _check_type(self.name, name, value, hints.get(name), known[name].default)
        return Measure(self.name, self.function, self.description, {**self.fixed, **overrides})


def _parameters(function: Callable) -> dict[str, inspect.Parameter]:
    """The keyword parameters of a measure function after (model, inputs, labels)."""
    signature = inspect.signature(function)
    return {name: parameter for name, parameter in signature.parameters.items()
            if name not in _DATA_ARGUMENTS
            and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)}


def _type_hints(function: Callable) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:  # a hint that cannot be evaluated: fall back to the defaults' types
        return {}


def _allowed_types(hint, default) -> tuple[type, ...] | None:
    """The plain types a parameter accepts (None when it cannot be told: then anything goes)."""
    if hint is None:
        return None if default is None or default is inspect.Parameter.empty else (type(default),)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        allowed = []
        for argument in typing.get_args(hint):
            more = _allowed_types(argument, inspect.Parameter.empty)
            if more is None:
                return None
            allowed.extend(more)
        return tuple(allowed)
    if hint is type(None):
        return (type(None),)
    if origin is not None:  # list[int], Sequence[int], ...: check the container only
        return (list, tuple) if origin in (list, tuple) or getattr(origin, "__name__", "") == "Sequence" else None
    if hint is typing.Any:
        return None
    return (hint,) if isinstance(hint, type) else None


def _check_type(measure: str, name: str, value, hint, default) -> None:
    allowed = _allowed_types(hint, default)
    if allowed is None:
        return
    if isinstance(value, bool) and bool not in allowed:
        ok = False
    elif isinstance(value, int) and not isinstance(value, bool) and float in allowed:
        ok = True  # an int where a float is expected
    else:
        ok = isinstance(value, allowed)
    if not ok:
        names = " or ".join(sorted({"None" if t is type(None) else t.__name__ for t in allowed}))
        raise ValueError(f"measure {measure}: parameter {name} must be {names}, got {value!r}")


def parse_parameter(text: str) -> tuple[str, Any]:
    """``"name=value"`` from a command line: the value as a Python literal (1024, -2, 0.5, None,
    True, [-2, -1]), or else as the string itself (``pairs=any``)."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise ValueError(f"expected a measure parameter as name=value, got {text!r}")
    raw = raw.strip()
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    if isinstance(value, (list, tuple, str, int, float, bool, type(None))):
        return name, list(value) if isinstance(value, tuple) else value
    raise ValueError(f"parameter {name}: {raw!r} is not a number, string, None, True/False or list")


def code_fingerprint() -> str:
    """SHA-256 of the measure package's source files: a value computed by other code is not reused.

    The whole package counts, not one module: a measure's value also depends on the forward
    passes, sampling and data helpers it shares with the others.
    """
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


MEASURES: dict[str, Measure] = {}


def register(name: str, function: Callable[..., float], description: str, **parameters) -> Measure:
    """Register ``function`` with fixed keyword ``parameters`` under ``name``."""
    if name in MEASURES:
        raise ValueError(f"a measure named {name!r} is already registered")
    missing = [required for required in _DATA_ARGUMENTS if required not in inspect.signature(function).parameters]
    if missing:
        raise ValueError(f"{function.__name__} cannot be a measure: it takes no {', '.join(missing)} argument")
    MEASURES[name] = Measure(name, function, description).with_params(**parameters)
    return MEASURES[name]


def get_measure(name: str, **parameters) -> Measure:
    """The registered measure called ``name`` (with ``parameters`` set); a KeyError lists the known names."""
    try:
        measure = MEASURES[name]
    except KeyError:
        raise KeyError(f"unknown measure {name!r}; registered measures: {', '.join(sorted(MEASURES))}") from None
    return measure.with_params(**parameters) if parameters else measure


register("fragmentation", fragmentation.fragmentation_score,
         "class changes per path between same-class training pairs, input space, paths extended "
         "by half their length beyond both ends (fragmentation alone)")
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
# The variants the research suggests (docs/study.md, "The variants"): every hidden layer, local
# pairs, changes per unit length, and continuous companions of the count.
register("fragmentation_hidden", fragmentation.fragmentation_score,
         "class changes per same-class path at every hidden layer with a nonlinearity (each layer's "
         "representations interpolated), the mean over layers", layer="hidden")
register("fragmentation_nearest", fragmentation.fragmentation_score,
         "class changes per path between an example and one of its 5 nearest same-class neighbours, "
         "input space (local fragmentation)", pairs="nearest")
register("fragmentation_nearest_other", fragmentation.fragmentation_score,
         "class changes per path between an example and one of its 5 nearest examples of another "
         "class, input space (fragmentation where classes meet; every path changes at least once)",
         pairs="nearest_other")
register("fragmentation_wide", fragmentation.fragmentation_score,
         "class changes per same-class path, input space, paths extended by 1.5 times their length "
         "beyond both ends (4x the path: fragmentation at a larger scale, away from the data)",
         extend=1.5)
register("fragmentation_per_length", fragmentation.fragmentation_score,
         "class changes per unit input-space distance along same-class paths", normalize="length")
register("fragmentation_penultimate_per_length", fragmentation.fragmentation_score,
         "class changes per unit distance along same-class paths interpolated at the second-to-last "
         "layer (the representation's scale divided out)", layer=-2, normalize="length")
register("fragmentation_off_label", fragmentation.fragmentation_score,
         "fraction of the points of same-class paths (input space) classified as another class",
         statistic="off_label")
# Registered before the benchmark suite's third round (docs/benchmark.md): the training error taken
# out of the count (the per-axis analysis of the second build found fragmentation ranking the
# regularisation axes of the MLPs backwards).
register("fragmentation_fitted", fragmentation.fragmentation_score,
         "class changes per same-class path, input space, counting only the paths whose two ends the "
         "model classifies as their labels (the training error left out of the count)", ends="fitted")
register("fragmentation_tiebreak", fragmentation.fragmentation_score,
         "the default count, ties between models broken by the off-label fraction",
         statistic="changes_then_off_label")

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
register("fragmentation_mixup", combinations.fragmentation_times_mixup_error,
         "the default fragmentation x (the winner's mixup error + 1/4096): fragmentation as the main term, "
         "the error on same-class midpoints as the second, in the winner's product form")
register("fragmentation_davies_bouldin", combinations.fragmentation_times_davies_bouldin,
         "fragmentation x the hidden layers' mean Davies-Bouldin index (the default until the third round): the winner's "
         "product with its same-class midpoint error (a one-point fragmentation) replaced by the full path count")
register("fragmentation_fitted_davies_bouldin", combinations.fragmentation_times_davies_bouldin,
         "fragmentation_fitted x the hidden layers' mean Davies-Bouldin index (the default until the fourth "
         "round): the winner's product form, with the training error left out of its fragmentation", ends="fitted")
# Registered before the benchmark suite's fourth round (docs/benchmark.md): on both suites the
# index alone led the product, and the per-axis analysis found each factor ranking axes the other
# ranks well; a smaller power gives fragmentation the smaller say in the order.
register("fragmentation_fitted_davies_bouldin_half", combinations.fragmentation_times_davies_bouldin,
         "fragmentation_fitted ** 0.5 x the hidden layers' mean Davies-Bouldin index (half the weight "
         "of fragmentation in the product's logarithm)", ends="fitted", power=0.5)
register("fragmentation_fitted_davies_bouldin_quarter", combinations.fragmentation_times_davies_bouldin,
         "fragmentation_fitted ** 0.25 x the hidden layers' mean Davies-Bouldin index (the default measure: "
         "a quarter of the weight of fragmentation in the product's logarithm)", ends="fitted", power=0.25)

# Registered for the benchmark's fifth round (docs/benchmark.md), before any run of it: a model
# with no class change on a counted path got 0 whatever its clustering, so such models tied.
register("fragmentation_fitted_davies_bouldin_quarter_floor", combinations.fragmentation_times_davies_bouldin,
         "the default with its fragmentation factor floored at one path's worth (1/2048), so that a model "
         "with no class change keeps the index's order", ends="fitted", power=0.25, floor=1 / fragmentation.DEFAULT_N_PAIRS)
# Registered after the depth mechanism's first look (docs/benchmark.md), before any run of the
# fifth round: deeper VGGs change class more between the two examples of a path, at their initial
# weights already, and not beyond them.
register("fragmentation_fitted_beyond_davies_bouldin_quarter", combinations.fragmentation_times_davies_bouldin,
         "the floored default counting only the class changes beyond the two examples of each path "
         "(t < 0 or t > 1), where depth changes little", ends="fitted", part="beyond", power=0.25,
         floor=1 / fragmentation.DEFAULT_N_PAIRS)
register("fragmentation_fitted_relative_init_davies_bouldin_quarter", combinations.fragmentation_times_davies_bouldin,
         "the floored default with its fragmentation factor divided by the same network's count at its initial "
         "weights (the architecture's share taken out; needs weights_init.hdf5)", ends="fitted",
         relative_to_initial=True, power=0.25, floor=1 / fragmentation.DEFAULT_N_PAIRS)

# The starting kit's baselines and the output margin.
register("distance_from_init", baselines.distance_from_initialization,
         "Frobenius distance of all weights from model.initial_weights (needs weights_init.hdf5)")
register("jacobian_norm", baselines.jacobian_norm,
         "mean Frobenius norm of d logits / d inputs over 512 training examples (exact)")
register("output_margin", baselines.output_margin,
         "negated 10th percentile of the logit margin (true minus best other) on 2,000 training examples")
register("parameter_norm", baselines.parameter_norm,
         "sum of squared weights (the kit's sample submission)")

# WeightWatcher's data-free summary metrics (Martin & Mahoney 2021), through its own library (the
# weightwatcher extra), with the directions its authors state (weightwatcher_metrics.py).
for _metric, _what in (("alpha", "mean power-law exponent of the layers' weight spectra (smaller: better trained)"),
                       ("alpha_weighted", "mean alpha x log10 of the largest eigenvalue"),
                       ("log_alpha_norm", "mean log of the Schatten alpha-norm"),
                       ("log_norm", "mean log Frobenius norm of the weight matrices"),
                       ("log_spectral_norm", "mean log spectral norm of the weight matrices"),
                       ("stable_rank", "mean stable rank (no direction stated by its authors; larger taken as more "
                                       "capacity)")):
    register(f"weightwatcher_{_metric}", weightwatcher_metrics.weightwatcher_metric,
             f"WeightWatcher 0.7.7's {_metric}: {_what}; data-free", metric=_metric)
