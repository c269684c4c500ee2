"""Class labels as the measures take them: indices of shape ``(n,)``, ``(n, 1)`` or one-hot ``(n, k)``."""

from __future__ import annotations

import numpy as np


def class_indices(labels: np.ndarray) -> np.ndarray:
    """Labels as a 1-D int64 array of class indices; accepts indices of shape (n,) or (n, 1), or one-hot."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    elif labels.ndim == 2:
        labels = labels.argmax(axis=1)
    if labels.ndim != 1:
        raise ValueError(f"labels must be class indices of shape (n,) or one-hot of shape (n, k), "
                         f"got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ValueError("labels must be whole class indices")
    return labels.astype(np.int64)
