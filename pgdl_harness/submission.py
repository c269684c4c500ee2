"""Any PGDL submission folder as a measure: ``complexity(model, dataset)`` called as the kit calls it."""

from __future__ import annotations

import functools
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
    Its values are keyed by the folder's name and a fingerprint of every file in it. The measure
    pickles as its folder (a worker process imports the submission afresh).
    """
    folder = Path(folder).resolve()
    measure = SubmissionMeasure(folder)
    measure.function  # import it now, so that a broken submission stops the command at once
    return MeasureRun(f"submission-{folder.name}", measure,
                      {"submission": folder.name, "code": folder_fingerprint(folder)})


class SubmissionMeasure:
    """The ``complexity`` of a submission folder, called as the kit calls it (imported on first use)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._function = None

    def __getstate__(self):
        return {"folder": self.folder}

    def __setstate__(self, state):
        self.folder, self._function = state["folder"], None

    @property
    def function(self):
        """The submission's ``complexity``, with ``program_dir`` bound when it takes it (later kit)."""
        if self._function is None:
            function = _import_complexity(self.folder)
            if "program_dir" in inspect.signature(function).parameters:
                function = functools.partial(function, program_dir=str(self.folder))
            self._function = function
        return self._function

    def __call__(self, model, inputs, labels):
        # The same element types as the kit's reader: float32 inputs, scalar int32 labels.
        dataset = tf.data.Dataset.from_tensor_slices((inputs, np.asarray(labels, dtype=np.int32)))
        return self.function(model, dataset)


def _import_complexity(folder: Path):
    """The folder's ``complexity`` function; SubmissionError if it has none or cannot be imported."""
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
    return function
