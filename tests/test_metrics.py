import numpy as np
import pytest

from gpunet import metrics
from gpunet.backend import to_host


def test_accuracy_resolution_follows_keras():
    assert metrics.resolve_accuracy((8, 1), (None, 1)) is metrics.binary_accuracy
    assert metrics.resolve_accuracy((8,), (None, 10)) is metrics.sparse_categorical_accuracy
    assert metrics.resolve_accuracy((8, 1), (None, 10)) is metrics.sparse_categorical_accuracy
    assert metrics.resolve_accuracy((8, 10), (None, 10)) is metrics.categorical_accuracy
    assert metrics.get("acc", (8, 10), (None, 10)).name == "acc"  # keeps the user's spelling


def test_running_weighted_mean_over_batches():
    m = metrics.get("accuracy", (4, 2), (None, 2))
    y = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]
    m.update_state(y[:2], np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32))  # 2/2
    m.update_state(y[2:], np.array([[0.1, 0.9], [0.4, 0.6]], dtype=np.float32))  # 1/2
    assert m.result() == pytest.approx(0.75)
    m.update_state(y[:1], np.array([[0.1, 0.9]], dtype=np.float32), np.array([2.0]))
    assert m.result() == pytest.approx(3 / 6)
    m.reset_state()
    assert m.result() == 0.0


def test_binary_and_top_k():
    y_true = np.array([[1.0], [0.0], [1.0]])
    y_pred = np.array([[0.7], [0.6], [0.2]])
    np.testing.assert_allclose(metrics.binary_accuracy(y_true, y_pred), [1, 0, 0])
    scores = np.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1]])
    np.testing.assert_allclose(
        metrics.top_k_categorical_accuracy(np.eye(3)[[2, 2]], scores, k=2), [1, 0]
    )
    np.testing.assert_allclose(
        metrics.sparse_top_k_categorical_accuracy(np.array([2, 2]), scores, k=2), [1, 0]
    )


def test_precision_recall(xp):
    # tp = 2, fp = 1, fn = 3: precision 2/3 and recall 2/5 differ, so swapping fp and fn (or the
    # two formulas) fails; weights then move both, and the state carries across updates.
    y_true = np.array([[1.0], [1.0], [1.0], [1.0], [1.0], [0.0], [0.0]])
    y_pred = np.array([[0.9], [0.7], [0.2], [0.4], [0.5], [0.8], [0.1]])  # 0.5 is not > 0.5
    p, r = metrics.get("precision", (7, 1), (None, 1)), metrics.get("recall", (7, 1), (None, 1))
    for metric in (p, r):
        metric.update_state(xp.asarray(y_true[:4]), xp.asarray(y_pred[:4]))
        metric.update_state(xp.asarray(y_true[4:]), xp.asarray(y_pred[4:]))
    assert p.result() == pytest.approx(2 / 3) and r.result() == pytest.approx(2 / 5)
    weights = np.array([3.0, 1.0, 1.0, 1.0, 1.0, 2.0, 1.0])  # tp 4, fp 2, fn 3
    for metric in (p, r):
        metric.reset_state()
        metric.update_state(xp.asarray(y_true), xp.asarray(y_pred), xp.asarray(weights))
    assert p.result() == pytest.approx(4 / 6) and r.result() == pytest.approx(4 / 7)


def test_auc_close_to_exact_roc_auc():
    from sklearn.metrics import roc_auc_score

    rs = np.random.default_rng(0)
    y_true = rs.integers(0, 2, 2000).astype(np.float32)
    y_pred = np.clip(y_true * 0.3 + rs.uniform(0, 0.7, 2000), 0, 1).astype(np.float32)
    auc = metrics.get("auc", (2000, 1), (None, 1))
    auc.update_state(y_true[:1000, None], y_pred[:1000, None])
    auc.update_state(y_true[1000:, None], y_pred[1000:, None])
    assert auc.result() == pytest.approx(roc_auc_score(y_true, y_pred), abs=2e-3)
    # Sample weights count: weighing the hard half up moves the area as sklearn's does.
    weights = np.where(np.abs(y_pred - 0.5) < 0.2, 5.0, 0.5).astype(np.float32)
    weighted = roc_auc_score(y_true, y_pred, sample_weight=weights)
    assert abs(weighted - roc_auc_score(y_true, y_pred)) > 0.02  # the weights matter here
    auc.reset_state()
    auc.update_state(y_true[:, None], y_pred[:, None], weights)
    assert auc.result() == pytest.approx(weighted, abs=2e-3)


def test_regression_metrics():
    y_true, y_pred = np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]])
    rmse = metrics.get("root_mean_squared_error", (1, 2), (None, 2))
    rmse.update_state(y_true, y_pred)
    assert rmse.result() == pytest.approx(np.sqrt(12.5))
    mae = metrics.get("mae", (1, 2), (None, 2))
    mae.update_state(y_true, y_pred)
    assert mae.result() == pytest.approx(3.5)


def test_unknown_metric_lists_choices():
    with pytest.raises(ValueError, match="Unknown metric 'acuracy'.*accuracy"):
        metrics.check_name("acuracy")


def test_regression_metric_functions_per_sample(xp):
    y_true = xp.asarray(np.array([[0.0, 2.0], [1.0, 1.0]]))
    y_pred = xp.asarray(np.array([[1.0, 0.0], [1.0, 4.0]]))
    np.testing.assert_allclose(to_host(metrics.mean_squared_error(y_true, y_pred)), [2.5, 4.5])
    np.testing.assert_allclose(to_host(metrics.mean_absolute_error(y_true, y_pred)), [1.5, 1.5])
    # Class labels against a wider output broadcast as one column (Keras's same-rank rule).
    labels = xp.asarray(np.array([1.0, 0.0]))
    np.testing.assert_allclose(to_host(metrics.mean_absolute_error(labels, y_pred)), [0.5, 2.5])


def _keras_auc(y_true, y_pred, weights, num_thresholds, dtype=np.float64):
    """Keras's ROC AUC, written from its source's rules: scores clipped to [0, 1], labels cast
    to bool (nonzero is positive), thresholds 0 - eps, (i+1)/(n-1) for i < n - 2, 1 + eps in
    the scores' dtype; a score above a threshold is a predicted positive; trapezoids of the
    true positive rate over the false positive rate."""
    eps = 1e-7
    thresholds = [0.0 - eps] + [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    thresholds = [dtype(t) for t in thresholds + [1.0 + eps]]
    y_pred = [min(max(p, 0.0), 1.0) for p in y_pred]
    tpr, fpr = [], []
    for t in thresholds:
        tp = sum(w for y, p, w in zip(y_true, y_pred, weights) if p > t and y != 0)
        fp = sum(w for y, p, w in zip(y_true, y_pred, weights) if p > t and y == 0)
        pos = sum(w for y, w in zip(y_true, weights) if y != 0)
        neg = sum(w for y, w in zip(y_true, weights) if y == 0)
        tpr.append(tp / pos if pos else 0.0)
        fpr.append(fp / neg if neg else 0.0)
    return sum((fpr[i] - fpr[i + 1]) * (tpr[i] + tpr[i + 1]) / 2 for i in range(len(tpr) - 1))


@pytest.mark.parametrize("num_thresholds", [3, 4, 200])
def test_auc_is_keras_rule_exactly_at_the_threshold_edges(xp, num_thresholds):
    # Scores exactly 0, 1 and on the inner thresholds (0.5 for three; 1/3, 2/3 for four).
    y_pred = np.array([0.0, 1.0, 0.5, 1 / 3, 2 / 3, 0.2, 0.9, 0.5], dtype=np.float64)
    y_true = np.array([0, 1, 1, 0, 1, 0, 0, 1], dtype=np.float64)
    weights = np.array([1.0, 2.0, 1.0, 0.5, 1.0, 3.0, 1.0, 1.0])
    metric = metrics.AUC(num_thresholds=num_thresholds)
    metric.update_state(xp.asarray(y_true), xp.asarray(y_pred), xp.asarray(weights))
    expected = _keras_auc(y_true, y_pred, weights, num_thresholds)
    assert metric.result() == pytest.approx(expected, abs=1e-12)
    default = metrics.AUC()
    assert default.name == "auc" and len(default.thresholds) == 200


def test_auc_compares_float32_scores_with_float32_thresholds(xp):
    # Keras casts its thresholds to the scores' float32: a score of float32(1/3), which lies
    # above 1/3, is not above the threshold float32(1/3).
    y_pred = np.array([1 / 3, 0.9, 0.2, 0.5], dtype=np.float32)
    y_true = np.array([1.0, 1.0, 0.0, 0.0], dtype=np.float32)
    weights = np.ones(4)
    metric = metrics.AUC(num_thresholds=4)
    metric.update_state(xp.asarray(y_true), xp.asarray(y_pred))
    expected = _keras_auc(y_true, y_pred, weights, 4, dtype=np.float32)
    assert expected == 0.625 and _keras_auc(y_true, y_pred, weights, 4) == 0.875
    assert metric.result() == expected


def test_auc_needs_two_thresholds():
    metrics.AUC(num_thresholds=2)
    with pytest.raises(ValueError, match=r"^AUC num_thresholds must be > 1, received 1\.$"):
        metrics.AUC(num_thresholds=1)


def test_binary_accuracy_writes_into_kept_buffers_in_the_outputs_dtype():
    from gpunet.buffers import Buffers
    from tests import standin
    from tests.conftest import use_standin

    use_standin()
    buffers = Buffers()
    y_true = standin.asarray(np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], np.float32))
    y_pred = standin.asarray(np.array([[0.7, 0.6, 0.5], [0.1, 0.4, 0.9]], np.float32))
    first = metrics.binary_accuracy(y_true, y_pred, buffers=buffers)
    mark = standin.ledger.mark()
    second = metrics.binary_accuracy(y_true, y_pred, buffers=buffers)
    assert standin.ledger.since(mark)["allocs"] == 0 and second is first
    assert first.dtype == np.float32
    np.testing.assert_allclose(first.get(), [1 / 3, 1.0])  # 0.5 is not above the threshold


def test_metric_names_and_a_fresh_metrics_result():
    assert metrics.RootMeanSquaredError().name == "root_mean_squared_error"
    assert metrics.Precision().name == "precision" and metrics.Recall().name == "recall"
    fresh = metrics.RootMeanSquaredError()
    assert fresh.read_state().tolist() == [0.0, 0.0] and fresh.result() == 0.0


def test_root_mean_squared_error_weighs_each_row_over_all_its_outputs(xp):
    metric = metrics.RootMeanSquaredError()
    y_true = np.array([[1.0, 2.0], [0.0, -1.0]])
    y_pred = np.array([[1.5, 1.0], [0.0, 1.0]])
    metric.update_state(xp.asarray(y_true), xp.asarray(y_pred), xp.asarray(np.array([1.0, 3.0])))
    squared = (y_pred - y_true) ** 2  # rows weighted 1 and 3, each weight counted per output
    expected = np.sqrt((squared[0].sum() * 1 + squared[1].sum() * 3) / (2 * 1 + 2 * 3))
    assert metric.result() == pytest.approx(expected, rel=1e-12)


def test_top_k_defaults_to_five_and_reads_each_rows_target():
    scores = np.array([[0.6, 0.5, 0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]], np.float32)
    labels = np.array([5, 0])  # the lowest score of each row: sixth
    np.testing.assert_array_equal(metrics.sparse_top_k_categorical_accuracy(labels, scores), [0, 0])
    np.testing.assert_array_equal(
        metrics.top_k_categorical_accuracy(np.eye(6)[labels], scores, k=6), [1, 1]
    )
    second = np.array([1, 4])  # the second best of each row, a different class per row
    assert metrics.top_k_categorical_accuracy(np.eye(6)[second], scores, k=2).tolist() == [1, 1]
    assert metrics.top_k_categorical_accuracy(np.eye(6)[second], scores, k=1).tolist() == [0, 0]
    values = metrics.sparse_top_k_categorical_accuracy(second, scores, k=2)
    assert values.dtype == np.float32 and values.tolist() == [1, 1]


def test_sparse_accuracy_values_are_in_the_outputs_dtype():
    from gpunet.buffers import Buffers

    scores = np.array([[0.2, 0.8], [0.9, 0.1]], np.float32)
    values = metrics.sparse_categorical_accuracy(np.array([1, 1]), scores, buffers=Buffers())
    assert values.dtype == np.float32 and values.tolist() == [1.0, 0.0]


def test_precision_and_recall_of_nothing_are_zero():
    assert metrics.Precision().result() == 0.0 and metrics.Recall().result() == 0.0
    negatives = metrics.Precision()
    negatives.update_state(np.array([[0.0], [1.0]]), np.array([[0.1], [0.2]]))  # none predicted
    assert negatives.result() == 0.0


def test_top_k_takes_label_columns_and_defaults_to_five_for_one_hot_too():
    scores = np.array([[0.6, 0.5, 0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]], np.float32)
    assert metrics.top_k_categorical_accuracy(np.eye(6)[[5, 0]], scores).tolist() == [0, 0]
    column = np.array([[1], [4]])  # labels shaped (N, 1)
    assert metrics.sparse_top_k_categorical_accuracy(column, scores, k=2).tolist() == [1, 1]


def test_categorical_accuracy_writes_into_kept_buffers():
    from gpunet.buffers import Buffers
    from tests import standin
    from tests.conftest import use_standin

    use_standin()
    buffers = Buffers()
    t = standin.asarray(np.eye(3, dtype=np.float32)[[0, 2]])
    p = standin.asarray(np.array([[0.5, 0.3, 0.2], [0.5, 0.1, 0.4]], np.float32))
    first = metrics.categorical_accuracy(t, p, buffers=buffers)
    mark = standin.ledger.mark()
    second = metrics.categorical_accuracy(t, p, buffers=buffers)
    assert standin.ledger.since(mark)["allocs"] == 0 and second is first
    assert first.get().tolist() == [1.0, 0.0] and first.dtype == np.float32


def test_auc_with_one_positive_or_none_follows_keras(xp):
    y_pred = np.array([0.9, 0.4, 0.6, 0.1])
    for y_true in (np.array([1.0, 0.0, 0.0, 0.0]), np.zeros(4), np.ones(4)):
        metric = metrics.AUC(num_thresholds=5)
        metric.update_state(xp.asarray(y_true), xp.asarray(y_pred))  # no warning, no NaN
        expected = _keras_auc(y_true, y_pred, np.ones(4), 5)
        assert metric.result() == pytest.approx(expected, abs=1e-12)
    assert expected == 0.0  # all positive: no false positive rate to integrate over


def test_auc_clips_scores_and_counts_nonzero_labels_as_positive_as_keras(xp):
    # Scores outside [0, 1] (a linear output) count as 0 or 1; a soft label 0.3 is a positive
    # (Keras casts labels to bool); one negative of weight 1 still has a false positive rate.
    y_pred = np.array([1.7, -0.4, 0.55, 0.2, 1.0, 0.0, 0.8])
    y_true = np.array([1.0, 0.3, 0.0, 1.0, 0.3, 1.0, 1.0])
    metric = metrics.AUC(num_thresholds=7)
    metric.update_state(xp.asarray(y_true), xp.asarray(y_pred))
    expected = _keras_auc(y_true, y_pred, np.ones(7), 7)
    assert 0.0 < expected < 1.0 and metric.result() == pytest.approx(expected, abs=1e-12)


def test_precision_and_recall_count_nonzero_labels_as_positive_as_keras(xp):
    y_true = np.array([[0.3], [1.0], [0.0], [0.5], [0.2]])  # positives: all but the third
    y_pred = np.array([[0.9], [0.4], [0.7], [0.6], [0.1]])  # predicted: first, third, fourth
    p, r = metrics.Precision(), metrics.Recall()
    for metric in (p, r):
        metric.update_state(xp.asarray(y_true), xp.asarray(y_pred))
    assert p.result() == pytest.approx(2 / 3) and r.result() == pytest.approx(2 / 4)


def test_sparse_accuracy_takes_label_columns_into_kept_buffers(xp):
    from gpunet.buffers import Buffers

    scores = xp.asarray(np.array([[0.2, 0.8], [0.9, 0.1], [0.3, 0.7]], np.float32))
    labels = xp.asarray(np.array([[1], [1], [1]]))  # (N, 1), as Keras takes them
    values = metrics.sparse_categorical_accuracy(labels, scores, buffers=Buffers())
    assert to_host(values).tolist() == [1.0, 0.0, 1.0]


def _mean_of(xp, values, weights=None):
    """MeanAbsoluteError against zero targets: the weighted mean of `values` (one per row)."""
    metric = metrics.MeanAbsoluteError()
    y_pred = xp.asarray(np.asarray(values, np.float32).reshape(-1, 1))
    w = None if weights is None else xp.asarray(np.asarray(weights, np.float32))
    metric.update_state(xp.zeros_like(y_pred), y_pred, w)
    return metric.result()


def test_a_mean_adds_its_values_and_weights_in_float64(xp):
    # float32 sums lose the 1 next to 2**24 (2**24 + 1 is not a float32): the totals are float64.
    assert _mean_of(xp, [2.0**24, 1.0]) == (2.0**24 + 1) / 2
    assert _mean_of(xp, [2.0**24, 1.0], weights=[1.0, 1.0]) == (2.0**24 + 1) / 2
    assert _mean_of(xp, [1.0, 1.0], weights=[2.0**24, 1.0]) == 1.0


def test_a_mean_weighs_its_values_in_their_dtype_as_keras(xp):
    # Keras multiplies values by weights in the metric's float32; the sums are float64 here.
    v = w = np.float32(1 + 2.0**-23)
    assert np.float64(v) * np.float64(w) != np.float64(v * w)  # the product rounds in float32
    assert _mean_of(xp, [v], weights=[w]) == np.float64(v * w) / np.float64(w)


def test_per_sample_metric_functions_reduce_the_last_axis_of_any_rank(xp):
    # As Keras's functions: values per position, over every axis but the last (2, 3 here).
    from gpunet.buffers import Buffers

    rs = np.random.default_rng(5)
    scores = rs.random((2, 3, 4)).astype(np.float32)
    labels = rs.integers(0, 4, (2, 3))
    one_hot = np.eye(4, dtype=np.float32)[labels]
    targets = rs.random((2, 3, 4)).astype(np.float32)
    expected = {
        "binary": ((scores > 0.5) == (targets > 0.5)).mean(axis=-1),
        "categorical": (scores.argmax(-1) == labels).astype(np.float32),
        "mse": ((scores - targets) ** 2).mean(axis=-1),
        "mae": np.abs(scores - targets).mean(axis=-1),
    }
    s, t, h = xp.asarray(scores), xp.asarray(targets), xp.asarray(one_hot)
    for kept in (False, True):  # new arrays, or each function's own kept buffers
        got = {
            "binary": metrics.binary_accuracy(t, s, buffers=Buffers() if kept else None),
            "categorical": metrics.categorical_accuracy(h, s, buffers=Buffers() if kept else None),
            "sparse": metrics.sparse_categorical_accuracy(
                xp.asarray(labels), s, buffers=Buffers() if kept else None
            ),
        }
        for name, values in got.items():
            want = expected["categorical" if name == "sparse" else name]
            np.testing.assert_allclose(to_host(values), want, rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(to_host(metrics.mean_squared_error(t, s)), expected["mse"], 1e-6)
    np.testing.assert_allclose(to_host(metrics.mean_absolute_error(t, s)), expected["mae"], 1e-6)
