"""Fashion-MNIST: 60,000 training and 10,000 test 28x28 grayscale images of 10 clothing classes.

Class 0..9: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot.
"""

from __future__ import annotations

import numpy as np

from gpunet.datasets.idx import DataError, read_idx
from gpunet.datasets.locate import find_files

NAME = "fashion_mnist"
FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
SYSTEM_DIRS = ("/usr/share/datasets/fashion-mnist",)
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
HINT = (
    "on Debian/Ubuntu, apt-get install dataset-fashion-mnist; or put the four IDX files in "
    "$GPUNET_DATA/fashion_mnist/."
)


def _pair(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataError(
            f"{images_path}: expected uint8 images of shape (N, 28, 28), found "
            f"{images.dtype} {images.shape}."
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{labels_path}: holds {labels.shape} labels for {len(images)} images in "
            f"{images_path}; the counts must match."
        )
    if labels.size and labels.max() >= 10:
        raise DataError(f"{labels_path}: labels must lie in [0, 10), found {labels.max()}.")
    return images, labels


def load_data(path: str | None = None):
    """`(x_train, y_train), (x_test, y_test)`: uint8 arrays (60000, 28, 28), (60000,),
    (10000, 28, 28), (10000,), as Keras returns them. `path` is a folder with the IDX files."""
    train_images, train_labels, test_images, test_labels = find_files(
        NAME, FILES, path, SYSTEM_DIRS, HINT
    )
    return _pair(train_images, train_labels), _pair(test_images, test_labels)
