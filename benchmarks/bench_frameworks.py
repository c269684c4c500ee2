"""How fast the measures run in each framework, against that framework's own forward pass.

For PGDL-sized networks (``bench_fragmentation``'s task1-like VGG and task2-like NiN, random
weights, 32x32x3) the same weights run as a Keras model on TensorFlow, as their PyTorch port
(``pgdl_harness.torch_port``), and as a Keras 3 model on the JAX backend (in a subprocess, since
the backend is chosen before Keras is imported). Per framework it prints the framework's own
batched forward throughput (images/s at the measures' batch of 256, the median call: a compiled
``tf.function``, ``module(batch)`` under ``torch.inference_mode``, Keras's jitted ``predict_on_batch``), the
default fragmentation's forward passes per second as the measure reports them, their ratio, and
the seconds of the default measure and of ``davies_bouldin`` (each the best of two calls). Values
agree between frameworks (printed beside), so the rows time the same work.

Timings on shared machines vary by ~30% from run to run: read the ratios within one run.
Run: `make bench` (this is its last part), or `python benchmarks/bench_frameworks.py [--device cuda]`.

On a machine with PyTorch but without TensorFlow (a GPU machine, say): ``--export DIR`` here writes
the PyTorch ports (``torch.save``) and the Keras values; ``--torch-from DIR --device cuda`` there
prints the PyTorch rows on that device and on its CPU, with the Keras values beside.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from complexity_measure.classifier import DEFAULT_BATCH_SIZE  # noqa: E402
from complexity_measure.fragmentation import fragmentation_with_cost  # noqa: E402
from complexity_measure.registry import DEFAULT_MEASURE, get_measure  # noqa: E402

SECONDS = 3.0


def forward_throughput(call, batch) -> float:
    """Images per second of ``call(batch)`` (it must return a NumPy-convertible result): the median
    over ~3 s of calls, after one warm-up call. The median, not the best: a measure runs many
    batches in a row, and PyTorch's batch times on a shared CPU vary more than a compiled graph's,
    so the best call would overstate the throughput a run of batches gets."""
    call(batch)
    times, spent = [], 0.0
    while spent < SECONDS:
        start = time.perf_counter()
        call(batch)
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return len(batch) / float(np.median(times))


def timed(function, repeats=2):
    """(best seconds of ``repeats`` calls, the value): the first call of a model pays one-time costs
    (TensorFlow's tracing, oneDNN's kernels for new batch shapes in PyTorch) that a task's later
    models of the same architecture mostly do not."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def measure_row(model, inputs, labels, images_per_second) -> dict:
    """Fragmentation's passes/s and ratio (dense on 256 pairs: path evaluation alone; adaptive at
    the defaults), and the default measure's and the index's seconds."""
    dense_seconds, dense = timed(lambda: fragmentation_with_cost(model, inputs, labels, counting="dense", n_pairs=256))
    seconds, result = timed(lambda: fragmentation_with_cost(model, inputs, labels))
    default_seconds, default_value = timed(lambda: get_measure(DEFAULT_MEASURE)(model, inputs, labels))
    index_seconds, index_value = timed(lambda: get_measure("davies_bouldin")(model, inputs, labels))
    return {"forward": images_per_second, "dense_ratio": dense.forward_passes / dense_seconds / images_per_second,
            "passes": result.forward_passes / seconds,
            "ratio": result.forward_passes / seconds / images_per_second, "fragmentation": result.value,
            "default_seconds": default_seconds, "default": default_value,
            "davies_bouldin_seconds": index_seconds, "davies_bouldin": index_value}


ARCHITECTURES = ("task1-like VGG", "task2-like NiN")


def architectures():
    """The builders of ``ARCHITECTURES`` (importing them imports TensorFlow)."""
    from benchmarks.bench_fragmentation import task1_like_vgg, task2_like_nin
    return dict(zip(ARCHITECTURES, (task1_like_vgg, task2_like_nin)))


def data(n=2000):
    rng = np.random.default_rng(0)
    return rng.random((n, 32, 32, 3), dtype=np.float32), rng.integers(0, 10, size=n)


def tensorflow_and_torch_rows(device: str) -> dict:
    import tensorflow as tf
    from complexity_measure.forward import compiled
    from complexity_measure.keras_models import model_layers
    from pgdl_harness.torch_port import torch_port

    inputs, labels = data()
    rows = {}
    for name, build in architectures().items():
        model = build()
        call = compiled(model_layers(model))
        keras_forward = forward_throughput(lambda batch: call(batch).numpy(), tf.constant(inputs[:DEFAULT_BATCH_SIZE]))
        rows[(name, "Keras on TensorFlow")] = measure_row(model, inputs, labels, keras_forward)
        module = torch_port(model).to(device)
        rows[(name, f"PyTorch ({device})")] = torch_row(module, inputs, labels, device)
        with tempfile.TemporaryDirectory() as folder:
            weights = Path(folder) / "weights.npz"
            np.savez(weights, *model.get_weights())
            rows[(name, "Keras 3 on JAX")] = keras_jax_row(name, weights)
    return rows


def torch_row(module, inputs, labels, device: str) -> dict:
    """``measure_row`` for a PyTorch module on ``device``, on the channels-first copy of ``inputs``."""
    import torch

    torch_inputs = np.ascontiguousarray(np.moveaxis(inputs, -1, 1))

    def torch_call(batch):
        with torch.inference_mode():
            return module(batch).cpu().numpy()

    batch = torch.as_tensor(torch_inputs[:DEFAULT_BATCH_SIZE], device=device)
    return measure_row(module, torch_inputs, labels, forward_throughput(torch_call, batch))


def slug(name: str) -> str:
    return name.replace(" ", "_").replace("-", "_")


def export(folder: Path) -> None:
    """The PyTorch ports of the architectures (whole modules, ``torch.save``) and the Keras values."""
    import torch
    from pgdl_harness.torch_port import torch_port

    folder.mkdir(parents=True, exist_ok=True)
    inputs, labels = data()
    reference = {}
    for name, build in architectures().items():
        model = build()
        torch.save(torch_port(model), folder / f"{slug(name)}.pt")
        reference[name] = {measure: get_measure(measure)(model, inputs, labels)
                           for measure in ("fragmentation", DEFAULT_MEASURE, "davies_bouldin")}
    (folder / "reference.json").write_text(json.dumps(reference, indent=1))


def torch_rows(folder: Path, devices) -> dict:
    """The PyTorch rows of the exported ports on each device, and the Keras values as a row of their own."""
    import torch

    inputs, labels = data()
    reference = json.loads((folder / "reference.json").read_text())
    rows = {}
    for name in ARCHITECTURES:
        for device in devices:
            module = torch.load(folder / f"{slug(name)}.pt", weights_only=False).to(device)
            label = f"PyTorch ({torch.cuda.get_device_name(0) if device == 'cuda' else device})"
            rows[(name, label)] = torch_row(module, inputs, labels, device)
        print(f"{name}, Keras on TensorFlow (exported): fragmentation {reference[name]['fragmentation']:.4f}, "
              f"default {reference[name][DEFAULT_MEASURE]:.4f}, davies_bouldin {reference[name]['davies_bouldin']:.4f}")
    return rows


def keras_jax_row(name: str, weights: Path) -> dict:
    """The same row for Keras 3 on JAX, from a subprocess (the backend is fixed when Keras is imported)."""
    done = subprocess.run([sys.executable, __file__, "--jax-row", name, str(weights)], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": "jax"}, cwd=REPO)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def jax_row(name: str, weights: Path) -> None:
    import keras
    assert keras.backend.backend() == "jax"
    import benchmarks.bench_fragmentation as bench
    inputs, labels = data()
    model = architectures()[name](keras=keras)
    saved = np.load(weights)
    model.set_weights([saved[f"arr_{i}"] for i in range(len(saved.files))])
    forward = forward_throughput(lambda batch: np.asarray(model.predict_on_batch(batch)), inputs[:DEFAULT_BATCH_SIZE])
    print(json.dumps(measure_row(model, inputs, labels, forward)))
    del bench


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="PyTorch device of the port (cpu, cuda)")
    parser.add_argument("--jax-row", nargs=2, metavar=("ARCHITECTURE", "WEIGHTS"), help=argparse.SUPPRESS)
    parser.add_argument("--export", type=Path, metavar="DIR", help="write the PyTorch ports and Keras values, and stop")
    parser.add_argument("--torch-from", type=Path, metavar="DIR",
                        help="PyTorch rows only, from --export's folder, on --device and on the CPU (no TensorFlow)")
    arguments = parser.parse_args()
    if arguments.jax_row:
        return jax_row(arguments.jax_row[0], Path(arguments.jax_row[1]))
    if arguments.export:
        return export(arguments.export)
    if arguments.torch_from:
        rows = torch_rows(arguments.torch_from, list(dict.fromkeys([arguments.device, "cpu"])))
    else:
        rows = tensorflow_and_torch_rows(arguments.device)
    print_rows(rows)


def print_rows(rows: dict) -> None:
    print("\nframeworks: fragmentation against each framework's own batched forward pass, random weights, "
          "2,000 examples at 32x32x3 (dense: 256 paths x 17 points; adaptive: the defaults)")
    print(f"{'network':<16} {'framework':<22} {'forward img/s':>13} {'dense':>6} {'adaptive eval/s':>15} "
          f"{'ratio':>6} {'fragm.':>7} {'default s':>9} {'default':>8} {'DB s':>6} {'DB':>7}")
    for (name, framework), row in rows.items():
        if "error" in row:
            print(f"{name:<16} {framework:<22} cannot run: {row['error'][:80]}")
            continue
        print(f"{name:<16} {framework:<22} {row['forward']:13,.0f} {row['dense_ratio']:6.2f} {row['passes']:15,.0f} "
              f"{row['ratio']:6.2f} "
              f"{row['fragmentation']:7.4f} {row['default_seconds']:9.2f} {row['default']:8.4f} "
              f"{row['davies_bouldin_seconds']:6.2f} {row['davies_bouldin']:7.4f}")
    for kind in ("dense_ratio", "ratio"):
        ratios = {framework: min(row[kind] for (_, f), row in rows.items() if f == framework and kind in row)
                  for framework in dict.fromkeys(f for _, f in rows)
                  if any(kind in row for (_, f), row in rows.items() if f == framework)}
        print(f"lowest measure/forward throughput ratio, {'dense' if kind == 'dense_ratio' else 'adaptive'}: "
              + ", ".join(f"{framework} {ratio:.2f}" for framework, ratio in ratios.items()))


if __name__ == "__main__":
    main()
