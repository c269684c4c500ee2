"""Model families of the task generator: their hyperparameter axes and how a setting becomes layers.

A family turns one point of its grid (``{axis: value}``) into a ``config.json`` layer list: plain
Keras layers (``{"layer_name": <tf.keras.layers class>, **JSON kwargs}``) that the organisers'
loader builds as a ``Sequential``. Only layers of the harness's allow-list are used (Conv2D,
Dense, MaxPooling2D, GlobalAveragePooling2D, Flatten, Dropout, BatchNormalization, ReLU here),
with no regularizers, initializers or custom objects, so every config loads in Keras 2 and 3.
The last layer outputs logits (no softmax), as PGDL's models do.

Axes the trainer reads (``batch_size``, ``weight_decay``, ``learning_rate``) are shared by all
families; the others (``width``, ``depth``, ``dropout``, ``batch_norm``, ...) shape the layers.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

from .errors import TaskGenerationError


@dataclasses.dataclass(frozen=True)
class Axis:
    """One hyperparameter a family understands: its meaning and the values it accepts."""

    meaning: str
    kind: type  # int, float or bool
    minimum: float | None = None  # inclusive
    below: float | None = None  # exclusive
    above: float | None = None  # exclusive

    def normalise(self, name: str, value: Any) -> Any:
        """Return ``value`` as this axis's type, or raise TaskGenerationError saying why not."""
        if isinstance(value, str):
            value = parse_scalar(value)
        if self.kind is bool:
            if not isinstance(value, bool):
                raise TaskGenerationError(f"hyperparameter {name!r} takes true/false, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TaskGenerationError(f"hyperparameter {name!r} takes a number, got {value!r}")
        if self.kind is int:
            if float(value) != int(value):
                raise TaskGenerationError(f"hyperparameter {name!r} takes an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if self.minimum is not None and value < self.minimum:
            raise TaskGenerationError(f"hyperparameter {name!r} must be >= {self.minimum}, got {value!r}")
        if self.above is not None and value <= self.above:
            raise TaskGenerationError(f"hyperparameter {name!r} must be > {self.above}, got {value!r}")
        if self.below is not None and value >= self.below:
            raise TaskGenerationError(f"hyperparameter {name!r} must be < {self.below}, got {value!r}")
        return value


def parse_scalar(text: str) -> Any:
    """``"true"``/``"false"`` -> bool, then int, then float; anything else stays a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(lowered)
    except ValueError:
        pass
    try:
        return float(lowered)
    except ValueError:
        return text.strip()


# Axes shared by all families; the trainer reads them itself. learning_rate is absent from every
# default grid: then the task-wide learning rate (--learning-rate) applies, as it always did.
TRAINING_AXES = {
    "batch_size": Axis("minibatch size of Adam", int, minimum=1),
    "weight_decay": Axis("coefficient of the L2 penalty on conv and dense kernels", float, minimum=0.0),
    "learning_rate": Axis("Adam learning rate", float, above=0.0, below=1.0),
}
DROPOUT = Axis("dropout rate (0 = no Dropout layer)", float, minimum=0.0, below=1.0)
BATCH_NORM = Axis("BatchNormalization after every convolution", bool)


# --------------------------------------------------------------------------- layer helpers


def _conv(filters: int, size: int, activation: str | None = "relu", strides: int = 1) -> dict:
    layer = {"layer_name": "Conv2D", "filters": filters, "kernel_size": [size, size], "padding": "same"}
    if strides != 1:
        layer["strides"] = [strides, strides]
    if activation:
        layer["activation"] = activation
    return layer


def _max_pool(padding: str | None = None) -> dict:
    layer = {"layer_name": "MaxPooling2D", "pool_size": [2, 2]}
    if padding:
        layer["padding"] = padding
    return layer


def _batch_norm() -> dict:
    return {"layer_name": "BatchNormalization", "momentum": 0.9, "epsilon": 0.001}


def _logits(num_classes: int) -> dict:
    return {"layer_name": "Dense", "units": num_classes}


def _dropout(rate: float) -> list[dict]:
    return [{"layer_name": "Dropout", "rate": rate}] if rate > 0 else []


def _normalised_relu(layer: dict, batch_norm: bool) -> list[dict]:
    # The layer without activation, then BatchNormalization (if asked) before the ReLU, as in
    # NiN and the all-convolutional nets with BatchNorm.
    return [layer, *([_batch_norm()] if batch_norm else []), {"layer_name": "ReLU"}]


# --------------------------------------------------------------------------- families


def _vgg_layers(hp: Mapping[str, Any], num_classes: int) -> list[dict]:
    layers: list[dict] = []
    for block in range(2):
        layers += [_conv(hp["width"] * 2**block, 3) for _ in range(hp["depth"])]
        layers.append(_max_pool())
    layers.append({"layer_name": "Flatten"})
    layers += _dropout(hp["dropout"])
    layers.append(_logits(num_classes))
    return layers


def _nin_block(filters: int, batch_norm: bool) -> list[dict]:
    # mlpconv: a 3x3 convolution followed by a 1x1 one ("network in network"), each
    # optionally batch-normalised before its ReLU.
    layers: list[dict] = []
    for size in (3, 1):
        layers += _normalised_relu(_conv(filters, size, activation=None), batch_norm)
    return layers


def _nin_layers(hp: Mapping[str, Any], num_classes: int) -> list[dict]:
    layers: list[dict] = []
    for block in range(hp["depth"]):
        if block > 0:
            layers.append(_max_pool())
        layers += _nin_block(hp["width"], hp["batch_norm"])
        layers += _dropout(hp["dropout"])
    # Flatten, not NiN's global average pooling: on ~1,000 small images the pooled head trained
    # so slowly without BatchNorm that most such models missed the stopping target.
    layers += [{"layer_name": "Flatten"}, _logits(num_classes)]
    return layers


def _allconv_layers(hp: Mapping[str, Any], num_classes: int) -> list[dict]:
    layers: list[dict] = []
    for stage in range(hp["depth"]):
        filters = hp["width"] * 2 ** min(stage, 1)
        layers += _normalised_relu(_conv(filters, 3, activation=None), hp["batch_norm"])
        # Springenberg et al.'s all-convolutional net downsamples with a stride-2 convolution;
        # max_pool swaps it for 2x2 max pooling. 'same' padding: a side never shrinks below 1.
        if hp["max_pool"]:
            layers.append(_max_pool(padding="same"))
        else:
            layers += _normalised_relu(_conv(filters, 3, activation=None, strides=2), hp["batch_norm"])
        layers += _dropout(hp["dropout"])
    # Class scores from a 1x1 convolution, averaged over positions: no dense layer at all.
    layers += [_conv(num_classes, 1, activation=None), {"layer_name": "GlobalAveragePooling2D"}]
    return layers


def _mlp_layers(hp: Mapping[str, Any], num_classes: int) -> list[dict]:
    layers: list[dict] = [{"layer_name": "Flatten"}]
    for _ in range(hp["depth"]):
        layers += _normalised_relu({"layer_name": "Dense", "units": hp["width"]}, hp["batch_norm"])
        layers += _dropout(hp["dropout"])
    layers.append(_logits(num_classes))
    return layers


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family: what its axes mean, its default grid and how hyperparameters become layers."""

    description: str
    axes: Mapping[str, Axis]
    default_grid: Mapping[str, tuple]
    layers: Callable[[Mapping[str, Any], int], list[dict]]
    # 2x2 max poolings with 'valid' padding a model has: its images need 2**n pixels a side.
    pooling_stages: Callable[[Mapping[str, Any]], int]


FAMILIES: dict[str, Family] = {
    "vgg": Family(
        description=(
            "VGG-like: two blocks of `depth` 3x3 ReLU convolutions ('same' padding), each block"
            " followed by 2x2 max pooling, `width` filters in the first block and 2x`width` in the"
            " second; then Flatten, Dropout (if `dropout` > 0) and a Dense logit layer."
        ),
        axes={
            "width": Axis("filters of the first block's convolutions (doubled in the second block)", int, minimum=1),
            "depth": Axis("3x3 convolutions per block", int, minimum=1),
            "dropout": DROPOUT,
            **TRAINING_AXES,
        },
        default_grid={
            "width": (8, 16),
            "depth": (1, 2),
            "dropout": (0.0, 0.5),
            "weight_decay": (0.0, 0.001),
            "batch_size": (32, 128),
        },
        layers=_vgg_layers,
        pooling_stages=lambda hp: 2,
    ),
    "nin": Family(
        description=(
            "Network-in-Network: `depth` mlpconv blocks of `width` filters (a 3x3 convolution then a 1x1"
            " convolution, 'same' padding, each followed by BatchNormalization if `batch_norm`, then ReLU;"
            " Dropout after the block if `dropout` > 0), 2x2 max pooling between blocks; then Flatten and a"
            " Dense logit layer (Flatten rather than NiN's global average pooling, which trained too slowly"
            " without BatchNorm on so few images)."
        ),
        axes={
            "batch_norm": BATCH_NORM,
            "width": Axis("filters of every convolution", int, minimum=1),
            "depth": Axis("number of mlpconv blocks", int, minimum=1),
            "dropout": DROPOUT,
            **TRAINING_AXES,
        },
        default_grid={
            "batch_norm": (False, True),
            "width": (16, 32),
            "depth": (2, 3),
            "dropout": (0.0, 0.25),
            "weight_decay": (0.0,),
            "batch_size": (32, 128),
        },
        layers=_nin_layers,
        pooling_stages=lambda hp: hp["depth"] - 1,
    ),
    "allconv": Family(
        description=(
            "All-convolutional (Springenberg et al. 2015; PGDL's tasks 4 and 5 are such nets with and"
            " without BatchNorm): `depth` stages, each a 3x3 convolution then a downsampling 3x3"
            " convolution with stride 2 (2x2 max pooling instead if `max_pool`), 'same' padding, `width`"
            " filters in the first stage and 2x`width` after; every convolution followed by"
            " BatchNormalization if `batch_norm`, then ReLU; Dropout after each stage if `dropout` > 0;"
            " then a 1x1 convolution to one channel per class and global average pooling (no dense layer)."
        ),
        axes={
            "batch_norm": BATCH_NORM,
            "width": Axis("filters of the first stage's convolutions (doubled after it)", int, minimum=1),
            "depth": Axis("number of stages (each halves the image side)", int, minimum=1),
            "dropout": DROPOUT,
            "max_pool": Axis("downsample by 2x2 max pooling instead of a stride-2 convolution", bool),
            **TRAINING_AXES,
        },
        default_grid={
            "batch_norm": (False, True),
            "width": (16, 32),
            "depth": (2, 3),
            "dropout": (0.0, 0.25),
            "max_pool": (False,),
            "weight_decay": (0.0,),
            "batch_size": (32, 128),
        },
        layers=_allconv_layers,
        pooling_stages=lambda hp: 0,  # 'same' padding: any image side works
    ),
    "mlp": Family(
        description=(
            "Multilayer perceptron: Flatten, then `depth` hidden Dense layers of `width` units, each"
            " followed by BatchNormalization if `batch_norm`, then ReLU, then Dropout if `dropout` > 0;"
            " then a Dense logit layer."
        ),
        axes={
            "batch_norm": Axis("BatchNormalization after every hidden Dense layer", bool),
            "width": Axis("units of every hidden layer", int, minimum=1),
            "depth": Axis("number of hidden layers", int, minimum=1),
            "dropout": DROPOUT,
            **TRAINING_AXES,
        },
        default_grid={
            "batch_norm": (False,),
            "width": (64, 256),
            "depth": (1, 3),
            "dropout": (0.0, 0.5),
            "weight_decay": (0.0, 0.0005),
            "batch_size": (32, 128),
        },
        layers=_mlp_layers,
        pooling_stages=lambda hp: 0,
    ),
}
