"""Loading a PGDL model folder and a task's data the way the organisers' kit does.

Models are built from ``config.json`` (a list of ``tf.keras.layers`` classes with their keyword
arguments; whole floats become ints) as a plain ``Sequential`` built for ``[0] + input_shape``,
then ``weights_init.hdf5`` (kept as ``model.initial_weights``) and ``weights.hdf5`` are loaded.
``tf.keras`` is Keras 3 under TensorFlow 2.16+, or Keras 2 when ``TF_USE_LEGACY_KERAS=1``.
Data shards are read in sorted order (the kit's ``glob`` order is not fixed).
"""

from __future__ import annotations

import json
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


def load_model(model_folder: str | Path):
    """Build and load the model in ``model_folder`` as the kit does; raises ModelLoadError."""
    folder = Path(model_folder)
    config_path = folder / "config.json"
    model = build_model(_read_config(config_path), config_path)
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


def build_model(config: dict, source: str | Path, keras=None):
    """The untrained Sequential of a ``config.json`` object, built as the kit builds it.

    ``keras`` is the Keras to build with (default ``tf.keras``; the task generator trains with
    ``tf_keras``); ``source`` names the config in errors.
    """
    keras = keras or tf.keras
    layers = [_make_layer(keras, source, index, definition)
              for index, definition in enumerate(config["model_config"])]
    model = keras.Sequential(layers)
    try:
        model.build([0] + list(config["input_shape"]))
    except Exception as error:  # Keras raises many types here; all mean "this stack does not fit"
        raise ModelLoadError(f"{source}: the layers cannot be built for input shape "
                             f"{config['input_shape']}: {error}") from None
    return model


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
    return config


def _make_layer(keras, config_path, index: int, definition: dict):
    if not isinstance(definition, dict) or "layer_name" not in definition:
        raise ModelLoadError(f"{config_path}: layer {index} has no 'layer_name'")
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
    return split_shards(task.dataset_folder / split)


def split_shards(folder: Path) -> list[Path]:
    """The ``shard_*.tfrecord`` files of one split folder, checked whole, in shard-number order.

    The kit takes them in ``glob`` order, which is not fixed; numbers, not names, order them here
    (``shard_2`` before ``shard_10``), so a split reads back in the order it was written.
    """
    shards = sorted(Path(folder).glob("shard_*.tfrecord"), key=_shard_number)
    if not shards:
        raise TaskFolderError(f"{folder}: no shard_*.tfrecord files")
    for shard in shards:
        _check_whole_records(shard)
    return shards


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


def load_dataset(task: Task, split: str = "train") -> tf.data.Dataset:
    """The split as the kit hands it to a submission: unbatched ``(inputs, label)`` pairs."""
    return split_dataset(task.dataset_folder / split)


def split_dataset(folder: Path) -> tf.data.Dataset:
    """One split folder's shards as unbatched ``(inputs, label)`` pairs (float32, scalar int32)."""
    features = {"inputs": tf.io.FixedLenFeature([], tf.string),
                "output": tf.io.FixedLenFeature([], tf.string)}

    def decode(record):
        example = tf.io.parse_single_example(record, features)
        return (tf.io.parse_tensor(example["inputs"], out_type=tf.float32),
                tf.io.parse_tensor(example["output"], out_type=tf.int32))

    return tf.data.TFRecordDataset([str(path) for path in split_shards(folder)]).map(decode)


def load_arrays(task: Task, split: str = "train", max_examples: int | None = DEFAULT_MAX_EXAMPLES
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, labels)`` of the split as numpy: the first ``max_examples`` in shard order."""
    return read_split(task.dataset_folder / split, max_examples)


def read_split(folder: Path, max_examples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One split folder as numpy ``(inputs, labels)``: the first ``max_examples`` (None: all)."""
    try:
        return dataset_to_arrays(split_dataset(folder), max_examples)
    except (tf.errors.OpError, ValueError) as error:
        message = getattr(error, "message", None) or str(error)
        raise TaskFolderError(f"{folder}: the shards cannot be read as PGDL records of "
                              f"(inputs, output): {message.splitlines()[0]}") from None
