import math

import numpy as np
import pytest

import gpunet as gn
from gpunet.kernels import activations
from tests.gradcheck import assert_grad_close, numerical_grad

ALL = [name for name in activations.NAMES if name != "swish"]


def _inputs(name, rs):
    x = rs.uniform(-3, 3, size=(4, 5))
    # Keep away from kinks, where a central difference straddles two slopes.
    kinks = {
        "relu": [0.0],
        "leaky_relu": [0.0],
        "elu": [0.0],
        "selu": [0.0],
        "hard_sigmoid": [-3.0, 3.0],
    }
    for kink in kinks.get(name, []):
        x[np.abs(x - kink) < 1e-2] += 0.05
    return x


@pytest.mark.parametrize("name", ALL)
def test_backward_matches_central_differences_float64(name):
    act = activations.get(name)
    rs = np.random.default_rng(1)
    x = _inputs(name, rs)
    weights = rs.standard_normal(x.shape)  # f = sum(w * act(x)) exercises every output
    y = act.fwd(x, None)
    gx = act.bwd(weights.copy(), x, y, None)
    numeric = numerical_grad(lambda v: float((act.fwd(v, None) * weights).sum()), x.copy())
    assert_grad_close(gx, numeric)


@pytest.mark.parametrize("name", ALL)
def test_float32_in_float32_out(name, xp):
    act = activations.get(name)
    x = xp.asarray(np.random.default_rng(2).uniform(-3, 3, (8, 6)), dtype=xp.float32)
    y = act.fwd(x, None)
    gx = act.bwd(xp.ones_like(y), x, y, None)
    assert y.dtype == xp.float32 and gx.dtype == xp.float32


@pytest.mark.parametrize("name", ALL)
def test_in_place_forward_equals_out_of_place(name):
    act = activations.get(name)
    x = np.random.default_rng(3).uniform(-3, 3, (5, 7)).astype(np.float32)
    expected = act.fwd(x, None)
    buffer = x.copy()
    np.testing.assert_array_equal(act.fwd(buffer, buffer), expected)


@pytest.mark.parametrize("name", ALL)
def test_in_place_backward_equals_out_of_place(name):
    # `out` may be the incoming gradient itself (the module's contract).
    act = activations.get(name)
    rs = np.random.default_rng(5)
    x = _inputs(name, rs).astype(np.float32)
    y = act.fwd(x, None)
    gy = rs.standard_normal(x.shape).astype(np.float32)
    expected = act.bwd(gy.copy(), x, y, None)
    buffer = gy.copy()
    assert act.bwd(buffer, x, y, buffer) is buffer
    np.testing.assert_array_equal(buffer, expected)


@pytest.mark.parametrize(
    "name",
    ["sigmoid", "softmax", "tanh", "softplus", "elu", "selu", "silu", "softsign", "hard_sigmoid"],
)
def test_finite_for_extreme_inputs(name):
    act = activations.get(name)
    x = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype=np.float32)
    y = act.fwd(x, None)
    gx = act.bwd(np.ones_like(y), x, y, None)
    assert np.isfinite(y).all() and np.isfinite(gx).all()


def test_known_values():
    x = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_allclose(activations.get("relu")(x), [[0, 0, 2]])
    np.testing.assert_allclose(activations.get("leaky_relu")(x), [[-0.2, 0, 2]])
    np.testing.assert_allclose(activations.get("hard_sigmoid")(x), [[2 / 6, 0.5, 5 / 6]])
    np.testing.assert_allclose(activations.get("softmax")(x).sum(), 1.0)
    np.testing.assert_allclose(activations.get("gelu")(np.array([1.0])), [0.8413447460685429])
    assert activations.get("swish") is activations.get("silu")
    assert activations.get(None).name == "linear"


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="Unknown activation 'rellu'.*relu"):
        activations.get("rellu")
    with pytest.raises(ValueError) as caught:
        activations.get(3)  # not a name at all
    allowed = "elu, exponential, gelu, hard_sigmoid, leaky_relu, linear, relu, selu, sigmoid, "
    assert str(caught.value) == f"Unknown activation 3. Allowed: {allowed}" + (
        "silu, softmax, softplus, softsign, tanh, swish."
    )


def test_relu_against_cached_zeros_equals_the_scalar_maximum():
    # relu's forward compares against a kept zero array (NumPy's fast path); the result must
    # be bit for bit np.maximum(x, 0.0), NaN, infinities and signed zeros included, and the
    # kept zeros must stay zeros.
    x = np.random.default_rng(4).standard_normal((16, 9)).astype(np.float32)
    x[0, :5] = [np.nan, np.inf, -np.inf, -0.0, 0.0]
    relu = activations.get("relu")
    for _ in range(2):  # the second call reuses the kept array
        y = relu.fwd(x, None)
        np.testing.assert_array_equal(y, np.maximum(x, 0.0))
        assert np.array_equal(np.signbit(y), np.signbit(np.maximum(x, 0.0)))
    relu.fwd(x.copy(), None)  # in place on a copy
    zeros = activations._zeros_like(x)
    assert not zeros.flags.writeable and not zeros.any()
    for rows in range(1, 60):  # many batch shapes: the cache stays small
        activations._zeros_like(np.empty((rows, 3), np.float32))
    assert len(activations._ZEROS) <= 32
    for _ in range(3):  # and small in bytes
        activations._zeros_like(np.empty((1 << 23) + len(activations._ZEROS), np.float32))
    assert sum(z.nbytes for z in activations._ZEROS.values()) <= 1 << 26


def test_relus_kept_zeros_are_reused_per_shape_up_to_64_mib_in_all():
    activations._ZEROS.clear()
    a, b = np.empty((3, 2), np.float32), np.empty((4, 2), np.float32)
    kept = activations._zeros_like(a)
    activations._zeros_like(b)
    assert activations._zeros_like(a) is kept  # a second shape did not push the first out
    activations._ZEROS.clear()
    activations._zeros_like(np.empty((1 << 24) - 2, np.float32))  # 64 MiB less 8 bytes
    activations._zeros_like(np.empty(2, np.float32))  # 64 MiB exactly: both kept
    assert len(activations._ZEROS) == 2
    activations._zeros_like(np.empty(3, np.float32))  # past 64 MiB: start over
    assert len(activations._ZEROS) == 1
    activations._ZEROS.clear()
    for rows in range(1, 33):  # 32 shapes are kept; a 33rd starts over
        activations._zeros_like(np.empty((rows, 2), np.float32))
    assert len(activations._ZEROS) == 32
    activations._zeros_like(np.empty((33, 2), np.float32))
    assert len(activations._ZEROS) == 1
    activations._ZEROS.clear()


def _scalar_reference(name: str):
    """Each activation of one float, from math and Keras 3's constants (an independent
    transcription, not gpunet's array code)."""
    alpha, scale = 1.6732632423543772, 1.0507009873554805  # keras.activations.selu
    return {
        "linear": lambda v: v,
        "relu": lambda v: max(v, 0.0),
        "sigmoid": lambda v: 1.0 / (1.0 + math.exp(-v)),
        "tanh": math.tanh,
        "softplus": lambda v: math.log1p(math.exp(v)),
        "softsign": lambda v: v / (1.0 + abs(v)),
        "elu": lambda v: v if v > 0 else math.expm1(v),
        "selu": lambda v: scale * (v if v > 0 else alpha * math.expm1(v)),
        "leaky_relu": lambda v: v if v > 0 else 0.2 * v,
        "gelu": lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))),
        "silu": lambda v: v / (1.0 + math.exp(-v)),
        "hard_sigmoid": lambda v: min(max(v / 6.0 + 0.5, 0.0), 1.0),
        "exponential": math.exp,
    }[name]


@pytest.mark.parametrize("name", [n for n in ALL if n != "softmax"])
def test_forward_values_match_the_formulas(name):
    x = np.array([-7.5, -3.0, -1.0, -0.25, 0.0, 0.3, 1.0, 2.5, 6.0])
    expected = [_scalar_reference(name)(float(v)) for v in x]
    np.testing.assert_allclose(activations.get(name)(x), expected, rtol=1e-12, atol=1e-15)


def test_softmax_values_match_the_formula():
    x = np.array([[1.0, 2.0, 3.0], [-1e3, 0.0, 1e3], [0.5, 0.5, 0.5]])
    expected = [
        [math.exp(v - max(row)) / sum(math.exp(u - max(row)) for u in row) for v in row]
        for row in x.tolist()
    ]
    np.testing.assert_allclose(activations.get("softmax")(x), expected, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", ALL)
def test_forward_and_backward_write_into_the_buffer_they_are_given(name):
    # The training step hands every activation kept buffers: writing elsewhere would allocate
    # each step (and on a GPU break the step's budget), so the result must BE `out`.
    act = activations.get(name)
    rs = np.random.default_rng(3)
    x = _inputs(name, rs).astype(np.float32)
    gy = rs.standard_normal(x.shape).astype(np.float32)
    out = np.full_like(x, np.nan)
    y = act.fwd(x, out)
    assert y is out
    np.testing.assert_array_equal(y, act.fwd(x, None))
    g_out = np.full_like(x, np.nan)
    gx = act.bwd(gy, x, y, g_out)
    assert gx is g_out
    np.testing.assert_array_equal(gx, act.bwd(gy.copy(), x, y.copy(), None))
    if not act.needs_input:  # these may overwrite their input: the layer relies on it
        z = x.copy()
        assert act.fwd(z, z) is z
        np.testing.assert_array_equal(z, y)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("elu", 1.0),
        ("selu", 1.6732632423543772 * 1.0507009873554805),
        ("relu", 0.0),
        ("leaky_relu", 0.2),  # TensorFlow's and PyTorch's rule: the slope for x <= 0
    ],
)
def test_gradient_at_zero_takes_the_negative_branch_as_keras(name, expected):
    # Keras differentiates where(x > 0, ...): at exactly 0 the other branch's slope applies.
    act = activations.get(name)
    x = np.zeros((1, 1))
    y = act.fwd(x, None)
    np.testing.assert_allclose(act.bwd(np.ones_like(x), x, y, None), [[expected]], rtol=1e-12)


def test_exact_gelu_without_scipy_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "scipy.special", None)  # as if SciPy were missing
    with pytest.raises(ImportError) as info:
        activations.get("gelu")(np.zeros((1, 2)))
    assert str(info.value) == (
        "The exact 'gelu' activation needs SciPy for erf on the NumPy backend. "
        "Hint: pip install scipy."
    )


def test_activations_are_functions_as_in_keras():
    x = np.array([[-2.0, 0.0, 3.0]], dtype=np.float32)
    np.testing.assert_array_equal(gn.activations.relu(x), [[0.0, 0.0, 3.0]])
    assert gn.activations.swish is gn.activations.silu
    np.testing.assert_allclose(gn.activations.softmax(x).sum(axis=-1), [1.0], rtol=1e-6)
    assert x.tolist() == [[-2.0, 0.0, 3.0]]  # the input is left alone
    names = [n for n in gn.activations.NAMES if n != "swish"]
    assert all(getattr(gn.activations, n).name == n for n in names)
    layer = gn.layers.Dense(2, activation=gn.activations.tanh)
    assert layer.activation.name == "tanh"
    assert gn.activations.serialize(gn.activations.elu) == "elu"
    assert gn.activations.deserialize("swish").name == "silu"


def test_softmax_lse_over_the_last_axis_of_any_rank_into_kept_buffers(xp):
    # The fused softmax cross-entropy's statistics: softmax and log(sum(exp(x))) per row, in
    # x's dtype, written into kept buffers; rows are every axis but the last.
    from gpunet.backend import to_host
    from gpunet.buffers import Buffers

    x = np.random.default_rng(9).standard_normal((2, 3, 4)) * 8.0
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    expected_lse = np.log(e.sum(axis=-1)) + x.max(axis=-1)
    for dtype, rtol in ((np.float64, 1e-13), (np.float32, 1e-5)):
        buffers = Buffers()
        for _ in range(2):  # the second call reuses the buffers
            probs, lse = activations.softmax_lse(xp.asarray(x.astype(dtype)), buffers=buffers)
            assert probs.dtype == dtype and lse.dtype == dtype and lse.shape == (2, 3)
            np.testing.assert_allclose(to_host(probs), e / e.sum(-1, keepdims=True), rtol=rtol)
            np.testing.assert_allclose(to_host(lse), expected_lse, rtol=rtol)
