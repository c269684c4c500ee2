"""Any callable ``f(batch) -> logits`` as a classifier: a JAX ``apply``, an ONNX Runtime session
wrapped in a function, a scikit-learn pipeline's ``decision_function``, a Keras or PyTorch model
behind a function of one's own.

``f`` takes a NumPy batch of inputs (float32, in the layout the caller's arrays have) and returns
class scores of shape ``(n, n_classes)`` as anything ``numpy.asarray`` reads (a NumPy, JAX or
CPU PyTorch array, a list). That is all a callable gives: the measures that need hidden layers,
weights or gradients refuse it (``classifier.ModelRefused``), and the input-space ones
(fragmentation, output margin, mixup error) measure it as they measure the model inside it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .classifier import DEFAULT_BATCH_SIZE, Classifier, batched, check_finite


class CallableClassifier(Classifier):
    """``f(batch) -> logits`` as a ``Classifier`` (see the module docstring)."""

    kind = "plain callable"

    def __init__(self, function: Callable):
        self.function = function

    def check_inputs(self, inputs):
        inputs = np.asarray(inputs)
        if inputs.ndim < 2 or len(inputs) == 0:
            raise ValueError(f"expected a batch of inputs of shape (n, ...), got shape {inputs.shape}")
        try:
            scores = self.native_logits(inputs[:1])
        except Exception as error:
            raise ValueError(f"the callable cannot run on inputs of shape {tuple(inputs.shape[1:])} per example: "
                             f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from None
        if scores.ndim != 2 or len(scores) != 1:
            raise ValueError(f"the callable must return class scores of shape (n, n_classes); on one example it "
                             f"returned shape {scores.shape}")

    def native_logits(self, inputs):
        return np.asarray(self.function(np.asarray(inputs, dtype=np.float32)))

    def _logits(self, inputs, batch_size):
        return check_finite(batched(self.native_logits, inputs, batch_size))
