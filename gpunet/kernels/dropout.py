"""Inverted dropout: kept units are scaled by 1 / (1 - rate) in training; inference is a no-op."""

from __future__ import annotations

from gpunet.backend import get_array_module


def dropout_fwd(x, rate, generator, mask, out=None):
    """y = x * mask, with mask = (u >= rate) / (1 - rate) for u ~ U[0, 1) drawn into `mask`.

    `mask` is a caller-owned buffer shaped and typed like x; it is kept for the backward pass.
    """
    xp = get_array_module(x)
    generator.random(dtype=mask.dtype, out=mask)
    xp.greater_equal(mask, rate, out=mask)
    mask *= 1.0 / (1.0 - rate)
    return xp.multiply(x, mask, out=out)


def dropout_bwd(gy, mask, out=None):
    """gx = gy * mask: gradients flow only through the kept units, with the same scale."""
    return get_array_module(gy).multiply(gy, mask, out=out)
