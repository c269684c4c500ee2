"""PyTorch modules as classifiers: eval mode, no gradients, on the module's own device.

``TorchClassifier`` measures any ``torch.nn.Module`` whose forward maps a batch of inputs (in the
module's own layout, e.g. NCHW images) to class scores. Its *layers* are its leaf modules in the
order a forward pass calls them (found once, with forward hooks, on one example), so a module
called twice (one ``nn.ReLU`` reused after every convolution) is two layers, as it is two
representations; an activation module called right after a ``Linear`` or convolution is one
layer with it, as Keras's ``Dense(activation="relu")`` is one layer, so that the same network has
the same layers in both (``Linear, ReLU, Linear, ReLU, Linear`` is three layers, the middle two
of them hidden). Its hidden representations are the outputs of its activation modules
(``nn.ReLU``, ``nn.GELU``, ...; ``classifier.ACTIVATION_LAYER_TYPES``), which are the outputs of
the Keras layers with a non-linear activation in the same network. Activations applied as
functions inside ``forward`` (``F.relu``) are not modules, so no hook sees them: such a module has
no hidden layers to measure, and the measures that need them say so.

The rest of the network from a hidden layer exists only for a chain of layers: a
``nn.Sequential`` whose (nested ``nn.Sequential``) members are leaf modules. Representations with
spatial axes are handed to the measures channels last, ``(n, ..., channels)``; inputs are taken as
channels first (PyTorch's convention), and ``canonical_layout`` moves their channels last for
drawing examples and pairs, so a network and its Keras port measure the same examples.

The module is put in eval mode for each measurement and restored to the mode it was in, so a
measure can be called from inside a training loop (``docs/frameworks.md``).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import numpy as np
import torch

from .classifier import (ACTIVATION_LAYER_TYPES, DEFAULT_BATCH_SIZE, Classifier, LayerInfo, ModelRefused,
                         PathPoints, batched, channels_last, check_finite, check_path_ends, not_finite)


class TorchClassifier(Classifier):
    """A ``torch.nn.Module`` as a ``Classifier`` (see the module docstring)."""

    kind = "PyTorch module"

    def __init__(self, module: torch.nn.Module, initial_weights=None):
        self.module = module
        tensors = list(module.parameters()) + list(module.buffers())
        self.device = tensors[0].device if tensors else torch.device("cpu")
        floating = [t.dtype for t in tensors if t.is_floating_point()]
        self.dtype = floating[0] if floating else torch.float32
        self._initial_weights = initial_weights
        self._chain = _chain_members(module)
        # The leaf modules in call order (known at once for a chain, after the first forward pass
        # otherwise), and the layers they make: (position of the layer's last call, LayerInfo).
        self._calls = self._chain
        self._layers = _layers_of(self._chain) if self._chain else None

    # -- structure -------------------------------------------------------------------------------

    @property
    def is_chain(self) -> bool:
        return self._chain is not None

    def check_inputs(self, inputs):
        """Runs the module on one example: a clear ValueError when it cannot take the inputs, and
        (for a module that is not a chain) its layers recorded in call order."""
        inputs = np.asarray(inputs)
        if inputs.ndim < 2 or len(inputs) == 0:
            raise ValueError(f"expected a batch of inputs of shape (n, ...), got shape {inputs.shape}")
        calls: list = []

        def record(member, _inputs, _output):
            calls.append(member)

        handles = [member.register_forward_hook(record) for member in _leaves(self.module)]
        try:
            with self._measuring():
                output = self.module(self._tensor(inputs[:1]))
        except Exception as error:  # the module's own complaint, in one line
            raise ValueError(f"the {self.kind} cannot run on inputs of shape {tuple(inputs.shape[1:])} per "
                             f"example: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                             ) from None
        finally:
            for handle in handles:
                handle.remove()
        if not isinstance(output, torch.Tensor) or output.ndim != 2:
            raise ValueError(f"the {self.kind} must return a tensor of class scores of shape (n, n_classes), "
                             f"got {type(output).__name__} of shape {tuple(getattr(output, 'shape', ()))}")
        if self._layers is None:
            self._calls, self._layers = calls, _layers_of(calls)
        self.finite_weights()

    def layers(self) -> list[LayerInfo]:
        if self._layers is None:
            raise RuntimeError("the layers of a module that is not a chain are known after check_inputs(inputs)")
        if not self._layers:
            raise ModelRefused(f"this {self.kind} has no leaf modules to look inside")
        return [info for _, info in self._layers]

    def _end(self, layer: int) -> int:
        """The call position of the last leaf module of ``layer`` (an index, possibly negative)."""
        return self._layers[self.resolve_layer(layer)][0]

    def canonical_layout(self, inputs):
        return channels_last(inputs)

    # -- forward passes ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _eval_mode(self):
        """Eval mode for the duration, every submodule's mode restored afterwards."""
        modes = [(member, member.training) for member in self.module.modules()]
        self.module.eval()
        try:
            yield
        finally:
            for member, training in modes:
                member.training = training

    @contextlib.contextmanager
    def _measuring(self):
        """Eval mode and no autograd for the duration, the module's mode restored afterwards."""
        with self._eval_mode(), torch.inference_mode():
            yield

    def _tensor(self, values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values), dtype=self.dtype, device=self.device)

    @staticmethod
    def _numpy(values: torch.Tensor) -> np.ndarray:
        return values.detach().to("cpu", torch.float32).numpy()

    def _logits(self, inputs, batch_size):
        return check_finite(batched(self.native_logits, inputs, batch_size))

    def native_logits(self, inputs):
        with self._measuring():
            return self._numpy(self.module(self._tensor(inputs)))

    def _run_chain(self, members: Sequence[torch.nn.Module], x: torch.Tensor) -> torch.Tensor:
        for member in members:
            x = member(x)
        return x

    def native_representations(self, inputs, layer):
        self.require_chain("a representation at a hidden layer, cut from the network,")
        with self._measuring():
            return self._numpy(self._run_chain(self._chain[:self._end(layer) + 1], self._tensor(inputs)))

    def tail_outputs(self, representation, layer):
        self.require_chain("the rest of the network from a hidden layer")
        with self._measuring():
            return self._numpy(self._run_chain(self._chain[self._end(layer) + 1:], self._tensor(representation)))

    def _layer_outputs(self, inputs, layers, batch_size) -> Iterator[list[np.ndarray]]:
        if len(inputs) == 0:
            raise ValueError("no inputs to run the model on")
        ends = [self._end(layer) for layer in self.wanted_layers(layers)]
        for start in range(0, len(inputs), batch_size):
            batch = self._tensor(inputs[start:start + batch_size])
            with self._measuring():
                outputs = self._outputs_at(batch, set(ends))
            yield [check_finite(channels_last(self._numpy(outputs[end])), "hidden representations") for end in ends]

    def _outputs_at(self, batch: torch.Tensor, wanted: set[int]) -> dict[int, torch.Tensor]:
        """The outputs of the leaf modules at the call positions in ``wanted``, from one forward pass."""
        if self._chain is not None:  # a chain stops after the last layer wanted
            outputs, x = {}, batch
            for index, member in enumerate(self._chain[:max(wanted) + 1]):
                x = member(x)
                if index in wanted:
                    outputs[index] = x
            return outputs
        outputs, position = {}, [0]
        members = {id(member) for member in self._calls}

        def keep(member, _inputs, output):
            if position[0] in wanted:
                outputs[position[0]] = output
            position[0] += 1

        handles = [member.register_forward_hook(keep) for member in _leaves(self.module) if id(member) in members]
        try:
            self.module(batch)
        finally:
            for handle in handles:
                handle.remove()
        return outputs

    def _path_points(self, starts, ends, layer, batch_size) -> "TorchPathPoints":
        if layer is not None:
            self.require_chain("the rest of the network from a hidden layer")
        return TorchPathPoints(self, starts, ends, None if layer is None else self._end(layer), batch_size)

    # -- weights and gradients -------------------------------------------------------------------

    def weights(self) -> list[np.ndarray]:
        """Every floating-point tensor of the ``state_dict`` (parameters and buffers such as
        BatchNorm's running statistics; not its integer batch counter), in its order."""
        return [self._numpy_exact(tensor) for tensor in self.module.state_dict().values() if tensor.is_floating_point()]

    def _set_weights(self, weights):
        tensors = [tensor for tensor in self.module.state_dict().values() if tensor.is_floating_point()]
        with torch.no_grad():  # the state_dict's tensors share storage with the module's
            for tensor, array in zip(tensors, weights):
                tensor.copy_(torch.as_tensor(array))

    def initial_weights(self) -> list[np.ndarray]:
        initial = self._initial_weights
        if initial is None:
            initial = getattr(self.module, "initial_weights", None)
        if initial is None:
            raise ModelRefused("the PyTorch module's initial weights were never recorded: pass "
                               "as_classifier(module, initial_weights=state_dict_at_initialisation)")
        if isinstance(initial, dict):
            current = self.module.state_dict()
            missing = sorted(set(name for name, tensor in current.items() if tensor.is_floating_point())
                             - set(initial))
            if missing:
                raise ValueError(f"the initial state_dict has no {', '.join(missing[:3])}")
            return [self._numpy_exact(torch.as_tensor(initial[name])) for name, tensor in current.items()
                    if tensor.is_floating_point()]
        return [np.asarray(weights) for weights in initial]

    @staticmethod
    def _numpy_exact(tensor: torch.Tensor) -> np.ndarray:
        """A copy, never a view of the module's storage: a snapshot, as Keras's get_weights gives."""
        return tensor.detach().to("cpu", copy=True).numpy()

    def _jacobian_norms(self, inputs, batch_size):
        with self._eval_mode():  # gradients are needed here: eval mode without inference mode
            return check_finite(batched(lambda batch: jacobian_norms_of(self.module, self._tensor(batch)),
                                        inputs, batch_size), "input gradients")


def jacobian_norms_of(function, x: torch.Tensor) -> np.ndarray:
    """Frobenius norms of d function(x) / d x per example: one gradient per output class.

    Summing a class's output over the batch gives each example's own gradient, as examples do not
    interact in inference mode (not even through BatchNorm).
    """
    with torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        outputs = function(x)
        squared = torch.zeros(len(x), dtype=torch.float64, device=x.device)
        for c in range(outputs.shape[-1]):
            gradient, = torch.autograd.grad(outputs[:, c].sum(), x, retain_graph=c < outputs.shape[-1] - 1)
            squared += gradient.reshape(len(x), -1).double().square().sum(dim=1)
    return squared.sqrt().cpu().numpy()


class TorchPathPoints(PathPoints):
    """``PathPoints`` on the module's device: the path ends are kept there as tensors and every
    batch of points is interpolated, classified and reduced to (class, margin) there."""

    def __init__(self, model: TorchClassifier, starts, ends, end: int | None, batch_size=DEFAULT_BATCH_SIZE):
        """``end``: the chain position of the last leaf module of the layer the paths are
        interpolated at (None: the input space)."""
        starts, ends = check_path_ends(starts, ends, batch_size)
        self.n_paths = len(starts)
        self.batch_size = batch_size
        self._model = model
        both = model._tensor(np.concatenate([starts, ends]))
        with model._measuring():
            if end is not None:
                both = torch.cat([model._run_chain(model._chain[:end + 1], both[i:i + batch_size])
                                  for i in range(0, len(both), batch_size)])
                if not bool(torch.isfinite(both).all()):
                    raise not_finite("hidden representations")
        self.forward_passes = 2 * self.n_paths if end is not None else 0
        self._first, self._second = both[:self.n_paths], both[self.n_paths:]
        self._tail = model._chain[end + 1:] if end is not None else None

    def lengths(self) -> np.ndarray:
        difference = (self._second - self._first).reshape(self.n_paths, -1).double()
        return difference.square().sum(dim=1).sqrt().cpu().numpy()

    def _classify(self, rows, t):
        model = self._model
        rows = torch.as_tensor(rows, dtype=torch.long, device=model.device)
        with model._measuring():
            a, b = self._first[rows], self._second[rows]
            t = torch.as_tensor(t, dtype=a.dtype, device=model.device).reshape((-1,) + (1,) * (a.ndim - 1))
            points = a + t * (b - a)
            outputs = model.module(points) if self._tail is None else model._run_chain(self._tail, points)
            if not bool(torch.isfinite(outputs).all()):
                raise not_finite()
            if outputs.shape[1] < 2:
                return outputs.argmax(dim=1).cpu().numpy(), np.zeros(len(outputs), np.float32)
            top = torch.topk(outputs, 2, dim=1).values
            return outputs.argmax(dim=1).cpu().numpy(), (top[:, 0] - top[:, 1]).float().cpu().numpy()


def _chain_members(module: torch.nn.Module) -> list[torch.nn.Module] | None:
    """The leaf modules of a ``nn.Sequential`` in order (nested ``nn.Sequential``s flattened), or
    None when ``module`` is not such a chain."""
    if not isinstance(module, torch.nn.Sequential):
        return None
    members = []
    for child in module:
        if isinstance(child, torch.nn.Sequential):
            inner = _chain_members(child)
            if inner is None:
                return None
            members.extend(inner)
        elif any(True for _ in child.children()):
            return None  # a block with a forward of its own: not known to be a chain
        else:
            members.append(child)
    return members or None


def _leaves(module: torch.nn.Module) -> list[torch.nn.Module]:
    return [member for member in module.modules() if not any(True for _ in member.children())]


def _layers_of(calls: list[torch.nn.Module]) -> list[tuple[int, LayerInfo]]:
    """The layers made by leaf modules called in this order: ``(position of its last call, LayerInfo)``.

    An activation module called right after a ``Linear`` or a convolution joins its layer (Keras's
    ``Dense``/``Conv2D`` with an ``activation``), and so does a ``Flatten`` right after an adaptive
    pooling (Keras's ``GlobalAveragePooling2D`` is both); every other call is a layer of its own.
    """
    layers, position = [], 0
    while position < len(calls):
        names = [type(calls[position]).__name__]
        last = position
        following = type(calls[last + 1]).__name__ if last + 1 < len(calls) else None
        if (names[0].startswith(_TAKES_ACTIVATION) and following in ACTIVATION_LAYER_TYPES) or \
                (names[0].startswith("Adaptive") and following == "Flatten"):
            last += 1
            names.append(following)
        layers.append((last, LayerInfo("+".join(names), names[-1] in ACTIVATION_LAYER_TYPES,
                                       hasattr(calls[position], "stride"))))
        position = last + 1
    return layers


# Leaf modules that Keras would give an activation of their own (Dense, Conv*).
_TAKES_ACTIVATION = ("Linear", "LazyLinear", "Conv", "LazyConv")
