"""The benchmark workloads (issue 6) and their data: Fashion-MNIST as float32 784-vectors.

W1: 784-128-128-10 relu/softmax, SGD 0.01, batch 128, 48,000 training samples (375 steps).
W2: W1 with Dropout 0.3 after each hidden layer, Adam (Keras defaults).
W3: 784-300-100-10 relu/softmax, SGD 0.01, batch 32, 55,000 samples.
"""

from __future__ import annotations

import numpy as np

WORKLOADS = {
    "w1": dict(units=(128, 128), dropout=0.0, optimizer="sgd", batch=128, samples=48000),
    "w2": dict(units=(128, 128), dropout=0.3, optimizer="adam", batch=128, samples=48000),
    "w3": dict(units=(300, 100), dropout=0.0, optimizer="sgd", batch=32, samples=55000),
}
LEARNING_RATE = {"sgd": 0.01, "adam": 0.001}


def load(spec: dict):
    """(x_train, y_train, x_test, y_test): float32 in [0, 1], integer labels."""
    import gpunet as gn

    (x, y), (x_test, y_test) = gn.datasets.fashion_mnist.load_data()
    n = spec["samples"]
    return (
        gn.datasets.images_to_float32(x[:n]),
        y[:n].astype(np.int64),
        gn.datasets.images_to_float32(x_test),
        y_test.astype(np.int64),
    )


def build_model(lib, spec: dict):
    """The workload's model compiled in `lib`: gpunet or keras, whose names are the same (Keras
    defaults otherwise)."""
    layers = [lib.layers.Input((spec.get("inputs", 784),))]
    for width in spec["units"]:
        layers.append(lib.layers.Dense(width, activation="relu"))
        if spec["dropout"]:
            layers.append(lib.layers.Dropout(spec["dropout"]))
    layers.append(lib.layers.Dense(10, activation="softmax"))
    model = lib.Sequential(layers)
    optimizer = {"sgd": lib.optimizers.SGD, "adam": lib.optimizers.Adam}[spec["optimizer"]]
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=optimizer(LEARNING_RATE[spec["optimizer"]]),
        metrics=["accuracy"],
    )
    return model


def gpunet_model(spec: dict):
    """The workload's model in gpunet, compiled as the peers are."""
    import gpunet as gn

    return build_model(gn, spec)
