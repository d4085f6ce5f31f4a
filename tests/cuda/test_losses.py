"""gpunet/cuda/losses.cu against the xp losses and metrics, on random and edge-case inputs
(large logits, zero weights, ties, NaN): on the CPU and, with `-m gpu`, on a GPU."""

import numpy as np
import pytest

from gpunet import losses
from gpunet.cuda import kernels
from tests.cuda.helpers import put as _put


def _logits(seed=5, rows=40, classes=10):
    rs = np.random.default_rng(seed)
    z = (rs.standard_normal((rows, classes)) * 4).astype(np.float32)
    z[0] = 0.0  # a tie: every class
    z[1, [2, 7]] = 9.0  # a tie between two
    z[2] += 3e4  # large logits, whose loss top + log(total) - z[label] would round away
    z[3] -= 3e4
    labels = rs.integers(0, classes, rows)
    labels[1] = 7  # the second of the tied maxima: not a hit (argmax takes the first)
    weights = rs.random(rows).astype(np.float32)
    weights[4:6] = 0.0
    return z, labels, weights


def _loss64(z, labels):
    """-log_softmax(z)[label] in float64, from the float32 logits."""
    z = z.astype(np.float64)
    top = z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z - top).sum(axis=1)) + top[:, 0]
    return lse - z[np.arange(len(z)), labels]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_softmax_cross_entropy_sparse_against_the_loss_and_a_float64_reference(device, weighted):
    z, labels, weights = _logits()
    rows, classes = z.shape
    w = weights if weighted else np.ones(rows, np.float32)
    scale = np.float32(-0.01 / rows)
    probs, grad = (device.empty((rows, classes), np.float32) for _ in range(2))
    row_loss, row_metric = device.empty(rows, np.float64), device.empty(rows, np.float32)
    kernels.launch(
        device, "softmax_xent_sparse", rows, _put(device, z), _put(device, labels),
        _put(device, weights) if weighted else None, _put(device, np.array([scale])), probs, grad,
        row_loss, row_metric, rows, classes,
    )  # fmt: skip
    loss = losses.SparseCategoricalCrossentropy()
    p_ref, g_ref = np.empty_like(z), np.empty_like(z)
    per_sample = loss.fused(labels, z, p_ref, g_ref, float(scale))
    np.testing.assert_allclose(probs.get(), p_ref, rtol=2e-6, atol=1e-37)
    np.testing.assert_allclose(grad.get(), g_ref * w[:, None], rtol=2e-5, atol=1e-12)
    # Within float32 rounding of the float64 loss, large logits included (rows 2 and 3).
    np.testing.assert_allclose(row_loss.get(), _loss64(z, labels) * w, rtol=2e-6, atol=1e-6)
    assert abs(per_sample[2] - _loss64(z, labels)[2]) > 1e-4  # what the old formula lost
    hits = (p_ref.argmax(axis=1) == labels).astype(np.float32)
    np.testing.assert_array_equal(row_metric.get(), hits)
    assert hits[1] == 0 and hits[0] == (labels[0] == 0)


def test_softmax_cross_entropy_without_a_gradient_and_with_a_nan_row(device):
    z, labels, _ = _logits(6)
    z[8, 3] = np.nan
    rows, classes = z.shape
    probs = device.empty((rows, classes), np.float32)
    row_loss, row_metric = device.empty(rows, np.float64), device.empty(rows, np.float32)
    kernels.launch(
        device, "softmax_xent_sparse", rows, _put(device, z), _put(device, labels), None,
        _put(device, np.ones(1, np.float32)), probs, None, row_loss, row_metric, rows, classes,
    )  # fmt: skip
    values = row_loss.get()
    assert np.isnan(values[8]) and np.isfinite(np.delete(values, 8)).all()


def test_softmax_cross_entropy_dense_against_the_loss(device):
    z, labels, weights = _logits(7)
    rows, classes = z.shape
    rs = np.random.default_rng(8)
    t = rs.random((rows, classes)).astype(np.float32)
    t /= t.sum(axis=1, keepdims=True)
    probs, grad = (device.empty((rows, classes), np.float32) for _ in range(2))
    row_loss, row_metric = device.empty(rows, np.float64), device.empty(rows, np.float32)
    kernels.launch(
        device, "softmax_xent_dense", rows, _put(device, z), _put(device, t),
        _put(device, weights), _put(device, np.array([0.5], np.float32)), probs, grad, row_loss,
        row_metric, rows, classes,
    )  # fmt: skip
    loss = losses.CategoricalCrossentropy()
    p_ref, g_ref = np.empty_like(z), np.empty_like(z)
    per_sample = loss.fused(t, z, p_ref, g_ref, 0.5)
    # atol: a few ulps of the scale 0.5, where p * sum(t) - t cancels.
    np.testing.assert_allclose(grad.get(), g_ref * weights[:, None], rtol=2e-5, atol=1e-8)
    keep = np.abs(z).max(axis=1) < 1e3  # rows the float32 oracle computes well
    np.testing.assert_allclose(
        row_loss.get()[keep], (per_sample * weights)[keep], rtol=2e-5, atol=1e-6
    )
    hits = p_ref.argmax(axis=1) == t.argmax(axis=1)
    np.testing.assert_array_equal(row_metric.get(), hits)


@pytest.mark.parametrize("from_logits", [False, True], ids=["sigmoid-output", "from-logits"])
def test_sigmoid_cross_entropy_against_the_loss_and_binary_accuracy(device, from_logits):
    from gpunet import metrics

    z, _, weights = _logits(13)
    rows, units = z.shape
    t = (np.random.default_rng(14).random(z.shape) > 0.5).astype(np.float32)
    probs, grad = (device.empty(z.shape, np.float32) for _ in range(2))
    row_loss, row_metric = device.empty(rows, np.float64), device.empty(rows, np.float32)
    kernels.launch(
        device, "sigmoid_xent", rows, _put(device, z), _put(device, t), _put(device, weights),
        _put(device, np.array([0.25], np.float32)), probs, grad, row_loss, row_metric, rows,
        units, int(from_logits),
    )  # fmt: skip
    loss = losses.BinaryCrossentropy()
    p_ref, g_ref = np.empty_like(z), np.empty_like(z)
    per_sample = loss.fused(t, z, p_ref, g_ref, 0.25)
    np.testing.assert_allclose(probs.get(), p_ref, rtol=5e-6, atol=1e-37)
    np.testing.assert_allclose(grad.get(), g_ref * weights[:, None], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(row_loss.get(), per_sample * weights, rtol=1e-5, atol=1e-6)
    outputs = z if from_logits else p_ref
    np.testing.assert_array_equal(row_metric.get(), metrics.binary_accuracy(t, outputs))


def test_mean_squared_error_against_the_loss(device):
    rs = np.random.default_rng(15)
    y, t = (rs.standard_normal((20, 3)).astype(np.float32) for _ in range(2))
    w = rs.random(20).astype(np.float32)
    grad = device.empty(y.shape, np.float32)
    row_loss, row_metric = device.empty(20, np.float64), device.empty(20, np.float32)
    kernels.launch(
        device, "mse", 20, _put(device, y), _put(device, t), _put(device, w),
        _put(device, np.array([0.05], np.float32)), grad, row_loss, row_metric, 20, 3,
    )  # fmt: skip
    loss = losses.MeanSquaredError()
    np.testing.assert_allclose(row_loss.get(), loss.per_sample(t, y) * w, rtol=1e-6)
    expected = (loss.grad(t, y) * np.float32(0.05)) * w[:, None]
    np.testing.assert_allclose(grad.get(), expected, rtol=1e-6, atol=1e-12)
