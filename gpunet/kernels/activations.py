"""Activation functions, forward and backward, written once against the array module `xp`.

Every forward is `fwd(x, out) -> y` and every backward `bwd(gy, x, y, out) -> gx`; `out` may be
the input array itself (in place). Activations with `needs_input=False` compute their backward
from the output alone, so a layer may overwrite its pre-activation buffer with the output.
All constants are Python floats, so float32 stays float32 (NumPy 2 promotes with np.float64).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gpunet.backend import get_array_module
from gpunet.messages import unknown_name

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805
LEAKY_SLOPE = 0.2  # Keras 3's default negative_slope for the "leaky_relu" activation


@dataclass(frozen=True)
class Activation:
    """One activation: its name, forward, backward, and whether backward needs the input."""

    name: str
    fwd: Callable
    bwd: Callable
    needs_input: bool

    def __call__(self, x):
        return self.fwd(x, None)


def _out(x, out):
    return get_array_module(x).empty_like(x) if out is None else out


def _linear_fwd(x, out):
    if out is None or out is x:
        return x
    out[...] = x
    return out


def _linear_bwd(gy, x, y, out):
    return _linear_fwd(gy, out)


_ZEROS: dict = {}


def _zeros_like(x):
    """A read-only array of zeros shaped like x, kept per shape. NumPy 2.4 runs maximum(x, a)
    with SIMD only when `a` is an array, not a scalar: about 3.5x faster for a (128, 128) x."""
    xp = get_array_module(x)
    if xp is not np:
        return 0.0  # a GPU kernel takes the scalar at full speed
    key = (x.shape, x.dtype.str)
    zeros = _ZEROS.get(key)
    if zeros is None:
        # A model needs a few shapes (training, validation, last batches); start over rather
        # than grow past 32 arrays or 64 MB.
        if len(_ZEROS) >= 32 or sum(z.nbytes for z in _ZEROS.values()) + x.nbytes > 1 << 26:
            _ZEROS.clear()
        zeros = _ZEROS[key] = np.zeros(x.shape, x.dtype)
        zeros.flags.writeable = False
    return zeros


def _relu_fwd(x, out):
    return get_array_module(x).maximum(x, _zeros_like(x), out=_out(x, out))


def _relu_bwd(gy, x, y, out):
    # gy * (y > 0). With an out of its own, the mask is written there first: no temporary.
    xp = get_array_module(gy)
    out = _out(gy, out)
    if out is gy:
        return xp.multiply(gy, y > 0.0, out=out)
    xp.greater(y, 0.0, out=out)
    return xp.multiply(gy, out, out=out)


def _sigmoid_fwd(x, out):
    # exp(-log(1 + exp(-x))) never overflows, for x = -1e4 as for x = 1e4.
    xp = get_array_module(x)
    out = xp.negative(x, out=_out(x, out))
    xp.logaddexp(0.0, out, out=out)
    xp.negative(out, out=out)
    return xp.exp(out, out=out)


def _sigmoid_bwd(gy, x, y, out):
    xp = get_array_module(gy)
    tmp = xp.subtract(1.0, y)
    tmp *= y
    return xp.multiply(gy, tmp, out=_out(gy, out))


def _tanh_fwd(x, out):
    return get_array_module(x).tanh(x, out=_out(x, out))


def _tanh_bwd(gy, x, y, out):
    xp = get_array_module(gy)
    tmp = xp.multiply(y, y)
    xp.subtract(1.0, tmp, out=tmp)
    return xp.multiply(gy, tmp, out=_out(gy, out))


def softmax_lse(x, out=None, buffers=None):
    """Softmax of x over the last axis into `out`, and log(sum(exp(x))) of each row, from one
    exp pass: a fused softmax cross-entropy needs both. With `buffers` (a gpunet Buffers), the
    row statistics go into kept arrays instead of new ones."""
    # Subtracting the row max keeps exp() finite for any logits.
    xp = get_array_module(x)
    rows = x.shape[:-1] + (1,)
    top = total = None
    if buffers is not None:
        top = buffers.get(xp, "softmax_top", rows, x.dtype)
        total = buffers.get(xp, "softmax_total", rows, x.dtype)
    top = x.max(axis=-1, keepdims=True, out=top)
    out = xp.subtract(x, top, out=_out(x, out))
    xp.exp(out, out=out)
    total = out.sum(axis=-1, keepdims=True, out=total)
    out /= total
    xp.log(total, out=total)
    total += top
    return out, total[..., 0]


def _softmax_fwd(x, out):
    return softmax_lse(x, out)[0]


def _softmax_bwd(gy, x, y, out):
    # gx = y * (gy - sum(gy * y)): the Jacobian-vector product of softmax.
    xp = get_array_module(gy)
    dot = (gy * y).sum(axis=-1, keepdims=True)
    out = xp.subtract(gy, dot, out=_out(gy, out))
    out *= y
    return out


def _softplus_fwd(x, out):
    return get_array_module(x).logaddexp(0.0, x, out=_out(x, out))


def _softplus_bwd(gy, x, y, out):
    return get_array_module(gy).multiply(gy, _sigmoid_fwd(x, None), out=_out(gy, out))


def _softsign_fwd(x, out):
    xp = get_array_module(x)
    return xp.divide(x, xp.abs(x) + 1.0, out=_out(x, out))


def _softsign_bwd(gy, x, y, out):
    xp = get_array_module(gy)
    denom = xp.abs(x) + 1.0
    denom *= denom
    return xp.divide(gy, denom, out=_out(gy, out))


def _scaled_elu_fwd(x, out, alpha, scale):
    # expm1 of min(x, 0): the branch not taken can't overflow.
    xp = get_array_module(x)
    negative = xp.expm1(xp.minimum(x, 0.0))
    negative *= alpha * scale
    is_negative = x <= 0.0
    out = xp.multiply(x, scale, out=_out(x, out))
    xp.copyto(out, negative, where=is_negative)
    return out


def _scaled_elu_bwd(gy, y, out, alpha, scale):
    # For x <= 0, d/dx scale*alpha*(exp(x) - 1) = y + scale*alpha: the output is enough.
    xp = get_array_module(gy)
    factor = xp.where(y > 0.0, scale, y + alpha * scale)
    return xp.multiply(gy, factor, out=_out(gy, out))


def _elu_fwd(x, out):
    return _scaled_elu_fwd(x, out, 1.0, 1.0)


def _elu_bwd(gy, x, y, out):
    return _scaled_elu_bwd(gy, y, out, 1.0, 1.0)


def _selu_fwd(x, out):
    return _scaled_elu_fwd(x, out, SELU_ALPHA, SELU_SCALE)


def _selu_bwd(gy, x, y, out):
    return _scaled_elu_bwd(gy, y, out, SELU_ALPHA, SELU_SCALE)


def _leaky_relu_fwd(x, out):
    xp = get_array_module(x)
    return xp.maximum(x, x * LEAKY_SLOPE, out=_out(x, out))


def _leaky_relu_bwd(gy, x, y, out):
    xp = get_array_module(gy)
    factor = xp.where(y > 0.0, 1.0, LEAKY_SLOPE).astype(gy.dtype, copy=False)
    return xp.multiply(gy, factor, out=_out(gy, out))


def _erf(x):
    """erf for the exact gelu: SciPy's on NumPy arrays, cupyx's on CuPy arrays."""
    xp = get_array_module(x)
    if xp is not np:
        # CuPy keeps erf in cupyx; a CuPy-like module without cupyx (the test stand-in) has
        # its own.
        erf = getattr(xp, "erf", None)
        if erf is None:
            from cupyx.scipy.special import erf
    else:
        try:
            from scipy.special import erf
        except ImportError as exc:
            raise ImportError(
                "The exact 'gelu' activation needs SciPy for erf on the NumPy backend. "
                "Hint: pip install scipy."
            ) from exc
    return erf(x)


def _gelu_fwd(x, out):
    # Keras 3's default gelu is the exact one: x * Phi(x), Phi the normal CDF.
    xp = get_array_module(x)
    cdf = _erf(x * (1.0 / math.sqrt(2.0)))
    cdf += 1.0
    cdf *= 0.5
    return xp.multiply(x, cdf, out=_out(x, out))


def _gelu_bwd(gy, x, y, out):
    # d/dx x*Phi(x) = Phi(x) + x*phi(x).
    xp = get_array_module(gy)
    pdf = xp.exp(x * x * -0.5)
    pdf *= x * (1.0 / math.sqrt(2.0 * math.pi))
    cdf = _erf(x * (1.0 / math.sqrt(2.0)))
    cdf += 1.0
    cdf *= 0.5
    pdf += cdf
    return xp.multiply(gy, pdf, out=_out(gy, out))


def _silu_fwd(x, out):
    xp = get_array_module(x)
    return xp.multiply(x, _sigmoid_fwd(x, None), out=_out(x, out))


def _silu_bwd(gy, x, y, out):
    # d/dx x*s(x) = s * (1 + x * (1 - s)).
    xp = get_array_module(gy)
    s = _sigmoid_fwd(x, None)
    factor = xp.subtract(1.0, s)
    factor *= x
    factor += 1.0
    factor *= s
    return xp.multiply(gy, factor, out=_out(gy, out))


def _hard_sigmoid_fwd(x, out):
    # Keras 3: relu6(x + 3) / 6, i.e. clip(x / 6 + 0.5, 0, 1).
    xp = get_array_module(x)
    out = xp.multiply(x, 1.0 / 6.0, out=_out(x, out))
    out += 0.5
    return xp.clip(out, 0.0, 1.0, out=out)


def _hard_sigmoid_bwd(gy, x, y, out):
    xp = get_array_module(gy)
    inside = (y > 0.0) & (y < 1.0)
    out = xp.multiply(gy, inside, out=_out(gy, out))
    out *= 1.0 / 6.0
    return out


def _exponential_fwd(x, out):
    return get_array_module(x).exp(x, out=_out(x, out))


def _exponential_bwd(gy, x, y, out):
    return get_array_module(gy).multiply(gy, y, out=_out(gy, out))


_TABLE = {
    "linear": Activation("linear", _linear_fwd, _linear_bwd, False),
    "relu": Activation("relu", _relu_fwd, _relu_bwd, False),
    "sigmoid": Activation("sigmoid", _sigmoid_fwd, _sigmoid_bwd, False),
    "tanh": Activation("tanh", _tanh_fwd, _tanh_bwd, False),
    "softmax": Activation("softmax", _softmax_fwd, _softmax_bwd, False),
    "softplus": Activation("softplus", _softplus_fwd, _softplus_bwd, True),
    "softsign": Activation("softsign", _softsign_fwd, _softsign_bwd, True),
    "elu": Activation("elu", _elu_fwd, _elu_bwd, False),
    "selu": Activation("selu", _selu_fwd, _selu_bwd, False),
    "leaky_relu": Activation("leaky_relu", _leaky_relu_fwd, _leaky_relu_bwd, False),
    "gelu": Activation("gelu", _gelu_fwd, _gelu_bwd, True),
    "silu": Activation("silu", _silu_fwd, _silu_bwd, True),
    "hard_sigmoid": Activation("hard_sigmoid", _hard_sigmoid_fwd, _hard_sigmoid_bwd, False),
    "exponential": Activation("exponential", _exponential_fwd, _exponential_bwd, False),
}
_ALIASES = {"swish": "silu", None: "linear"}

NAMES = tuple(sorted(_TABLE)) + ("swish",)

# The activations as functions, as `keras.activations.relu(x)` (Keras's default options; a new
# array each call): `Dense(64, activation=gn.activations.relu)` works too.
linear, relu, sigmoid, tanh = (_TABLE[n] for n in ("linear", "relu", "sigmoid", "tanh"))
softmax, softplus, softsign = (_TABLE[n] for n in ("softmax", "softplus", "softsign"))
elu, selu, leaky_relu, gelu = (_TABLE[n] for n in ("elu", "selu", "leaky_relu", "gelu"))
silu = swish = _TABLE["silu"]
hard_sigmoid, exponential = _TABLE["hard_sigmoid"], _TABLE["exponential"]


def serialize(activation) -> str:
    """Keras 3 serializes a built-in activation as its name."""
    return get(activation).name


def deserialize(name) -> Activation:
    """The activation `serialize` named."""
    return get(name)


def get(identifier) -> Activation:
    """Resolve an activation name (or None, or an Activation) to its kernel pair."""
    if isinstance(identifier, Activation):
        return identifier
    if identifier is not None and not isinstance(identifier, str):
        raise unknown_name("activation", identifier, NAMES)
    key = _ALIASES.get(identifier, identifier)
    if isinstance(key, str) and key.lower() in _TABLE:
        return _TABLE[key.lower()]
    raise unknown_name("activation", identifier, NAMES)
