"""Which framework a model belongs to, and its ``Classifier``: the one door into the measures.

``as_classifier(model)`` looks at the modules of the model's classes (importing nothing) and wraps
it in its framework's ``Classifier`` (``classifier.py`` says what each one gives), importing that
framework's module only then: a PyTorch module never brings TensorFlow in, nor a Keras model PyTorch.
"""

from __future__ import annotations

from .classifier import Classifier
from .keras_models import KerasClassifier, keras_backend


def as_classifier(model, *, initial_weights=None) -> Classifier:
    """The ``Classifier`` for ``model`` (see the module docstring for what is accepted).

    ``initial_weights``: the weights at initialisation, for ``distance_from_init``: a list of arrays
    in the order of the model's weights (Keras ``get_weights()``), or a PyTorch ``state_dict``.
    Keras models may carry them as ``model.initial_weights`` (PGDL's loaders set it).
    """
    if isinstance(model, Classifier):
        if initial_weights is not None:
            raise ValueError("initial_weights can be given only with a model, not with a Classifier")
        return model
    framework = framework_of(model)
    if framework == "keras":
        if keras_backend(model) == "tensorflow":
            from .forward import KerasTensorFlowClassifier
            return KerasTensorFlowClassifier(model, initial_weights=initial_weights)
        return KerasClassifier(model, initial_weights=initial_weights)
    if framework == "torch":
        from .pytorch import TorchClassifier
        return TorchClassifier(model, initial_weights=initial_weights)
    if callable(model):
        if initial_weights is not None:
            raise ValueError("a plain callable has no weights, so it takes no initial_weights")
        from .callables import CallableClassifier
        return CallableClassifier(model)
    raise TypeError(f"expected a classifier: a Keras model, a torch.nn.Module or a callable "
                    f"f(inputs) -> logits; got {type(model).__name__}")


_FRAMEWORK_MODULES = (("keras", ("keras.", "tf_keras.", "tensorflow.python.keras.", "keras_core.")),
                      ("torch", ("torch.",)))


def framework_of(model) -> str | None:
    """``"keras"``, ``"torch"`` or None, from the modules of the model's classes (no import).

    Keras comes first: a Keras 3 model on the PyTorch backend is also a ``torch.nn.Module``, and
    is measured as the Keras model it is.
    """
    modules = [getattr(cls, "__module__", "") + "." for cls in type(model).__mro__]
    for framework, prefixes in _FRAMEWORK_MODULES:
        if any(module.startswith(prefixes) for module in modules):
            return framework
    return None
