"""BatchNormalization (gpunet/normalization.py), as Keras 3: batch statistics while training,
moving ones otherwise, Keras's moving-average update, its gradient, its weights in Keras's order,
and an exact resume."""

import numpy as np
import pytest

import gpunet as gn
from tests.gradcheck import assert_grad_close, numerical_grad


def _layer(features=3, **kwargs):
    layer = gn.layers.BatchNormalization(**kwargs)
    layer.build((features,))
    xp = gn.backend.xp()
    params = [
        xp.asarray(np.array(init, np.float64)) for init in ([1.5, 0.5, 2.0], [0.1, -0.2, 0.3])
    ]
    grads = [xp.zeros(3) for _ in params]
    layer.bind(params, grads)
    return layer, grads


def test_training_uses_the_batch_and_updates_the_moving_statistics_as_keras():
    x = np.array([[1.0, 2.0, -1.0], [3.0, 6.0, 1.0], [5.0, 4.0, 0.0]], dtype=np.float32)
    layer, _ = _layer(momentum=0.9)
    y = gn.backend.to_host(layer.forward(gn.backend.to_device(x), training=True))
    mean, variance = x.mean(axis=0), x.var(axis=0)
    expected = (x - mean) / np.sqrt(variance + 1e-3) * [1.5, 0.5, 2.0] + [0.1, -0.2, 0.3]
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    # moving = moving * momentum + batch * (1 - momentum), from zeros and ones
    np.testing.assert_allclose(gn.backend.to_host(layer.moving_mean), 0.1 * mean, rtol=1e-6)
    np.testing.assert_allclose(
        gn.backend.to_host(layer.moving_variance), 0.9 + 0.1 * variance, rtol=1e-6
    )
    inference = gn.backend.to_host(layer.forward(gn.backend.to_device(x), training=False))
    moving_mean = gn.backend.to_host(layer.moving_mean)
    moving_variance = gn.backend.to_host(layer.moving_variance)
    expected = (x - moving_mean) / np.sqrt(moving_variance + 1e-3) * [1.5, 0.5, 2.0] + [
        0.1,
        -0.2,
        0.3,
    ]
    np.testing.assert_allclose(inference, expected, rtol=1e-5)
    assert gn.backend.to_host(layer.moving_mean).tolist() == moving_mean.tolist()  # unchanged


def test_gradients_match_central_differences_float64():
    rs = np.random.default_rng(0)
    x = rs.standard_normal((6, 3))
    gy = rs.standard_normal((6, 3))
    layer, grads = _layer()
    layer.forward(gn.backend.to_device(x), training=True)
    gx = gn.backend.to_host(layer.backward(gn.backend.to_device(gy)))

    def loss_of_x(v):
        return float((gn.backend.to_host(layer.forward(gn.backend.to_device(v), True)) * gy).sum())

    assert_grad_close(gx, numerical_grad(loss_of_x, x.copy()))
    for index, param in ((0, layer.gamma), (1, layer.beta)):
        values = gn.backend.to_host(param).copy()

        def loss_of_param(v, param=param):
            param[...] = gn.backend.to_device(v)
            out = gn.backend.to_host(layer.forward(gn.backend.to_device(x), True))
            return float((out * gy).sum())

        numeric = numerical_grad(loss_of_param, values.copy())
        param[...] = gn.backend.to_device(values)
        assert_grad_close(gn.backend.to_host(grads[index]), numeric)


def test_weights_in_keras_order_and_summary_counts():
    gn.utils.clear_session()
    model = gn.Sequential(
        [gn.Input((8,)), gn.layers.Dense(4), gn.layers.BatchNormalization(), gn.layers.Dense(2)]
    )
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(8, 4), (4,), (4,), (4,), (4,), (4,), (4, 2), (2,)]
    bn = model.layers[1]
    gamma, beta, moving_mean, moving_variance = bn.get_weights()
    assert gamma.tolist() == [1.0] * 4 and beta.tolist() == [0.0] * 4
    assert moving_mean.tolist() == [0.0] * 4 and moving_variance.tolist() == [1.0] * 4
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "│            16 │" in text  # gamma, beta, moving mean and variance
    assert " Total params: 62 (248.00 B)" in text
    assert " Trainable params: 54 (216.00 B)" in text
    assert " Non-trainable params: 8 (32.00 B)" in text


def _model():
    gn.utils.clear_session()
    gn.utils.set_random_seed(4)
    model = gn.Sequential(
        [
            gn.Input((5,)),
            gn.layers.Dense(8, activation="relu"),
            gn.layers.BatchNormalization(momentum=0.9),
            gn.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def test_it_trains_and_resumes_bit_for_bit(tmp_path):
    rs = np.random.default_rng(2)
    x = rs.random((96, 5), dtype=np.float32)
    y = x[:, :3].argmax(axis=1)
    reference = _model()
    expected = reference.fit(x, y, epochs=3, batch_size=16, verbose=0, shuffle=False).history
    assert expected["loss"][-1] < expected["loss"][0]
    first = _model()
    first.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    first.save_checkpoint(str(tmp_path / "c.npz"))
    resumed = _model()
    resumed.resume_from(str(tmp_path / "c.npz"))
    history = resumed.fit(x, y, epochs=3, batch_size=16, verbose=0, shuffle=False).history
    assert history == expected
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"axis": 0}, "axis must be -1"),
        ({"momentum": -0.1}, "momentum must be a number >= 0"),
        ({"epsilon": "x"}, "epsilon must be a number >= 0"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gn.layers.BatchNormalization(**kwargs)


def test_a_config_round_trips_and_images_are_refused():
    layer = gn.layers.BatchNormalization(momentum=0.5, center=False)
    again = gn.layers.BatchNormalization.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    with pytest.raises(ValueError, match=r"takes flat per-sample inputs .*\n?Hint: put a Flatten"):
        gn.Sequential([gn.Input((4, 4)), gn.layers.BatchNormalization()]).build()


def test_a_frozen_layers_gradient_matches_central_differences():
    rs = np.random.default_rng(5)
    x = rs.standard_normal((6, 3))
    gy = rs.standard_normal((6, 3))
    layer, _ = _layer()
    layer.trainable = False  # inference mode in training: the moving statistics are constants
    layer.moving_mean[...] = gn.backend.to_device(np.array([0.5, -1.0, 2.0]))
    layer.moving_variance[...] = gn.backend.to_device(np.array([4.0, 0.25, 9.0]))
    layer.forward(gn.backend.to_device(x), training=True)
    gx = gn.backend.to_host(layer.backward(gn.backend.to_device(gy)))

    def loss(v):
        return float((gn.backend.to_host(layer.forward(gn.backend.to_device(v), True)) * gy).sum())

    assert_grad_close(gx, numerical_grad(loss, x.copy()))
