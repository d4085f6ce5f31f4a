"""The base of every layer: `Layer` (name, declared input shape, build, weights as views of
the model's flat buffers, Keras's config) and the shape check the layers share."""

from __future__ import annotations

import numpy as np

from gpunet import backend, naming
from gpunet.backend import get_array_module
from gpunet.buffers import Buffers


def _shape_tuple(shape, what: str) -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{what} must be a tuple of ints, received {shape!r}.") from None
    if not shape or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        raise ValueError(f"{what} must be a non-empty tuple of positive ints, received {shape!r}.")
    return shape


class Layer:
    """Base layer.

    Args:
        name: unique name; by default the snake-cased class name, numbered (dense, dense_1, ...).
        input_shape: per-sample input shape, e.g. (784,); only the first layer needs it.
        input_dim: Keras 2 spelling of input_shape=(input_dim,).
    """

    def __init__(self, name: str | None = None, input_shape=None, input_dim: int | None = None):
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"Layer name must be a non-empty string, received {name!r}.")
        self.name = name or naming.unique_name(naming.snake_case(type(self).__name__))
        if input_dim is not None:
            input_shape = (input_dim,)
        self.declared_input_shape = (
            None if input_shape is None else _shape_tuple(input_shape, f"{self.name}: input_shape")
        )
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None
        self.need_input_grad = True
        self.trainable = True  # False: fit leaves its weights as they are (Keras)
        self._buffers = Buffers()

    @property
    def built(self) -> bool:
        return self.output_shape is not None

    def get_config(self) -> dict:
        """Keras's layer config: name, trainable, dtype, then the layer's own arguments (nested
        objects serialized); `from_config` rebuilds an equal layer with fresh weights."""
        config = {"name": self.name, "trainable": self.trainable, "dtype": "float32"}
        if self.declared_input_shape is not None:
            config["input_shape"] = list(self.declared_input_shape)
        return {**config, **self._config()}

    def _config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        arguments = dict(config)
        trainable = arguments.pop("trainable", True)
        arguments.pop("dtype", None)  # float32, the only dtype gpunet trains in
        layer = cls(**arguments)
        layer.trainable = bool(trainable)
        return layer

    def build(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Fix the per-sample input shape and return the per-sample output shape."""
        self._buffers.clear()
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        return self.output_shape

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return input_shape

    def param_specs(self) -> list:
        """(name, shape, initializer) of each parameter, in Keras order."""
        return []

    def bind(self, params: list, grads: list) -> None:
        """Receive this layer's parameter and gradient views of the model's flat buffers."""

    @property
    def weights(self) -> list:
        return []

    def state(self) -> dict:
        """Arrays the layer keeps that training does not update (Normalization's statistics),
        by name: saved with the weights and in checkpoints, after the parameters."""
        return {}

    def get_weights(self) -> list:
        """Host copies of this layer's weights (kernel, then bias), as Keras's layer method."""
        return [np.array(backend.to_host(w)) for w in self.weights]

    def set_weights(self, weights) -> None:
        """Copy host arrays into this layer's weights (the model's buffers); shapes must match."""
        targets = self.weights
        if len(weights) != len(targets):
            raise ValueError(
                f"{self.name}: set_weights expects {len(targets)} arrays, received {len(weights)}."
            )
        for target, value in zip(targets, weights):
            value = np.asarray(backend.to_host(value), dtype=target.dtype)
            if value.shape != target.shape:
                raise ValueError(
                    f"{self.name}: a weight of shape {target.shape} received {value.shape}."
                )
            backend.copy_to_device(target, value)  # no device temporary

    @property
    def regularized(self) -> bool:
        """Whether penalty() may return a value."""
        return False

    def penalty(self):
        """Regularization penalty (an xp scalar) or None."""
        return None

    def add_penalty_gradients(self, scale: float = 1.0) -> None:
        """Add scale * d penalty / d params to this layer's gradients."""

    def forward(self, x, training: bool):
        raise NotImplementedError

    def backward(self, gy):
        raise NotImplementedError

    def _buffer(self, key: str, like, shape: tuple[int, ...]):
        """A buffer like `like` (module, dtype) of `shape`, kept across batches."""
        return self._buffers.get(get_array_module(like), key, shape, like.dtype)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"
