"""Any PGDL submission folder as a measure: ``complexity(model, dataset)`` called as the kit calls it."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from .errors import HarnessError
from .provenance import folder_fingerprint
from .runner import MeasureRun


class SubmissionError(HarnessError):
    """A submission folder has no usable ``complexity.py``."""


def load_submission(folder: str | Path) -> MeasureRun:
    """A measure ``(model, inputs, labels) -> value`` running the folder's ``complexity``.

    The folder goes on ``sys.path`` as the kit puts it there, so the submission's own imports of
    its helper modules work; ``program_dir`` is passed when the function takes it (later kit).
    Its values are keyed by the folder's name and a fingerprint of every file in it.
    """
    folder = Path(folder).resolve()
    source = folder / "complexity.py"
    if not source.is_file():
        raise SubmissionError(f"{source}: missing (a PGDL submission folder holds complexity.py)")
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    spec = importlib.util.spec_from_file_location(f"pgdl_submission_{abs(hash(folder))}", source)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise SubmissionError(f"{source}: importing it failed: {type(error).__name__}: {error}") from error
    function = getattr(module, "complexity", None)
    if not callable(function):
        raise SubmissionError(f"{source}: defines no function complexity(model, dataset)")
    takes_program_dir = "program_dir" in inspect.signature(function).parameters

    def measure(model, inputs, labels):
        # The same element types as the kit's reader: float32 inputs, scalar int32 labels.
        dataset = tf.data.Dataset.from_tensor_slices((inputs, np.asarray(labels, dtype=np.int32)))
        if takes_program_dir:
            return function(model, dataset, program_dir=str(folder))
        return function(model, dataset)

    return MeasureRun(f"submission-{folder.name}", measure,
                      {"submission": folder.name, "code": folder_fingerprint(folder)})
