"""Any PGDL submission folder as a measure: ``complexity(model, dataset)`` called as the kit calls it.

The kit runs a submission in a fresh interpreter: only the standard library and the installed
packages are there before it, and its own modules are whatever its folder holds. The harness has
already imported modules of its own (``complexity_measure``, ``pgdl_harness``, an earlier
submission's ``helper``), and a submission that shares one of their names would otherwise be
given the harness's module instead of its own, silently. So while a submission is imported and
while it runs, ``sys.modules`` holds only what a fresh interpreter would share with it (the
standard library and installed third-party packages) plus the submission's own modules, and its
folder comes on ``sys.path`` before any folder of the harness's; afterwards the harness's modules
are put back and the submission's kept aside for its next call.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import inspect
import site
import sys
import sysconfig
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
    its helper modules work, and they are its own modules whatever the harness has imported under
    the same names (see the module's docstring); ``program_dir`` is passed when the function takes
    it (later kit).
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
        self._modules: dict[str, object] = {}  # the submission's own modules, between its calls

    def __getstate__(self):
        return {"folder": self.folder}

    def __setstate__(self, state):
        self.folder, self._function, self._modules = state["folder"], None, {}

    @property
    def function(self):
        """The submission's ``complexity``, with ``program_dir`` bound when it takes it (later kit)."""
        if self._function is None:
            with self._as_itself():
                function = _import_complexity(self.folder)
            if "program_dir" in inspect.signature(function).parameters:
                function = functools.partial(function, program_dir=str(self.folder))
            self._function = function
        return self._function

    def __call__(self, model, inputs, labels):
        # The same element types as the kit's reader: float32 inputs, scalar int32 labels.
        dataset = tf.data.Dataset.from_tensor_slices((inputs, np.asarray(labels, dtype=np.int32)))
        function = self.function
        with self._as_itself():
            return function(model, dataset)

    @contextlib.contextmanager
    def _as_itself(self):
        """``sys.modules`` and ``sys.path`` as the submission would find them in the kit's interpreter."""
        saved_path = list(sys.path)
        harness = _set_aside(sys.modules)
        sys.modules.update(self._modules)
        installed = [entry for entry in saved_path if _is_installed(entry)]
        sys.path[:] = [*installed, str(self.folder),
                       *(entry for entry in saved_path if entry not in installed and entry != str(self.folder))]
        importlib.invalidate_caches()
        try:
            yield
        finally:
            self._modules = _set_aside(sys.modules)
            sys.modules.update(harness)
            sys.path[:] = saved_path
            importlib.invalidate_caches()


# The harness's own packages: a submission derived from this project names its modules the same.
_HARNESS_PACKAGES = ("complexity_measure", "pgdl_harness")
# Modules a process cannot do without, whatever file they came from.
_ALWAYS_SHARED = ("__main__", "__mp_main__")


@functools.lru_cache(maxsize=1)
def _installation_folders() -> tuple[Path, ...]:
    """The standard library's and the installed packages' folders (what a fresh interpreter shares)."""
    paths = sysconfig.get_paths()
    folders = [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths]
    with contextlib.suppress(AttributeError):
        folders += site.getsitepackages()
    with contextlib.suppress(AttributeError):
        folders.append(site.getusersitepackages())
    return tuple(Path(folder).resolve() for folder in folders if folder)


@functools.lru_cache(maxsize=None)
def _is_installed(location: str) -> bool:
    """Whether ``location`` (a file or folder) lies in the standard library or an installed package."""
    if not location:
        return False
    path = Path(location).resolve()
    return any(path == folder or folder in path.parents for folder in _installation_folders())


def _is_shared(name: str, module) -> bool:
    """Whether a fresh interpreter running the submission would hold the very same ``module``."""
    if name in _ALWAYS_SHARED:
        return True
    if name.split(".")[0] in _HARNESS_PACKAGES:
        return False
    location = getattr(module, "__file__", None)
    if location is None:
        portions = list(getattr(module, "__path__", None) or [])
        if not portions:
            return True  # built in or frozen
        return all(_is_installed(str(portion)) for portion in portions)
    return _is_installed(str(location))


def _set_aside(modules: dict) -> dict:
    """Remove from ``modules`` every module not shared with a fresh interpreter; return them."""
    aside = {name: module for name, module in list(modules.items()) if not _is_shared(name, module)}
    for name in aside:
        del modules[name]
    return aside


def _import_complexity(folder: Path):
    """The folder's ``complexity`` function; SubmissionError if it has none or cannot be imported."""
    source = folder / "complexity.py"
    if not source.is_file():
        raise SubmissionError(f"{source}: missing (a PGDL submission folder holds complexity.py)")
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
