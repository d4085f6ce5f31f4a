import numpy as np

from gpunet.kernels.dropout import dropout_bwd, dropout_fwd
from tests.gradcheck import assert_grad_close, numerical_grad


def test_keeps_about_one_minus_rate_and_scales_kept_units():
    x = np.ones((200, 100), dtype=np.float32)
    mask = np.empty_like(x)
    y = dropout_fwd(x, 0.3, np.random.default_rng(0), mask)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.02  # inverted dropout preserves the expectation


def test_gradient_is_the_mask_float64():
    rs = np.random.default_rng(1)
    x = rs.standard_normal((4, 5))
    mask = np.empty_like(x)
    dropout_fwd(x, 0.5, np.random.default_rng(7), mask)
    gy = rs.standard_normal(x.shape)
    gx = dropout_bwd(gy, mask)
    numeric = numerical_grad(lambda v: float((v * mask * gy).sum()), x.copy())
    assert_grad_close(gx, numeric)


def test_same_generator_state_same_mask():
    x = np.ones((3, 4), dtype=np.float32)
    a = dropout_fwd(x, 0.5, np.random.default_rng(5), np.empty_like(x))
    b = dropout_fwd(x, 0.5, np.random.default_rng(5), np.empty_like(x))
    np.testing.assert_array_equal(a, b)


def test_float32_stays_float32(xp):
    x = xp.ones((8, 8), dtype=xp.float32)
    mask = xp.empty_like(x)
    y = dropout_fwd(x, 0.25, xp.random.default_rng(0), mask)
    gx = dropout_bwd(xp.ones_like(y), mask)
    assert y.dtype == mask.dtype == gx.dtype == xp.float32
