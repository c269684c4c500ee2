import numpy as np
import pytest

from complexity_measure.classifier import Classifier
from complexity_measure.sampling import canonical_order, sample_indices, training_sample


def data(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3, 2)).astype(np.float32), rng.integers(0, 4, n)


def test_a_sample_depends_on_the_examples_not_their_order():
    inputs, labels = data()
    shuffle = np.random.default_rng(9).permutation(len(inputs))
    first = inputs[sample_indices(inputs, labels, 12, seed=1)]
    second = inputs[shuffle][sample_indices(inputs[shuffle], labels[shuffle], 12, seed=1)]
    np.testing.assert_array_equal(first, second)
    other_seed = inputs[sample_indices(inputs, labels, 12, seed=2)]
    assert not np.array_equal(first, other_seed)


def test_sample_size_and_distinctness():
    inputs, labels = data()
    chosen = sample_indices(inputs, labels, 20, seed=0)
    assert len(chosen) == 20 and len(set(chosen.tolist())) == 20
    assert sorted(sample_indices(inputs, labels, 500, seed=0).tolist()) == list(range(50))
    with pytest.raises(ValueError, match="n_examples must be a positive integer, got 0"):
        sample_indices(inputs, labels, 0, seed=0)


def test_canonical_order_sorts_by_label_first():
    inputs, labels = data()
    assert np.all(np.diff(labels[canonical_order(inputs, labels)]) >= 0)


class NoShape(Classifier):
    """Stands for a model whose input shape is unknown (its check_inputs accepts any)."""


def test_training_sample_validates_and_converts():
    inputs, labels = data()
    x, y = training_sample(NoShape(), inputs.astype(np.float64), np.eye(4)[labels], None, 0)
    assert x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)
    with pytest.raises(ValueError, match="50 examples but labels has 49"):
        training_sample(NoShape(), inputs, labels[:-1], None, 0)
