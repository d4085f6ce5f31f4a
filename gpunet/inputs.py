"""Checking and converting what users pass to fit/evaluate/predict: arrays, batch sizes,
sample and class weights, and gathering shuffled batches into reused buffers."""

from __future__ import annotations

import math
import numbers

import numpy as np

from gpunet import backend

FLOATX = "float32"


def check_batch_size(batch_size) -> int:
    """A positive int; None means Keras's default of 32."""
    if batch_size is None:
        return 32
    if not is_int(batch_size) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, received {batch_size!r}.")
    return int(batch_size)


def is_int(value) -> bool:
    """A Python or NumPy integer (Keras takes np.int64 epochs), never a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def as_array(array, name: str):
    """Accept NumPy/CuPy arrays and array-likes; refuse None and ragged input."""
    if array is None:
        raise ValueError(f"{name} is required, received None.")
    if backend.is_device_array(array):
        return array
    try:
        return np.asarray(array)
    except ValueError as exc:
        raise ValueError(f"{name} could not be read as an array: {exc}") from None


def host_array(array):
    """`array` in host memory (a device array copied; anything else as it is)."""
    return backend.to_host(array) if backend.is_device_array(array) else array


def check_finite(array, name: str) -> None:
    """Refuse NaN or inf in a float array, naming the first bad sample."""
    xp = backend.get_array_module(array)
    if array.dtype.kind == "f" and not bool(xp.isfinite(array).all()):
        bad = int(backend.to_host(xp.argwhere(~xp.isfinite(array))[0, 0]))
        raise ValueError(
            f"{name} contains NaN or inf (first at sample {bad}); clean or impute it before "
            "training."
        )


def check_sample_weight(sample_weight, n: int, where: str) -> np.ndarray:
    """A host float32 vector of n finite weights (shape (n,) or (n, 1) accepted)."""
    sample_weight = np.asarray(backend.to_host(sample_weight), dtype=FLOATX)
    if sample_weight.shape not in ((n,), (n, 1)):
        raise ValueError(
            f"{where}: sample_weight must have shape ({n},), received {sample_weight.shape}."
        )
    check_finite(sample_weight, f"{where}: sample_weight")
    return sample_weight.reshape(n)


def class_weights(y, class_weight: dict) -> np.ndarray:
    """Per-sample weights from {class: weight} (Keras: 1.0 for classes not listed); one-hot
    targets use their argmax."""
    for label, weight in class_weight.items():
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            raise ValueError(f"class_weight: {label!r}: a weight must be a number, got {weight!r}.")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(
                f"class_weight: {label!r}: a weight must be finite and >= 0, got {weight!r}."
            )
    y = np.asarray(backend.to_host(y))
    if y.ndim > 1:
        y = y.argmax(axis=-1) if y.shape[-1] != 1 else y.reshape(-1)
    labels = np.round(y).astype(np.int64)
    weights = np.ones(len(labels), dtype=FLOATX)
    for label, weight in class_weight.items():
        weights[labels == int(label)] = weight
    return weights


def gather(xp, source, indices, out):
    """out = source[indices] without allocating (NumPy's take buffers unless mode='clip')."""
    if xp is np:
        return source.take(indices, axis=0, out=out, mode="clip")
    return source.take(indices, axis=0, out=out)
