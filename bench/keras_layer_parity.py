"""BatchNormalization, Normalization and the metric classes of issue 16 in gpunet and in Keras 3
on the same weights and data: the largest difference of each quantity, float32 both sides.

    python3 -m venv /tmp/kvenv && /tmp/kvenv/bin/pip install keras jax numpy pyyaml rich
    KERAS_BACKEND=jax PYTHONPATH=. /tmp/kvenv/bin/python bench/keras_layer_parity.py

Not in CI (it needs Keras); the results go to bench/results/.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import gpunet as gn  # noqa: E402

RS = np.random.default_rng(0)


def _diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def batch_normalization() -> dict:
    x = (RS.standard_normal((32, 6)) * 3 + 1).astype(np.float32)
    gamma = RS.uniform(0.5, 1.5, 6).astype(np.float32)
    beta = RS.uniform(-0.5, 0.5, 6).astype(np.float32)
    k_layer = keras.layers.BatchNormalization(momentum=0.9)
    k_layer.build((None, 6))
    k_layer.set_weights([gamma, beta, np.zeros(6, np.float32), np.ones(6, np.float32)])
    k_train = np.asarray(k_layer(x, training=True))
    k_moving = [np.asarray(w) for w in k_layer.get_weights()[2:]]
    k_infer = np.asarray(k_layer(x, training=False))

    gn.utils.clear_session()
    model = gn.Sequential([gn.Input((6,)), gn.layers.BatchNormalization(momentum=0.9)])
    model.build()
    layer = model.layers[0]
    layer.set_weights([gamma, beta, np.zeros(6), np.ones(6)])
    g_train = gn.backend.to_host(layer.forward(gn.backend.to_device(x), training=True))
    g_moving = layer.get_weights()[2:]
    g_infer = gn.backend.to_host(layer.forward(gn.backend.to_device(x), training=False))

    # Gradients of sum(y * gy) in training mode: Keras through JAX, gpunet's backward.
    import jax

    gy = RS.standard_normal((32, 6)).astype(np.float32)

    def keras_loss(inputs, g, b):
        mean = inputs.mean(axis=0)
        var = ((inputs - mean) ** 2).mean(axis=0)
        y = keras.ops.batch_normalization(inputs, mean, var, axis=-1, offset=b, scale=g,
                                          epsilon=1e-3)  # fmt: skip
        return (y * gy).sum()

    k_gx, k_gg, k_gb = jax.grad(keras_loss, argnums=(0, 1, 2))(x, gamma, beta)
    layer.set_weights([gamma, beta, np.zeros(6), np.ones(6)])
    layer.need_input_grad = True  # a first layer would skip it; here it is what we compare
    layer.forward(gn.backend.to_device(x), training=True)
    g_gx = gn.backend.to_host(layer.backward(gn.backend.to_device(gy)))
    g_gg, g_gb = gn.backend.to_host(layer.g_gamma), gn.backend.to_host(layer.g_beta)
    return {
        "training output": _diff(k_train, g_train),
        "moving mean and variance after one step": max(map(_diff, k_moving, g_moving)),
        "inference output": _diff(k_infer, g_infer),
        "d/dx": _diff(k_gx, g_gx),
        "d/dgamma": _diff(k_gg, g_gg),
        "d/dbeta": _diff(k_gb, g_gb),
    }


def normalization() -> dict:
    data = (RS.standard_normal((500, 5)) * [1, 10, 0.1, 3, 50] + [0, 5, -2, 100, 7]).astype(
        np.float32
    )
    k_layer = keras.layers.Normalization()
    k_layer.adapt(data)
    g_layer = gn.layers.Normalization()
    g_layer.adapt(data)
    k_out = np.asarray(k_layer(data))
    g_out = gn.backend.to_host(g_layer.forward(gn.backend.to_device(data), False))
    k_stats = [np.asarray(w).reshape(-1) for w in k_layer.get_weights()[:2]]
    k_inv = keras.layers.Normalization(mean=k_stats[0], variance=k_stats[1], invert=True)
    g_inv = gn.layers.Normalization(mean=k_stats[0], variance=k_stats[1], invert=True)
    g_inv.build((5,))
    return {
        "adapted mean": _diff(k_stats[0], g_layer.get_weights()[0]),
        "adapted variance (relative)": _diff(k_stats[1] / g_layer.get_weights()[1], 1.0),
        "output": _diff(k_out, g_out),
        "invert": _diff(
            np.asarray(k_inv(k_out)),
            gn.backend.to_host(g_inv.forward(gn.backend.to_device(k_out), False)),
        ),
    }


def metrics() -> dict:
    y_true = np.eye(5, dtype=np.float32)[RS.integers(0, 5, 64)]
    y_pred = RS.random((64, 5)).astype(np.float32)
    labels = y_true.argmax(axis=1)
    regression_true = RS.standard_normal((64, 3)).astype(np.float32)
    regression_pred = (regression_true + 0.3 * RS.standard_normal((64, 3))).astype(np.float32)
    binary_true = (RS.random((64, 1)) > 0.5).astype(np.float32)
    binary_pred = RS.random((64, 1)).astype(np.float32)
    weights = RS.random(64).astype(np.float32)
    cases = [
        ("TopKCategoricalAccuracy", {"k": 2}, y_true, y_pred),
        ("SparseTopKCategoricalAccuracy", {"k": 2}, labels, y_pred),
        ("CategoricalAccuracy", {}, y_true, y_pred),
        ("SparseCategoricalAccuracy", {}, labels, y_pred),
        ("BinaryAccuracy", {"threshold": 0.7}, binary_true, binary_pred),
        ("MeanSquaredError", {}, regression_true, regression_pred),
        ("MeanAbsoluteError", {}, regression_true, regression_pred),
        ("MeanAbsolutePercentageError", {}, regression_true, regression_pred),
        ("RootMeanSquaredError", {}, regression_true, regression_pred),
    ]
    out = {}
    for name, options, truth, prediction in cases:
        for weighted in (False, True):
            w = weights if weighted else None
            k_metric = getattr(keras.metrics, name)(**options)
            k_metric.update_state(truth, prediction, sample_weight=w)
            g_metric = getattr(gn.metrics, name)(**options)
            g_metric.update_state(truth, prediction, None if w is None else w)
            key = f"{name}{' weighted' if weighted else ''}"
            out[key] = _diff(float(k_metric.result()), g_metric.result())
            if name == "MeanAbsolutePercentageError":  # a percentage: compare relatively
                out[key] /= max(abs(float(k_metric.result())), 1e-12)
    return out


def main() -> None:
    print(f"keras {keras.__version__} ({keras.backend.backend()}), gpunet {gn.__version__}, "
          f"backend {gn.backend.get_backend()}")  # fmt: skip
    for title, run in (
        ("BatchNormalization", batch_normalization),
        ("Normalization", normalization),
        ("metrics (largest |difference| of the result)", metrics),
    ):
        print(f"\n{title}")
        for name, value in run().items():
            print(f"  {name:48} {value:.3g}")


if __name__ == "__main__":
    main()
