"""The normalization layers of Keras 3: `Normalization` ((x - mean) / max(sqrt(variance), 1e-7)
per feature, the statistics given or learned by `adapt`) and `BatchNormalization` (batch
statistics while training, moving ones otherwise, then gamma and beta). Statistics are not
trained; they are kept with the weights (`Layer.state`)."""

from __future__ import annotations

import numpy as np

from gpunet import backend, initializers
from gpunet.layer_base import Layer

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
        self.adapted_count = 0  # samples adapt() averaged (Keras saves it as `count`)

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
        self.adapted_count = data.size // mean.size  # Keras's `count`: values per statistic

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


class BatchNormalization(Layer):
    """Normalize each feature over the batch while training (and update moving statistics),
    by the moving statistics otherwise; then scale by gamma and shift by beta (Keras 3).

    Args:
        axis: the feature axis; -1 (flat inputs (N, features), what an MLP has).
        momentum: moving = moving * momentum + batch * (1 - momentum); 0.99.
        epsilon: added to the variance before the square root; 1e-3.
        center, scale: learn beta and gamma.
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer: zeros, ones, zeros, ones.
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if axis not in (-1, 1):
            raise ValueError(
                f"{self.name}: axis must be -1 (the feature axis of flat inputs), "
                f"received {axis!r}."
            )
        for name, value in (("momentum", momentum), ("epsilon", epsilon)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{self.name}: {name} must be a number >= 0, received {value!r}.")
        self.axis, self.momentum, self.epsilon = -1, float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.gamma = self.beta = self.g_gamma = self.g_beta = None
        self.moving_mean = self.moving_variance = None

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"{self.name}: BatchNormalization takes flat per-sample inputs (features,), "
                f"received {input_shape}.\nHint: put a Flatten layer before it."
            )
        return input_shape

    def build(self, input_shape):
        shape = super().build(input_shape)
        stat = (shape[0],)
        self.moving_mean = backend.to_device(self.moving_mean_initializer(stat, "float32"))
        self.moving_variance = backend.to_device(self.moving_variance_initializer(stat, "float32"))
        return shape

    def param_specs(self):
        features = (self.input_shape[0],)
        specs = [("gamma", features, self.gamma_initializer)] if self.scale else []
        return specs + ([("beta", features, self.beta_initializer)] if self.center else [])

    def bind(self, params, grads):
        named = dict(zip([s[0] for s in self.param_specs()], zip(params, grads)))
        self.gamma, self.g_gamma = named.get("gamma", (None, None))
        self.beta, self.g_beta = named.get("beta", (None, None))

    def forward(self, x, training):
        xp = backend.get_array_module(x)
        self._batch_statistics = training and self.trainable  # frozen: inference mode (Keras 3)
        if self._batch_statistics:
            mean = x.mean(axis=0)
            centered = x - mean
            variance = (centered * centered).mean(axis=0)  # the population variance, as Keras
            # moving = moving * momentum + batch * (1 - momentum), in place
            for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
                moving *= self.momentum
                moving += (1.0 - self.momentum) * batch
        else:
            mean, variance = self.moving_mean, self.moving_variance
        self._inverse_std = 1.0 / xp.sqrt(variance + self.epsilon)
        self._xhat = (x - mean) * self._inverse_std
        y = self._xhat * self.gamma if self.scale else self._xhat.copy()
        if self.center:
            y += self.beta
        return y

    def backward(self, gy):
        # With xhat = (x - mean) / std over the batch: gx = (N gxhat - sum gxhat
        # - xhat * sum(gxhat * xhat)) / (N std); gamma gets sum(gy * xhat), beta sum(gy).
        xhat = self._xhat
        if self.scale:
            self.g_gamma[...] = (gy * xhat).sum(axis=0)
        if self.center:
            self.g_beta[...] = gy.sum(axis=0)
        if not self.need_input_grad:
            return None
        g_xhat = gy * self.gamma if self.scale else gy
        if not self._batch_statistics:  # constant statistics: a per-feature scale
            return g_xhat * self._inverse_std
        n = gy.shape[0]
        inner = n * g_xhat - g_xhat.sum(axis=0) - xhat * (g_xhat * xhat).sum(axis=0)
        return inner * (self._inverse_std / n)

    @property
    def weights(self):
        """gamma, beta (trained), then moving_mean, moving_variance (not), in Keras's order."""
        if self.moving_mean is None:
            return []
        trained = [w for w in (self.gamma, self.beta) if w is not None]
        return trained + [self.moving_mean, self.moving_variance]

    def state(self) -> dict:
        if self.moving_mean is None:
            return {}
        return {"moving_mean": self.moving_mean, "moving_variance": self.moving_variance}

    def _config(self) -> dict:
        return {
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
        }
