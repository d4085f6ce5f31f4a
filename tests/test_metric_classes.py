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
