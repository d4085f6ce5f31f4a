"""Metrics by class and by string, with Keras 3's class names and log names."""

import numpy as np
import pytest

import gpunet as gn
from gpunet import metrics

Y_TRUE = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
Y_PRED = np.array([[0.2, 0.7, 0.1], [0.3, 0.6, 0.1], [0.5, 0.1, 0.4], [0.1, 0.8, 0.1]])


@pytest.mark.parametrize(
    "cls, name, expected",
    [
        (metrics.CategoricalAccuracy, "categorical_accuracy", 0.5),
        (metrics.TopKCategoricalAccuracy, "top_k_categorical_accuracy", 1.0),
        (metrics.MeanSquaredError, "mean_squared_error", np.mean((Y_PRED - Y_TRUE) ** 2)),
        (metrics.MeanAbsoluteError, "mean_absolute_error", np.mean(np.abs(Y_PRED - Y_TRUE))),
        (metrics.BinaryAccuracy, "binary_accuracy", np.mean((Y_PRED > 0.5) == (Y_TRUE > 0.5))),
    ],
)
def test_classes_keep_keras_names_and_values(cls, name, expected):
    metric = cls()
    assert metric.name == name and type(metric).__name__ == cls.__name__
    metric.update_state(Y_TRUE, Y_PRED)
    assert metric.result() == pytest.approx(expected)


def test_options_reach_the_function():
    top1 = metrics.TopKCategoricalAccuracy(k=1)
    top1.update_state(Y_TRUE, Y_PRED)
    assert top1.result() == pytest.approx(0.5)
    strict = metrics.BinaryAccuracy(threshold=0.65)
    strict.update_state(Y_TRUE, Y_PRED)
    assert strict.result() == pytest.approx(np.mean((Y_PRED > 0.65) == (Y_TRUE > 0.5)))
    labels = np.array([1, 1, 2, 1])
    sparse = metrics.SparseTopKCategoricalAccuracy(k=1, name="top1")
    sparse.update_state(labels, Y_PRED)
    assert sparse.name == "top1" and sparse.result() == pytest.approx(0.75)  # argmax 1, 1, 0, 1
    exact = metrics.SparseCategoricalAccuracy()
    exact.update_state(labels, Y_PRED)
    assert exact.result() == pytest.approx(0.75)


def test_mean_absolute_percentage_error_as_keras_3():
    y_true = np.array([[2.0, -4.0], [0.0, 1.0]])
    y_pred = np.array([[1.0, -5.0], [1.0, 1.5]])
    scale = np.maximum(np.abs(y_true), 1e-7)
    expected = 100.0 * np.mean(np.abs(y_true - y_pred) / scale)
    metric = metrics.MeanAbsolutePercentageError()
    metric.update_state(y_true, y_pred)
    assert metric.name == "mean_absolute_percentage_error"
    assert metric.result() == pytest.approx(expected)
    assert metrics.get("mape", (2, 2), (2, 2)).name == "mape"


@pytest.mark.parametrize(
    "identifier, name",
    [
        ("RootMeanSquaredError", "root_mean_squared_error"),
        ("rmse", "rmse"),
        ("MeanAbsolutePercentageError", "mean_absolute_percentage_error"),
        ("Precision", "precision"),
        ("TopKCategoricalAccuracy", "top_k_categorical_accuracy"),
        ("mae", "mae"),
    ],
)
def test_strings_by_class_name_log_under_the_default_name(identifier, name):
    metrics.check_name(identifier)
    assert metrics.get(identifier, (4, 3), (4, 3)).name == name


def test_class_metrics_in_a_fit_log_keras_names():
    gn.utils.clear_session()
    model = gn.Sequential([gn.layers.Input((3,)), gn.layers.Dense(3, activation="softmax")])
    model.compile(
        loss="categorical_crossentropy",
        optimizer="sgd",
        metrics=[
            metrics.CategoricalAccuracy(),
            "RootMeanSquaredError",
            metrics.TopKCategoricalAccuracy(k=2),
        ],
    )
    history = model.fit(Y_PRED.astype(np.float32), Y_TRUE, epochs=1, verbose=0)
    assert sorted(history.history) == [
        "categorical_accuracy",
        "loss",
        "root_mean_squared_error",
        "top_k_categorical_accuracy",
    ]


def test_a_class_name_metric_is_known_by_its_log_name_before_fit(tmp_path):
    gn.utils.clear_session()
    model = gn.Sequential([gn.layers.Input((3,)), gn.layers.Dense(3, activation="softmax")])
    model.compile(loss="mse", optimizer="sgd", metrics=["RootMeanSquaredError", "acc"])
    assert model.metrics_names == ["loss", "root_mean_squared_error", "acc"]
    saver = gn.callbacks.ModelCheckpoint(str(tmp_path / "m-{root_mean_squared_error:.3f}.npz"))
    model.fit(Y_PRED.astype(np.float32), Y_TRUE, epochs=1, verbose=0, callbacks=[saver])
    assert len(list(tmp_path.iterdir())) == 1


def test_evaluate_weights_its_metrics_by_sample_weight():
    gn.utils.clear_session()
    model = gn.Sequential([gn.layers.Input((3,)), gn.layers.Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    x = Y_PRED.astype(np.float32)
    correct = (model.predict(x, verbose=0).argmax(1) == Y_TRUE.argmax(1)).astype(float)
    weights = np.array([3.0, 1.0, 0.0, 2.0])
    _, accuracy = model.evaluate(x, Y_TRUE, sample_weight=weights, verbose=0)
    assert accuracy == pytest.approx((correct * weights).sum() / weights.sum())


@pytest.mark.parametrize(
    "make",
    [
        metrics.BinaryAccuracy,
        lambda: metrics.BinaryAccuracy(threshold=0.35),
        metrics.CategoricalAccuracy,
        lambda: metrics.CategoricalAccuracy(name="acc"),
    ],
)
def test_class_metrics_write_into_kept_buffers_with_or_without_options(make):
    # A class metric given an option (a threshold) once bound it with functools.partial, which
    # dropped `buffered`: every update allocated its values anew.
    from tests import standin
    from tests.conftest import use_standin

    use_standin()
    metric = make()
    y_true, y_pred = standin.asarray(Y_TRUE), standin.asarray(Y_PRED)
    metric.update_state(y_true, y_pred)
    mark = standin.ledger.mark()
    metric.update_state(y_true, y_pred)
    assert standin.ledger.since(mark)["allocs"] == 0


def test_binary_accuracy_with_a_threshold_keeps_its_value():
    metric = metrics.BinaryAccuracy(threshold=0.35)
    metric.update_state(Y_TRUE, Y_PRED)
    assert metric.result() == pytest.approx(np.mean((Y_PRED > 0.35) == (Y_TRUE > 0.5)))


@pytest.mark.parametrize(
    "cls, words",
    [
        (metrics.BinaryAccuracy, "threshold"),
        (metrics.TopKCategoricalAccuracy, "k highest scores"),
        (metrics.MeanAbsolutePercentageError, "|y_true|"),
    ],
)
def test_class_metrics_carry_their_docstrings(cls, words):
    assert words in (cls.__doc__ or "")


def test_mean_absolute_percentage_error_is_per_sample_over_the_last_axis(xp):
    from gpunet.backend import to_host

    rs = np.random.default_rng(3)
    y_true = rs.uniform(0.5, 2.0, (2, 3, 4)) * rs.choice([-1.0, 1.0], (2, 3, 4))
    y_pred = rs.standard_normal((2, 3, 4))
    expected = 100.0 * (np.abs(y_true - y_pred) / np.abs(y_true)).mean(axis=-1)
    values = metrics.mean_absolute_percentage_error(xp.asarray(y_true), xp.asarray(y_pred))
    np.testing.assert_allclose(to_host(values), expected, rtol=1e-12)
    assert values.shape == (2, 3)


@pytest.mark.parametrize(
    "y_true_shape, y_pred_shape, expected",
    [
        ((8, 4, 1), (None, 4, 1), "binary_accuracy"),  # the last axis, not the second
        ((8, 4, 1), (None, 4, 10), "sparse_categorical_accuracy"),
        ((8, 1, 1), (None, 1, 10), "sparse_categorical_accuracy"),
        ((8, 1), (None, 2), "sparse_categorical_accuracy"),  # two classes as labels
        ((8, 2), (None, 2), "categorical_accuracy"),
    ],
)
def test_accuracy_resolves_on_the_last_axis(y_true_shape, y_pred_shape, expected):
    assert metrics.resolve_accuracy(y_true_shape, y_pred_shape).__name__ == expected


def test_serialized_metrics_are_known_by_name_before_they_are_built():
    config = {"class_name": "AUC", "config": {"name": "roc", "num_thresholds": 50}}
    assert metrics.log_name(config) == "roc"
    assert metrics.check_name(config) is None
    with pytest.raises(ValueError, match=r"^Unknown metric 'Nope'\. Allowed: AUC, "):
        metrics.check_name({"class_name": "Nope", "config": {}})


def test_an_unknown_metric_name_is_refused_in_words():
    with pytest.raises(ValueError, match=r"^Unknown metric 'accurcy'\. Did you mean 'accuracy'\?"):
        metrics.get("accurcy")
