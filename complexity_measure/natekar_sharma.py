"""The PGDL winner: early-layer class clustering times the error on label-wise mixup inputs.

Natekar & Sharma (2020), "Representation Based Complexity Measures for Predicting
Generalization in Deep Learning", arXiv:2012.02775, won the NeurIPS 2020 PGDL competition with

    score = DBI(early-layer representations, by class) * (1 - accuracy on label-wise mixup inputs)

Both factors are larger for models expected to generalize worse: a large Davies-Bouldin index
(DBI) means the training classes are poorly separated already in the first layer's features;
a low accuracy on the midpoints of two training inputs of the same class means the model's class
regions are not convex around its training data (it memorised points rather than regions).

This is our own implementation of the recipe in their public code (GitHub
``parthnatekar/pgdl``: ``complexity.py``, ``complexitymeasures.py``), with these choices:

- Layer: theirs and ours take the first of the first three layers that has strides (a
  convolution or pooling layer); when there is none (an MLP) theirs fails, ours takes layer 0.
- DBI features: the layer's output, max-pooled with a 4x4 window and stride 4 ("valid"), then
  flattened. Theirs pools with a fixed 4x4 window; ours shrinks the window to the feature map
  where the map is smaller than 4 (theirs would pool to nothing), and does not pool outputs
  without two spatial axes (theirs cannot).
- DBI examples: theirs draws 1,200 examples through a 5,000-example shuffle buffer (seed 1),
  computes the DBI of each consecutive group of 120 and averages the 10 values; ours draws 1,200
  examples with an explicit seed from all examples it is given, independent of their order, and
  averages the DBI of groups of 120 the same way (the group size changes the value of the DBI,
  so it is kept). scikit-learn's ``davies_bouldin_score`` is the same formula as their copy of it.
- Mixup: theirs takes the first 1,000 examples in the dataset's order (10 batches of 10 x
  n_classes), mixes every pair of same-class examples inside a batch at weight 0.5 and averages
  the accuracy per batch, then per class. Ours draws 4,096 same-class pairs with an explicit seed
  (``fragmentation.draw_pairs``, independent of the data's order), mixes them at weight 0.5 and
  averages the accuracy per class, then over classes. Theirs can return NaN (a class with exactly
  one example in a batch gives 0/0) or silently skip a class; ours cannot.
"""

from __future__ import annotations

import numpy as np

from .classifier import DEFAULT_BATCH_SIZE, names_refusals
from .frameworks import as_classifier
from .fragmentation import draw_pairs
from .sampling import training_sample

# Defaults, and why: the values of the winning entry (see the module docstring), so that this
# measure is the published one up to sampling; 4,096 mixup pairs is ~400 per class for 10 classes,
# the same order as their ~450 midpoints per class.
DEFAULT_POOL_SIZE = 4
DEFAULT_DBI_EXAMPLES = 1200
DEFAULT_DBI_GROUP_SIZE = 120
DEFAULT_MIXUP_PAIRS = 4096
DEFAULT_MIXUP_WEIGHT = 0.5
DEFAULT_SEED = 0
_EARLY_LAYERS_SEARCHED = 3


@names_refusals
def natekar_sharma_score(model, inputs, labels, *, layer: int | None = None, pool_size: int = DEFAULT_POOL_SIZE,
                         n_dbi_examples: int = DEFAULT_DBI_EXAMPLES, dbi_group_size: int = DEFAULT_DBI_GROUP_SIZE,
                         n_mixup_pairs: int = DEFAULT_MIXUP_PAIRS, mixup_weight: float = DEFAULT_MIXUP_WEIGHT,
                         seed: int = DEFAULT_SEED, batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """DBI of early-layer representations times (1 - label-wise mixup accuracy), >= 0.

    Parameters
    ----------
    model : a Keras model or a ``torch.nn.Module`` whose outputs are class scores (the first factor
        needs layers; ``mixup_error`` alone takes any callable too).
    inputs : array of shape ``(n,) + input_shape``, the training inputs, in the model's own layout.
    labels : array of shape ``(n,)`` (class indices) or ``(n, k)`` (one-hot).
    layer, pool_size, n_dbi_examples, dbi_group_size : see ``early_layer_davies_bouldin``.
    n_mixup_pairs, mixup_weight : see ``labelwise_mixup_accuracy``.
    seed : seeds both samples; batch_size : examples per forward pass.

    Returns
    -------
    float >= 0; larger is expected to mean a larger generalization gap. 0 when the model
    classifies every mixed input correctly.
    """
    dbi = early_layer_davies_bouldin(model, inputs, labels, layer=layer, pool_size=pool_size,
                                     n_examples=n_dbi_examples, group_size=dbi_group_size, seed=seed,
                                     batch_size=batch_size)
    accuracy = labelwise_mixup_accuracy(model, inputs, labels, n_pairs=n_mixup_pairs, weight=mixup_weight,
                                        seed=seed, batch_size=batch_size)
    return float(dbi * (1.0 - accuracy))


@names_refusals
def mixup_error(model, inputs, labels, *, n_pairs: int = DEFAULT_MIXUP_PAIRS,
                weight: float = DEFAULT_MIXUP_WEIGHT, seed: int = DEFAULT_SEED,
                batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """``1 - labelwise_mixup_accuracy``: the winner's second factor alone, in [0, 1], larger = larger gap."""
    return 1.0 - labelwise_mixup_accuracy(model, inputs, labels, n_pairs=n_pairs, weight=weight, seed=seed,
                                          batch_size=batch_size)


def early_layer(model) -> int:
    """The winner's "initial" layer: the first of the first three layers that has strides.

    Layers with strides are convolutions and poolings; the first such layer skips a leading
    BatchNorm, Dropout or reshaping layer. A model with none among its first three layers (an
    MLP) gets layer 0.
    """
    for index, layer in enumerate(as_classifier(model).layers()[:_EARLY_LAYERS_SEARCHED]):
        if layer.strided:
            return index
    return 0


@names_refusals
def early_layer_davies_bouldin(model, inputs, labels, *, layer: int | None = None,
                               pool_size: int = DEFAULT_POOL_SIZE, n_examples: int = DEFAULT_DBI_EXAMPLES,
                               group_size: int = DEFAULT_DBI_GROUP_SIZE, seed: int = DEFAULT_SEED,
                               batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """Mean Davies-Bouldin index of max-pooled layer representations, by class, over groups of examples.

    Parameters
    ----------
    model, inputs, labels : as in ``natekar_sharma_score``.
    layer : layer index; None (default) is ``early_layer(model)``.
    pool_size : max-pooling window and stride over the two spatial axes of a ``(n, h, w, c)``
        output (shrunk to ``h`` or ``w`` where smaller); 1 disables pooling. Outputs without two
        spatial axes are not pooled. Pooling keeps the DBI cheap and less dominated by position.
    n_examples : size of the seeded, order-independent sample (fewer if fewer are given).
    group_size : the sample, in random order, is cut into ``len(sample) // group_size`` groups
        of at least ``group_size`` examples; the result is the mean of the groups' DBIs (the
        winner's 10 groups of 120). A DBI needs 2 .. size-1 classes in each group.
    seed, batch_size : the sample's seed; examples per forward pass.

    Returns
    -------
    float >= 0; larger means classes less separated (a larger expected gap).
    """
    from sklearn.metrics import davies_bouldin_score  # here: only the clustering measures need scikit-learn

    for name, value in (("pool_size", pool_size), ("group_size", group_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    model = as_classifier(model)
    inputs, labels = training_sample(model, inputs, labels, n_examples, seed)
    layer = early_layer(model) if layer is None else model.resolve_layer(layer)
    features = max_pool(model.representations(inputs, layer, batch_size), pool_size)
    features = features.reshape(len(features), -1)
    groups = np.array_split(np.arange(len(labels)), max(1, len(labels) // group_size))
    values = []
    for group in groups:
        n_classes = len(np.unique(labels[group]))
        if not 2 <= n_classes <= len(group) - 1:
            raise ValueError(f"a group of {len(group)} examples has {n_classes} classes; the Davies-Bouldin "
                             f"index needs 2 .. {len(group) - 1} (use more examples, a larger group_size, "
                             f"or data with at least two classes)")
        values.append(davies_bouldin_score(features[group], labels[group]))
    return float(np.mean(values))


def max_pool(representation: np.ndarray, pool_size: int) -> np.ndarray:
    """Non-overlapping max pooling ("valid", stride = window) over axes 1 and 2 of ``(n, h, w, c)``.

    The window is ``min(pool_size, h) x min(pool_size, w)``; rows and columns that do not fill a
    whole window are dropped, as in Keras' ``MaxPooling2D(padding="valid")``. Arrays that are not
    4-D are returned unchanged.
    """
    representation = np.asarray(representation)
    if representation.ndim != 4 or pool_size == 1:
        return representation
    n, height, width, channels = representation.shape
    ph, pw = min(pool_size, height), min(pool_size, width)
    oh, ow = height // ph, width // pw
    cropped = representation[:, :oh * ph, :ow * pw, :]
    return cropped.reshape(n, oh, ph, ow, pw, channels).max(axis=(2, 4))


def labelwise_mixup_accuracy(model, inputs, labels, *, n_pairs: int = DEFAULT_MIXUP_PAIRS,
                             weight: float = DEFAULT_MIXUP_WEIGHT, seed: int = DEFAULT_SEED,
                             batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """Accuracy of the model on mixes of two training inputs of the same class, labelled with that class.

    Parameters
    ----------
    model, inputs, labels : as in ``natekar_sharma_score``.
    n_pairs : pairs of distinct same-class examples, drawn with replacement by
        ``fragmentation.draw_pairs`` (the draw depends on the data, not on its order, and the seed).
    weight : the mix is ``weight * x_a + (1 - weight) * x_b``, in [0, 1]; 0.5 (the midpoint) is
        the winner's choice and treats both ends alike.
    seed, batch_size : the pairs' seed; inputs per forward pass.

    Returns
    -------
    float in [0, 1]: the fraction of mixes classified as their class, per class, averaged over the
    classes that have pairs (every class counts equally, as in the winner's code).
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight!r}")
    model = as_classifier(model)
    inputs, labels = training_sample(model, inputs, labels, None, seed)
    first, second = draw_pairs(model.canonical_layout(inputs), labels, pairs="same_class", n_pairs=n_pairs, seed=seed)
    mixed = weight * inputs[first] + (1.0 - weight) * inputs[second]
    correct = model.logits(mixed.astype(np.float32), batch_size).argmax(axis=1) == labels[first]
    classes, positions = np.unique(labels[first], return_inverse=True)
    per_class = np.bincount(positions, weights=correct) / np.bincount(positions)
    return float(np.mean(per_class))
