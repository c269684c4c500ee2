"""Keras on TensorFlow as a classifier: the compiled forward passes, the one place that runs TensorFlow.

``KerasTensorFlowClassifier`` is the ``Classifier`` (``classifier.py``) of a Keras model on
TensorFlow: Keras 2 ``tf_keras``, or Keras 3 ``tf.keras`` with the TensorFlow backend, PGDL's plain
``Sequential`` stacks among them (possibly the starting kit's subclass). It sees a model as
``keras_models.KerasClassifier`` does, as a list of layers that can be cut at any index: a *head*
that maps inputs to the representation at a layer's output, and a *tail* that maps that
representation to the logits. Everything here runs in inference mode (``training=False``: dropout
off, BatchNorm on its moving statistics) and in batches through ``tf.function``-compiled calls,
which is 1.4-2x faster on CPU than eager calls or ``model.predict``. ``PathPoints`` is the
compiled classifier of fragmentation's paths.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from . import classifier
from .classifier import DEFAULT_BATCH_SIZE, check_finite, check_path_ends, not_finite
from .keras_models import KerasClassifier, run_layers


class KerasTensorFlowClassifier(KerasClassifier):
    """A Keras model on TensorFlow: ``KerasClassifier`` with compiled, batched ``tf.function`` calls."""

    def __init__(self, model, initial_weights=None):
        super().__init__(model, initial_weights=initial_weights)
        self.kind = "Keras model on TensorFlow"

    def split(self, layer: int | None) -> tuple[list, list]:
        """(head, tail) layer lists: head maps inputs to the output of ``layer``, tail maps that to logits.

        ``layer=None`` cuts before the first layer, so the head is empty (the input space).
        """
        index = self.resolve_layer(layer)
        cut = 0 if index is None else index + 1
        return self._layers[:cut], self._layers[cut:]

    def _logits(self, inputs, batch_size):
        return check_finite(batched_apply(compiled(self._layers), inputs, batch_size))

    def _representations(self, inputs, layer, batch_size):
        head, _ = self.split(layer)
        return check_finite(batched_apply(compiled(head), inputs, batch_size), "hidden representations")

    def _layer_outputs(self, inputs, layers, batch_size):
        if len(inputs) == 0:
            raise ValueError("no inputs to run the model on")
        wanted = self.wanted_layers(layers)
        head = self._layers[:max(wanted) + 1]

        @tf.function(reduce_retracing=True, autograph=False)
        def call(x):
            outputs = {}
            for index, layer in enumerate(head):
                x = layer(x, training=False)
                outputs[index] = x
            return [outputs[index] for index in wanted]

        traced_once(call, inputs, batch_size)
        for start in range(0, len(inputs), batch_size):
            yield [check_finite(output.numpy(), "hidden representations")
                   for output in call(tf.convert_to_tensor(inputs[start:start + batch_size]))]

    def _path_points(self, starts, ends, layer, batch_size):
        return PathPoints(self, starts, ends, layer, batch_size)

    def _jacobian_norms(self, inputs, batch_size):
        """Exact, not estimated: one gradient per output class (summed over the batch, which gives
        each example's own gradient because in inference mode examples do not interact, not even
        through BatchNorm). Faster than ``GradientTape.batch_jacobian`` on the bundled models,
        first call and compute alike (``benchmarks/bench_jacobian.py``), and never needs its
        ``pfor`` fallback. Memory per batch is ~``batch_size * input_size`` floats per class gradient.
        """
        if len(inputs) == 0:
            raise ValueError("no inputs to run the model on")
        return check_finite(batched_apply(jacobian_norm_function(self._layers),
                                          np.asarray(inputs, dtype=np.float32), batch_size), "input gradients")


class _RetracingNotice(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning.

    Each measure call compiles functions of its own model (a new ``tf.function`` per model is the
    point: its graph holds that model's layers), which TensorFlow counts as retracing and warns
    about after five models in one process. The warning says nothing a user can act on.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


tf.get_logger().addFilter(_RetracingNotice())


def compiled(layers: Sequence) -> Callable[[tf.Tensor], tf.Tensor]:
    """A ``tf.function`` running ``layers``; it accepts any batch size without retracing."""

    @tf.function(reduce_retracing=True, autograph=False)
    def call(x):
        return run_layers(layers, x)

    return call


def batched_apply(fn: Callable[[tf.Tensor], tf.Tensor], inputs: np.ndarray,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """Apply a compiled function to ``inputs`` in batches and concatenate the results as numpy."""
    if len(inputs) == 0:
        raise ValueError("no inputs to run the model on")
    fn = traced_once(fn, inputs, batch_size)
    outputs = [fn(tf.convert_to_tensor(inputs[start:start + batch_size])).numpy()
               for start in range(0, len(inputs), batch_size)]
    return np.concatenate(outputs, axis=0)


def traced_once(fn, inputs: np.ndarray, batch_size: int):
    """``fn``, traced for a batch axis of any length when ``inputs`` come in batches of two sizes.

    A ``tf.function`` traces a graph per new input shape (``reduce_retracing`` generalises only
    from the second shape on), so ``n`` inputs in batches of ``batch_size`` would be traced twice
    when ``n`` is not a multiple of it: a full batch, then the remainder. Tracing and optimising
    the graph costs more than computing a few hundred examples on a PGDL-sized model
    (``benchmarks/bench_fragmentation.py``), so trace once, for an unknown batch length.
    Calls then dispatch to that trace. Anything but a ``tf.function`` is returned unchanged.
    """
    if len(inputs) > batch_size and len(inputs) % batch_size and hasattr(fn, "get_concrete_function"):
        fn.get_concrete_function(tf.TensorSpec((None,) + tuple(np.shape(inputs)[1:]),
                                               tf.as_dtype(np.asarray(inputs[:1]).dtype)))
    return fn


def jacobian_norm_function(layers: Sequence) -> Callable[[tf.Tensor], tf.Tensor]:
    """The compiled function of ``KerasTensorFlowClassifier.jacobian_norms``: a batch of inputs to their Jacobian norms.

    On small models its first call (tracing and optimising a graph that holds one backward pass
    per class) takes most of the measure's time: ``benchmarks/bench_jacobian.py``.
    """

    @tf.function(reduce_retracing=True, autograph=False)
    def norms(x):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            out = run_layers(layers, x)
            columns = [out[:, c] for c in range(out.shape[-1])]
        squared = [tf.reduce_sum(tf.square(tf.reshape(tape.gradient(column, x), [tf.shape(x)[0], -1])), axis=1)
                   for column in columns]
        return tf.sqrt(tf.add_n(squared))

    return norms


class PathPoints(classifier.PathPoints):
    """Classifies arbitrary points ``a_p + t (b_p - a_p)`` of a set of paths, batch by batch.

    The path ends (``starts`` and ``ends`` run through the model up to ``layer``; the inputs
    themselves for ``layer=None``) are kept as tensors; each call takes a flat list of (path row,
    t) and runs it through one compiled function in batches of ``batch_size`` points. The
    function is traced once per model whatever the number of points asked for (adaptive counting
    asks for a different number in every refinement round). ``forward_passes`` counts the
    examples sent through the network so far: both ends of every path through the head (when
    ``layer`` is set) and every point classified by the tail.
    """

    def __init__(self, model: KerasTensorFlowClassifier, starts, ends, layer, batch_size=DEFAULT_BATCH_SIZE):
        starts, ends = check_path_ends(starts, ends, batch_size)
        head, tail = model.split(layer)
        both = np.concatenate([starts, ends])
        if head:  # counted by Classifier.path_points, with the points
            both = model._representations(both, layer, batch_size)
        self.n_paths = len(starts)
        self.batch_size = batch_size
        self.forward_passes = 2 * self.n_paths if head else 0
        both = np.asarray(both, dtype=np.float32)
        self._feature_size = int(np.prod(both.shape[1:]))
        self._first = tf.constant(both[:self.n_paths])
        self._second = tf.constant(both[self.n_paths:])
        self._compiled = _point_classifier(tail, both.shape[1:])

    def lengths(self) -> np.ndarray:
        """``|b_p - a_p|`` of every path (float64, shape ``(n_paths,)``), a batch of paths at a time."""
        return np.concatenate([
            np.sqrt(np.sum(np.square((self._second[i:i + self.batch_size] - self._first[i:i + self.batch_size])
                                     .numpy().reshape(-1, self._feature_size).astype(np.float64)), axis=1))
            for i in range(0, self.n_paths, self.batch_size)])

    def _classify(self, rows, t):
        classes, margins, finite = self._compiled(self._first, self._second, tf.constant(rows), tf.constant(t))
        if not finite.numpy():
            raise not_finite()
        return classes.numpy(), margins.numpy()


def _point_classifier(tail, feature_shape):
    # One trace for every number of points (the batch axis is left unknown): refinement rounds
    # ask for different numbers, and padding them to a fixed size would waste up to a batch a round.
    ends = tf.TensorSpec((None,) + tuple(feature_shape), tf.float32)
    points = tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None,), tf.float32)

    @tf.function(autograph=False, input_signature=(ends, ends) + points)
    def classify(first, second, rows, t):
        a = tf.gather(first, rows)
        b = tf.gather(second, rows)
        # Broadcast t over the feature axes: (n, 1, ..., 1).
        t_shape = tf.concat([tf.shape(t), tf.ones_like(tf.shape(a)[1:])], axis=0)
        outputs = run_layers(tail, a + tf.reshape(t, t_shape) * (b - a))
        top = tf.math.top_k(outputs, k=min(2, outputs.shape[-1])).values
        finite = tf.reduce_all(tf.math.is_finite(outputs))
        return tf.argmax(outputs, axis=-1), top[:, 0] - top[:, -1], finite

    return classify
