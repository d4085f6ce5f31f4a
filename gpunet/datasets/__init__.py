"""Data sets: `gn.datasets.fashion_mnist.load_data()`, and the IDX reader beneath it."""

from gpunet.datasets import fashion_mnist
from gpunet.datasets.idx import DataError, read_idx

__all__ = ["DataError", "fashion_mnist", "read_idx"]
