"""Keras 3's side of the live round trip (run in its own process, KERAS_BACKEND=jax, by
test_keras_live.py): `load FILE.keras OUT.npz` predicts on OUT.npz's x with a model Keras
loads from a gpunet file; `write DIR` trains a model with every layer type gpunet has and
saves it, with its predictions, for gpunet to load."""

import pathlib
import sys

import keras
import numpy as np


def load(path, out):
    model = keras.saving.load_model(path)
    with np.load(out) as stored:
        data = dict(stored)
    data["keras"] = model.predict(data["x"], verbose=0)
    data["iterations"] = int(model.optimizer.iterations.numpy())
    np.savez(out, **data)


def write(folder):
    folder = pathlib.Path(folder)
    keras.utils.set_random_seed(7)
    rs = np.random.default_rng(1)
    x = rs.normal(size=(64, 2, 3)).astype("float32") * 2 + 1
    y = rs.integers(0, 3, 64)
    normalization = keras.layers.Normalization()
    normalization.adapt(x)
    model = keras.Sequential(
        [
            keras.Input((2, 3)),
            normalization,
            keras.layers.Flatten(),
            keras.layers.Dense(
                8, activation="relu", kernel_initializer="he_normal",
                kernel_regularizer=keras.regularizers.L2(1e-3),
            ),
            keras.layers.Dropout(0.2),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(6, activation="elu", bias_regularizer="l1"),
            keras.layers.Activation("selu"),
            keras.layers.Dense(5, activation="gelu"),
            keras.layers.Dense(4, activation="softsign"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )  # fmt: skip
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3, amsgrad=True),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=2)],
    )
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    model.save(str(folder / "keras.keras"))
    np.savez(folder / "keras.npz", x=x, predictions=model.predict(x, verbose=0))


ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "softmax", "softplus", "softsign", "elu",
               "selu", "leaky_relu", "gelu", "silu", "hard_sigmoid", "exponential"]  # fmt: skip
INITIALIZERS = ["GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform",
                "LecunNormal", "RandomUniform", "RandomNormal", "TruncatedNormal",
                "VarianceScaling", "Zeros", "Ones", "Constant"]  # fmt: skip
LOSSES = {"mse": 2, "mae": 2, "huber": 2, "binary_crossentropy": 1,
          "categorical_crossentropy": 3, "sparse_categorical_crossentropy": 3}  # fmt: skip
OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda: keras.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "adam": lambda: keras.optimizers.Adam(0.01),
    "adamw": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.01),
    "adagrad": lambda: keras.optimizers.Adagrad(0.05),
    "adamax": lambda: keras.optimizers.Adamax(0.01),
    "nadam": lambda: keras.optimizers.Nadam(0.01),
}


def _targets(loss, x):
    units = LOSSES[loss]
    if loss == "sparse_categorical_crossentropy":
        return (x.sum(axis=1) > 0).astype("int64") + (x[:, 0] > 1)
    if loss == "categorical_crossentropy":
        return np.eye(3, dtype="float32")[(x.sum(axis=1) > 0).astype(int) + (x[:, 0] > 1)]
    if loss == "binary_crossentropy":
        return (x[:, :1] > 0).astype("float32")
    return np.tanh(x[:, :units])


def write_each(folder):
    """One small file per activation, initializer, loss (with a regularizer) and optimizer
    (saved after two steps; the weights after a third step stored beside)."""
    folder = pathlib.Path(folder)
    rs = np.random.default_rng(3)
    x = rs.normal(size=(32, 4)).astype("float32")
    out = {"x": x}
    for name in ACTIVATIONS:
        keras.utils.set_random_seed(1)
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation=name)])
        m.save(str(folder / f"act-{name}.keras"))
        out[f"act-{name}"] = m.predict(x, verbose=0)
    for name in INITIALIZERS:
        keras.utils.set_random_seed(1)
        initializer = getattr(keras.initializers, name)()
        m = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(3, kernel_initializer=initializer)]
        )
        m.save(str(folder / f"init-{name}.keras"))
        out[f"init-{name}"] = m.predict(x, verbose=0)
    for loss, units in LOSSES.items():
        keras.utils.set_random_seed(1)
        last = {1: "sigmoid", 3: "softmax"}.get(units, "linear")
        m = keras.Sequential([
            keras.Input((4,)),
            keras.layers.Dense(5, activation="relu",
                               kernel_regularizer=keras.regularizers.L1L2(1e-3, 1e-2)),
            keras.layers.Dense(units, activation=last),
        ])  # fmt: skip
        m.compile(optimizer="sgd", loss=loss)
        m.save(str(folder / f"loss-{loss}.keras"))
        out[f"loss-{loss}"] = np.float32(m.evaluate(x, _targets(loss, x), verbose=0))
    for name, make in OPTIMIZERS.items():
        keras.utils.set_random_seed(1)
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="tanh"),
                              keras.layers.Dense(2)])  # fmt: skip
        m.compile(optimizer=make(), loss="mse")
        y = np.tanh(x[:, :2])
        m.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        m.save(str(folder / f"opt-{name}.keras"))
        m.fit(x[:16], y[:16], batch_size=16, epochs=1, shuffle=False, verbose=0)
        for i, w in enumerate(m.get_weights()):
            out[f"opt-{name}-w{i}"] = w
    np.savez(folder / "each.npz", **out)


if __name__ == "__main__":
    {"load": load, "write": write, "write_each": write_each}[sys.argv[1]](*sys.argv[2:])
