"""TensorFlow imported with its C++ start-up lines kept off the terminal (the CLI and every worker).

This module imports nothing heavy, so that a fresh process can start here and import TensorFlow
quietly before anything else does (``run_after_tensorflow``).
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile


def import_tensorflow(verbose: bool = False, threads: int | None = None) -> None:
    """Import TensorFlow (and start its runtime) with its C++ start-up lines kept off stderr.

    They are written by C++ straight to file descriptor 2, and ``TF_CPP_MIN_LOG_LEVEL`` does not
    hide them all (absl's "All log messages before absl::InitializeLog()" and the oneDNN notice
    come once per TensorFlow library whatever it says), so the descriptor itself is pointed at a
    temporary file meanwhile; if the import fails, what was written is shown. ``verbose`` shows everything.
    Hiding costs nothing, unlike turning oneDNN off (30-50% slower here). Only the first import
    of a process can be quiet: call this before anything imports TensorFlow. ``threads`` sets
    TensorFlow's intra- and inter-op thread counts, which can be set only before its runtime starts.
    """
    if verbose:
        import tensorflow as tf
        _set_threads(tf, threads)
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                import tensorflow as tf
                _set_threads(tf, threads)
                tf.constant(0.0) + 1.0  # the runtime's own start-up lines come with the first op
            except BaseException:
                os.dup2(saved, 2)
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace"))
                raise
            finally:
                os.dup2(saved, 2)
                os.close(saved)
        # Each model gets its own compiled functions; TF's retracing warning about that is noise.
        tf.get_logger().setLevel("ERROR")


def _set_threads(tf, threads: int | None) -> None:
    if threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def run_after_tensorflow(verbose: bool, target: str, *args) -> None:
    """A spawned process's entry point: ``import_tensorflow(verbose)``, then ``target(*args)``.

    ``target`` is named (``"package.module:function"``), not passed, because unpickling a function
    imports its module, and a module that imports TensorFlow at its top would do so before it could
    be done quietly. Of this project, only this module is imported before TensorFlow.
    """
    import_tensorflow(verbose)
    module, _, name = target.partition(":")
    getattr(importlib.import_module(module), name)(*args)
