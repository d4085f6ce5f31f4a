"""The real Fashion-MNIST from Debian's dataset-fashion-mnist package.

In CI (CI=true) a missing package is a failure, not a skip: `.ci/run` installs it.
"""

import os

import numpy as np
import pytest

import gpunet as gn
from gpunet.datasets import fashion_mnist

PACKAGE_DIR = fashion_mnist.SYSTEM_DIRS[0]


@pytest.fixture(scope="module")
def data():
    if not os.path.isdir(PACKAGE_DIR):
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"{PACKAGE_DIR} is missing in CI: .ci/run must install dataset-fashion-mnist"
            )
        pytest.skip(f"{PACKAGE_DIR} not installed (apt-get install dataset-fashion-mnist)")
    return fashion_mnist.load_data(PACKAGE_DIR)


def test_shapes_dtypes_and_ranges(data):
    (x_train, y_train), (x_test, y_test) = data
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert x_train.dtype == y_train.dtype == x_test.dtype == y_test.dtype == np.uint8
    assert x_train.min() == 0 and x_train.max() == 255


def test_labels(data):
    (_, y_train), (_, y_test) = data
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert y_train[0] == 9  # ankle boot
    assert fashion_mnist.CLASS_NAMES[y_train[0]] == "Ankle boot"


def test_missing_files_list_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUNET_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIRS", (str(tmp_path / "system"),))
    with pytest.raises(gn.datasets.DataError) as info:
        fashion_mnist.load_data()
    message = str(info.value)
    for place in ("data/fashion_mnist", "cache/gpunet/fashion_mnist", "system"):
        assert place in message
    assert "apt-get install dataset-fashion-mnist" in message


@pytest.mark.slow
def test_readme_model_learns_fashion_mnist(data):
    (x_train, y_train), (x_test, y_test) = data
    x_train = x_train[:12000].reshape(-1, 784).astype(np.float32) / 255.0
    x_test = x_test.reshape(-1, 784).astype(np.float32) / 255.0
    gn.utils.set_random_seed(42)
    model = gn.Sequential(
        [
            gn.layers.Input((784,)),
            gn.layers.Dense(128, activation="relu"),
            gn.layers.Dropout(0.3),
            gn.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x_train, y_train[:12000], batch_size=128, epochs=3, verbose=0)
    _, acc = model.evaluate(x_test, y_test)
    assert acc > 0.80
