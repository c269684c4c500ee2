"""Fragmentation (or any registered measure) while a model trains: a Keras callback.

``FragmentationMonitor(inputs, labels)`` goes into ``model.fit(..., callbacks=[...])`` and puts
the score into the epoch's ``logs`` (under ``fragmentation``, the measure's name or
``log_name``), so ``History``, ``CSVLogger``, TensorBoard and ``EarlyStopping`` see it like any
metric. Mouton et al. (arXiv:2411.04695) report that fragmentation follows the validation error
through training; this is how to watch it on one's own model.

Keras 2 and Keras 3 each insist on callbacks that subclass their own ``Callback``, and which one
a ``fit`` belongs to is known only from the model. ``FragmentationMonitor`` is therefore a factory:
``keras=`` picks the Keras (default ``tf.keras``, which is Keras 3 in TensorFlow 2.16+ and Keras 2
under ``TF_USE_LEGACY_KERAS=1``) and it returns an instance of that Keras's subclass (one class
per Keras, made once, both named ``FragmentationMonitor``; ``fragmentation_monitor_class(keras)``
gives the class itself).

The callback only *measures*: the measure runs the network in inference mode (``training=False``:
dropout off, BatchNorm on its moving statistics, nothing updated) and never writes a weight or
touches a random generator that training uses, so a run with the monitor trains exactly as one
without it.
"""

from __future__ import annotations

import functools
import time
from typing import Callable, Iterable

import numpy as np

from .frameworks import as_classifier
from .labels import class_indices
from .registry import Measure, get_measure


def FragmentationMonitor(inputs, labels, *, measure: str | Callable = "fragmentation", every: int = 1,
                         batches: Iterable[int] | None = None, log_name: str | None = None,
                         at_train_begin: bool = False, verbose: int = 1, keras=None, **measure_params):
    """A Keras callback computing a measure on fixed training data every ``every`` epochs.

    Parameters
    ----------
    inputs : array of shape ``(n,) + input_shape``: the examples the measure looks at (e.g. a
        fixed sample of the training inputs). Copied once as float32; the same array is handed to
        the measure at every call.
    labels : array of shape ``(n,)`` (class indices) or ``(n, k)`` (one-hot).
    measure : a registered measure's name (``complexity_measure.registry``; default
        ``"fragmentation"``) or any callable ``measure(model, inputs, labels, **measure_params)``
        returning a float. Fragmentation draws its pairs from ``inputs``, ``labels`` and its
        ``seed`` only, so every call walks the same paths and epochs are comparable.
    every : measure after epochs ``0, every, 2 every, ...`` (Keras's 0-based epoch index, as
        ``CSVLogger`` writes it; the first epoch is always measured so ``CSVLogger`` makes a
        column for it). Epochs in between get no entry in ``logs``, the convention of Keras's
        own ``validation_freq``: ``History`` then holds one value per *measured* epoch, and
        ``CSVLogger`` writes ``NA``.
    batches : batch indices (0-based, within an epoch) after which to measure as well, in every
        measured epoch; those values go to the batch ``logs`` and to ``records``.
    log_name : the key in ``logs``; default the measure's name (a callable's ``__name__``).
    at_train_begin : also measure the untrained model once, in ``on_train_begin`` (in ``records``
        only: Keras has no epoch logs before the first epoch).
    verbose : 1 prints one line per call (value, seconds, forward passes), 0 is silent.
    keras : the Keras module whose ``fit`` will call the callback (``tf.keras`` or ``tf_keras``);
        default ``tf.keras``.
    **measure_params : keyword arguments of the measure, e.g. ``layer=-2, n_pairs=256``.

    After each call, ``last_cost`` is ``{"seconds": s, "forward_passes": m}`` (``m``: the examples
    the measure sent through the network or part of it, ``Classifier.forward_passes``; None for a
    callable of your own, which gets the model itself), ``records`` is a
    list of ``{"stage", "epoch", "batch", "value", "seconds", "forward_passes"}`` dicts, and
    ``total_seconds`` the time spent measuring so far.

    Put the monitor before ``CSVLogger``/``EarlyStopping``/TensorBoard in the callbacks list:
    Keras calls callbacks in list order, and a callback listed earlier does not see the value.
    """
    if keras is None:
        import tensorflow as tf  # here: only the Keras callback needs TensorFlow
        keras = tf.keras
    cls = fragmentation_monitor_class(keras)
    return cls(inputs, labels, measure=measure, every=every, batches=batches, log_name=log_name,
               at_train_begin=at_train_begin, verbose=verbose, **measure_params)


@functools.lru_cache(maxsize=None)
def fragmentation_monitor_class(keras) -> type:
    """The monitor's class for ``keras`` (``tf.keras`` or ``tf_keras``): a subclass of its ``Callback``."""
    base = getattr(getattr(keras, "callbacks", None), "Callback", None)
    if not isinstance(base, type):
        raise ValueError(f"keras must be a Keras module with callbacks.Callback (tf.keras or tf_keras), "
                         f"got {keras!r}")
    return type("FragmentationMonitor", (_MonitorLogic, base),
                {"__module__": __name__, "__doc__": FragmentationMonitor.__doc__})


class _MonitorLogic:
    """What the monitor does, whichever Keras's ``Callback`` it is mixed into (see ``FragmentationMonitor``)."""

    def __init__(self, inputs, labels, *, measure="fragmentation", every=1, batches=None, log_name=None,
                 at_train_begin=False, verbose=1, **measure_params):
        super().__init__()
        self.inputs = np.array(inputs, dtype=np.float32)
        self.labels = class_indices(labels)
        if len(self.inputs) != len(self.labels):
            raise ValueError(f"inputs has {len(self.inputs)} examples but labels has {len(self.labels)}")
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"every must be a positive integer (epochs), got {every!r}")
        self.batches = frozenset(int(b) for b in (batches or ()))
        if any(b < 0 for b in self.batches):
            raise ValueError(f"batches must be non-negative batch indices, got {sorted(self.batches)}")
        if isinstance(measure, str):
            # The registered measure with these parameters set (checked against its signature): its
            # own fixed parameters (layer=-2 for fragmentation_penultimate, ...) are kept.
            registered = get_measure(measure, **measure_params)
            self.function, default_name = registered, registered.name
            measure_params = {}
        elif callable(measure):
            self.function, default_name = measure, getattr(measure, "__name__", None)
        else:
            raise ValueError(f"measure must be a registered measure's name or a callable, got {measure!r}")
        self.name = log_name or default_name
        if not self.name:
            raise ValueError(f"give log_name: the measure {measure!r} has no __name__ to log it under")
        self.every = int(every)
        self.at_train_begin = bool(at_train_begin)
        self.verbose = int(verbose)
        self.measure_params = dict(measure_params)
        # This package's measures take a Classifier, which counts the forward passes they make;
        # a callable of the user's own gets the model as it is.
        self._counted = isinstance(self.function, Measure) or _defined_here(self.function)
        self.last_cost: dict | None = None
        self.records: list[dict] = []
        self.total_seconds = 0.0

    def measure_now(self, model=None) -> float:
        """Compute the measure on ``model`` (default: the model being trained) and record its cost."""
        model = model if model is not None else self.model
        started = time.perf_counter()
        if self._counted:
            classifier = as_classifier(model)
            value = float(self.function(classifier, self.inputs, self.labels, **self.measure_params))
            passes = classifier.forward_passes
        else:
            value, passes = float(self.function(model, self.inputs, self.labels, **self.measure_params)), None
        seconds = time.perf_counter() - started
        self.last_cost = {"seconds": seconds, "forward_passes": passes}
        self.total_seconds += seconds
        return value

    def _record(self, stage: str, epoch: int | None, batch: int | None) -> float:
        value = self.measure_now()
        self.records.append({"stage": stage, "epoch": epoch, "batch": batch, "value": value, **self.last_cost})
        if self.verbose:
            where = {"train_begin": "before training", "epoch": f"epoch {epoch}",
                     "batch": f"epoch {epoch} batch {batch}"}[stage]
            passes = self.last_cost["forward_passes"]
            passes = "forward passes not known" if passes is None else f"{passes:,} forward passes"
            print(f"{type(self).__name__}: {self.name} = {value:.4f} {where} "
                  f"({self.last_cost['seconds']:.2f} s, {passes})")
        return value

    def _measured_epoch(self, epoch: int) -> bool:
        return epoch % self.every == 0

    def on_train_begin(self, logs=None):
        self._epoch = 0
        if self.at_train_begin:
            self._record("train_begin", None, None)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if batch in self.batches and self._measured_epoch(getattr(self, "_epoch", 0)):
            value = self._record("batch", getattr(self, "_epoch", 0), batch)
            if logs is not None:
                logs[self.name] = value

    def on_epoch_end(self, epoch, logs=None):
        if not self._measured_epoch(epoch):
            return
        value = self._record("epoch", epoch, None)
        if logs is not None:
            logs[self.name] = value

    def _implements_train_batch_hooks(self):
        # Keras 2 skips batch hooks of callbacks that say they do not use them (it is faster).
        return bool(self.batches)


def _defined_here(function: Callable) -> bool:
    """Whether ``function`` (or the function a ``functools.partial`` wraps) is one of this package's."""
    while isinstance(function, functools.partial):
        function = function.func
    package = __name__.rpartition(".")[0]
    return getattr(function, "__module__", "").startswith(package + ".")
