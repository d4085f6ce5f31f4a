"""What fit refuses or takes from its inputs, to the character (gpunet/inputs.py; found by
mutation testing, issue 21), and the gather that allocates nothing on NumPy."""

import tracemalloc

import numpy as np
import pytest

import gpunet as gn
from gpunet import inputs


def _model():
    gn.utils.clear_session()
    model = gn.Sequential([gn.layers.Input((3,)), gn.layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    return model


def test_the_default_batch_size_is_32():
    x = np.zeros((100, 3), np.float32)
    history = _model().fit(x, np.zeros(100, int), verbose=0)
    assert history.params["steps"] == 4  # ceil(100 / 32)
    assert inputs.check_batch_size(None) == 32


def test_missing_and_ragged_inputs_say_which():
    model = _model()
    with pytest.raises(ValueError) as info:
        model.fit(None, np.zeros(4, int), verbose=0)
    assert str(info.value) == "fit: x is required, received None."
    with pytest.raises(ValueError) as info:
        model.fit([[1.0, 2.0, 3.0], [1.0]], np.zeros(2, int), verbose=0)
    assert str(info.value).startswith("fit: x could not be read as an array: ")


def test_the_first_bad_sample_is_named():
    x = np.ones((6, 3), np.float32)
    x[3, 1] = np.nan
    x[5, 0] = np.inf
    with pytest.raises(ValueError) as info:
        _model().fit(x, np.zeros(6, int), verbose=0)
    assert str(info.value) == (
        "fit: x contains NaN or inf (first at sample 3); clean or impute it before training."
    )


def test_gather_on_numpy_fills_its_buffer_without_a_temporary():
    rs = np.random.default_rng(0)
    source = rs.random((2000, 200), dtype=np.float32)
    indices = rs.permutation(2000)[:1000]
    out = np.empty((1000, 200), np.float32)
    tracemalloc.start()
    try:
        result = inputs.gather(np, source, indices, out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result is out
    np.testing.assert_array_equal(out, source[indices])
    assert peak < out.nbytes // 10  # NumPy's default mode would buffer the whole batch
