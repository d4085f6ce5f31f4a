"""MNIST: 60,000 training and 10,000 test 28x28 grayscale images of handwritten digits."""

from __future__ import annotations

from gpunet.datasets import imagesets
from gpunet.datasets.locate import Source

SOURCE = Source(
    name="mnist",
    layouts=(("mnist.npz",), *imagesets.IDX_LAYOUTS),
    # The SHA-256 Keras publishes for its mnist.npz.
    sha256={"mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"},
    mirrors=("https://storage.googleapis.com/tensorflow/tf-keras-datasets/",),
    system_dirs=(),
    hint="run gpunet data fetch mnist where there is network, or put mnist.npz (or the four IDX "
    "files) in $GPUNET_DATA/mnist/.",
)


def load_data(path: str | None = None, allow_download: bool = True):
    """`(x_train, y_train), (x_test, y_test)`: uint8 (60000, 28, 28), (60000,), (10000, 28, 28),
    (10000,), as Keras returns them. `path`: a folder with mnist.npz or the four IDX files."""
    return imagesets.load(SOURCE, path, allow_download)
