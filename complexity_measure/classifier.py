"""The one interface the measures see: a trained classifier, whichever framework runs it.

Every measure starts with ``frameworks.as_classifier(model)``, which wraps what the caller passed
in the ``Classifier`` of its framework:

- a Keras model on TensorFlow (Keras 2 ``tf_keras``, or Keras 3 with the TensorFlow backend):
  ``forward.KerasTensorFlowClassifier``, compiled ``tf.function`` calls;
- a Keras 3 model on any other backend (JAX, PyTorch, NumPy): ``keras_models.KerasClassifier``;
- a ``torch.nn.Module``: ``pytorch.TorchClassifier`` (eval mode, no gradients, on its own device);
- any other callable ``f(batch) -> logits`` (NumPy in, array-like out): ``callables.CallableClassifier``;
- a ``Classifier`` already: returned as it is (``as_classifier(module, initial_weights=...)``
  gives a PyTorch module the initial weights that ``distance_from_init`` needs).

A framework is imported only when a model of it is passed: measuring a PyTorch module never
imports TensorFlow, and the PGDL drop-in needs nothing but TensorFlow.

What crosses the seam is NumPy, in one layout: representations with spatial axes come channels
last, ``(n, ..., channels)``, whatever the framework's own layout (PyTorch's is channels first).
Inputs stay in the model's own layout (the caller's arrays, e.g. NCHW for a PyTorch convnet);
``canonical_layout`` gives the channels-last view of them that the measures draw their examples
and pairs from, so the same images give the same draw in every framework.

A model that cannot give what a measure asks for (hidden layers of a plain callable, the rest of a
network that is not a chain of layers, initial weights never recorded, gradients of a callable)
raises ``ModelRefused``, and so does a model whose outputs or weights are not finite: a measure
never turns a broken network, or something else than it asked for, into a number.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

DEFAULT_BATCH_SIZE = 256

# Layer types whose output has just passed through a nonlinearity, in Keras and in PyTorch.
ACTIVATION_LAYER_TYPES = frozenset({
    "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "ThresholdedReLU", "Softmax",  # Keras
    "ReLU6", "SELU", "CELU", "GELU", "SiLU", "Mish", "Sigmoid", "Tanh", "Softplus", "Hardtanh",
    "Hardswish", "Hardsigmoid", "LogSigmoid", "Tanhshrink", "Softsign", "RReLU", "LogSoftmax",  # PyTorch
})


class ModelRefused(ValueError):
    """A measure cannot be computed on this model: it lacks what the measure needs, or its outputs
    (or weights) are not finite. ``str()`` is one line naming the measure and the reason."""

    def __init__(self, reason: str, measure: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.measure = measure

    def __str__(self) -> str:
        return f"{self.measure}: {self.reason}" if self.measure else self.reason

    def named(self, measure: str) -> "ModelRefused":
        return ModelRefused(self.reason, measure)


def names_refusals(function: Callable) -> Callable:
    """Decorate a measure function so that a ``ModelRefused`` from inside it names the function.

    The outermost measure names it: the one the caller called (a product of two measures, not the
    factor that refused; the registry's name for a registered measure).
    """

    @functools.wraps(function)
    def measure(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ModelRefused as refusal:
            raise refusal.named(function.__name__) from None

    return measure


@dataclass(frozen=True)
class LayerInfo:
    """One layer of a classifier, in call order: its type's name, whether its output has just passed
    through a nonlinearity (a hidden *representation*), and whether it has strides (a convolution
    or pooling)."""

    name: str
    nonlinear: bool
    strided: bool


def not_finite(what: str = "outputs") -> ModelRefused:
    """The refusal of a model whose ``what`` (outputs, hidden representations, weights) are NaN or infinite."""
    where = "" if what == "weights" else " on the training inputs"
    return ModelRefused(f"the model's {what} are not finite (NaN or infinite){where}: a diverged network has "
                        f"no complexity to measure")


def check_finite(values: np.ndarray, what: str = "outputs") -> np.ndarray:
    """``values`` unchanged; ``ModelRefused`` (``not_finite``) when any of them is NaN or infinite."""
    if not np.all(np.isfinite(values)):
        raise not_finite(what)
    return values


def top_two_margins(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(argmax class, largest minus second-largest output)`` per row of ``outputs`` ``(n, k)``.

    The margin is 0 for a single output. Ties go to the first class, as in every framework's argmax.
    """
    classes = np.argmax(outputs, axis=1)
    if outputs.shape[1] < 2:
        return classes, np.zeros(len(outputs), dtype=np.float32)
    top = np.partition(outputs, outputs.shape[1] - 2, axis=1)[:, -2:]
    return classes, (top[:, 1] - top[:, 0]).astype(np.float32)


def batched(function: Callable[[np.ndarray], np.ndarray], inputs: np.ndarray, batch_size: int) -> np.ndarray:
    """``function`` applied to ``inputs`` in batches of ``batch_size``, the results concatenated."""
    if len(inputs) == 0:
        raise ValueError("no inputs to run the model on")
    return np.concatenate([np.asarray(function(inputs[start:start + batch_size]))
                           for start in range(0, len(inputs), batch_size)], axis=0)


def channels_last(values: np.ndarray) -> np.ndarray:
    """A channels-first array ``(n, channels, ...)`` with spatial axes as ``(n, ..., channels)``."""
    values = np.asarray(values)
    return np.moveaxis(values, 1, -1) if values.ndim >= 3 else values


class Classifier:
    """A trained classifier as the measures see it. Subclasses implement one framework.

    Every method takes and returns NumPy arrays; ``inputs`` are in the model's own layout.
    The defaults here refuse: a subclass overrides what its kind of model can give (the
    underscored methods: the public ones count, in ``forward_passes``, the examples sent through
    the whole network or part of it, whichever measure asked, so a caller can read what any
    measure cost: ``callbacks.FragmentationMonitor`` does).
    """

    #: What kind of model this is, for messages ("Keras model on JAX", "PyTorch module", ...).
    kind = "model"
    #: Examples sent through the network (or the part of it a measure needs) so far: every input of
    #: ``logits``, ``representations``, ``layer_outputs`` and ``jacobian_norms``, and every point
    #: and path end of ``path_points`` (as ``PathPoints.forward_passes`` counts them).
    forward_passes = 0

    # -- what the measures call (counted) -------------------------------------------------------

    def logits(self, inputs: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """The outputs (class scores) on ``inputs``, float ``(n, n_classes)``, checked finite."""
        outputs = self._logits(inputs, batch_size)
        self.forward_passes += len(inputs)
        return outputs

    def layer_outputs(self, inputs: np.ndarray, layers: Sequence[int],
                      batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[list[np.ndarray]]:
        """Per batch of ``inputs``, the outputs of ``layers`` (indices) from one forward pass, each
        as NumPy, channels last, checked finite."""
        for outputs in self._layer_outputs(inputs, layers, batch_size):
            self.forward_passes += len(outputs[0])
            yield outputs

    def representations(self, inputs: np.ndarray, layer: int | None,
                        batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """The outputs of ``layer`` on ``inputs``, channels last, checked finite (None: the inputs)."""
        if layer is None:
            return np.asarray(inputs)
        outputs = self._representations(inputs, layer, batch_size)
        self.forward_passes += len(inputs)
        return outputs

    def path_points(self, starts: np.ndarray, ends: np.ndarray, layer: int | None,
                    batch_size: int = DEFAULT_BATCH_SIZE) -> "PathPoints":
        """A ``PathPoints`` classifying points between ``starts`` and ``ends`` at ``layer`` (None:
        the input space; an index needs the rest of the network from it: a chain of layers)."""
        points = self._path_points(starts, ends, layer, batch_size)
        points.owner = self
        self.forward_passes += points.forward_passes  # the path ends through the head
        return points

    def jacobian_norms(self, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Frobenius norm of d outputs / d inputs at each input, float ``(n,)``."""
        norms = self._jacobian_norms(inputs, batch_size)
        self.forward_passes += len(inputs)
        return norms

    # -- what every classifier gives ------------------------------------------------------------

    def check_inputs(self, inputs: np.ndarray) -> None:
        """A clear ValueError when ``inputs`` (``(n,) + input_shape``) do not fit the model, and
        ``ModelRefused`` when its weights are not finite (``finite_weights``). Every measure that
        looks at data calls it first."""

    def finite_weights(self) -> list[np.ndarray]:
        """``weights``, refused (``not_finite``) when any is NaN or infinite.

        Checked before a measure runs, as well as every output: a ReLU maps NaN to 0 in some
        frameworks, so a diverged network's hidden representations can look finite.
        """
        weights = self.weights()
        for array in weights:
            if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
                raise not_finite("weights")
        return weights

    # -- what a framework implements ----------------------------------------------------------------

    def _logits(self, inputs: np.ndarray, batch_size: int) -> np.ndarray:
        raise NotImplementedError

    def _path_points(self, starts: np.ndarray, ends: np.ndarray, layer: int | None, batch_size: int) -> "PathPoints":
        """By default ``ArrayPathPoints`` over ``native_representations``, ``tail_outputs`` and
        ``native_logits``."""
        if layer is not None:
            self.require_chain("the rest of the network from a hidden layer")
            head = functools.partial(self.native_representations, layer=layer)
            tail = functools.partial(self.tail_outputs, layer=layer)
        else:
            head, tail = None, self.native_logits
        return ArrayPathPoints(starts, ends, head, tail, batch_size)

    def canonical_layout(self, inputs: np.ndarray) -> np.ndarray:
        """``inputs`` channels last, for drawing examples and pairs only (identity by default)."""
        return np.asarray(inputs)

    # -- layers ---------------------------------------------------------------------------------

    def layers(self) -> list[LayerInfo]:
        """The layers in call order (``ModelRefused`` for a model without layers)."""
        raise ModelRefused(f"a {self.kind} has no layers to look inside: this measure needs the hidden "
                           f"layers' representations (pass a Keras model or a torch.nn.Module)")

    @property
    def is_chain(self) -> bool:
        """Whether the layers are a plain chain, so that the network can be cut at any layer."""
        return False

    def require_chain(self, what: str) -> None:
        if not self.is_chain:
            raise ModelRefused(f"{what} needs a chain of layers (a Keras Sequential model or a "
                               f"torch.nn.Sequential), and this {self.kind} is not one")

    def _layer_outputs(self, inputs: np.ndarray, layers: Sequence[int], batch_size: int) -> Iterator[list[np.ndarray]]:
        self.layers()  # refuses a model without layers
        raise NotImplementedError

    def _representations(self, inputs: np.ndarray, layer: int, batch_size: int) -> np.ndarray:
        return np.concatenate([outputs[0] for outputs in self._layer_outputs(inputs, [layer], batch_size)])

    def native_representations(self, inputs: np.ndarray, layer: int) -> np.ndarray:
        """The outputs of ``layer`` in the framework's own layout (what ``tail_outputs`` takes)."""
        raise NotImplementedError

    def native_logits(self, inputs: np.ndarray) -> np.ndarray:
        """The outputs on one batch of ``inputs``, not checked (``ArrayPathPoints`` checks them)."""
        raise NotImplementedError

    def tail_outputs(self, representation: np.ndarray, layer: int) -> np.ndarray:
        """The outputs of the layers after ``layer`` on one batch of its (native) representations."""
        raise NotImplementedError

    def resolve_layer(self, layer: int | None) -> int | None:
        """A possibly negative layer index as a non-negative one, range-checked (None stays None)."""
        if layer is None:
            return None
        n_layers = len(self.layers())
        if not isinstance(layer, (int, np.integer)) or isinstance(layer, bool):
            raise ValueError(f"layer must be None (input space) or an integer index, got {layer!r}")
        if not -n_layers <= layer < n_layers:
            raise ValueError(f"layer={layer} is out of range for a model with {n_layers} layers "
                             f"(valid: {-n_layers} .. {n_layers - 1}, or None for the input space)")
        return int(layer) % n_layers

    def wanted_layers(self, layers: Sequence[int]) -> list[int]:
        """``layers`` resolved (``resolve_layer``): a non-empty list of non-negative indices."""
        wanted = [self.resolve_layer(layer) for layer in layers]
        if not wanted or any(index is None for index in wanted):
            raise ValueError(f"layers must be a non-empty list of integer layer indices, got {layers!r}")
        return wanted

    def activation_layers(self) -> list[int]:
        """Indices of the hidden layers whose output has just passed through a nonlinearity.

        The model's hidden *representations* in the sense of the measures that look at them: a
        Keras Dense/Conv layer with a non-linear ``activation``, or an activation layer (Keras
        ``Activation``/``ReLU``/..., PyTorch ``nn.ReLU``/``nn.GELU``/...). The last layer (the
        logits) is never one. Pooling, Flatten, Dropout and BatchNorm layers are skipped: their
        output is a re-arrangement, a copy (in inference) or an affine map of a representation
        already counted. The same network gives the same representations in Keras (``Dense(relu)``,
        one layer) and PyTorch (``Linear`` then ``ReLU``, two), at different indices.
        """
        return [index for index, layer in enumerate(self.layers()[:-1]) if layer.nonlinear]

    def hidden_layers(self) -> list[int]:
        """``activation_layers``, refused when there are none."""
        hidden = self.activation_layers()
        if not hidden:
            raise ModelRefused(f"this {self.kind} has no hidden layer with a nonlinearity (an activation "
                               f"layer or a layer with a non-linear activation)")
        return hidden

    # -- weights and gradients -------------------------------------------------------------------

    def weights(self) -> list[np.ndarray]:
        """Every weight array (trainable or not, BatchNorm's moving statistics included)."""
        raise ModelRefused(f"a {self.kind} has no weights to read (pass a Keras model or a torch.nn.Module)")

    def initial_weights(self) -> list[np.ndarray]:
        """The weights at initialisation, in the order of ``weights``."""
        raise ModelRefused(f"a {self.kind} has no initial weights (pass a Keras model or a torch.nn.Module "
                           f"with its initial weights recorded)")

    def matching_initial_weights(self, current: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``initial_weights``, checked against ``current`` (the weights, in their order): ValueError
        where the number of arrays or an array's shape differs."""
        initial = self.initial_weights()
        if len(initial) != len(current):
            raise ValueError(f"the initial weights have {len(initial)} arrays but the model has {len(current)}")
        for index, (start, now) in enumerate(zip(initial, current)):
            if start.shape != now.shape:
                raise ValueError(f"the initial weight array {index} has shape {start.shape} but the model's weight "
                                 f"array {index} has shape {now.shape}")
        return initial

    @contextlib.contextmanager
    def at_initial_weights(self) -> Iterator["Classifier"]:
        """This classifier with the network's initial weights (``initial_weights``) inside the block,
        and its own weights back after it, also when the block raises: the same architecture
        measured before training. Raises ``ModelRefused`` where the initial weights are not known
        and ValueError where they do not match the weights."""
        current = self.weights()
        initial = self.matching_initial_weights(current)
        self._set_weights(initial)
        try:
            yield self
        finally:
            self._set_weights(current)

    def _set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Replace the weights (in the order of ``weights``) in place."""
        raise ModelRefused(f"a {self.kind} has no weights to set (pass a Keras model or a torch.nn.Module)")

    def _jacobian_norms(self, inputs: np.ndarray, batch_size: int) -> np.ndarray:
        raise ModelRefused(f"a {self.kind} gives no input gradients (pass a differentiable model: a Keras "
                           f"model or a torch.nn.Module)")


class PathPoints:
    """Classifies points ``a_p + t (b_p - a_p)`` of a set of paths, batch by batch.

    ``n_paths``; ``forward_passes`` counts the examples sent through the network so far (both
    ends of every path through the head when a layer is set, and every point classified).
    Subclasses implement ``_classify`` and ``_lengths``.
    """

    n_paths: int
    batch_size: int
    forward_passes: int
    #: The ``Classifier`` whose ``forward_passes`` the points are counted into as well (set by it).
    owner: "Classifier | None" = None

    def lengths(self) -> np.ndarray:
        """``|b_p - a_p|`` of every path (float64, shape ``(n_paths,)``)."""
        raise NotImplementedError

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
            c, m = self._classify(rows[i:i + self.batch_size], t[i:i + self.batch_size])
            classes.append(np.asarray(c, dtype=np.int64))
            margins.append(np.asarray(m, dtype=np.float32))
        self.forward_passes += len(rows)
        if self.owner is not None:
            self.owner.forward_passes += len(rows)
        return np.concatenate(classes), np.concatenate(margins)

    def _classify(self, rows: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def check_path_ends(starts, ends, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``starts`` and ``ends`` as float32 arrays, checked (the same shape, at least one path)."""
    starts = np.asarray(starts, dtype=np.float32)
    ends = np.asarray(ends, dtype=np.float32)
    if starts.shape != ends.shape:
        raise ValueError(f"starts and ends must have the same shape, got {starts.shape} and {ends.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if len(starts) == 0:
        raise ValueError("no paths to evaluate")
    return starts, ends


class ArrayPathPoints(PathPoints):
    """``PathPoints`` over NumPy: ``head`` maps a batch of inputs to the representation the paths
    are interpolated in (None: the inputs themselves), ``tail`` maps a batch of points to outputs.
    """

    def __init__(self, starts, ends, head: Callable | None, tail: Callable, batch_size: int = DEFAULT_BATCH_SIZE):
        starts, ends = check_path_ends(starts, ends, batch_size)
        self.n_paths = len(starts)
        self.batch_size = batch_size
        both = np.concatenate([starts, ends])
        if head is not None:
            both = np.concatenate([np.asarray(head(both[i:i + batch_size]), dtype=np.float32)
                                   for i in range(0, len(both), batch_size)])
            check_finite(both, "hidden representations")
        self.forward_passes = 2 * self.n_paths if head is not None else 0
        self._first, self._second = both[:self.n_paths], both[self.n_paths:]
        self._tail = tail

    def lengths(self) -> np.ndarray:
        difference = (self._second - self._first).reshape(self.n_paths, -1).astype(np.float64)
        return np.sqrt(np.sum(np.square(difference), axis=1))

    def _classify(self, rows, t):
        a, b = self._first[rows], self._second[rows]
        t = t.reshape((-1,) + (1,) * (a.ndim - 1))
        outputs = check_finite(np.asarray(self._tail(a + t * (b - a)), dtype=np.float32))
        return top_two_margins(outputs)
