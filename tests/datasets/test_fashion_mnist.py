"""The real Fashion-MNIST from Debian's dataset-fashion-mnist package.

In CI (CI=true) a missing package is a failure, not a skip: `.ci/run` installs it.
"""

import dataclasses

import numpy as np
import pytest

import gpunet as gn
from gpunet.datasets import fashion_mnist


@pytest.fixture(scope="module")
def data(fashion_mnist_folder):
    return fashion_mnist.load_data(fashion_mnist_folder)


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
    source = dataclasses.replace(fashion_mnist.SOURCE, system_dirs=(str(tmp_path / "system"),))
    monkeypatch.setattr(fashion_mnist, "SOURCE", source)
    with pytest.raises(gn.datasets.DataError) as info:
        fashion_mnist.load_data(allow_download=False)
    message = str(info.value)
    for place in ("data/fashion_mnist", "cache/gpunet/fashion_mnist", "system"):
        assert place in message
    assert "apt-get install dataset-fashion-mnist" in message


@pytest.mark.slow
def test_readme_model_learns_fashion_mnist(data):
    (x_train, y_train), (x_test, y_test) = data
    x_train = gn.datasets.images_to_float32(x_train[:12000])
    x_test = gn.datasets.images_to_float32(x_test)
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


def test_float32_pipeline_equals_the_books_bit_for_bit(data):
    (x_train, _), _ = data
    ours = gn.datasets.images_to_float32(x_train[:1000])
    books = x_train[:1000].reshape(-1, 784).astype("float32") / 255
    assert ours.dtype == np.float32 and ours.shape == (1000, 784)
    np.testing.assert_array_equal(ours, books)
    assert gn.datasets.images_to_float32(x_train[:2], flatten=False).shape == (2, 28, 28)
