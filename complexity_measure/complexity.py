"""PGDL drop-in: ``complexity(model, dataset)``, the competition's entry point.

The starting kit puts this folder on ``sys.path`` and runs ``from complexity import complexity``,
so this module must work as a top-level module with nothing installed; it then loads the rest of
the folder as the package ``complexity_measure`` itself, whatever the folder is called (the kit
unpacks a submission into a folder of its own choosing). Where that name already belongs to
another folder's package (a host process that imported the project itself), this folder is loaded
under a name of its own, so that its measures are this folder's, not the other package's.
"""

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

if __package__:
    from .dataset import DEFAULT_MAX_EXAMPLES, dataset_to_arrays
    from .registry import DEFAULT_MEASURE, get_measure
else:
    def _load_package():
        here = Path(__file__).resolve().parent
        name = "complexity_measure"
        loaded = sys.modules.get(name)
        if loaded is not None:
            if Path(getattr(loaded, "__file__", None) or "").resolve().parent == here:
                return loaded
            name = f"complexity_measure_{hashlib.sha256(str(here).encode()).hexdigest()[:12]}"
            if name in sys.modules:
                return sys.modules[name]
        spec = importlib.util.spec_from_file_location(
            name, here / "__init__.py", submodule_search_locations=[str(here)])
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        spec.loader.exec_module(package)
        return package

    _package = _load_package()
    _dataset = importlib.import_module(f"{_package.__name__}.dataset")
    _registry = importlib.import_module(f"{_package.__name__}.registry")
    DEFAULT_MAX_EXAMPLES, dataset_to_arrays = _dataset.DEFAULT_MAX_EXAMPLES, _dataset.dataset_to_arrays
    DEFAULT_MEASURE, get_measure = _registry.DEFAULT_MEASURE, _registry.get_measure


def complexity(model, dataset, program_dir=None):
    """The default measure of a trained PGDL model on its training data.

    The default (``registry.DEFAULT_MEASURE``) is ``fragmentation_fitted_davies_bouldin_quarter``:
    the fourth root of the class changes per same-class path in the input space (over the paths
    whose two ends the model classifies as labelled), times the hidden layers' mean Davies-Bouldin
    index (needs scikit-learn, as the PGDL winner's entry did). ``model`` is the kit's Sequential Keras
    classifier (Keras 3 or Keras 2); ``dataset`` the
    unbatched ``tf.data.Dataset`` of ``(inputs, label)`` training pairs. ``program_dir`` is passed
    by a later version of the kit and is not needed. Returns a float, larger for a larger expected
    generalization gap, the same every time for the same model and data.

    Raises ``classifier.ModelRefused`` (one line naming the measure and the problem) for a network
    whose weights or outputs are not finite, and so the kit stops there. That is a choice: a
    diverged network has no complexity to return, and the one non-number the kit could carry, NaN,
    the organisers' scorer reads as a tie with every other model, which moves the task's CMI far
    (17.95 to 85.64 on the toy task with one model NaN) instead of leaving that model out.
    """
    inputs, labels = dataset_to_arrays(dataset, DEFAULT_MAX_EXAMPLES)
    return get_measure(DEFAULT_MEASURE)(model, inputs, labels)
