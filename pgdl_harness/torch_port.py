"""A PGDL Keras model as the same network in PyTorch: ``torch_port(model) -> nn.Sequential``.

PGDL's models are plain Keras ``Sequential`` stacks of the layers ``loading.ALLOWED_LAYERS``
admits. The port builds the ``nn.Sequential`` that computes the same function in inference mode,
with the Keras weights copied in: a Keras layer with an activation becomes the PyTorch layer and
its activation module, kernels are transposed to PyTorch's layouts, and the port takes its inputs
channels first (NCHW) as PyTorch convnets do. It exists so that the measures can be checked to
give the same value for the same network in both frameworks, and timed on PGDL-sized networks in
PyTorch (``benchmarks/bench_fragmentation.py``); it imports PyTorch (the ``torch`` extra).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "elu": nn.ELU, "softmax": lambda: nn.Softmax(-1),
                "gelu": lambda: nn.GELU(approximate="tanh"), "swish": nn.SiLU, "silu": nn.SiLU}


class ChannelsLastFlatten(nn.Module):
    """Keras's ``Flatten`` of an NCHW tensor: the values in Keras's (channels last) order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, *range(2, x.ndim), 1).flatten(1) if x.ndim > 2 else x


def torch_port(model) -> nn.Sequential:
    """The PyTorch twin of a built Keras ``Sequential`` classifier (float32, on the CPU, eval mode).

    Raises ValueError naming the first layer (or activation, or padding) that has no port.
    """
    members: list[nn.Module] = []
    for layer in model.layers:
        name = type(layer).__name__
        config = layer.get_config()
        weights = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
        if name == "InputLayer":
            continue
        if name == "Dense":
            kernel = weights[0]
            linear = nn.Linear(kernel.shape[0], kernel.shape[1], bias=config.get("use_bias", True))
            _copy(linear.weight, kernel.T)
            if linear.bias is not None:
                _copy(linear.bias, weights[1])
            members += [linear] + _activation(config.get("activation"), layer.name)
        elif name == "Conv2D":
            kernel = weights[0]
            if config.get("data_format", "channels_last") != "channels_last":
                raise ValueError(f"layer {layer.name}: only channels_last Conv2D layers have a port")
            height, width, channels_in, channels_out = kernel.shape
            strides = tuple(config["strides"])
            padding = _padding(config["padding"], (height, width), strides, tuple(layer.input.shape[1:3]), layer.name)
            if padding and padding[0] != padding[1] or padding and padding[2] != padding[3]:
                members.append(nn.ZeroPad2d(padding))  # TensorFlow pads the extra row and column at the end
                padding = None
            conv = nn.Conv2d(channels_in, channels_out, (height, width), stride=strides,
                             padding=(padding[2], padding[0]) if padding else 0,
                             dilation=tuple(config.get("dilation_rate", (1, 1))), bias=config.get("use_bias", True))
            _copy(conv.weight, kernel.transpose(3, 2, 0, 1))
            if conv.bias is not None:
                _copy(conv.bias, weights[1])
            members += [conv] + _activation(config.get("activation"), layer.name)
        elif name == "BatchNormalization":
            gamma, beta, mean, variance = _batchnorm_weights(config, weights)
            norm = (nn.BatchNorm2d if len(layer.input.shape) == 4 else nn.BatchNorm1d)(
                len(mean), eps=config["epsilon"])
            for target, value in ((norm.weight, gamma), (norm.bias, beta), (norm.running_mean, mean),
                                  (norm.running_var, variance)):
                _copy(target, value)
            members.append(norm)
        elif name in ("MaxPooling2D", "AveragePooling2D"):
            size = tuple(config["pool_size"])
            strides = tuple(config["strides"] or size)
            pool = nn.MaxPool2d if name == "MaxPooling2D" else nn.AvgPool2d
            if config["padding"] != "valid":
                raise ValueError(f"layer {layer.name}: only 'valid' pooling has a port")
            members.append(pool(size, stride=strides))
        elif name in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
            pool = nn.AdaptiveAvgPool2d(1) if name == "GlobalAveragePooling2D" else nn.AdaptiveMaxPool2d(1)
            members += [pool, nn.Flatten()]
        elif name == "Flatten":
            members.append(ChannelsLastFlatten())
        elif name == "Dropout":
            members.append(nn.Dropout(config["rate"]))
        elif name in ("Activation", "ReLU"):
            members += _activation(config.get("activation", "relu"), layer.name)
        else:
            raise ValueError(f"layer {layer.name}: a {name} layer has no PyTorch port")
    return nn.Sequential(*members).eval()


def _copy(target: torch.Tensor, value: np.ndarray) -> None:
    with torch.no_grad():
        target.copy_(torch.as_tensor(np.ascontiguousarray(value)))


def _activation(activation, where: str) -> list[nn.Module]:
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", None)
    if name in (None, "linear"):
        return []
    if name not in _ACTIVATIONS:
        raise ValueError(f"layer {where}: the activation {name!r} has no port")
    return [_ACTIVATIONS[name]()]


def _padding(padding: str, kernel: tuple[int, int], strides: tuple[int, int], size: tuple[int, int],
             where: str) -> tuple[int, int, int, int] | None:
    """TensorFlow's padding as (left, right, top, bottom), or None for none.

    "same" pads ``max((ceil(n / s) - 1) s + k - n, 0)`` in all along an axis, the odd one at the
    end: symmetric for a stride of 1 and an odd kernel, not always otherwise.
    """
    if padding == "valid":
        return None
    if padding != "same" or None in size:
        raise ValueError(f"layer {where}: {padding!r} padding on inputs of size {size} has no port")
    pads = []
    for n, k, s in zip(size, kernel, strides):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    return (left, right, top, bottom) if any((left, right, top, bottom)) else None


def _batchnorm_weights(config: dict, weights: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """(gamma, beta, moving mean, moving variance), filling in what ``center``/``scale=False`` leave out."""
    weights = list(weights)
    mean, variance = weights[-2], weights[-1]
    gamma = weights.pop(0) if config.get("scale", True) else np.ones_like(mean)
    beta = weights.pop(0) if config.get("center", True) else np.zeros_like(mean)
    return gamma, beta, mean, variance
