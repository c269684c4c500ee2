"""Hidden representations: how sparse they are, and how well they cluster by class.

Potgieter, Mouton & Davel (2025), "Impact of Batch Normalization on Convolutional Network
Representations", arXiv:2501.14441, compare networks trained with and without BatchNorm by the
vectors of activation values their hidden layers produce for the training data: their *sparsity*
(how many values are zero or near zero, per layer and per channel) and their *implicit
clustering* (how tightly each class's representations group, apart from the other classes). They
find that BatchNorm's effect on sparsity is not what explains generalization, while BatchNorm
models cluster better. Here both properties are functions of a trained model and its training
data, per layer for analysis and as one number for ranking models.

A representation is the output of a hidden layer that applies a nonlinearity (see
``Classifier.activation_layers``), flattened per example where a layer has spatial axes; its
*channels* are its last axis (Conv feature maps, Dense units; PyTorch's channels-first outputs are
handed over channels last). All forward passes run in inference mode. Layer indices are the
model's own (a Keras ``Dense(relu)`` is one layer, PyTorch's ``Linear`` and ``ReLU`` two).
"""

from __future__ import annotations

import numpy as np

from .classifier import DEFAULT_BATCH_SIZE, Classifier, names_refusals
from .frameworks import as_classifier
from .sampling import training_sample

# Defaults, and why:
# - tolerance 1e-6: ReLU outputs exact zeros; the tolerance only absorbs float32 round-off around
#   zero, without calling small but real activations "off" (so tanh layers, which are almost never
#   within 1e-6 of zero, come out nearly dense, which is what they are).
# - 1,000 examples for sparsity: a per-channel fraction over 1,000 examples (times the spatial
#   positions) has a standard error below 0.016, far finer than the differences between models.
# - 500 examples for clustering: silhouette costs O(n^2 * features); 500 keeps a 26x26x32 conv
#   layer (21,632 features) at about a second, and leaves ~50 examples per class for 10 classes.
DEFAULT_TOLERANCE = 1e-6
DEFAULT_SPARSITY_EXAMPLES = 1000
DEFAULT_CLUSTERING_EXAMPLES = 500
DEFAULT_SEED = 0


# ---------------------------------------------------------------------------------------------
# Sparsity


def sparsity(representation: np.ndarray, tol: float = DEFAULT_TOLERANCE) -> float:
    """Fraction of the values of ``representation`` (any shape) with ``|a| <= tol``, in [0, 1]."""
    representation = np.asarray(representation)
    _check_tolerance(tol)
    if representation.size == 0:
        raise ValueError("the representation is empty")
    return float(np.mean(np.abs(representation) <= tol))


def channel_sparsity(representation: np.ndarray, tol: float = DEFAULT_TOLERANCE) -> np.ndarray:
    """Per-channel fraction of values with ``|a| <= tol``, shape ``(channels,)``, each in [0, 1].

    ``representation`` has shape ``(n,) + spatial + (channels,)``, channels last (as in PGDL's
    models); channel ``c``'s value is taken over all examples and spatial positions.
    """
    representation = np.asarray(representation)
    _check_tolerance(tol)
    if representation.ndim < 2 or representation.size == 0:
        raise ValueError(f"expected a non-empty representation of shape (n, ..., channels), "
                         f"got shape {representation.shape}")
    near_zero = np.abs(representation) <= tol
    return near_zero.reshape(-1, representation.shape[-1]).mean(axis=0)


def channel_sparsity_per_layer(model, inputs, *, layers=None, tol: float = DEFAULT_TOLERANCE,
                               n_examples: int | None = DEFAULT_SPARSITY_EXAMPLES, seed: int = DEFAULT_SEED,
                               batch_size: int = DEFAULT_BATCH_SIZE) -> dict[int, np.ndarray]:
    """``channel_sparsity`` of each layer's representation of (a sample of) the training inputs.

    Parameters
    ----------
    model : a Keras model or a ``torch.nn.Module`` (``classifier.as_classifier``).
    inputs : array of shape ``(n,) + input_shape``, in the model's own layout.
    layers : layer indices (negative counts from the end); None (default) takes every hidden layer
        with a nonlinearity (``Classifier.activation_layers``).
    tol : values with ``|a| <= tol`` count as zero.
    n_examples : size of the seeded, order-independent sample of ``inputs``; None uses all of them.
    seed, batch_size : the sample's seed; examples per forward pass.

    Returns
    -------
    dict from layer index (non-negative) to an array of shape ``(channels,)`` with values in [0, 1].
    """
    _check_tolerance(tol)
    model = as_classifier(model)
    inputs, _ = training_sample(model, inputs, np.zeros(len(inputs), dtype=np.int64), n_examples, seed)
    layers = _hidden_layers(model, layers)
    zeros = [0] * len(layers)
    totals = [0] * len(layers)
    for outputs in model.layer_outputs(inputs, layers, batch_size):
        for position, output in enumerate(outputs):
            near_zero = (np.abs(output) <= tol).reshape(-1, output.shape[-1])
            zeros[position] = zeros[position] + near_zero.sum(axis=0)
            totals[position] += len(near_zero)  # values per channel: examples x spatial positions
    return {layer: count / total for layer, count, total in zip(layers, zeros, totals)}


def sparsity_per_layer(model, inputs, *, layers=None, tol: float = DEFAULT_TOLERANCE,
                       n_examples: int | None = DEFAULT_SPARSITY_EXAMPLES, seed: int = DEFAULT_SEED,
                       batch_size: int = DEFAULT_BATCH_SIZE) -> dict[int, float]:
    """``sparsity`` of each layer's representation: dict from layer index to a fraction in [0, 1].

    Every channel of a layer has the same number of values, so a layer's sparsity is the mean of
    its channels' sparsities. Parameters as in ``channel_sparsity_per_layer``.
    """
    per_channel = channel_sparsity_per_layer(model, inputs, layers=layers, tol=tol, n_examples=n_examples,
                                             seed=seed, batch_size=batch_size)
    return {layer: float(np.mean(values)) for layer, values in per_channel.items()}


@names_refusals
def sparsity_measure(model, inputs, labels, *, layers=None, tol: float = DEFAULT_TOLERANCE,
                     n_examples: int | None = DEFAULT_SPARSITY_EXAMPLES, seed: int = DEFAULT_SEED,
                     batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """Negated mean representation sparsity over the hidden layers, a value in [-1, 0].

    Aggregate: the plain mean of ``sparsity_per_layer`` over ``layers`` (default: every hidden
    layer with a nonlinearity), each layer weighted equally so that wide early convolutions do not
    dominate. ``labels`` are checked but not used.

    Sign, honestly: Potgieter et al. (2025) find that sparsity does *not* explain generalization,
    so there is no sign backed by that paper. The sign taken here follows the other line of
    evidence, that sparser ReLU features go with better generalization (Glorot, Bordes & Bengio
    2011; Andriushchenko et al. 2023, "SGD with large step sizes learns sparse features"): a
    sparser network is expected to have a smaller gap, so the measure is ``-sparsity`` (a denser
    representation, closer to 0, ranks as a larger gap). Treat this measure as a test of that
    hypothesis on PGDL, not as a predictor we expect to work.
    """
    labels = np.asarray(labels)
    if len(labels) != len(inputs):
        raise ValueError(f"inputs has {len(inputs)} examples but labels has {len(labels)}")
    values = sparsity_per_layer(model, inputs, layers=layers, tol=tol, n_examples=n_examples, seed=seed,
                                batch_size=batch_size)
    return -float(np.mean(list(values.values())))


def _check_tolerance(tol: float) -> None:
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")


# ---------------------------------------------------------------------------------------------
# Clustering by class


def davies_bouldin_per_layer(model, inputs, labels, *, layers=None,
                             n_examples: int | None = DEFAULT_CLUSTERING_EXAMPLES, seed: int = DEFAULT_SEED,
                             batch_size: int = DEFAULT_BATCH_SIZE) -> dict[int, float]:
    """Davies-Bouldin index of each layer's flattened representations, the class labels as clusters.

    scikit-learn's ``davies_bouldin_score`` on the representations of a seeded, order-independent
    sample of ``n_examples`` training examples (None: all). Values are >= 0; *smaller* is better
    clustering (tight classes far apart). ``layers`` as in ``channel_sparsity_per_layer``.
    Returns a dict from layer index to the index.
    """
    from sklearn.metrics import davies_bouldin_score  # here: only the clustering measures need scikit-learn
    return _clustering_per_layer(davies_bouldin_score, model, inputs, labels, layers, n_examples, seed,
                                 batch_size)


def silhouette_per_layer(model, inputs, labels, *, layers=None,
                         n_examples: int | None = DEFAULT_CLUSTERING_EXAMPLES, seed: int = DEFAULT_SEED,
                         batch_size: int = DEFAULT_BATCH_SIZE) -> dict[int, float]:
    """Mean silhouette coefficient (Euclidean) of each layer's flattened representations by class.

    scikit-learn's ``silhouette_score`` on a seeded sample of ``n_examples`` examples (its cost is
    O(n_examples^2 x features)). Values are in [-1, 1]; *larger* is better clustering.
    Returns a dict from layer index to the score.
    """
    from sklearn.metrics import silhouette_score
    return _clustering_per_layer(silhouette_score, model, inputs, labels, layers, n_examples, seed, batch_size)


@names_refusals
def davies_bouldin_measure(model, inputs, labels, *, layers=None,
                           n_examples: int | None = DEFAULT_CLUSTERING_EXAMPLES, seed: int = DEFAULT_SEED,
                           batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """Mean Davies-Bouldin index over the hidden layers (``davies_bouldin_per_layer``), >= 0.

    Larger means worse class clustering of the training representations, expected to mean a
    larger generalization gap (Potgieter et al. 2025: better-generalizing BatchNorm models cluster
    better; Natekar & Sharma 2020 won PGDL with a Davies-Bouldin index). Defaults: every hidden
    layer with a nonlinearity, weighted equally; 500 examples (see the module's defaults).
    """
    return float(np.mean(list(davies_bouldin_per_layer(
        model, inputs, labels, layers=layers, n_examples=n_examples, seed=seed, batch_size=batch_size).values())))


@names_refusals
def silhouette_measure(model, inputs, labels, *, layers=None,
                       n_examples: int | None = DEFAULT_CLUSTERING_EXAMPLES, seed: int = DEFAULT_SEED,
                       batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """Negated mean silhouette score over the hidden layers (``silhouette_per_layer``), in [-1, 1].

    Negated so that larger means worse class clustering, expected to mean a larger gap (as for
    ``davies_bouldin_measure``). Defaults: every hidden layer with a nonlinearity, weighted
    equally; 500 examples.
    """
    return -float(np.mean(list(silhouette_per_layer(
        model, inputs, labels, layers=layers, n_examples=n_examples, seed=seed, batch_size=batch_size).values())))


def _clustering_per_layer(score, model, inputs, labels, layers, n_examples, seed, batch_size) -> dict[int, float]:
    model = as_classifier(model)
    inputs, labels = training_sample(model, inputs, labels, n_examples, seed)
    n_classes = len(np.unique(labels))
    if not 2 <= n_classes <= len(labels) - 1:
        raise ValueError(f"clustering by class needs between 2 and n_examples - 1 = {len(labels) - 1} "
                         f"classes among the sampled examples, got {n_classes} classes in {len(labels)} "
                         f"examples")
    hidden = _hidden_layers(model, layers)
    # Every layer's representation from one forward pass (a pass per layer would run the early
    # layers once per later layer), kept as float32 until its turn to be scored.
    parts = [[] for _ in hidden]
    for outputs in model.layer_outputs(inputs, hidden, batch_size):
        for part, output in zip(parts, outputs):
            part.append(output.reshape(len(output), -1))
    values = {}
    for layer, part in zip(hidden, parts):
        # float64: scikit-learn upcasts float32 distances chunk by chunk, ~20x slower for silhouette.
        values[layer] = float(score(np.concatenate(part).astype(np.float64), labels))
    return values


def _hidden_layers(model: Classifier, layers) -> list[int]:
    if layers is None:
        return model.hidden_layers()
    if isinstance(layers, (int, np.integer)) or not len(layers):
        raise ValueError(f"layers must be None or a non-empty list of layer indices, got {layers!r}")
    return model.wanted_layers(layers)
