"""Inverted dropout with masks from a counter-based generator: kept units are scaled by
1 / (1 - rate) in training; inference is a no-op.

Element i of a draw at offset `offset` of the stream with key `seed` is kept when
splitmix64(seed + (offset + i) * GOLDEN) >= threshold(rate), all arithmetic modulo 2^64. The
bits depend on (seed, offset, i) alone, never on a generator's hidden state, so NumPy, CuPy and
the CUDA twin (`dropout_fwd` in kernels/_cuda.py) draw the same masks bit for bit, and a
checkpoint needs two integers per stream to resume exactly.
"""

from __future__ import annotations

import numpy as np

from gpunet.backend import get_array_module

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15  # 2^64 / golden ratio: splitmix64's counter step
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
UNIFORM_BITS = 24  # a draw is a uniform k / 2^24, k the hash's top 24 bits (as float32 holds)


def threshold(rate: float) -> int:
    """The smallest 64-bit hash that keeps a unit: its top 24 bits k satisfy k / 2^24 >= rate,
    with rate rounded to float32 as the CUDA kernel sees it."""
    k = int(np.ceil(float(np.float32(rate)) * (1 << UNIFORM_BITS)))
    return min(k << (64 - UNIFORM_BITS), MASK64)  # a rate that rounds to 1.0 keeps nothing


def lanes(xp, shape, seed: int):
    """seed + i * GOLDEN for each element i of `shape` (uint64, wrapping), made on the device."""
    out = xp.arange(int(np.prod(shape)), dtype=xp.uint64).reshape(shape)
    out *= GOLDEN
    out += seed & MASK64
    return out


def counter_bits(lanes_, base, out, tmp):
    """out = splitmix64(lanes + base) elementwise (uint64): the stream's hashes at counter
    offset `base` / GOLDEN. `base` is a one-element device array; `tmp` a scratch like out."""
    xp = get_array_module(out)
    xp.add(lanes_, base, out=out)
    # splitmix64's finalizer: z ^= z >> 30; z *= MIX1; z ^= z >> 27; z *= MIX2; z ^= z >> 31.
    for shift, multiplier in ((30, MIX1), (27, MIX2), (31, None)):
        xp.right_shift(out, shift, out=tmp)
        out ^= tmp
        if multiplier is not None:
            out *= multiplier
    return out


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
