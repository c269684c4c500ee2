"""Keras models as classifiers: the layer list of any Keras model, and Keras 3 on any backend.

``KerasClassifier`` runs a Keras 3 model on whichever backend it was built with (JAX, PyTorch,
NumPy), eagerly and batch by batch, through ``keras.ops``. Keras on TensorFlow (Keras 2, or Keras 3
with the TensorFlow backend) is ``forward.KerasTensorFlowClassifier``, its subclass with compiled
``tf.function`` calls. Nothing here imports a framework at import time.

A Keras model is seen as the list of its layers in call order (``model.layers`` without the
``InputLayer``), cut at any index: a *head* mapping inputs to the representation at a layer's
output and a *tail* mapping that to the logits. Everything runs in inference mode
(``training=False``: dropout off, BatchNorm on its moving statistics).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator, Sequence

import numpy as np

from .classifier import (ACTIVATION_LAYER_TYPES, DEFAULT_BATCH_SIZE, Classifier, LayerInfo, ModelRefused,
                         batched, check_finite)


def keras_backend(model) -> str:
    """The backend a Keras model runs on: ``"tensorflow"`` for Keras 2, Keras 3's backend otherwise."""
    modules = [getattr(cls, "__module__", "") for cls in type(model).__mro__]
    if not any(module == "keras" or module.startswith("keras.") for module in modules):
        return "tensorflow"  # tf_keras (Keras 2) and TensorFlow's own Keras run on TensorFlow only
    return sys.modules["keras"].backend.backend()


def run_layers(layers: Sequence, x):
    """Apply Keras ``layers`` to ``x`` in order, in inference mode (any backend's tensors; also inside
    a ``tf.function`` or ``jax.jit``). An empty list is the identity."""
    for layer in layers:
        x = layer(x, training=False)
    return x


def model_layers(model) -> list:
    """The layers of a Sequential classifier in call order (without the implicit InputLayer)."""
    layers = [layer for layer in getattr(model, "layers", []) if type(layer).__name__ != "InputLayer"]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no layers: expected a built Sequential Keras classifier")
    return layers


def applies_nonlinearity(layer) -> bool:
    """Whether a Keras layer's output has just passed through a nonlinearity."""
    if type(layer).__name__ in ACTIVATION_LAYER_TYPES:
        return True
    activation = getattr(layer, "activation", None)
    return activation is not None and getattr(activation, "__name__", None) != "linear"


def built_input_shape(model) -> tuple | None:
    """The per-example input shape a Keras model was built for (None: not known)."""
    try:
        shape = model.input_shape
    except (AttributeError, ValueError, RuntimeError):  # not built, or several inputs
        return None
    if not isinstance(shape, tuple) or any(d is None for d in shape[1:]):
        return None
    return tuple(int(d) for d in shape[1:])


def check_inputs_fit_model(model, inputs: np.ndarray) -> None:
    """Raise a clear ValueError when the per-example input shape is not what the model was built for."""
    expected = built_input_shape(model)
    if expected is not None and tuple(np.shape(inputs)[1:]) != expected:
        raise ValueError(f"the inputs have shape {tuple(np.shape(inputs)[1:])} per example, but the model "
                         f"was built for inputs of shape {expected}")


class KerasClassifier(Classifier):
    """A Keras model as a ``Classifier``; eager ``keras.ops`` calls on the model's own backend."""

    def __init__(self, model, initial_weights=None):
        self.model = model
        self.backend = keras_backend(model)
        self.kind = f"Keras model on {self.backend}"
        self._initial_weights = initial_weights
        self._layers = model_layers(model)

    # -- structure, weights ---------------------------------------------------------------------

    def check_inputs(self, inputs):
        check_inputs_fit_model(self.model, inputs)
        self.finite_weights()

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(type(layer).__name__, applies_nonlinearity(layer), "strides" in layer.get_config())
                for layer in self._layers]

    @property
    def is_chain(self) -> bool:
        # Keras models are measured as their list of layers, as PGDL's Sequential models are.
        return True

    def weights(self) -> list[np.ndarray]:
        return [np.asarray(weights) for weights in self.model.get_weights()]

    def _set_weights(self, weights):
        self.model.set_weights(weights)

    def initial_weights(self) -> list[np.ndarray]:
        initial = self._initial_weights
        if initial is None:
            initial = getattr(self.model, "initial_weights", None)
        if initial is None:
            raise ModelRefused(f"{type(self.model).__name__} has no initial_weights: distance from "
                               f"initialization needs the weights at initialisation (the PGDL loaders set "
                               f"model.initial_weights from a task's weights_init.hdf5, which this task does "
                               f"not have or which failed to load)")
        return [np.asarray(weights) for weights in initial]

    # -- forward passes (any backend) ----------------------------------------------------------------

    def _run(self, layers: Sequence, inputs: np.ndarray) -> np.ndarray:
        ops = sys.modules["keras"].ops
        if self.backend == "jax":  # a compiled call, as Keras's own predict makes on JAX
            inputs = np.asarray(inputs, dtype=np.float32)
            # Padded to a power of two: each new batch length would compile the call again, and
            # adaptive counting's rounds end in batches of every length.
            padded = 1 << max(len(inputs) - 1, 0).bit_length()
            batch = np.concatenate([inputs, np.zeros((padded - len(inputs),) + inputs.shape[1:], np.float32)])
            return np.asarray(self._jitted(tuple(layers))(batch))[:len(inputs)]
        with _no_gradients(self.backend):
            x = run_layers(layers, ops.convert_to_tensor(np.asarray(inputs, dtype=np.float32)))
            return np.asarray(ops.convert_to_numpy(x))

    def _jitted(self, layers: tuple):
        """``jax.jit`` of running ``layers`` in inference mode, made once per slice of the model.

        The weights are read when the call is traced (once per batch shape), as constants of the
        compiled call: a model measured while it trains must be wrapped again after its weights
        change (each measure call does: ``as_classifier`` makes a new wrapper).
        """
        cache = self.__dict__.setdefault("_jit_cache", {})
        if layers not in cache:
            import jax
            cache[layers] = jax.jit(lambda x: run_layers(layers, x))
        return cache[layers]

    def _logits(self, inputs, batch_size):
        return check_finite(batched(lambda batch: self._run(self._layers, batch), inputs, batch_size))

    def native_logits(self, inputs):
        return self._run(self._layers, inputs)

    def native_representations(self, inputs, layer):
        return self._run(self._layers[:self.resolve_layer(layer) + 1], inputs)

    def tail_outputs(self, representation, layer):
        return self._run(self._layers[self.resolve_layer(layer) + 1:], representation)

    def _layer_outputs(self, inputs, layers, batch_size) -> Iterator[list[np.ndarray]]:
        wanted = self.wanted_layers(layers)
        head = self._layers[:max(wanted) + 1]
        ops = sys.modules["keras"].ops
        if len(inputs) == 0:
            raise ValueError("no inputs to run the model on")
        for start in range(0, len(inputs), batch_size):
            outputs = {}
            with _no_gradients(self.backend):
                x = ops.convert_to_tensor(np.asarray(inputs[start:start + batch_size], dtype=np.float32))
                for index, layer in enumerate(head):
                    x = layer(x, training=False)
                    outputs[index] = x
                yield [check_finite(np.asarray(ops.convert_to_numpy(outputs[index])), "hidden representations")
                       for index in wanted]

    def _jacobian_norms(self, inputs, batch_size):
        if self.backend == "jax":
            return batched(self._jax_jacobian_norms, inputs, batch_size)
        if self.backend == "torch":
            from .pytorch import jacobian_norms_of
            import torch
            return batched(lambda batch: jacobian_norms_of(
                lambda x: run_layers(self._layers, x), torch.as_tensor(batch, dtype=torch.float32)), inputs, batch_size)
        return super()._jacobian_norms(inputs, batch_size)

    def _jax_jacobian_norms(self, batch: np.ndarray) -> np.ndarray:
        import jax
        import jax.numpy as jnp
        x = jnp.asarray(batch, dtype=jnp.float32)
        n_classes = int(run_layers(self._layers, x[:1]).shape[-1])
        squared = jnp.zeros(len(batch))
        for c in range(n_classes):
            # Examples do not interact in inference mode, so the gradient of the batch's sum of
            # class c is each example's own gradient.
            gradient = jax.grad(lambda inputs, c=c: jnp.sum(run_layers(self._layers, inputs)[:, c]))(x)
            squared = squared + jnp.sum(jnp.square(gradient.reshape(len(batch), -1)), axis=1)
        return check_finite(np.sqrt(np.asarray(squared)), "input gradients")


def _no_gradients(backend: str):
    """No autograd graph while measuring on the PyTorch backend (nothing to do elsewhere)."""
    if backend == "torch":
        import torch
        return torch.no_grad()
    return contextlib.nullcontext()
