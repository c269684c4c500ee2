"""TensorFlow imported with its C++ start-up lines kept off the terminal (the CLI and every worker)."""

from __future__ import annotations

import os
import sys
import tempfile


def import_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow (and start its runtime) with its C++ start-up lines kept off stderr.

    They are written by C++ straight to file descriptor 2, so the descriptor itself is pointed at
    a temporary file meanwhile; if the import fails, what was written is shown. ``verbose`` shows
    everything. Hiding costs nothing, unlike turning oneDNN off (30-50% slower here).
    """
    if verbose:
        import tensorflow as tf
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                import tensorflow as tf
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

