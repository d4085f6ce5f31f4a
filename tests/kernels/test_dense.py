import numpy as np

from gpunet.kernels.dense import dense_bwd, dense_fwd
from tests.gradcheck import assert_grad_close, numerical_grad


def test_gradients_match_central_differences_float64():
    rs = np.random.default_rng(0)
    x, kernel, bias = rs.standard_normal((5, 4)), rs.standard_normal((4, 3)), rs.standard_normal(3)
    gz = rs.standard_normal((5, 3))
    g_kernel, g_bias = np.empty_like(kernel), np.empty_like(bias)
    gx = dense_bwd(x, kernel, gz, g_kernel, g_bias, np.empty_like(x))

    def loss(x_, k_, b_):
        return float((dense_fwd(x_, k_, b_) * gz).sum())

    assert_grad_close(gx, numerical_grad(lambda v: loss(v, kernel, bias), x.copy()))
    assert_grad_close(g_kernel, numerical_grad(lambda v: loss(x, v, bias), kernel.copy()))
    assert_grad_close(g_bias, numerical_grad(lambda v: loss(x, kernel, v), bias.copy()))


def test_skips_input_gradient_when_not_needed():
    rs = np.random.default_rng(1)
    x, kernel = rs.standard_normal((2, 3)), rs.standard_normal((3, 2))
    out = dense_bwd(x, kernel, np.ones((2, 2)), np.empty((3, 2)), None, need_gx=False)
    assert out is None


def test_float32_stays_float32(xp):
    x = xp.ones((6, 4), dtype=xp.float32)
    kernel, bias = xp.ones((4, 3), dtype=xp.float32), xp.zeros(3, dtype=xp.float32)
    z = dense_fwd(x, kernel, bias, out=xp.empty((6, 3), dtype=xp.float32))
    g_kernel, g_bias, gx = xp.empty_like(kernel), xp.empty_like(bias), xp.empty_like(x)
    dense_bwd(x, kernel, z, g_kernel, g_bias, gx)
    assert {a.dtype for a in (z, g_kernel, g_bias, gx)} == {xp.dtype("float32")}


def test_forward_and_backward_write_into_the_buffers_they_are_given(xp):
    from gpunet.backend import to_host

    rs = np.random.default_rng(2)
    x, kernel, bias = rs.standard_normal((5, 4)), rs.standard_normal((4, 3)), rs.standard_normal(3)
    out = xp.empty((5, 3))
    z = dense_fwd(xp.asarray(x), xp.asarray(kernel), xp.asarray(bias), out=out)
    assert z is out
    np.testing.assert_allclose(to_host(out), x @ kernel + bias, rtol=1e-12)
    gx = xp.empty((5, 4))
    g_kernel, g_bias = xp.empty((4, 3)), xp.empty(3)
    gz = rs.standard_normal((5, 3))
    back = dense_bwd(xp.asarray(x), xp.asarray(kernel), xp.asarray(gz), g_kernel, g_bias, gx)
    assert back is gx
    np.testing.assert_allclose(to_host(gx), gz @ kernel.T, rtol=1e-12)
    np.testing.assert_allclose(to_host(g_kernel), x.T @ gz, rtol=1e-12)
    np.testing.assert_allclose(to_host(g_bias), gz.sum(axis=0), rtol=1e-12)
