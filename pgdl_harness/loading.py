"""Loading a PGDL model folder and a task's data the way the organisers' kit does.

Models are built from ``config.json`` (a list of ``tf.keras.layers`` classes with their keyword
arguments; whole floats become ints) as a plain ``Sequential`` built for ``[0] + input_shape``,
then ``weights_init.hdf5`` (kept as ``model.initial_weights``) and ``weights.hdf5`` are loaded.
``tf.keras`` is Keras 3 under TensorFlow 2.16+, or Keras 2 when ``TF_USE_LEGACY_KERAS=1``.
Data shards are read in shard-number order (the kit's ``glob`` order is not fixed).

A task folder is data, never code: ``config.json`` may name only the layer classes PGDL's models
are made of (``ALLOWED_LAYERS``), with plain JSON arguments. Keras would turn some arguments into
objects (a dict with a class name, a name it looks up); those are accepted only when they name a
built-in activation, initializer, regularizer or constraint. Anything else is refused before a
single Keras object is made, with the file, the layer index and the reason.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from complexity_measure.dataset import DEFAULT_MAX_EXAMPLES, dataset_to_arrays

from .errors import HarnessError
from .tasks import Task, TaskFolderError

# Keras 2 layer arguments that Keras 3 rejects but that do not change what a trained model
# computes at inference (``fused`` only picks the BatchNorm kernel). Dropped, with a warning.
_KERAS2_ONLY_ARGUMENTS = {"BatchNormalization": ("fused",)}


class ModelLoadError(HarnessError):
    """A model folder cannot be turned into a working Keras model."""


class RefusedConfigError(ModelLoadError):
    """A ``config.json`` names a layer or an argument that could load files or run code."""


# The most weights a model may ask for before it is built (refused with the count otherwise). PGDL's
# largest models hold a few million; 200 million float32 weights are 0.75 GiB, so a config written
# to exhaust memory (a Dense layer of 2e9 units asks for tens of GiB) is caught before Keras allocates.
MAX_PARAMETERS = 200_000_000

# The layer classes PGDL's tasks are made of: convolutions, dense, pooling and global pooling,
# flatten, dropout, batch and layer normalisation, activations, padding and reshaping. None of
# them loads a file, runs a given function or deserialises an arbitrary object.
ALLOWED_LAYERS = frozenset({
    "Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D", "Convolution3D",
    "DepthwiseConv2D", "SeparableConv2D", "Dense",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "MaxPool1D", "MaxPool2D", "MaxPool3D",
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D",
    "Flatten", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "BatchNormalization", "LayerNormalization",
    "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax", "ThresholdedReLU",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Reshape",
})

# Built-in names Keras may look up for an argument that it turns into an object, by the kind of
# argument (compared without case and underscores: "glorot_uniform" is "GlorotUniform").
_BUILTIN_OBJECTS = {
    "activation": {"relu", "relu6", "sigmoid", "hardsigmoid", "softmax", "logsoftmax", "softplus", "softsign",
                   "tanh", "selu", "elu", "exponential", "linear", "gelu", "swish", "silu", "hardsilu",
                   "hardswish", "leakyrelu", "mish"},
    "initializer": {"zeros", "zero", "ones", "one", "constant", "randomnormal", "randomuniform", "truncatednormal",
                    "variancescaling", "glorotuniform", "glorotnormal", "heuniform", "henormal", "lecununiform",
                    "lecunnormal", "orthogonal", "identity"},
    "regularizer": {"l1", "l2", "l1l2", "orthogonalregularizer"},
    "constraint": {"maxnorm", "nonneg", "unitnorm", "minmaxnorm"},
}
_OBJECT_MODULES = {"initializer": "keras.initializers", "regularizer": "keras.regularizers",
                   "constraint": "keras.constraints"}


def load_model(model_folder: str | Path, max_parameters: int | None = None):
    """Build and load the model in ``model_folder`` as the kit does; raises ModelLoadError.

    A config asking for more than ``max_parameters`` weights (default ``MAX_PARAMETERS``) is
    refused before anything is built.
    """
    folder = Path(model_folder)
    config_path = folder / "config.json"
    model = build_model(_read_config(config_path), config_path, max_parameters=max_parameters)
    initial_path = folder / "weights_init.hdf5"
    if initial_path.exists():
        # The kit prints and carries on when initial weights do not load; so do we, but loudly:
        # only measures that need the initial weights are affected.
        try:
            _load_weights(model, initial_path)
            model.initial_weights = model.get_weights()
        except ModelLoadError as error:
            warnings.warn(f"{error}; model.initial_weights is not set", stacklevel=2)
    _load_weights(model, folder / "weights.hdf5")
    return model


def build_model(config: dict, source: str | Path, keras=None, max_parameters: int | None = None):
    """The untrained Sequential of a ``config.json`` object, built as the kit builds it.

    ``keras`` is the Keras to build with (default ``tf.keras``; the task generator trains with
    ``tf_keras``); ``source`` names the config in errors. A config whose layers would hold more
    than ``max_parameters`` weights (default ``MAX_PARAMETERS``; counted from the config before
    anything is allocated, see ``config_parameter_count``) is refused with a ModelLoadError.
    """
    keras = keras or tf.keras
    # Every entry is checked before any layer is made: a refused entry anywhere makes nothing.
    for index, definition in enumerate(config["model_config"]):
        check_layer_definition(source, index, definition)
    layers = [_make_layer(keras, source, index, definition)
              for index, definition in enumerate(config["model_config"])]
    limit = MAX_PARAMETERS if max_parameters is None else max_parameters
    count = config_parameter_count(layers, config["input_shape"], source)
    if count > limit:
        raise ModelLoadError(f"{source}: the layers would hold {count:,} parameters ({4 * count / 2**30:.1f} GiB "
                             f"of float32), more than the limit of {limit:,}; refused before building")
    model = keras.Sequential(layers)
    try:
        model.build([0] + list(config["input_shape"]))
    except Exception as error:  # Keras raises many types here; all mean "this stack does not fit"
        raise ModelLoadError(f"{source}: the layers cannot be built for input shape "
                             f"{config['input_shape']}: {error}") from None
    return model


def config_parameter_count(layers, input_shape, source: str | Path = "config.json") -> int:
    """How many weights the unbuilt ``layers`` would hold on inputs of ``input_shape``, allocating nothing.

    Shapes are followed with each layer's ``compute_output_shape`` (which builds nothing); the
    weights of the layers that have any (convolutions, dense, normalisation, PReLU) are counted
    from those shapes and the layers' own settings. Raises ModelLoadError when a layer cannot
    take the shape it is given.
    """
    shape = (None, *input_shape)
    total = 0
    for index, layer in enumerate(layers):
        total += _layer_parameters(layer, shape)
        try:
            shape = tuple(layer.compute_output_shape(shape))
        except Exception as error:  # Keras raises many types: all mean "does not fit this shape"
            raise ModelLoadError(f"{source}: layer {index} ({type(layer).__name__}) cannot take inputs of shape "
                                 f"{shape[1:]}: {error}") from None
    return int(total)


def _layer_parameters(layer, shape) -> int:
    name = type(layer).__name__
    channels = shape[-1] if len(shape) > 1 and shape[-1] is not None else 0
    bias = int(bool(getattr(layer, "use_bias", False)))
    if name == "Dense":
        return channels * layer.units + bias * layer.units
    if name in ("DepthwiseConv2D",):
        multiplier = layer.depth_multiplier
        return math.prod(layer.kernel_size) * channels * multiplier + bias * channels * multiplier
    if name in ("SeparableConv2D",):
        multiplier = layer.depth_multiplier
        return (math.prod(layer.kernel_size) * channels * multiplier + channels * multiplier * layer.filters
                + bias * layer.filters)
    if hasattr(layer, "filters") and hasattr(layer, "kernel_size"):  # Conv1D/2D/3D
        groups = getattr(layer, "groups", 1) or 1
        return math.prod(layer.kernel_size) * channels // groups * layer.filters + bias * layer.filters
    if name == "BatchNormalization":
        return channels * (2 + int(bool(layer.center)) + int(bool(layer.scale)))
    if name == "LayerNormalization":
        return channels * (int(bool(layer.center)) + int(bool(layer.scale)))
    if name == "PReLU":
        return math.prod(d for d in shape[1:] if d is not None)
    return 0


def _read_config(path: Path) -> dict:
    if not path.is_file():
        raise ModelLoadError(f"{path}: missing (every PGDL model folder has a config.json)")
    try:
        with open(path) as handle:
            config = json.load(handle)
    except json.JSONDecodeError as error:
        raise ModelLoadError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_config"), list) \
            or not isinstance(config.get("input_shape"), list):
        raise ModelLoadError(f"{path}: expected an object with a 'model_config' list of layers and "
                             f"an 'input_shape' list")
    if not config["model_config"]:
        raise ModelLoadError(f"{path}: 'model_config' lists no layers")
    shape = [_whole_float_to_int(d) for d in config["input_shape"]]
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise ModelLoadError(f"{path}: 'input_shape' must be a list of positive integers, got "
                             f"{config['input_shape']}")
    return dict(config, input_shape=shape)


def check_layer_definition(config_path, index: int, definition) -> None:
    """Refuse a ``config.json`` layer entry that is not an allowed layer with plain JSON arguments.

    Raises RefusedConfigError naming ``config_path``, the layer ``index`` and the reason (its parent
    ModelLoadError for an entry that names no layer at all).
    """
    if not isinstance(definition, dict) or "layer_name" not in definition:
        raise ModelLoadError(f"{config_path}: layer {index} has no 'layer_name'")
    name = definition["layer_name"]
    if name not in ALLOWED_LAYERS:
        raise RefusedConfigError(
            f"{config_path}: layer {index} is {name!r}, which is not a layer PGDL models are made of; refused "
            f"(a task folder is data, never code: allowed are convolutions, dense, pooling, flatten, dropout, "
            f"normalisation, activation, padding and reshape layers)")
    for key, value in definition.items():
        if key != "layer_name":
            _check_argument(config_path, index, name, key, value)


def _check_argument(config_path, index: int, layer: str, key: str, value) -> None:
    where = f"{config_path}: layer {index} ({layer}), argument {key!r}"
    kind = _object_kind(key)
    if kind is not None and value is not None and not isinstance(value, (bool, int, float)):
        if isinstance(value, str):
            if _plain_name(value) not in _BUILTIN_OBJECTS[kind]:
                raise RefusedConfigError(f"{where}: {value!r} is not a built-in {kind}; refused")
            return
        if isinstance(value, dict) and kind != "activation":
            _check_serialised_object(where, kind, value)
            return
        raise RefusedConfigError(f"{where}: expected the name of a built-in {kind}, got {_describe(value)}; refused")
    problem = _not_plain(value)
    if problem:
        raise RefusedConfigError(f"{where}: {problem}; refused (layer arguments must be plain JSON values: "
                                 f"numbers, strings, true/false, null and lists of them)")


def _object_kind(key: str) -> str | None:
    """Which kind of object Keras makes of argument ``key`` (None: it keeps the value as it is)."""
    if key == "activation":
        return "activation"
    for kind in ("initializer", "regularizer", "constraint"):
        if key.endswith("_" + kind):
            return kind
    return None


def _check_serialised_object(where: str, kind: str, value: dict) -> None:
    """``{"class_name": ..., "config": {...}}`` (Keras 3 adds "module" and "registered_name")."""
    unexpected = set(value) - {"class_name", "config", "module", "registered_name"}
    class_name = value.get("class_name")
    if unexpected or not isinstance(class_name, str) or _plain_name(class_name) not in _BUILTIN_OBJECTS[kind]:
        raise RefusedConfigError(f"{where}: {_describe(value)} is not a built-in {kind}; refused")
    if value.get("module") not in (None, _OBJECT_MODULES[kind]) \
            or value.get("registered_name") not in (None, class_name):
        raise RefusedConfigError(f"{where}: {class_name!r} is named from module {value.get('module')!r} "
                                 f"(registered as {value.get('registered_name')!r}), not Keras's own; refused")
    config = value.get("config", {})
    if not isinstance(config, dict):
        raise RefusedConfigError(f"{where}: the 'config' of {class_name!r} must be an object; refused")
    for name, setting in config.items():
        problem = _not_plain(setting)
        if problem:
            raise RefusedConfigError(f"{where}: {class_name!r} setting {name!r}: {problem}; refused")


def _not_plain(value) -> str:
    """Why ``value`` is not a plain JSON scalar or list of them ("" when it is)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return ""
    if isinstance(value, list):
        return next((problem for problem in map(_not_plain, value) if problem), "")
    return f"{_describe(value)} would be turned into an object"


def _describe(value) -> str:
    if isinstance(value, dict):
        named = value.get("class_name")
        return f"an object naming class {named!r}" if named is not None else "an object"
    return f"{type(value).__name__} {value!r}"


def _plain_name(name: str) -> str:
    return name.replace("_", "").lower()


def _make_layer(keras, config_path, index: int, definition: dict):
    check_layer_definition(config_path, index, definition)
    name = definition["layer_name"]
    layer_class = getattr(keras.layers, str(name), None)
    if not isinstance(layer_class, type):
        raise ModelLoadError(f"{config_path}: layer {index} is {name!r}, which tf.keras.layers "
                             f"(Keras {_keras_version(keras)}) does not have")
    arguments = {key: _whole_float_to_int(value) for key, value in definition.items() if key != "layer_name"}
    for dropped in _KERAS2_ONLY_ARGUMENTS.get(name, ()):
        if dropped in arguments and _keras_version(keras).startswith("3"):
            warnings.warn(f"{config_path}: layer {index} ({name}): Keras 3 has no argument "
                          f"{dropped!r}; dropped (it does not change inference)", stacklevel=3)
            del arguments[dropped]
    try:
        return layer_class(**arguments)
    except (TypeError, ValueError) as error:
        raise ModelLoadError(f"{config_path}: layer {index} ({name}) rejects its arguments "
                             f"{sorted(arguments)}: {error}") from None


def _whole_float_to_int(value):
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _load_weights(model, path: Path) -> None:
    if not path.is_file():
        raise ModelLoadError(f"{path}: missing")
    try:
        model.load_weights(str(path))
    except Exception as error:  # h5py raises OSError, Keras ValueError: either way, unusable
        raise ModelLoadError(f"{path}: cannot be loaded into the model of config.json: {error}") from None


def _keras_version(keras) -> str:
    return getattr(keras, "__version__", None) or getattr(keras, "version", lambda: "?")()


def shard_paths(task: Task, split: str = "train") -> list[Path]:
    """The task's ``shard_*.tfrecord`` files of ``split`` ("train" or "test"), in shard-number order."""
    return _shard_files(task.dataset_folder / split)


def split_shards(folder: Path) -> list[Path]:
    """The ``shard_*.tfrecord`` files of one split folder, checked whole, in shard-number order."""
    shards = _shard_files(folder)
    if not shards:
        raise TaskFolderError(f"{folder}: no shard_*.tfrecord files")
    for shard in shards:
        _check_whole_records(shard)
    return shards


def _shard_files(folder: Path) -> list[Path]:
    """The one place shards are found: ``shard_*.tfrecord`` in ``folder``, in shard-number order.

    The kit takes them in ``glob`` order, which is not fixed; numbers, not names, order them here
    (``shard_2`` before ``shard_10``), so a split reads back in the order it was written.
    """
    return sorted(Path(folder).glob("shard_*.tfrecord"), key=_shard_number)


def _shard_number(path: Path) -> tuple:
    number = path.name[len("shard_"):-len(".tfrecord")]
    return (0, int(number), "") if number.isdigit() else (1, 0, path.name)


def _check_whole_records(path: Path) -> None:
    """Fail on a shard cut short: TensorFlow reads such a file's whole records and stops silently.

    A TFRecord file is a chain of (8-byte length, 4-byte CRC, data, 4-byte CRC) records; walking
    the lengths costs one small read per record.
    """
    size = path.stat().st_size
    position = 0
    with open(path, "rb") as handle:
        while position < size:
            header = handle.read(8)
            if len(header) < 8:
                break
            position += 8 + 4 + int.from_bytes(header, "little") + 4
            handle.seek(position)
    if position != size:
        raise TaskFolderError(f"{path}: truncated or not a TFRecord file (its records do not end "
                              f"at its last byte, {size} bytes)")


def split_dataset(folder: Path) -> tf.data.Dataset:
    """One split folder's shards as unbatched ``(inputs, label)`` pairs (float32, scalar int32): the
    split as the kit hands it to a submission."""
    return shards_dataset(split_shards(folder))


def shards_dataset(shards: list[Path]) -> tf.data.Dataset:
    """The records of ``shards``, in the order given, as unbatched ``(inputs, label)`` pairs."""
    features = {"inputs": tf.io.FixedLenFeature([], tf.string),
                "output": tf.io.FixedLenFeature([], tf.string)}

    def decode(record):
        example = tf.io.parse_single_example(record, features)
        return (tf.io.parse_tensor(example["inputs"], out_type=tf.float32),
                tf.io.parse_tensor(example["output"], out_type=tf.int32))

    return tf.data.TFRecordDataset([str(path) for path in shards]).map(decode)


def load_arrays(task: Task, split: str = "train", max_examples: int | None = DEFAULT_MAX_EXAMPLES
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, labels)`` of the split as numpy: all of it when it holds at most ``max_examples``
    (or ``max_examples`` is None), in shard order; otherwise the ``max_examples`` examples with the
    smallest hashes, in hash order (``complexity_measure.dataset.dataset_to_arrays``), whatever the
    shards' order."""
    return read_split(task.dataset_folder / split, max_examples)


def read_split(folder: Path, max_examples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One split folder as numpy ``(inputs, labels)``, cut to ``max_examples`` as ``load_arrays`` says."""
    try:
        return dataset_to_arrays(split_dataset(folder), max_examples)
    except (tf.errors.OpError, ValueError) as error:
        message = getattr(error, "message", None) or str(error)
        raise TaskFolderError(f"{folder}: the shards cannot be read as PGDL records of "
                              f"(inputs, output): {message.splitlines()[0]}") from None
