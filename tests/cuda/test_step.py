"""gpunet/cuda/step.cu: the batch gather, the end-of-step bookkeeping and the penalties."""

import numpy as np
import pytest

from gpunet.cuda import kernels
from tests.cuda.helpers import put as _put


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
    position.fill(5)  # the last, partial batch: rows 40..49 (from row 3: a rank's shard)
    for y, first in ((y_labels, 0), (y_dense, 0), (y_labels, 3)):
        rows = 10 - first
        xb = device.empty((rows, features), np.float32)
        yb = device.empty((rows,) + y.shape[1:], y.dtype)
        wb = device.empty(rows, np.float32)
        y_bytes = y.itemsize * int(np.prod(y.shape[1:]))
        kernels.launch(
            device, "gather_batch", rows * max(features, y_bytes), _put(device, x),
            _put(device, y), _put(device, w), _put(device, order), position, batch, first, rows,
            features, y_bytes, xb, yb, wb,
        )  # fmt: skip
        index = order[40 + first : 50]
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
