"""`Normalization` (Keras 3): (x - mean) / max(sqrt(variance), 1e-7) per feature, the statistics
given or learned by `adapt(data)`; not trained, kept with the weights."""

from __future__ import annotations

import numpy as np

from gpunet import backend
from gpunet.layers import Layer

EPSILON = 1e-7  # Keras's backend.epsilon(): the smallest standard deviation divided by


class Normalization(Layer):
    """Shift and scale inputs to zero mean and unit variance per feature.

    Args:
        axis: the feature axis (-1) or axes kept separate; None for one mean and variance.
        mean, variance: the statistics, instead of `adapt` (both or neither).
        invert: undo a normalization instead: mean + x * sqrt(variance).
    """

    def __init__(self, axis=-1, mean=None, variance=None, invert: bool = False, **kwargs):
        super().__init__(**kwargs)
        if (mean is None) != (variance is None):
            raise ValueError(
                f"{self.name}: give both mean and variance, or neither (then call adapt)."
            )
        if axis is not None and not isinstance(axis, (int, tuple, list)):
            raise ValueError(f"{self.name}: axis must be an int, a tuple of ints or None.")
        self.axis = tuple(axis) if isinstance(axis, (tuple, list)) else axis
        self.invert = bool(invert)
        self._given = None
        if mean is not None:
            self._given = (np.asarray(mean, np.float64), np.asarray(variance, np.float64))
            if (self._given[1] < 0).any():
                raise ValueError(f"{self.name}: variance must be >= 0.")
        self.mean = self.variance = None  # device arrays once built

    def _axes(self, ndim: int) -> tuple[int, ...]:
        """The feature axes (counting the batch axis), normalized to positive indices."""
        if self.axis is None:
            return ()
        axes = self.axis if isinstance(self.axis, tuple) else (self.axis,)
        return tuple(sorted(a % ndim for a in axes))

    def _stat_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the statistics: the feature axes' sizes, 1 elsewhere (broadcastable)."""
        axes = self._axes(len(shape) + 1)
        return tuple(n if i + 1 in axes else 1 for i, n in enumerate(shape))

    def build(self, input_shape):
        shape = super().build(input_shape)
        if self.mean is None:
            stat = self._stat_shape(self.input_shape)
            mean, variance = self._given or (np.zeros(stat), np.ones(stat))
            try:
                mean = np.broadcast_to(mean, stat)
                variance = np.broadcast_to(variance, stat)
            except ValueError:
                raise ValueError(
                    f"{self.name}: mean and variance must broadcast to {stat}, the statistics "
                    f"shape of inputs {self.input_shape}."
                ) from None
            self.mean = backend.to_device(np.ascontiguousarray(mean), "float32")
            self.variance = backend.to_device(np.ascontiguousarray(variance), "float32")
        return shape

    def adapt(self, data) -> None:
        """Learn the mean and (population) variance of `data` over every axis but the feature
        axes, in float64; the layer builds itself from the data's shape if needed."""
        data = np.asarray(backend.to_host(data), dtype=np.float64)
        if data.ndim < 2 or len(data) == 0:
            raise ValueError(f"{self.name}: adapt needs a batch of samples, received {data.shape}.")
        if self.input_shape is None:
            self.build(data.shape[1:])
        elif tuple(data.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{self.name}: adapt data has per-sample shape {data.shape[1:]}, the layer "
                f"{self.input_shape}."
            )
        features = self._axes(data.ndim)
        reduce = tuple(a for a in range(data.ndim) if a not in features)
        mean = data.mean(axis=reduce, keepdims=True)[0]
        variance = data.var(axis=reduce, keepdims=True)[0]
        self.mean[...] = backend.to_device(mean, "float32")
        self.variance[...] = backend.to_device(variance, "float32")

    def _scale(self, xp):
        return xp.maximum(xp.sqrt(self.variance), EPSILON)

    def forward(self, x, training):
        xp = backend.get_array_module(x)
        if self.invert:
            return self.mean + x * self._scale(xp)
        return (x - self.mean) / self._scale(xp)

    def backward(self, gy):
        if not self.need_input_grad:
            return None
        xp = backend.get_array_module(gy)
        return gy * self._scale(xp) if self.invert else gy / self._scale(xp)

    @property
    def weights(self):
        """The statistics, as Keras lists them: [mean, variance] (not trained)."""
        return [] if self.mean is None else [self.mean, self.variance]

    def state(self) -> dict:
        return {} if self.mean is None else {"mean": self.mean, "variance": self.variance}

    def _config(self) -> dict:
        config = {"axis": self.axis, "invert": self.invert}
        if self._given is not None:
            config["mean"], config["variance"] = (v.tolist() for v in self._given)
        return config
