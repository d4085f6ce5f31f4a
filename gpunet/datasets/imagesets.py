"""Loading the 28x28, 10-class image data sets (MNIST, Fashion-MNIST) from IDX files or Keras's
`.npz`, with every file checked and named when something is wrong."""

from __future__ import annotations

import zipfile

import numpy as np

from gpunet.datasets.idx import DataError, read_idx
from gpunet.datasets.locate import Source, discard_if_cached, locate

NUM_CLASSES = 10
# The four IDX files of MNIST and Fashion-MNIST, in the order `load` reads them; gzip or raw.
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
IDX_LAYOUTS = (tuple(f + ".gz" for f in IDX_FILES), IDX_FILES)


def check_pair(images, labels, images_name: str, labels_name: str):
    """Refuse images that are not uint8 (N, 28, 28), or labels that do not match them."""
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataError(
            f"{images_name}: expected uint8 images of shape (N, 28, 28), found "
            f"{images.dtype} {images.shape}."
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{labels_name}: holds {labels.shape[0] if labels.ndim else 0} labels for "
            f"{len(images)} images in {images_name}; the counts must match."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataError(
            f"{labels_name}: labels must lie in [0, {NUM_CLASSES}), found values from "
            f"{labels.min()} to {labels.max()}."
        )
    return images, labels.astype(np.uint8, copy=False)


def _read_npz(path: str):
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except KeyError as exc:
        raise DataError(
            f"{path}: missing array {exc}; expected x_train, y_train, x_test, y_test."
        ) from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, NotImplementedError) as exc:
        # ValueError is also what NumPy raises for a pickled object array: refused, never loaded.
        raise DataError(f"{path}: not a readable .npz archive ({exc}).") from None
    train = check_pair(arrays["x_train"], arrays["y_train"], f"{path}[x_train]", f"{path}[y_train]")
    test = check_pair(arrays["x_test"], arrays["y_test"], f"{path}[x_test]", f"{path}[y_test]")
    return train, test


def _read_checked(paths: list[str], reader):
    """Run reader(paths); on a DataError drop any of the files that sit in gpunet's cache."""
    try:
        return reader(paths)
    except DataError as exc:
        error = exc
        for path in paths:
            error = discard_if_cached(path, error)
        raise error from None


def _read_idx_layout(paths):
    train_x, train_y, test_x, test_y = paths
    train = check_pair(read_idx(train_x), read_idx(train_y), train_x, train_y)
    test = check_pair(read_idx(test_x), read_idx(test_y), test_x, test_y)
    return train, test


def load(
    source: Source, path: str | None = None, allow_download: bool = True, show_progress: bool = True
):
    """`(x_train, y_train), (x_test, y_test)` as uint8 arrays, from wherever `locate` finds them."""
    paths = locate(source, path, allow_download, show_progress)
    if len(paths) == 1:
        return _read_checked(paths, lambda p: _read_npz(p[0]))
    return _read_checked(paths, _read_idx_layout)
