"""Every CUDA kernel against its xp oracle, on random and edge-case inputs: on the CPU (the
kernel source compiled for the host, through the stand-in) and, with `-m gpu`, on a GPU."""

import numpy as np
import pytest

from gpunet import losses, optimizers
from gpunet.cuda import kernels
from gpunet.kernels import activations
from gpunet.kernels import dropout as dropout_kernels

EDGES = np.array([0.0, -0.0, 1e-30, -1e-30, 3.0, -3.0, 20.0, -20.0, 88.0, -88.0, 1e4, -1e4])


def _put(device, array):
    return device.asarray(np.ascontiguousarray(array))


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
        rows, units, kernels.activation_code(act), 0, None, 0, 1.0,
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
        kernels.activation_code(act), 0, None, 0, 1.0,
    )  # fmt: skip
    expected = activations.get(act).fwd(x.copy(), None)
    np.testing.assert_array_equal(np.isnan(y_dev.get()), np.isnan(expected))


def _xp_dropout_mask(shape, seed, offset, rate):
    lanes = dropout_kernels.lanes(np, shape)
    key = np.array([dropout_kernels.draw_key(seed, offset)], np.uint32)
    bits = dropout_kernels.counter_bits(lanes, key, np.empty_like(lanes), np.empty_like(lanes))
    mask = np.empty(shape, np.float32)
    dropout_kernels.dropout_fwd(np.ones(shape, np.float32), rate, bits, mask)
    return mask


@pytest.mark.parametrize("act", ["relu", "sigmoid", "gelu"])
def test_fused_dropout_draws_the_xp_masks_bit_for_bit(device, act):
    x, bias = _inputs(2, rows=33, units=40)
    rows, units = x.shape
    seed, rate, offset = 2**63 + 12345, 0.3, 7 * x.size
    mask_dev, y_dev, z_dev = (device.empty((rows, units), np.float32) for _ in range(3))
    offsets = device.zeros(2, np.uint64)
    offsets[1:2].fill(np.uint64(offset))
    kernels.launch(
        device, "bias_act_fwd", x.size, _put(device, x), _put(device, bias), z_dev, y_dev,
        mask_dev, rows, units, kernels.activation_code(act), np.uint64(seed), offsets[1:2],
        np.uint32(dropout_kernels.threshold(rate)), float(np.float32(1 / (1 - rate))),
    )  # fmt: skip
    mask = _xp_dropout_mask(x.shape, seed, offset, rate)
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


def test_penalties_match_the_regularizers(device):
    from gpunet import regularizers

    rs = np.random.default_rng(16)
    w = rs.standard_normal(100).astype(np.float32)
    w[[3, 50]] = 0.0  # sign(0) = 0
    g = rs.standard_normal(100).astype(np.float32)
    variables = [(0, 40, regularizers.L1(0.01)), (60, 100, regularizers.L1L2(0.003, 0.02))]
    scale = -0.05
    starts, stops = (_put(device, np.array(v, np.int32)) for v in ([0, 60], [40, 100]))
    l1, l2 = (_put(device, np.array(v, np.float32)) for v in ([0.01, 0.003], [0.0, 0.02]))
    c1 = _put(device, np.array([np.float32(scale * r.l1) for *_, r in variables]))
    c2 = _put(device, np.array([np.float32(2 * r.l2 * scale) for *_, r in variables]))
    partials = device.empty(2 * 8, np.float64)
    w_dev, g_dev = _put(device, w), _put(device, g)
    kernels.launch(device, "penalty_partials", 16, w_dev, starts, stops, l1, l2, 2, 8, partials)
    kernels.launch(device, "penalty_grad", 100, w_dev, g_dev, starts, stops, c1, c2, 2, 100)
    expected = sum(float(r(w[a:b])) for a, b, r in variables)
    assert partials.get().sum() == pytest.approx(expected, rel=1e-6)
    g_ref = g.copy()
    for a, b, r in variables:
        part = g_ref[a:b]
        r.add_grad(w[a:b], part, scale)
    np.testing.assert_array_equal(g_dev.get(), g_ref)  # bit for bit; [40, 60) untouched


def test_gather_batch_reads_the_position_from_the_device(device):
    rs = np.random.default_rng(9)
    n, features, batch = 50, 6, 8
    x = rs.standard_normal((n, features)).astype(np.float32)
    y_labels = rs.integers(0, 10, n)
    y_dense = rs.random((n, 3)).astype(np.float32)
    w = rs.random(n).astype(np.float32)
    order = rs.permutation(n)
    position = device.zeros(1, np.int32)
    position.fill(5)  # the last, partial batch: rows 40..49
    for y in (y_labels, y_dense):
        rows = 10
        xb = device.empty((rows, features), np.float32)
        yb = device.empty((rows,) + y.shape[1:], y.dtype)
        wb = device.empty(rows, np.float32)
        y_bytes = y.itemsize * int(np.prod(y.shape[1:]))
        kernels.launch(
            device, "gather_batch", rows * max(features, y_bytes), _put(device, x),
            _put(device, y), _put(device, w), _put(device, order), position, batch, rows,
            features, y_bytes, xb, yb, wb,
        )  # fmt: skip
        index = order[40:50]
        np.testing.assert_array_equal(xb.get(), x[index])
        np.testing.assert_array_equal(yb.get(), y[index])
        np.testing.assert_array_equal(wb.get(), w[index])


def test_step_end_sums_rows_in_order_and_advances_every_counter(device):
    rs = np.random.default_rng(10)
    rows = 37
    row_loss = rs.random(rows) * 10.0 ** rs.integers(-8, 8, rows)
    row_metric = (rs.integers(0, 3, rows) / 2).astype(np.float32)  # binary accuracy: 0, .5, 1
    w = rs.random(rows).astype(np.float32)
    penalty = rs.random(5)
    totals, accuracy = device.zeros(4, np.float64), device.zeros(2, np.float64)
    accuracy.fill(1.5)
    position, offsets = device.zeros(1, np.int32), device.zeros(2, np.uint64)
    position.fill(2)
    offsets[1:2].fill(np.uint64(2**63))
    increments = _put(device, np.array([10, 2**62], np.uint64))
    p1, p2 = device.ones(1, np.float64), device.ones(1, np.float64)
    p1.fill(0.9)
    kernels.launch(
        device, "step_end", 1, _put(device, row_loss), _put(device, row_metric), _put(device, w),
        rows, _put(device, penalty), 5, totals, accuracy, position, offsets, increments, 2, p1,
        0.9, p2, 0.999,
    )  # fmt: skip
    expected, expected_penalty = 0.0, 0.0
    for value in row_loss:  # sequential, in row order: bit for bit
        expected += value
    for value in penalty:
        expected_penalty += value
    assert totals.get()[2] == expected + expected_penalty * rows
    assert totals.get()[[0, 1, 3]].tolist() == [0, 0, 0]
    hits = sum(float(m * wi) for m, wi in zip(row_metric, w))
    assert accuracy.get()[0] == pytest.approx(1.5 + hits, rel=1e-15)
    assert accuracy.get()[1] == pytest.approx(1.5 + w.astype(np.float64).sum(), rel=1e-15)
    assert position.get()[0] == 3
    assert offsets.get().tolist() == [10, 2**63 + 2**62]
    assert p1.get()[0] == 0.9 * 0.9 and p2.get()[0] == 0.999


OPTIMIZERS = {
    "sgd": lambda: optimizers.SGD(0.05),
    "sgd-momentum-clipvalue": lambda: optimizers.SGD(0.05, momentum=0.9, clipvalue=0.5),
    "sgd-nesterov-decay": lambda: optimizers.SGD(
        0.05, momentum=0.9, nesterov=True, weight_decay=0.01
    ),  # fmt: skip
    "sgd-clipnorm": lambda: optimizers.SGD(0.05, clipnorm=1.0),
    "rmsprop": lambda: optimizers.RMSprop(0.01),
    "rmsprop-centered-momentum": lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "adagrad-clipvalue": lambda: optimizers.Adagrad(0.05, clipvalue=0.3),
    "adam": lambda: optimizers.Adam(0.01),
    "adam-amsgrad-global-clipnorm": lambda: optimizers.Adam(
        0.01, amsgrad=True, epsilon=1e-4, global_clipnorm=2.0
    ),  # fmt: skip
    "adamw": lambda: optimizers.AdamW(0.01, weight_decay=0.1),
    "adamax": lambda: optimizers.Adamax(0.01),
    "nadam-decay": lambda: optimizers.Nadam(0.01, weight_decay=0.05),
}


def _fused_update(device, optimizer, params, grads):
    """The fused step's update (gpunet/step/updates.py) alone, on these arrays."""

    from gpunet.step import updates

    update = updates.Updates(device, optimizer, params, grads)
    update.sync_rates()
    update.enqueue()
    for product, factor in update.products():  # what step_end does after the update
        product *= factor
    return update.scaled_loss


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_fused_update_is_the_xp_rule(device, name):
    """Bit for bit, but for the norm clipping, whose norm the kernel sums in float64 (the xp
    rule: a float32 dot)."""
    rs = np.random.default_rng(11)
    segments = [(0, 600), (600, 1000)]
    w = rs.standard_normal(1000).astype(np.float32)
    reference = OPTIMIZERS[name]()
    w_ref = w.copy()
    reference.build(w_ref, segments)
    optimizer = OPTIMIZERS[name]()
    w_dev = _put(device, w)
    optimizer.build(w_dev, segments)
    for step in range(4):
        g = (rs.standard_normal(1000) * 10.0 ** (step - 2)).astype(np.float32)
        g[3] = 0.0
        scale = reference.loss_scale()
        g_step = (g * np.float32(scale)).astype(np.float32) if scale != 1.0 else g
        reference.apply(w_ref, g_step.copy(), scale)
        scaled = _fused_update(device, optimizer, w_dev, _put(device, g_step))
        assert scaled == (scale != 1.0)
        if "clipnorm" in name:
            np.testing.assert_allclose(w_dev.get(), w_ref, rtol=1e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(w_dev.get(), w_ref, err_msg=f"step {step}")
    clipped = "clipnorm" in name  # else exact
    for slot, value in reference.slots.items():
        atol = 1e-6 * np.abs(value).max() if clipped else 0.0
        np.testing.assert_allclose(optimizer.slots[slot].get(), value, rtol=0.0, atol=atol)
    for product, value in reference.products.items():
        assert optimizer.products[product].get()[0] == value[0], product


# ----- the typed launch wrappers ----------------------------------------------------------------


def test_launch_checks_each_argument_against_the_signature(device):
    g = device.zeros((4, 3), np.float32)
    out = device.zeros(3, np.float32)
    with pytest.raises(TypeError, match="bias_grad takes 4 arguments"):
        kernels.launch(device, "bias_grad", 3, g, out, 4)
    with pytest.raises(TypeError, match="argument gb .*dtype float32 required"):
        kernels.launch(device, "bias_grad", 3, g, device.zeros(3, np.float64), 4, 3)
    with pytest.raises(TypeError, match="a device array is required"):
        kernels.launch(device, "bias_grad", 3, np.zeros((4, 3), np.float32), out, 4, 3)
    with pytest.raises(ValueError, match="C-contiguous"):
        kernels.launch(device, "bias_grad", 3, device.zeros((3, 4), np.float32).T, out, 4, 3)
    with pytest.raises(OverflowError):
        kernels.launch(device, "bias_grad", 3, g, out, 2**31, 3)
    with pytest.raises(TypeError, match="a number is required"):
        kernels.launch(device, "bias_grad", 3, g, out, True, 3)


def test_the_standin_refuses_python_scalars_cupy_would_pass_at_another_width():
    from tests import standin

    function = standin.RawModule(code=kernels.SOURCE).get_function("bias_grad")
    g, out = standin.zeros((4, 3), np.float32), standin.zeros(3, np.float32)
    with pytest.raises(TypeError, match="takes int; received 4"):
        function((1,), (32,), (g, out, 4, 3))
    function((1,), (32,), (g, out, np.int32(4), np.int32(3)))  # exact widths: accepted


def test_every_kernel_is_declared_once_with_known_c_types():
    assert len(kernels.KERNELS) == len(set(kernels.KERNELS)) == kernels.SOURCE.count("__global__")
    for name, params in kernels.SIGNATURES.items():
        assert params, name
        assert all(p.ctype in kernels._C_TYPES for p in params)
