"""Fashion-MNIST: 60,000 training and 10,000 test 28x28 grayscale images of 10 clothing classes."""

from __future__ import annotations

from gpunet.datasets import imagesets
from gpunet.datasets.locate import Source

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

SOURCE = Source(
    name="fashion_mnist",
    layouts=imagesets.IDX_LAYOUTS,
    # The SHA-256 Keras publishes for the files on its mirror.
    sha256={
        "train-images-idx3-ubyte.gz": (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
        ),
        "train-labels-idx1-ubyte.gz": (
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
        ),
        "t10k-images-idx3-ubyte.gz": (
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
        ),
    },
    mirrors=("https://storage.googleapis.com/tensorflow/tf-keras-datasets/",),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    hint="on Debian/Ubuntu, apt-get install dataset-fashion-mnist; or put the four IDX files in "
    "$GPUNET_DATA/fashion_mnist/; or run gpunet data fetch fashion_mnist where there is "
    "network.",
)


def load_data(path: str | None = None, allow_download: bool = True):
    """`(x_train, y_train), (x_test, y_test)`: uint8 (60000, 28, 28), (60000,), (10000, 28, 28),
    (10000,), as Keras returns them. `path`: a folder holding the four IDX files."""
    return imagesets.load(SOURCE, path, allow_download)
