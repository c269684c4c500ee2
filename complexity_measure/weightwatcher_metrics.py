"""WeightWatcher's data-free metrics as measures: the spectra of the weight matrices alone.

Martin & Mahoney ("Implicit self-regularization in deep neural networks", JMLR 2021; "Predicting
trends in the quality of state-of-the-art neural networks without access to training or testing
data", Nature Communications 2021) fit a power law to the empirical spectral density of each
layer's weight matrix and summarise a network by the mean over its layers. Their library,
``weightwatcher`` (the ``weightwatcher`` extra, version 0.7.7), computes them from a Keras model
or a PyTorch module, without data and on the CPU; this module runs it as its authors do
(``WeightWatcher(model).analyze()`` at its defaults, then ``get_summary``) and returns one of its
summary metrics, so that ``compare`` puts the most used data-free tool beside the other measures.

Directions, as the authors state them: a smaller ``alpha`` (heavier-tailed spectra, "better
trained" layers), a smaller ``alpha_weighted`` (``alpha`` times the log of the largest
eigenvalue), ``log_alpha_norm``, ``log_norm`` (log Frobenius norm) and ``log_spectral_norm`` go
with better generalization (the Nature Communications paper predicts test accuracy from them,
lower being better), so each is returned as it is: larger, a larger expected gap.
``stable_rank`` (squared Frobenius over squared spectral norm) has no direction stated by its
authors; it is taken as a capacity, larger for a larger expected gap, and is a test of that.
The measures ignore the data (``inputs`` and ``labels``), and refuse a model whose weights are not
finite and a model that is neither a Keras model on TensorFlow nor a PyTorch module.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging

from .classifier import ModelRefused, names_refusals
from .frameworks import as_classifier

# WeightWatcher's analysis of the last few networks, by content (architecture and weights): the six
# metrics of one network come from one analysis, which takes seconds on a wide network.
_ANALYSED: dict[str, dict] = {}
_KEEP = 4

METRICS = ("alpha", "alpha_weighted", "log_alpha_norm", "log_norm", "log_spectral_norm", "stable_rank")
DEFAULT_METRIC = "alpha"


@names_refusals
def weightwatcher_metric(model, inputs=None, labels=None, *, metric: str = DEFAULT_METRIC) -> float:
    """One of WeightWatcher's summary metrics of ``model`` (the mean over its analysed layers).

    Parameters
    ----------
    model : a Keras model on TensorFlow or a ``torch.nn.Module`` (what ``weightwatcher`` analyses).
    inputs, labels : not used (the metrics are data-free).
    metric : one of ``METRICS``.

    Returns
    -------
    float; larger is expected to mean a larger generalization gap (see the module docstring).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    classifier = as_classifier(model)
    # The model as weightwatcher takes it: the Keras model (on TensorFlow) or the PyTorch module.
    native = {"Keras model on TensorFlow": "model", "PyTorch module": "module"}.get(classifier.kind)
    if native is None:
        raise ModelRefused(f"weightwatcher analyses Keras models on TensorFlow and PyTorch modules, "
                           f"not a {classifier.kind}")
    weights = classifier.finite_weights()
    value = _analysed(getattr(classifier, native), weights).get(metric)
    if value is None:
        raise ModelRefused(f"weightwatcher found no layer to analyse (its summary has no {metric})")
    return float(value)


def _analysed(model, weights) -> dict:
    """WeightWatcher's summary of ``model`` (whose weight arrays are ``weights``), analysed once for
    the same architecture and weights."""
    key = _content_key(model, weights)
    if key not in _ANALYSED:
        if len(_ANALYSED) >= _KEEP:
            _ANALYSED.pop(next(iter(_ANALYSED)))
        _ANALYSED[key] = _quietly(lambda: _summary(model))
    return dict(_ANALYSED[key])


def _content_key(model, weights) -> str:
    """A digest of the architecture (the classes of the layers or modules, in order) and of every
    weight array's shape, type and bytes."""
    parts = getattr(model, "layers", None)
    if parts is None:  # a PyTorch module
        parts = list(model.modules())
    digest = hashlib.sha256(" ".join(type(part).__name__ for part in parts).encode())
    for array in weights:
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _summary(model) -> dict:
    try:
        import weightwatcher  # here, and quietly: it prints which SVD backend it found
    except ImportError:
        raise ImportError("the WeightWatcher measures need the weightwatcher package: "
                          "pip install -e '.[weightwatcher]'") from None
    watcher = weightwatcher.WeightWatcher(model=model)
    return watcher.get_summary(watcher.analyze())


def _quietly(function):
    """``function()`` with weightwatcher's prints and log lines (its SVD backend, its fits) kept off the terminal."""
    loggers = [logging.getLogger(name) for name in ("weightwatcher", "powerlaw", "")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return function()
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
