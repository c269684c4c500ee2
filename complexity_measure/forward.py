"""Forward passes through a trained Sequential Keras classifier: the one place that runs TensorFlow.

``PathPoints`` is the compiled classifier of fragmentation's paths; the other functions cut a
model at a layer and run its head or its tail in batches.

PGDL models are plain ``Sequential`` stacks (Keras 3 ``tf.keras`` or Keras 2 ``tf_keras``, possibly
the starting kit's subclass of it). The measures see a model as a list of layers that can be cut
at any index: a *head* that maps inputs to the representation at a layer's output, and a *tail*
that maps that representation to the logits. Everything here runs in inference mode
(``training=False``: dropout off, BatchNorm on its moving statistics) and in batches through
``tf.function``-compiled calls, which is 1.4-2x faster on CPU than eager calls or
``model.predict``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

DEFAULT_BATCH_SIZE = 256


def model_layers(model) -> list:
    """The layers of a Sequential classifier in call order (without the implicit InputLayer)."""
    layers = [layer for layer in getattr(model, "layers", []) if type(layer).__name__ != "InputLayer"]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no layers: expected a built Sequential Keras classifier")
    return layers


def resolve_layer_index(model, layer: int | None) -> int | None:
    """Turn a possibly negative layer index into a non-negative one, checking its range.

    ``None`` stands for the input space and stays ``None``.
    """
    if layer is None:
        return None
    n_layers = len(model_layers(model))
    if not isinstance(layer, (int, np.integer)) or isinstance(layer, bool):
        raise ValueError(f"layer must be None (input space) or an integer index, got {layer!r}")
    if not -n_layers <= layer < n_layers:
        raise ValueError(f"layer={layer} is out of range for a model with {n_layers} layers "
                         f"(valid: {-n_layers} .. {n_layers - 1}, or None for the input space)")
    return int(layer) % n_layers


def split_model(model, layer: int | None) -> tuple[list, list]:
    """(head, tail) layer lists: head maps inputs to the output of ``layer``, tail maps that to logits.

    ``layer=None`` cuts before the first layer, so the head is empty (the input space).
    """
    layers = model_layers(model)
    index = resolve_layer_index(model, layer)
    cut = 0 if index is None else index + 1
    return layers[:cut], layers[cut:]


def run_layers(layers: Sequence, x: tf.Tensor) -> tf.Tensor:
    """Apply ``layers`` in order, in inference mode. An empty list is the identity."""
    for layer in layers:
        x = layer(x, training=False)
    return x


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


def representations(model, inputs: np.ndarray, layer: int | None,
                    batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """The model's representation of ``inputs`` at the output of ``layer`` (None: the inputs)."""
    head, _ = split_model(model, layer)
    if not head:
        return np.asarray(inputs)
    return batched_apply(compiled(head), inputs, batch_size)


def logits(model, inputs: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """The model's outputs (logits for PGDL models) on ``inputs``, shape (n, n_classes)."""
    return batched_apply(compiled(model_layers(model)), inputs, batch_size)


def check_inputs_fit_model(model, inputs: np.ndarray) -> None:
    """Raise a clear ValueError when the per-example input shape is not what the model was built for."""
    expected = _built_input_shape(model)
    if expected is not None and tuple(inputs.shape[1:]) != expected:
        raise ValueError(f"the inputs have shape {tuple(inputs.shape[1:])} per example, but the model "
                         f"was built for inputs of shape {expected}")


def _built_input_shape(model) -> tuple | None:
    try:
        shape = model.input_shape
    except (AttributeError, ValueError, RuntimeError):  # not built, or several inputs
        return None
    if not isinstance(shape, tuple) or any(d is None for d in shape[1:]):
        return None
    return tuple(int(d) for d in shape[1:])


def activation_layer_indices(model) -> list[int]:
    """Indices of the hidden layers whose output has just passed through a nonlinearity.

    These are the model's hidden *representations* in the sense of the measures that look at them
    (sparsity, class clustering): a Dense/Conv layer with a non-linear ``activation``, or an
    activation layer (``Activation``, ``ReLU``, ``LeakyReLU``, ...). The last layer (the logits)
    is never one of them. Pooling, Flatten, Dropout and BatchNorm layers are skipped: their output
    is a re-arrangement, a copy (in inference) or an affine map of a representation already counted.
    """
    layers = model_layers(model)
    return [index for index, layer in enumerate(layers[:-1]) if _applies_nonlinearity(layer)]


def middle_activation_layer(model) -> int:
    """The middle one of ``activation_layer_indices`` (the earlier of the two middle ones when even)."""
    hidden = activation_layer_indices(model)
    if not hidden:
        raise ValueError(f"{type(model).__name__} has no hidden layer with a nonlinearity, so it has "
                         f"no middle hidden layer")
    return hidden[(len(hidden) - 1) // 2]


_ACTIVATION_LAYER_TYPES = {"Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "ThresholdedReLU", "Softmax"}


def _applies_nonlinearity(layer) -> bool:
    if type(layer).__name__ in _ACTIVATION_LAYER_TYPES:
        return True
    activation = getattr(layer, "activation", None)
    return activation is not None and getattr(activation, "__name__", None) != "linear"


def layer_output_batches(model, inputs: np.ndarray, layers: Sequence[int],
                         batch_size: int = DEFAULT_BATCH_SIZE):
    """Yield, batch by batch, the outputs of several ``layers`` computed in one forward pass.

    Each item is a list of numpy arrays, one per entry of ``layers`` in that order, for the next
    ``batch_size`` inputs. For reductions over many examples (e.g. counting zeros) that should not
    hold every layer's representation of every example in memory at once.
    """
    if len(inputs) == 0:
        raise ValueError("no inputs to run the model on")
    wanted = [resolve_layer_index(model, layer) for layer in layers]
    if any(index is None for index in wanted) or not wanted:
        raise ValueError(f"layers must be a non-empty list of integer layer indices, got {layers!r}")
    head = model_layers(model)[:max(wanted) + 1]

    @tf.function(reduce_retracing=True, autograph=False)
    def call(x):
        outputs = {}
        for index, layer in enumerate(head):
            x = layer(x, training=False)
            outputs[index] = x
        return [outputs[index] for index in wanted]

    traced_once(call, inputs, batch_size)
    for start in range(0, len(inputs), batch_size):
        yield [output.numpy() for output in call(tf.convert_to_tensor(inputs[start:start + batch_size]))]


def logit_jacobian_norms(model, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Frobenius norm of the Jacobian d logits / d inputs at each input, shape ``(n,)``.

    Exact, not estimated: one gradient per output class (summed over the batch, which gives each
    example's own gradient because in inference mode examples do not interact, not even through
    BatchNorm). Faster than ``GradientTape.batch_jacobian`` on the bundled models, first call and
    compute alike (``benchmarks/bench_jacobian.py``), and never needs its ``pfor`` fallback.
    Memory per batch is ~``batch_size * input_size`` floats per class gradient.
    """
    if len(inputs) == 0:
        raise ValueError("no inputs to run the model on")
    return batched_apply(jacobian_norm_function(model_layers(model)), np.asarray(inputs, dtype=np.float32),
                         batch_size)


def jacobian_norm_function(layers: Sequence) -> Callable[[tf.Tensor], tf.Tensor]:
    """The compiled function of ``logit_jacobian_norms``: a batch of inputs to their Jacobian norms.

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


class PathPoints:
    """Classifies arbitrary points ``a_p + t (b_p - a_p)`` of a set of paths, batch by batch.

    The path ends (``starts`` and ``ends`` run through the model up to ``layer``; the inputs
    themselves for ``layer=None``) are kept as tensors; each call takes a flat list of (path row,
    t) and runs it through one compiled function in batches of ``batch_size`` points. The
    function is traced once per model whatever the number of points asked for (adaptive counting
    asks for a different number in every refinement round). ``forward_passes`` counts the
    examples sent through the network so far: both ends of every path through the head (when
    ``layer`` is set) and every point classified by the tail.
    """

    def __init__(self, model, starts, ends, layer, batch_size=DEFAULT_BATCH_SIZE):
        starts = np.asarray(starts, dtype=np.float32)
        ends = np.asarray(ends, dtype=np.float32)
        if starts.shape != ends.shape:
            raise ValueError(f"starts and ends must have the same shape, got {starts.shape} and {ends.shape}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if len(starts) == 0:
            raise ValueError("no paths to evaluate")
        head, tail = split_model(model, layer)
        both = representations(model, np.concatenate([starts, ends]), layer, batch_size)
        self.n_paths = len(starts)
        self.batch_size = batch_size
        self.forward_passes = 2 * self.n_paths if head else 0
        both = np.asarray(both, dtype=np.float32)
        self._feature_size = int(np.prod(both.shape[1:]))
        self._first = tf.constant(both[:self.n_paths])
        self._second = tf.constant(both[self.n_paths:])
        self._classify = _point_classifier(tail, both.shape[1:])

    def lengths(self) -> np.ndarray:
        """``|b_p - a_p|`` of every path (float64, shape ``(n_paths,)``), a batch of paths at a time."""
        return np.concatenate([
            np.sqrt(np.sum(np.square((self._second[i:i + self.batch_size] - self._first[i:i + self.batch_size])
                                     .numpy().reshape(-1, self._feature_size).astype(np.float64)), axis=1))
            for i in range(0, self.n_paths, self.batch_size)])

    def grid(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(classes, margins)`` at every ``t`` of ``positions`` on every path, shape ``(n_paths, n_points)``."""
        n_points = len(positions)
        classes, margins = self(np.repeat(np.arange(self.n_paths), n_points), np.tile(positions, self.n_paths))
        return classes.reshape(self.n_paths, n_points), margins.reshape(self.n_paths, n_points)

    def __call__(self, rows: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(classes, margins)`` of shape ``(len(rows),)`` at points ``t`` of paths ``rows``: the argmax
        class and the top-2 output margin (>= 0)."""
        rows = np.asarray(rows, dtype=np.int32)
        t = np.asarray(t, dtype=np.float32)
        classes, margins = [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
        for i in range(0, len(rows), self.batch_size):
            c, m = self._classify(self._first, self._second, tf.constant(rows[i:i + self.batch_size]),
                                  tf.constant(t[i:i + self.batch_size]))
            classes.append(c.numpy())
            margins.append(m.numpy())
        self.forward_passes += len(rows)
        return np.concatenate(classes), np.concatenate(margins)


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
        return tf.argmax(outputs, axis=-1), top[:, 0] - top[:, -1]

    return classify
