"""Layers: Input, Dense, Activation, Dropout, Flatten (the normalization layers live in
`gpunet.normalization`, the base class in `gpunet.layer_base`). Each owns its parameters (views
into the model's flat buffer) and its forward/backward buffers; the math lives in
`gpunet.kernels`."""

from __future__ import annotations

import math

from gpunet import initializers, naming, regularizers, rng
from gpunet.backend import get_array_module
from gpunet.kernels import activations
from gpunet.kernels import dropout as dropout_kernels
from gpunet.kernels.dense import dense_bwd, dense_fwd
from gpunet.layer_base import Layer, _shape_tuple
from gpunet.messages import unknown_name
from gpunet.normalization import BatchNormalization, Normalization


class InputLayer(Layer):
    """Declares the per-sample input shape of a Sequential model; it holds no computation.

    Args:
        shape: per-sample shape, e.g. (784,) or (28, 28).
        batch_shape: Keras's config spelling, the batch axis first: (None, 784).
    """

    def __init__(self, shape=None, name: str | None = None, batch_shape=None):
        super().__init__(name=name or naming.unique_name("input_layer"))
        if batch_shape is not None:
            shape = tuple(batch_shape)[1:]
        self.declared_input_shape = _shape_tuple(shape, f"{self.name}: shape")

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "batch_shape": [None, *self.declared_input_shape],
            "dtype": "float32",
        }


def Input(shape, name: str | None = None) -> InputLayer:  # noqa: N802 (Keras spelling)
    """The input of a Sequential model: `Input((784,))`."""
    return InputLayer(shape, name=name)


class _Activated(Layer):
    """A layer ending in an activation, which a fused loss may take over (softmax + CE)."""

    def __init__(self, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self._logits = self._y = None

    def _activate(self, z, own_buffer: bool, activate: bool):
        """The activation of z; in place unless the input must be kept. With activate=False,
        z itself: the logits, for a loss fused with this activation."""
        act = self.activation
        self._logits = z
        if not activate or act.name == "linear":
            self._y = z
        elif own_buffer or act.needs_input:
            self._y = act.fwd(z, self._buffer("y", z, z.shape))
        else:
            self._y = act.fwd(z, z)
        return self._y

    def _activation_grad(self, gy, from_logits: bool):
        """Gradient w.r.t. the pre-activation, into a kept buffer."""
        if from_logits or self.activation.name == "linear":
            return gy
        return self.activation.bwd(gy, self._logits, self._y, self._buffer("gz", gy, gy.shape))


class Dense(_Activated):
    """Fully connected layer: y = activation(x @ kernel + bias).

    Args:
        units: output width (positive int).
        activation: name of the activation (see `gpunet.kernels.activations.NAMES`); None = linear.
        use_bias: add a bias vector.
        kernel_initializer: initializer of the (in, units) kernel; "glorot_uniform" by default.
        bias_initializer: initializer of the (units,) bias; "zeros" by default.
        kernel_regularizer, bias_regularizer: "l1", "l2", "l1_l2", a Regularizer, or None.
    Input (N, in) float32; output (N, units) float32.
    """

    def __init__(
        self,
        units: int,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(activation=activation, **kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"{self.name}: units must be a positive int, received {units!r}.")
        self.units = units
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel = self.bias = self.g_kernel = self.g_bias = None

    def _config(self) -> dict:
        return {
            "units": self.units,
            "activation": self.activation.name,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": _serialized(self.kernel_regularizer),
            "bias_regularizer": _serialized(self.bias_regularizer),
        }

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"{self.name}: Dense expects flat per-sample inputs (in,), received shape "
                f"{input_shape}.\nHint: put a Flatten layer before it."
            )
        return (self.units,)

    def param_specs(self):
        specs = [("kernel", (self.input_shape[0], self.units), self.kernel_initializer)]
        if self.use_bias:
            specs.append(("bias", (self.units,), self.bias_initializer))
        return specs

    def bind(self, params, grads):
        self.kernel, self.g_kernel = params[0], grads[0]
        if self.use_bias:
            self.bias, self.g_bias = params[1], grads[1]

    @property
    def weights(self):
        if self.kernel is None:  # not built: no weights yet, as a Keras layer before build
            return []
        return [self.kernel, self.bias] if self.use_bias else [self.kernel]

    @property
    def regularized(self):
        return self.kernel_regularizer is not None or self.bias_regularizer is not None

    def penalty(self):
        terms = [
            reg(w)
            for reg, w in (
                (self.kernel_regularizer, self.kernel),
                (self.bias_regularizer, self.bias),
            )
            if reg is not None
        ]
        return sum(terms[1:], terms[0]) if terms else None

    def forward(self, x, training, activate: bool = True):
        self._x = x
        z = dense_fwd(x, self.kernel, self.bias, out=self._buffer("z", x, (x.shape[0], self.units)))
        return self._activate(z, own_buffer=False, activate=activate)

    def backward(self, gy, from_logits: bool = False):
        gz = self._activation_grad(gy, from_logits)
        x = self._x
        gx = self._buffer("gx", x, x.shape) if self.need_input_grad else None
        ones = self._buffers.constant(
            get_array_module(x), "ones", (x.shape[0],), x.dtype, lambda xp, s, d: xp.ones(s, d)
        )
        gx = dense_bwd(
            x, self.kernel, gz, self.g_kernel, self.g_bias, gx, self.need_input_grad, ones
        )
        return gx

    def add_penalty_gradients(self, scale: float = 1.0) -> None:
        """Add scale * the regularizers' gradients to the kernel's and bias's gradients."""
        if self.kernel_regularizer is not None:
            self.kernel_regularizer.add_grad(self.kernel, self.g_kernel, scale)
        if self.bias_regularizer is not None and self.use_bias:
            self.bias_regularizer.add_grad(self.bias, self.g_bias, scale)


class Activation(_Activated):
    """Applies an activation function to its input.

    Args:
        activation: name of the activation, e.g. "softmax".
    """

    def __init__(self, activation, **kwargs):
        super().__init__(activation=activation, **kwargs)

    def _config(self) -> dict:
        return {"activation": self.activation.name}

    def forward(self, x, training, activate: bool = True):
        # Never in place: the previous layer may need its own output for its backward pass.
        return self._activate(x, own_buffer=True, activate=activate)

    def backward(self, gy, from_logits: bool = False):
        return self._activation_grad(gy, from_logits)


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability `rate` and scale the rest
    by 1 / (1 - rate); in evaluate/predict, the identity.

    Masks come from a counter-based stream (gpunet.kernels.dropout): the same seed gives the
    same masks on NumPy and CuPy, and (seed, offset) is the whole generator state.

    Args:
        rate: fraction of units to drop, in [0, 1).
        seed: seed of this layer's stream; drawn from the global seed source when None.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ValueError(
                f"{self.name}: Dropout rate must be a float in [0, 1), received {rate!r}."
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"{self.name}: seed must be an int >= 0 or None, received {seed!r}.")
        self.rate = float(rate)
        self.seed = seed
        self.stream_seed: int | None = None  # fixed when the model is built
        self.offset = 0  # units drawn so far
        # (first row, rows) of the next training batch in its global batch, when it is a
        # rank's shard: its masks are those of its rows in the global batch's draw.
        self.position = None
        self._mask = None

    def _config(self) -> dict:
        return {"rate": self.rate, "seed": self.seed}

    def build(self, input_shape):
        self.stream_seed = rng.draw_seed() if self.seed is None else self.seed
        self.offset = 0
        return super().build(input_shape)

    def get_stream(self) -> tuple[int, int]:
        """(seed, offset): all a checkpoint needs to continue this layer's masks exactly."""
        return self.stream_seed, self.offset

    def set_stream(self, seed: int, offset: int) -> None:
        self.stream_seed, self.offset = int(seed), int(offset)

    def forward(self, x, training):
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        xp = get_array_module(x)
        buffers = self._buffers
        key = buffers.constant(xp, "key", (1,), xp.uint32, lambda xp, s, d: xp.zeros(s, d))
        # A scalar written into device memory: no host-to-device copy, no allocation.
        key.fill(dropout_kernels.draw_key(self.stream_seed, self.offset))
        first, rows = self.position or (0, x.shape[0])
        units = math.prod(x.shape[1:])
        self.offset += rows * units
        lanes = buffers.constant(
            xp,
            f"lanes@{first}",
            x.shape,
            xp.uint32,
            lambda xp, s, d: dropout_kernels.lanes(xp, s, first * units),
        )
        bits = self._buffer("bits", lanes, x.shape)
        dropout_kernels.counter_bits(lanes, key, bits, self._buffer("tmp", lanes, x.shape))
        self._mask = self._buffer("mask", x, x.shape)
        y = self._buffer("y", x, x.shape)
        return dropout_kernels.dropout_fwd(x, self.rate, bits, self._mask, y)

    def backward(self, gy):
        if not self.need_input_grad:
            return None
        return gy if self._mask is None else dropout_kernels.dropout_bwd(gy, self._mask, out=gy)


class Flatten(Layer):
    """Flattens each sample to a vector: (N, 28, 28) -> (N, 784)."""

    def compute_output_shape(self, input_shape):
        size = 1
        for dim in input_shape:
            size *= dim
        return (size,)

    def forward(self, x, training):
        return x.reshape(x.shape[0], -1)

    def backward(self, gy):
        return gy.reshape((gy.shape[0],) + self.input_shape) if self.need_input_grad else None


def _serialized(regularizer):
    return None if regularizer is None else regularizers.serialize(regularizer)


_BY_NAME = {
    "Dense": Dense,
    "Activation": Activation,
    "Dropout": Dropout,
    "Flatten": Flatten,
    "Normalization": Normalization,
    "BatchNormalization": BatchNormalization,
}


def get(name: str):
    """The layer class called `name` (as written in configs: "Dense", "Dropout", ...)."""
    if isinstance(name, str) and name in _BY_NAME:
        return _BY_NAME[name]
    raise unknown_name("layer", name, sorted(_BY_NAME))
