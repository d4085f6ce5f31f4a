"""User-facing helpers, as in `keras.utils`."""

from __future__ import annotations

import random

import numpy as np

from gpunet import backend, naming, rng
from gpunet.pydataset import PyDataset

Sequence = PyDataset  # Keras 2's name, kept by Keras 3

__all__ = [
    "PyDataset",
    "Sequence",
    "clear_session",
    "normalize",
    "set_random_seed",
    "to_categorical",
]


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy, CuPy (when it runs) and gpunet's own global seed source."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"set_random_seed expects a non-negative int, received {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    rng.set_seed(seed)
    if backend.get_backend() == "cupy":
        backend.xp().random.seed(seed)


def clear_session() -> None:
    """Reset the default layer and model names (the next Dense is `dense` again)."""
    naming.reset()


def to_categorical(y, num_classes: int | None = None, dtype="float32") -> np.ndarray:
    """One-hot encode integer labels `y` (shape (N,) or (N, 1)) into (N, num_classes).

    Unlike Keras, which returns float64, the default dtype is float32: the dtype gpunet trains in.
    Device (CuPy) labels give a device array.
    """
    if backend.is_device_array(y):
        xp = backend.get_array_module(y)
        return xp.asarray(to_categorical(backend.to_host(y), num_classes, dtype))
    labels = np.asarray(y)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels.reshape(labels.shape[:-1])
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ValueError("to_categorical expects integer class labels; received non-integers.")
        labels = labels.astype(np.int64)
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"to_categorical: labels must lie in [0, {num_classes}); "
            f"received values from {labels.min()} to {labels.max()}."
        )
    out = np.zeros(labels.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, labels[..., None].astype(np.intp), 1, axis=-1)
    return out


def normalize(x, axis: int = -1, order: int = 2):
    """`x` divided by its `order`-norm along `axis` (rows of norm 0 stay as they are), as
    `keras.utils.normalize`; the shape is kept (Keras's NumPy path makes a 1-D input 2-D, its
    tensor path does not), and a device array gives a device array."""
    xp = backend.get_array_module(x)
    x = xp.asarray(x)
    magnitude = xp.abs(x)
    if order == 2:
        norm = xp.sqrt((x * x).sum(axis=axis, keepdims=True))
    elif order == np.inf:
        norm = magnitude.max(axis=axis, keepdims=True)
    elif order == 1:
        norm = magnitude.sum(axis=axis, keepdims=True)
    else:
        norm = (magnitude**order).sum(axis=axis, keepdims=True) ** (1.0 / order)
    return x / xp.where(norm == 0, 1, norm).astype(x.dtype, copy=False)
