"""gpunet/inputs.py: sample and class weights as the trainer receives them, and the batch gather."""

import numpy as np
import pytest

from gpunet import inputs


@pytest.mark.parametrize(
    "y",
    [
        np.array([0, 1, 2, 1, 3]),  # labels
        np.array([[0], [1], [2], [1], [3]]),  # labels in a column
        np.eye(4, dtype=np.float32)[[0, 1, 2, 1, 3]],  # one-hot
        np.array([0.0, 1.0, 2.0, 1.0, 3.0]),  # float labels
    ],
    ids=["labels", "column", "one-hot", "float-labels"],
)
def test_class_weights_give_each_sample_its_class_weight_and_one_for_the_rest(y):
    weights = inputs.class_weights(y, {0: 1.5, 1: 2.0, 2: 0.0})
    assert weights.dtype == np.float32
    np.testing.assert_array_equal(weights, [1.5, 2.0, 0.0, 2.0, 1.0])  # class 3: not listed


def test_sample_weights_become_a_float32_vector_and_bad_ones_say_where():
    weights = inputs.check_sample_weight([[1], [2], [3]], 3, "fit")
    assert weights.dtype == np.float32 and weights.shape == (3,)
    with pytest.raises(ValueError, match=r"^fit: sample_weight must have shape \(3,\)"):
        inputs.check_sample_weight([1, 2], 3, "fit")
    with pytest.raises(ValueError, match="^fit: sample_weight"):
        inputs.check_sample_weight([1.0, np.nan, 2.0], 3, "fit")


def test_gather_writes_the_rows_into_the_buffer_it_is_given():
    source = np.arange(12, dtype=np.float32).reshape(6, 2)
    out = np.empty((3, 2), np.float32)
    result = inputs.gather(np, source, np.array([5, 0, 2]), out)
    assert result is out
    np.testing.assert_array_equal(out, [[10, 11], [0, 1], [4, 5]])
