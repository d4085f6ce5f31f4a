import numpy as np
import pytest

from gpunet.kernels import dropout
from tests.gradcheck import assert_grad_close, numerical_grad


def _splitmix64(z: int) -> int:
    """The published splitmix64 finalizer on Python ints: the independent reference."""
    z &= (1 << 64) - 1
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return z ^ (z >> 31)


def _bits(xp, shape, seed, offset):
    lanes = dropout.lanes(xp, shape, seed)
    base = xp.zeros(1, dtype=xp.uint64)
    base.fill((offset * dropout.GOLDEN) & dropout.MASK64)
    out, tmp = xp.empty(shape, xp.uint64), xp.empty(shape, xp.uint64)
    return dropout.counter_bits(lanes, base, out, tmp)


def test_counter_bits_are_splitmix64_of_seed_plus_counter_times_golden():
    seed, offset = 2**63 + 12345, 7
    bits = _bits(np, (3, 5), seed, offset)
    expected = [_splitmix64(seed + (offset + i) * 0x9E3779B97F4A7C15) for i in range(15)]
    assert bits.reshape(-1).tolist() == expected


def test_threshold_keeps_exactly_the_uniforms_at_or_above_the_rate():
    # u = k / 2^24 from the top 24 bits; kept <=> u >= float32(rate).
    for rate in (0.0, 0.3, 0.5, 1 / 3, 0.999):
        t = dropout.threshold(rate)
        k = t >> 40
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
    # One draw of 2n counters equals two draws of n in a row.
    np.testing.assert_array_equal(
        _bits(np, (2, 64 * 32), 11, 0).reshape(-1), np.concatenate([host[0], host[2]], None)
    )


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
