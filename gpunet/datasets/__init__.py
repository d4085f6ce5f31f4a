"""Data sets: `mnist` and `fashion_mnist` (`load_data()` as in Keras), user files, and the
float32 pipeline helpers."""

from gpunet.datasets import fashion_mnist, mnist, user
from gpunet.datasets.idx import DataError, read_idx
from gpunet.datasets.pipeline import images_to_float32

__all__ = ["DataError", "fashion_mnist", "images_to_float32", "mnist", "read_idx", "user"]
