"""The reference step (gpunet/step/reference.py): what it writes and in which dtype, for the
parts no training run shows within its tolerance."""

import numpy as np

import gpunet as gn
from gpunet import backend


def _linear(loss="mse", units=1, activation="linear"):
    model = gn.Sequential(
        [
            gn.layers.Input((2,)),
            gn.layers.Dense(units, activation=activation, kernel_initializer="zeros"),
        ]
    )
    model.compile(optimizer="sgd", loss=loss)
    model.build()
    return model


def test_a_batch_loss_total_is_summed_in_float64():
    # Per-sample squared errors 2**24, 1, 1, 1: a float32 sum drops every 1 (2**24 + 1 rounds
    # back to 2**24); the float64 total keeps them, as the tracker's float64 state expects.
    model = _linear()
    x = np.zeros((4, 2), np.float32)
    y = np.array([[4096.0], [1.0], [1.0], [1.0]], np.float32)
    assert model.evaluate(x, y, batch_size=4, verbose=0) == (2**24 + 3) / 4


def test_the_fused_loss_buffers_stay_float32():
    model = _linear("categorical_crossentropy", units=3, activation="softmax")
    step = model._get_trainer().step
    assert step.fused
    xp = backend.xp()
    x = backend.to_device(np.ones((4, 2), np.float32))
    y = backend.to_device(np.eye(3, dtype=np.float32)[[0, 1, 2, 0]])
    total = xp.zeros((), "float64")
    y_pred, grad = step._loss(y, step.forward(x, True, logits=True), None, total, True)
    assert y_pred.dtype == grad.dtype == np.float32
    np.testing.assert_allclose(backend.to_host(y_pred), 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(float(backend.to_host(total)), 4 * np.log(3), rtol=1e-6)


def test_evaluation_runs_with_dropout_off():
    gn.utils.set_random_seed(0)
    model = gn.Sequential(
        [gn.layers.Input((8,)), gn.layers.Dropout(0.5), gn.layers.Dense(1, use_bias=False)]
    )
    model.compile(optimizer="sgd", loss="mse")
    model.build()
    x = np.ones((16, 8), np.float32)
    kernel = model.layers[-1].get_weights()[0]
    expected = float(np.mean((x @ kernel) ** 2))
    assert np.isclose(model.evaluate(x, np.zeros((16, 1), np.float32), verbose=0), expected)


def test_a_loss_from_logits_after_a_softmax_is_not_fused_into_it():
    # CategoricalCrossentropy(from_logits=True) after a softmax layer applies its own softmax
    # to the probabilities (a mistake Keras lets users make, and computes as written).
    model = gn.Sequential(
        [gn.layers.Input((2,)), gn.layers.Dense(3, activation="softmax", use_bias=False)]
    )
    model.compile(optimizer="sgd", loss=gn.losses.CategoricalCrossentropy(from_logits=True))
    model.build()
    assert not model._get_trainer().step.fused
    x = np.array([[1.0, -2.0]], np.float32)
    y = np.array([[0.0, 1.0, 0.0]], np.float32)
    z = x @ model.layers[0].get_weights()[0]
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    expected = -np.log(np.exp(p[0, 1]) / np.exp(p[0]).sum())
    assert np.isclose(model.evaluate(x, y, verbose=0), expected, rtol=1e-5)
