"""How the fragmentation score's forward passes compare with the obvious alternatives.

Prints seconds and ratios to the compiled, chunked implementation (timings on shared machines
vary by ~30% from run to run: read the ratios within one run). Run: `make bench`.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from complexity_measure.fragmentation import path_class_changes, path_positions  # noqa: E402


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


def main():
    model = small_convnet()
    rng = np.random.default_rng(0)
    starts, ends = rng.random((2, 128, 28, 28, 1), dtype=np.float32)
    positions = path_positions(33, extend=0.5)
    print(f"128 paths x 33 points = {128 * 33} forward passes, small convnet on 28x28x1, best of 3\n")
    ours, reference = timed(lambda: path_class_changes(model, starts, ends, positions))
    rows = [("compiled chunks of paths (ours)", ours, reference)]
    for name, function in [("eager batches of 256 points", all_points_eager_batches),
                           ("model.predict on all points", all_points_predict),
                           ("Python loop, one call per path", per_pair_eager)]:
        seconds, result = timed(lambda: function(model, starts, ends, positions))
        rows.append((name, seconds, result))
    for name, seconds, result in rows:
        agrees = "same counts" if np.array_equal(result, reference) else "COUNTS DIFFER"
        print(f"{name:<34} {seconds:7.3f} s   {seconds / ours:5.2f}x ours   {agrees}")
    for batch_size in (64, 128, 512, 1024):
        seconds, _ = timed(lambda: path_class_changes(model, starts, ends, positions, batch_size=batch_size))
        print(f"ours, batch_size={batch_size:<5}{'':15} {seconds:7.3f} s   {seconds / ours:5.2f}x ours (256)")


if __name__ == "__main__":
    main()
