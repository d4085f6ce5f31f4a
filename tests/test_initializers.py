import math

import numpy as np
import pytest

from gpunet import initializers, rng

SHAPE = (300, 200)


@pytest.mark.parametrize(
    "name, limit",
    [
        ("glorot_uniform", math.sqrt(6 / 500)),
        ("he_uniform", math.sqrt(6 / 300)),
        ("lecun_uniform", math.sqrt(3 / 300)),
        ("random_uniform", 0.05),
    ],
)
def test_uniform_limits(name, limit):
    w = initializers.get(name)(SHAPE)
    assert w.dtype == np.float32
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.95 * limit


@pytest.mark.parametrize(
    "name, stddev, truncated",
    [
        ("glorot_normal", math.sqrt(2 / 500), True),
        ("he_normal", math.sqrt(2 / 300), True),
        ("lecun_normal", math.sqrt(1 / 300), True),
        ("random_normal", 0.05, False),
        ("truncated_normal", 0.05 * 0.8796, True),
    ],
)
def test_normal_spreads(name, stddev, truncated):
    w = initializers.get(name)(SHAPE)
    assert w.std() == pytest.approx(stddev, rel=0.03)
    if truncated:
        # VarianceScaling rescales so the truncated draw has the target stddev; the raw
        # truncated_normal initializer is cut at two of its own standard deviations.
        bound = 2 * (0.05 if name == "truncated_normal" else stddev / 0.87962566103423978)
        assert np.abs(w).max() <= bound + 1e-7


def test_constants():
    assert (initializers.get("zeros")((2, 2)) == 0).all()
    assert (initializers.get("zero")((2,)) == 0).all()
    assert (initializers.get("ones")((2,)) == 1).all()
    assert (initializers.Constant(3.5)((2,)) == 3.5).all()


def test_seeded_initializer_repeats_and_global_seed_controls_unseeded():
    a = initializers.GlorotUniform(seed=1)((3, 3))
    np.testing.assert_array_equal(a, initializers.GlorotUniform(seed=1)((3, 3)))
    rng.set_seed(5)
    b = initializers.get("he_normal")((3, 3))
    rng.set_seed(5)
    np.testing.assert_array_equal(b, initializers.get("he_normal")((3, 3)))


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="Unknown initializer 'xavier'.*glorot_uniform"):
        initializers.get("xavier")
