"""The PGDL starting kit's baseline measures, and the classic output margin.

The organisers shipped three baselines with the kit (GitHub ``cadurosar/pgdl``, folder
``baselines/``) and a sample submission: distance from initialisation, a Jacobian norm,
sharpness, and the sum of squared weights. Jiang et al. (2020), "Fantastic Generalization
Measures and Where to Find Them", ICLR, define and compare all of them and the output margin.
These are the reference points every other measure in this package is compared against; each
is implemented here from its definition, with any difference from the kit's code stated.
"""

from __future__ import annotations

import numpy as np

from .classifier import DEFAULT_BATCH_SIZE, names_refusals
from .frameworks import as_classifier
from .sampling import training_sample

# Defaults, and why: the kit's Jacobian baseline looks at ~512 examples; the same number here
# (each costs one backward pass per class: ~3 s for a small 10-class convnet on one CPU core). The margin's 10th percentile is the robust low
# percentile of Jiang et al. (2020); 2,000 examples put ~200 below it.
DEFAULT_JACOBIAN_EXAMPLES = 512
DEFAULT_JACOBIAN_BATCH_SIZE = 64
DEFAULT_MARGIN_EXAMPLES = 2000
DEFAULT_MARGIN_PERCENTILE = 10.0
DEFAULT_SEED = 0


@names_refusals
def distance_from_initialization(model, inputs=None, labels=None) -> float:
    """Euclidean (Frobenius) distance between the model's weights and its initial weights, >= 0.

    ``sqrt(sum_i ||W_i - W_i^0||_F^2)`` over every weight array (``Classifier.weights``: trainable
    or not, BatchNorm's moving statistics included, as in the kit's baseline) against the initial
    weights in the same order: a Keras model's ``model.initial_weights`` (the PGDL loaders set it
    from ``weights_init.hdf5``), or those given to ``as_classifier(model, initial_weights=...)``
    (a PyTorch ``state_dict`` at initialisation). The kit's baseline returns the square of this
    value: the same ranking. ``inputs`` and ``labels`` are not used. Larger: the training moved
    further from the start, expected to mean a larger gap (Nagarajan & Kolter 2019; Jiang et al. 2020).

    Raises ModelRefused when the initial weights are not known or the weights are not finite, and
    ValueError when the initial weights do not match the weights.
    """
    model = as_classifier(model)
    current = model.finite_weights()
    squared = 0.0
    for now, start in zip(current, model.matching_initial_weights(current)):
        squared += float(np.sum(np.square(now.astype(np.float64) - start.astype(np.float64))))
    return float(np.sqrt(squared))


@names_refusals
def parameter_norm(model, inputs=None, labels=None) -> float:
    """Sum of the squares of every weight of the model (``Classifier.weights``), >= 0.

    The kit's sample submission, unchanged in meaning: BatchNorm's moving statistics count too.
    Larger weights, expected to mean a larger gap. ``inputs`` and ``labels`` are not used.
    """
    return float(sum(np.sum(np.square(weights.astype(np.float64)))
                     for weights in as_classifier(model).finite_weights()))


@names_refusals
def jacobian_norm(model, inputs, labels, *, n_examples: int | None = DEFAULT_JACOBIAN_EXAMPLES,
                  seed: int = DEFAULT_SEED, batch_size: int = DEFAULT_JACOBIAN_BATCH_SIZE) -> float:
    """Mean Frobenius norm of the input-output Jacobian d logits / d inputs over training inputs, >= 0.

    Parameters
    ----------
    model : a differentiable classifier whose outputs are logits: a Keras model (TensorFlow, JAX or
        PyTorch backend) or a ``torch.nn.Module`` (a plain callable is refused: no gradients).
    inputs : array of shape ``(n,) + input_shape``; labels : shape ``(n,)`` (only checked).
    n_examples : seeded, order-independent sample size (None: all); 512, as in the kit's baseline.
    seed, batch_size : the sample's seed; examples per Jacobian batch (memory per batch is
        ``batch_size * n_classes * input_size`` floats).

    Exact per example (``Classifier.jacobian_norms``: one input gradient per class), not a
    random-projection estimate. The kit's baseline differs: it averages the *squared* Jacobian
    entries with respect to every layer's input, not only the model's input. Larger: the model's
    outputs are more sensitive to its inputs around the training data, expected to mean a larger
    gap (Novak et al. 2018, "Sensitivity and generalization in neural networks").
    """
    model = as_classifier(model)
    inputs, _ = training_sample(model, inputs, labels, n_examples, seed)
    return float(np.mean(model.jacobian_norms(inputs, batch_size)))


def logit_margins(model, inputs, labels, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """Per example, the true class's logit minus the largest other logit, shape ``(n,)``.

    Negative for misclassified examples. ``labels`` are class indices ``(n,)`` or one-hot.
    """
    model = as_classifier(model)
    inputs, labels = training_sample(model, inputs, labels, None, DEFAULT_SEED)
    scores = model.logits(inputs, batch_size)
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(f"labels must be class indices in 0 .. {scores.shape[1] - 1} for a model with "
                         f"{scores.shape[1]} outputs, got labels in {labels.min()} .. {labels.max()}")
    rows = np.arange(len(labels))
    true = scores[rows, labels]
    others = scores.copy()
    others[rows, labels] = -np.inf
    return true - others.max(axis=1)


@names_refusals
def output_margin(model, inputs, labels, *, percentile: float = DEFAULT_MARGIN_PERCENTILE,
                  n_examples: int | None = DEFAULT_MARGIN_EXAMPLES, seed: int = DEFAULT_SEED,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """The NEGATED ``percentile``-th percentile of the logit margins on training examples.

    Parameters
    ----------
    model, inputs, labels : as in ``jacobian_norm``; the model's outputs must be logits.
    percentile : in [0, 100]; 10 (Jiang et al. 2020) is a low percentile that is robust to the
        few examples with the very smallest (or most negative) margins.
    n_examples : seeded, order-independent sample size (None: all); 2,000 by default.
    seed, batch_size : the sample's seed; examples per forward pass.

    A small margin is expected to mean a larger generalization gap (Bartlett et al. 2017), so the
    margin is negated (not inverted: margins can be zero or negative): larger = larger gap. The
    margin is in raw logit units, not normalised by any weight norm, so it is comparable only
    between models whose logits have similar scales.
    """
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile!r}")
    model = as_classifier(model)
    inputs, labels = training_sample(model, inputs, labels, n_examples, seed)
    return -float(np.percentile(logit_margins(model, inputs, labels, batch_size), percentile))
