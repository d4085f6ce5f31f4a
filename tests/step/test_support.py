"""What the fused CuPy step takes (gpunet/step/support.py): the reason it names for each model,
loss, metric and input it does not, and the loss kernel for each loss and output activation."""

import numpy as np
import pytest

import gpunet as gn
from gpunet.step import support

L = gn.layers


def _reason(layers, loss="sparse_categorical_crossentropy", metrics=("accuracy",), x=None):
    gn.utils.clear_session()
    model = gn.Sequential([L.Input((2, 4)), *layers])
    model.compile(optimizer="sgd", loss=loss, metrics=list(metrics))
    model.build()
    x = np.zeros((3, 2, 4), np.float32) if x is None else x
    y = np.zeros(3, int) if "sparse" in model.loss.name else np.zeros((3, 3), np.float32)
    model._metrics = [gn.metrics.get(m, y.shape, (None, 3)) for m in metrics]  # as fit does
    return support.unsupported(model, x)


def test_a_flatten_first_then_dense_and_dropout_layers_are_taken():
    layers = [L.Flatten(), L.Dense(8, "relu"), L.Dropout(0.2), L.Dense(3, "softmax")]
    assert _reason(layers) is None


def test_a_layer_before_the_first_dense_or_without_a_kernel_is_named_with_its_class():
    reason = _reason([L.Flatten(), L.Dropout(0.2), L.Dense(3, "softmax")])
    assert reason == "layer dropout (Dropout) comes before any Dense"
    reason = _reason([L.Flatten(), L.Dense(8), L.Activation("relu"), L.Dense(3, "softmax")])
    assert reason == "layer activation (Activation) has no fused kernel"


@pytest.mark.parametrize(
    "metrics, loss, reason",
    [
        (
            ["accuracy", "sparse_categorical_accuracy"],
            "sparse_categorical_crossentropy",
            "the fused sparse_categorical_crossentropy kernel computes the metric "
            "sparse_categorical_accuracy, not ['accuracy', 'sparse_categorical_accuracy']",
        ),
        (["mae"], "mse", "the fused mean_squared_error kernel computes no metric, not ['mae']"),
    ],
    ids=["two-metrics", "mse-with-a-metric"],
)
def test_the_fused_loss_kernel_computes_one_metric_and_says_which(metrics, loss, reason):
    last = "softmax" if loss != "mse" else "linear"
    assert _reason([L.Flatten(), L.Dense(3, last)], loss, metrics) == reason


@pytest.mark.parametrize(
    "x", [np.zeros((3, 2, 4), np.float64), np.zeros((3, 2, 4), np.float32, order="F")]
)
def test_x_must_be_c_contiguous_float32(x):
    reason = _reason([L.Flatten(), L.Dense(3, "softmax")], x=x)
    assert reason == "x is not a C-contiguous float32 array"


SCCE, CCE, BCE = (
    gn.losses.SparseCategoricalCrossentropy,
    gn.losses.CategoricalCrossentropy,
    gn.losses.BinaryCrossentropy,
)


@pytest.mark.parametrize(
    "loss, last, kernel",
    [
        (SCCE(), "softmax", "softmax_xent_sparse"),
        (SCCE(from_logits=True), "linear", "softmax_xent_sparse"),
        (SCCE(from_logits=True), "softmax", None),  # softmax twice
        (SCCE(), "linear", None),  # probabilities expected, logits given
        (CCE(), "softmax", "softmax_xent_dense"),
        (CCE(), "relu", None),
        (BCE(), "sigmoid", "sigmoid_xent"),
        (BCE(from_logits=True), "linear", "sigmoid_xent"),
        (BCE(), "softmax", None),
        (gn.losses.MeanSquaredError(), "linear", "mse"),
        (gn.losses.MeanSquaredError(), "relu", None),  # MSE of the pre-activation would be wrong
        (gn.losses.MeanAbsoluteError(), "linear", None),
    ],
)
def test_each_loss_kernel_takes_its_own_output_activation_or_logits(loss, last, kernel):
    assert support.loss_kernel(loss, last) == kernel
