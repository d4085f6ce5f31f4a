"""gpunet/cuda/layers.cu against the xp activations and dropout: on the CPU (the kernel source
compiled for the host, through the stand-in) and, with `-m gpu`, on a GPU."""

import numpy as np
import pytest

from gpunet.cuda import kernels
from gpunet.kernels import activations
from gpunet.kernels import dropout as dropout_kernels
from tests.cuda.helpers import put as _put

EDGES = np.array([0.0, -0.0, 1e-30, -1e-30, 3.0, -3.0, 20.0, -20.0, 88.0, -88.0, 1e4, -1e4])


def _inputs(seed=0, rows=9, units=16):
    rs = np.random.default_rng(seed)
    x = (rs.standard_normal((rows, units)) * 3).astype(np.float32)
    x.flat[: EDGES.size] = EDGES
    return x, rs.standard_normal(units).astype(np.float32)


@pytest.mark.parametrize("act", kernels.ACTIVATIONS)
def test_bias_activation_forward_and_backward_match_the_xp_activation(device, act):
    x, bias = _inputs()
    rows, units = x.shape
    z_dev, y_dev = device.empty_like(_put(device, x)), device.empty_like(_put(device, x))
    kernels.launch(
        device, "bias_act_fwd", x.size, _put(device, x), _put(device, bias), z_dev, y_dev, None,
        rows, units, kernels.activation_code(act), 0, None, 0, 1.0, 0,
    )  # fmt: skip
    z = x + bias
    np.testing.assert_array_equal(z_dev.get(), z)  # the kept pre-activation, exactly
    reference = activations.get(act)
    with np.errstate(over="ignore"):
        y = reference.fwd(z.copy(), None)
    np.testing.assert_allclose(y_dev.get(), y, rtol=5e-6, atol=1e-37)  # a few float32 ulps
    gy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    gz_dev = device.empty_like(y_dev)
    kernels.launch(
        device, "act_bwd", x.size, _put(device, gy), z_dev, y_dev, None, gz_dev, x.size,
        kernels.activation_code(act),
    )  # fmt: skip
    with np.errstate(over="ignore", invalid="ignore"):  # from the kernel's y: its arithmetic alone
        expected = reference.bwd(gy, z, y_dev.get(), None)
    # atol: a few ulps of |gy| ~ 1, where the derivative cancels (1 - y*y as y -> 1).
    np.testing.assert_allclose(gz_dev.get(), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "elu", "hard_sigmoid", "tanh"])
def test_nan_propagates_through_the_activation_as_in_numpy(device, act):
    x = np.array([[np.nan, 1.0, -1.0, np.nan]], np.float32)
    y_dev = device.empty((1, 4), np.float32)
    kernels.launch(
        device, "bias_act_fwd", 4, _put(device, x), None, None, y_dev, None, 1, 4,
        kernels.activation_code(act), 0, None, 0, 1.0, 0,
    )  # fmt: skip
    expected = activations.get(act).fwd(x.copy(), None)
    np.testing.assert_array_equal(np.isnan(y_dev.get()), np.isnan(expected))


def _xp_dropout_mask(shape, seed, offset, rate, first_unit=0):
    lanes = dropout_kernels.lanes(np, shape, first_unit)
    key = np.array([dropout_kernels.draw_key(seed, offset)], np.uint32)
    bits = dropout_kernels.counter_bits(lanes, key, np.empty_like(lanes), np.empty_like(lanes))
    mask = np.empty(shape, np.float32)
    dropout_kernels.dropout_fwd(np.ones(shape, np.float32), rate, bits, mask)
    return mask


@pytest.mark.parametrize("act, first", [("relu", 0), ("sigmoid", 0), ("gelu", 0), ("relu", 17)])
def test_fused_dropout_draws_the_xp_masks_bit_for_bit(device, act, first):
    # first: a rank's shard starting at row 17 of its global batch draws that batch's masks.
    x, bias = _inputs(2, rows=33, units=40)
    rows, units = x.shape
    seed, rate, offset = 2**63 + 12345, 0.3, 7 * x.size
    mask_dev, y_dev, z_dev = (device.empty((rows, units), np.float32) for _ in range(3))
    offsets = device.zeros(2, np.uint64)
    offsets[1:2].fill(np.uint64(offset))
    kernels.launch(
        device, "bias_act_fwd", x.size, _put(device, x), _put(device, bias), z_dev, y_dev,
        mask_dev, rows, units, kernels.activation_code(act), np.uint64(seed), offsets[1:2],
        np.uint32(dropout_kernels.threshold(rate)), float(np.float32(1 / (1 - rate))), first,
    )  # fmt: skip
    mask = _xp_dropout_mask(x.shape, seed, offset, rate, first * units)
    np.testing.assert_array_equal(mask_dev.get(), mask)
    assert 0.25 < (mask == 0).mean() < 0.35
    reference = activations.get(act).fwd(x + bias, None)
    np.testing.assert_allclose(y_dev.get(), reference * mask, rtol=5e-6, atol=1e-37)
    # Backward: dropout's, then the activation's, recomputed from z where units were dropped.
    gy = np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    gz_dev = _put(device, gy)
    kernels.launch(
        device, "act_bwd", x.size, gz_dev, z_dev, y_dev, mask_dev, gz_dev, x.size,
        kernels.activation_code(act),
    )  # fmt: skip
    z = x + bias
    expected = activations.get(act).bwd(gy * mask, z, activations.get(act).fwd(z, None), None)
    # atol: a few ulps of |gy * mask| ~ 1.4, where sigmoid's y (1 - y) cancels.
    np.testing.assert_allclose(gz_dev.get(), expected, rtol=1e-5, atol=5e-7)


def test_bias_grad_sums_each_unit_over_the_rows(device):
    g = np.random.default_rng(4).standard_normal((130, 7)).astype(np.float32)
    out = device.empty(7, np.float32)
    kernels.launch(device, "bias_grad", 7, _put(device, g), out, 130, 7)
    np.testing.assert_allclose(out.get(), g.sum(axis=0, dtype=np.float64), rtol=1e-5)
