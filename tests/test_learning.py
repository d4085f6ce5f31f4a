"""End-to-end learning: small problems every MLP trainer must solve, in seconds on a CPU."""

import numpy as np
import pytest

import gpunet as gn


def test_xor_with_one_hidden_layer_reaches_100_percent():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    gn.utils.set_random_seed(1)
    model = gn.Sequential(
        [
            gn.layers.Input((2,)),
            gn.layers.Dense(8, activation="tanh"),
            gn.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        loss="binary_crossentropy", optimizer=gn.optimizers.Adam(0.05), metrics=["accuracy"]
    )
    model.fit(x, y, epochs=300, batch_size=4, verbose=0)
    loss, acc = model.evaluate(x, y)
    assert acc == 1.0
    assert loss < 0.1


def test_seed_8_12_8_3_example_on_synthetic_data():
    # The books' first model (8 inputs, 12 and 8 relu units) with three classes.
    rs = np.random.default_rng(0)
    centers = rs.normal(0, 3, (3, 8))
    labels = rs.integers(0, 3, 900)
    x = (centers[labels] + rs.normal(0, 1, (900, 8))).astype(np.float32)
    gn.utils.set_random_seed(3)
    model = gn.Sequential()
    model.add(gn.layers.Dense(12, input_dim=8, activation="relu"))
    model.add(gn.layers.Dense(8, activation="relu"))
    model.add(gn.layers.Dense(3, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(
        x[:600],
        gn.utils.to_categorical(labels[:600]),
        epochs=30,
        batch_size=16,
        validation_split=0.2,
        verbose=0,
    )
    _, acc = model.evaluate(x[600:], gn.utils.to_categorical(labels[600:], 3))
    assert history.history["val_accuracy"][-1] > 0.95
    assert acc > 0.95


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd_momentum", "rmsprop", "adam"])
def test_sklearn_digits_above_95_percent(optimizer):
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn is a test extra")
    digits = datasets.load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target
    rs = np.random.default_rng(0)
    order = rs.permutation(len(x))
    x, y = x[order], y[order]
    x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]
    gn.utils.set_random_seed(0)
    model = gn.Sequential(
        [
            gn.layers.Input((64,)),
            gn.layers.Dense(128, activation="relu"),
            gn.layers.Dropout(0.2),
            gn.layers.Dense(10, activation="softmax"),
        ]
    )
    opt = {
        "sgd_momentum": gn.optimizers.SGD(0.05, momentum=0.9),
        "rmsprop": gn.optimizers.RMSprop(),
        "adam": gn.optimizers.Adam(),
    }[optimizer]
    model.compile(loss="sparse_categorical_crossentropy", optimizer=opt, metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=30, batch_size=32, verbose=0)
    _, acc = model.evaluate(x_test, y_test)
    assert acc > 0.95
