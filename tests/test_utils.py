import random

import numpy as np
import pytest

import gpunet as gn


def test_to_categorical():
    out = gn.utils.to_categorical([0, 2, 1])
    np.testing.assert_array_equal(out, np.eye(3)[[0, 2, 1]])
    assert out.dtype == np.float32
    assert gn.utils.to_categorical(np.array([[1], [0]]), 4).shape == (2, 4)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        gn.utils.to_categorical([0, 2], num_classes=2)
    with pytest.raises(ValueError, match="integer class labels"):
        gn.utils.to_categorical([0.5, 1])


def test_set_random_seed_seeds_python_and_numpy():
    gn.utils.set_random_seed(3)
    a = (random.random(), np.random.random())
    gn.utils.set_random_seed(3)
    assert (random.random(), np.random.random()) == a
    with pytest.raises(ValueError, match="non-negative int"):
        gn.utils.set_random_seed(-1)


def test_to_categorical_of_device_labels_stays_on_the_device(xp):
    out = gn.utils.to_categorical(xp.asarray([2, 0]), 3)
    assert gn.backend.get_array_module(out) is xp and out.dtype == np.float32
    np.testing.assert_array_equal(gn.backend.to_host(out), np.eye(3, dtype=np.float32)[[2, 0]])


@pytest.mark.parametrize("axis, order", [(-1, 2), (0, 2), (1, 1), (-1, np.inf), (0, 3)])
def test_normalize_divides_by_the_norm_as_keras(axis, order):
    x = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [1.0, -2.0, 2.0]], dtype=np.float32)
    norm = np.linalg.norm(x.astype(np.float64), order, axis, keepdims=True)
    expected = x / np.where(norm == 0, 1.0, norm)
    out = gn.utils.normalize(x, axis=axis, order=order)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert out.dtype == np.float32
    assert np.all(out[1] == 0) if axis in (-1, 1) else True  # a zero row stays zero


def test_normalize_keeps_device_arrays_on_the_device():
    xp = gn.backend.xp()
    x = xp.asarray(np.array([[3.0, 4.0]], dtype=np.float32))
    out = gn.utils.normalize(x)
    assert type(out) is type(x)
    np.testing.assert_allclose(gn.backend.to_host(out), [[0.6, 0.8]], rtol=1e-6)
