"""Inverted dropout with masks from a counter-based generator: kept units are scaled by
1 / (1 - rate) in training; inference is a no-op.

A stream is (seed, offset): `offset` counts the units drawn so far. A draw of n units at offset o
hashes each unit index i with the draw's key k = draw_key(seed, o):
    bits_i = lowbias32(lowbias32(i) ^ k)            (uint32, all arithmetic modulo 2^32)
and keeps unit i when the top 24 bits of bits_i, as k / 2^24, are >= rate. lowbias32 is a
bijection, so the units of one draw never share an input; draw_key mixes seed and offset with
splitmix64. The bits depend on (seed, offset, i) alone, never on a generator's hidden state, so
NumPy, CuPy and the fused CUDA kernel (`bias_act_fwd` in gpunet/cuda/layers.cu) draw the same
masks bit for bit, and a checkpoint needs two integers per stream to resume exactly. 32-bit
lanes: NumPy multiplies uint32 with SIMD, uint64 without.
"""

from __future__ import annotations

import numpy as np

from gpunet.backend import get_array_module

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1
LOWBIAS = ((16, 0x7FEB352D), (15, 0x846CA68B), (16, None))  # (shift, multiplier) rounds
UNIFORM_BITS = 24  # a draw is a uniform k / 2^24, k the hash's top 24 bits (as float32 holds)


def splitmix64(z: int) -> int:
    """splitmix64's step and finalizer on a Python int (the draw key's mixer)."""
    z = (z + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def draw_key(seed: int, offset: int) -> int:
    """The 32-bit key of the draw at `offset` of the stream `seed`."""
    return splitmix64((seed & MASK64) ^ splitmix64(offset & MASK64)) & MASK32


def threshold(rate: float) -> int:
    """The smallest 32-bit hash that keeps a unit: its top 24 bits k satisfy k / 2^24 >= rate,
    with rate rounded to float32 as the CUDA kernel sees it."""
    k = int(np.ceil(float(np.float32(rate)) * (1 << UNIFORM_BITS)))
    return min(k << (32 - UNIFORM_BITS), MASK32)  # a rate that rounds to 1.0 keeps nothing


def _lowbias32(out, tmp):
    # x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16 (in place)
    xp = get_array_module(out)
    for shift, multiplier in LOWBIAS:
        xp.right_shift(out, shift, out=tmp)
        out ^= tmp
        if multiplier is not None:
            out *= multiplier
    return out


def lanes(xp, shape, first: int = 0):
    """lowbias32(i) for each unit index i = first, first + 1, ... of `shape` (uint32), made on
    the device once. A rank's shard of a global batch starts at its first unit there."""
    size = int(np.prod(shape))
    out = xp.arange(first, first + size, dtype=xp.uint32).reshape(shape)
    return _lowbias32(out, xp.empty_like(out))


def counter_bits(lanes_, key, out, tmp):
    """out = lowbias32(lanes ^ key) (uint32): a draw's hashes; `key` a one-element uint32
    device array holding draw_key(seed, offset), `tmp` a scratch like out."""
    get_array_module(out).bitwise_xor(lanes_, key, out=out)
    return _lowbias32(out, tmp)


def dropout_fwd(x, rate, bits, mask, out=None):
    """y = x * mask, mask = (bits >= threshold(rate)) / (1 - rate); `bits` from counter_bits.

    `mask` is a caller-owned buffer shaped and typed like x; it is kept for the backward pass.
    """
    xp = get_array_module(x)
    xp.greater_equal(bits, threshold(rate), out=mask)
    mask *= 1.0 / (1.0 - rate)
    return xp.multiply(x, mask, out=out)


def dropout_bwd(gy, mask, out=None):
    """gx = gy * mask: gradients flow only through the kept units, with the same scale."""
    return get_array_module(gy).multiply(gy, mask, out=out)
