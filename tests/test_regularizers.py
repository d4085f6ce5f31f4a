import numpy as np
import pytest

from gpunet import regularizers
from tests.gradcheck import assert_grad_close, numerical_grad


@pytest.mark.parametrize(
    "reg", [regularizers.L1(0.1), regularizers.L2(0.2), regularizers.L1L2(0.05, 0.3)]
)
def test_gradient_matches_central_differences_float64(reg):
    w = np.random.default_rng(0).standard_normal((3, 4))
    g = np.zeros_like(w)
    reg.add_grad(w, g)
    assert_grad_close(g, numerical_grad(lambda v: float(reg(v)), w.copy()))


def test_keras_defaults_and_values():
    w = np.array([[1.0, -2.0]], dtype=np.float32)
    assert float(regularizers.get("l2")(w)) == pytest.approx(0.01 * 5)
    assert float(regularizers.get("l1")(w)) == pytest.approx(0.01 * 3)
    assert float(regularizers.get("l1_l2")(w)) == 0.0  # both 0.0 by default in Keras 3
    assert regularizers.get("l2")(w).dtype == np.float32


def test_bad_names_and_values():
    with pytest.raises(ValueError, match="Unknown regularizer 'l3'"):
        regularizers.get("l3")
    with pytest.raises(ValueError, match="l2 must be a float >= 0"):
        regularizers.L2(-1.0)
