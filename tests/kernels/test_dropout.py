import numpy as np
import pytest

from gpunet.kernels import dropout
from tests.gradcheck import assert_grad_close, numerical_grad

M32, M64 = (1 << 32) - 1, (1 << 64) - 1


def _splitmix64(z: int) -> int:
    """The published splitmix64 (step and finalizer) on Python ints: an independent reference."""
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _lowbias32(x: int) -> int:
    """Wellons's lowbias32 on Python ints."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


def _bits(xp, shape, seed, offset):
    key = xp.zeros(1, dtype=xp.uint32)
    key.fill(dropout.draw_key(seed, offset))
    lanes = dropout.lanes(xp, shape)
    out, tmp = xp.empty(shape, xp.uint32), xp.empty(shape, xp.uint32)
    return dropout.counter_bits(lanes, key, out, tmp)


def test_counter_bits_are_the_documented_hash_of_seed_offset_and_index():
    seed, offset = 2**63 + 12345, 7
    key = _splitmix64(seed ^ _splitmix64(offset)) & M32
    bits = _bits(np, (3, 5), seed, offset)
    assert bits.reshape(-1).tolist() == [_lowbias32(_lowbias32(i) ^ key) for i in range(15)]


def test_threshold_keeps_exactly_the_uniforms_at_or_above_the_rate():
    # u = k / 2^24 from the top 24 bits; kept <=> u >= float32(rate).
    for rate in (0.0, 0.3, 0.5, 1 / 3, 0.999):
        t = dropout.threshold(rate)
        k = t >> 8
        assert k / 2**24 >= np.float32(rate) > (k - 1) / 2**24


def test_keeps_about_one_minus_rate_and_scales_kept_units(xp):
    x = xp.ones((200, 100), dtype=xp.float32)
    mask = xp.empty_like(x)
    y = dropout.dropout_fwd(x, 0.3, _bits(xp, x.shape, 5, 0), mask)
    y = y if xp is np else y.get()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.02  # inverted dropout preserves the expectation


def test_masks_depend_on_seed_and_offset_only(xp):
    first = _bits(xp, (64, 32), 11, 0)
    again = _bits(xp, (64, 32), 11, 0)
    later = _bits(xp, (64, 32), 11, 64 * 32)
    other = _bits(xp, (64, 32), 12, 0)
    host = [a if xp is np else a.get() for a in (first, again, later, other)]
    np.testing.assert_array_equal(host[0], host[1])
    assert (host[0] != host[2]).mean() > 0.99 and (host[0] != host[3]).mean() > 0.99
    # Kept units of consecutive draws are independent: about (1 - rate)^2 kept in both.
    keep = [h >= dropout.threshold(0.5) for h in host[:3:2]]
    assert abs((keep[0] & keep[1]).mean() - 0.25) < 0.03


def test_same_masks_on_every_backend(xp):
    x = np.random.default_rng(0).standard_normal((16, 24)).astype(np.float32)
    reference = dropout.dropout_fwd(x, 0.4, _bits(np, x.shape, 99, 3), np.empty_like(x))
    x_dev = xp.asarray(x)
    y = dropout.dropout_fwd(x_dev, 0.4, _bits(xp, x.shape, 99, 3), xp.empty_like(x_dev))
    np.testing.assert_array_equal(y if xp is np else y.get(), reference)


def test_gradient_of_dropout_fwd_float64():
    # Central differences through dropout_fwd itself, with its mask held fixed.
    rs = np.random.default_rng(1)
    x = rs.standard_normal((4, 5))
    bits = _bits(np, x.shape, 7, 0)
    gy = rs.standard_normal(x.shape)
    mask = np.empty_like(x)
    dropout.dropout_fwd(x, 0.5, bits, mask)
    assert 0 < (mask == 0).sum() < mask.size  # both branches are exercised
    gx = dropout.dropout_bwd(gy, mask)

    def loss(v):
        return float((dropout.dropout_fwd(v, 0.5, bits, np.empty_like(v)) * gy).sum())

    assert_grad_close(gx, numerical_grad(loss, x.copy()))


@pytest.mark.parametrize("rate", [0.25])
def test_float32_stays_float32(xp, rate):
    x = xp.ones((8, 8), dtype=xp.float32)
    mask = xp.empty_like(x)
    y = dropout.dropout_fwd(x, rate, _bits(xp, x.shape, 0, 0), mask)
    gx = dropout.dropout_bwd(xp.ones_like(y), mask)
    assert y.dtype == mask.dtype == gx.dtype == xp.float32


def test_forward_and_backward_write_into_the_buffers_they_are_given(xp):
    # The training step hands dropout kept buffers: a result elsewhere allocates every step.
    x = xp.ones((8, 8), dtype=xp.float32)
    mask, out, g_out = xp.empty_like(x), xp.empty_like(x), xp.empty_like(x)
    y = dropout.dropout_fwd(x, 0.25, _bits(xp, x.shape, 0, 0), mask, out)
    assert y is out
    gx = dropout.dropout_bwd(xp.ones_like(x), mask, out=g_out)
    assert gx is g_out
    np.testing.assert_array_equal(
        gx if xp is np else gx.get(), y if xp is np else y.get()
    )  # gy of ones: the mask itself, as y is for x of ones
