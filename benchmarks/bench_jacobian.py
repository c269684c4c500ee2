"""Benchmark: where jacobian_norm's time goes, and three exact ways to compute it.

jacobian_norm needs d logits / d inputs for every class at 512 training examples. Three exact
implementations, on the first model of each bundled image task (and of any task given):

- ``per_class`` (``forward.jacobian_norm_function``, what ``jacobian_norm`` runs): one forward pass, then one
  gradient per class from a persistent tape; the compiled graph holds C backward passes.
- ``batch_jacobian``: ``GradientTape.batch_jacobian`` (vectorised with pfor).
- ``replicated``: each example repeated C times, copy c's gradient of logit c in *one* backward
  pass (examples do not interact in inference mode, so this is exact); the graph holds one
  forward and one backward pass, but the forward pass runs on C times the examples.

For each it prints the first call (tracing and graph optimisation, plus one batch) and the
compute for 512 examples once traced, both as seconds and as multiples of a compiled forward pass
over the same examples, and checks the three give the same norms. Timings on shared machines
vary by 30%: read the ratios within one run. Usage:
python benchmarks/bench_jacobian.py [DATA_ROOT TASK ...]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from complexity_measure.forward import jacobian_norm_function, run_layers  # noqa: E402
from complexity_measure.keras_models import model_layers  # noqa: E402
from pgdl_harness.loading import load_arrays, load_model  # noqa: E402
from pgdl_harness.tasks import find_tasks  # noqa: E402

EXAMPLES = 512


def per_class(layers, classes):
    return jacobian_norm_function(layers)


def batch_jacobian(layers, classes):
    @tf.function(reduce_retracing=True, autograph=False)
    def norms(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = run_layers(layers, x)
        jacobian = tape.batch_jacobian(out, x)
        return tf.sqrt(tf.reduce_sum(tf.square(tf.reshape(jacobian, [tf.shape(x)[0], -1])), axis=1))
    return norms


def replicated(layers, classes):
    @tf.function(reduce_retracing=True, autograph=False)
    def norms(x):
        n = tf.shape(x)[0]
        with tf.GradientTape() as tape:
            copies = tf.repeat(x, classes, axis=0)
            tape.watch(copies)
            out = run_layers(layers, copies)
            chosen = tf.reduce_sum(out * tf.one_hot(tf.tile(tf.range(classes), [n]), classes))
        gradient = tape.gradient(chosen, copies)
        return tf.sqrt(tf.reduce_sum(tf.square(tf.reshape(gradient, [n, classes, -1])), axis=[1, 2]))
    return norms


def timed(function, x, batch_size):
    start = time.perf_counter()
    function(tf.constant(x[:batch_size]))
    first = time.perf_counter() - start
    start = time.perf_counter()
    values = np.concatenate([function(tf.constant(x[i:i + batch_size])).numpy()
                             for i in range(0, len(x), batch_size)])
    return first, time.perf_counter() - start, values


def main() -> None:
    arguments = sys.argv[1:]
    root = Path(arguments[0]) if arguments else REPO / "data"
    names = arguments[1:] or ["mnist_vgg", "mnist_nin_bn"]
    for task in find_tasks(root, names):
        inputs, _ = load_arrays(task)
        x = np.resize(inputs, (EXAMPLES,) + inputs.shape[1:]).astype(np.float32)
        model = load_model(task.model_folder(task.model_ids[0]))
        layers = model_layers(model)
        forward = tf.function(lambda batch: run_layers(layers, batch), reduce_retracing=True, autograph=False)
        classes = int(forward(tf.constant(x[:256])).shape[-1])
        start = time.perf_counter()
        for i in range(0, EXAMPLES, 256):
            forward(tf.constant(x[i:i + 256]))
        forward_seconds = time.perf_counter() - start
        print(f"{task.name} ({classes} classes): "
              f"compiled forward of {EXAMPLES} examples {forward_seconds:.3f} s")
        reference = None
        for name, make, batch_size in (("per_class", per_class, 64), ("per_class", per_class, 256),
                                       ("batch_jacobian", batch_jacobian, 64), ("replicated", replicated, 64),
                                       ("replicated", replicated, 256)):
            first, compute, values = timed(make(layers, classes), x, batch_size)
            reference = values if reference is None else reference
            same = np.allclose(values, reference, rtol=1e-4)
            print(f"  {name:15s} batch {batch_size:3d}: first call {first:5.2f} s, {EXAMPLES} examples "
                  f"{compute:5.2f} s = {compute / forward_seconds:5.1f}x forward; total {first + compute:5.2f} s"
                  f"{'' if same else '  (DIFFERENT NORMS)'}")


if __name__ == "__main__":
    main()
