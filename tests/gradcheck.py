"""Central-difference gradient checks in float64 (cf. DeZero's and Chainer's gradient_check)."""

import numpy as np


def numerical_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f(x) / d x for a scalar function f, by central differences, element by element."""
    grad = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        plus = f(x)
        flat[i] = saved - eps
        minus = f(x)
        flat[i] = saved
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def assert_grad_close(analytic, numeric, rtol=1e-5, atol=1e-7):
    np.testing.assert_allclose(np.asarray(analytic), numeric, rtol=rtol, atol=atol)
