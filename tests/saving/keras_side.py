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


if __name__ == "__main__":
    {"load": load, "write": write}[sys.argv[1]](*sys.argv[2:])
