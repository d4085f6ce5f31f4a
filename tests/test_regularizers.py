import numpy as np
import pytest

from gpunet import regularizers
from tests.gradcheck import assert_grad_close, numerical_grad


@pytest.mark.parametrize(
    "reg", [regularizers.L1(0.1), regularizers.L2(0.2), regularizers.L1L2(0.05, 0.3)]
)
def test_gradient_matches_central_differences_float64(reg):
    w = np.random.default_rng(0).standard_normal((3, 4))
    g = np.zeros_like(w)
    reg.add_grad(w, g)
    assert_grad_close(g, numerical_grad(lambda v: float(reg(v)), w.copy()))


def test_keras_defaults_and_values():
    w = np.array([[1.0, -2.0]], dtype=np.float32)
    assert float(regularizers.get("l2")(w)) == pytest.approx(0.01 * 5)
    assert float(regularizers.get("l1")(w)) == pytest.approx(0.01 * 3)
    assert float(regularizers.get("l1_l2")(w)) == 0.0  # both 0.0 by default in Keras 3
    assert regularizers.get("l2")(w).dtype == np.float32


def test_bad_names_and_values():
    with pytest.raises(ValueError) as info:
        regularizers.get("l3")
    assert str(info.value) == (
        "Unknown regularizer 'l3'. Allowed: L1, L2, L1L2, l1, l2, l1_l2, None."  # none close
    )
    with pytest.raises(ValueError, match="l2 must be a float >= 0"):
        regularizers.L2(-1.0)


def test_keras_3_names_functions_and_classes():
    w = np.array([[1.0, -2.0]], dtype=np.float32)
    assert regularizers.l2 is regularizers.L2 and regularizers.l1_l2 is regularizers.L1L2
    assert float(regularizers.l2(0.001)(w)) == pytest.approx(0.005)
    assert float(regularizers.l1_l2(l1=0.01, l2=0.01)(w)) == pytest.approx(0.03 + 0.05)
    for name, cls in [
        ("L1", regularizers.L1),
        ("L2", regularizers.L2),
        ("L1L2", regularizers.L1L2),
    ]:
        assert type(regularizers.get(name)) is cls


@pytest.mark.parametrize(
    "regularizer, config",
    [
        (regularizers.L1(0.25), {"l1": 0.25}),
        (regularizers.L2(0.5), {"l2": 0.5}),
        (regularizers.L1L2(0.125, 2.0), {"l1": 0.125, "l2": 2.0}),
    ],
)
def test_serialize_round_trips_in_keras_3_form(regularizer, config):
    serialized = regularizers.serialize(regularizer)
    assert serialized == {
        "module": "keras.regularizers",
        "class_name": type(regularizer).__name__,
        "config": config,
        "registered_name": None,
    }
    again = regularizers.get(serialized)
    assert type(again) is type(regularizer) and again.get_config() == config
    assert type(regularizer).from_config(config).get_config() == config


def test_deserialize_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="^A serialized regularizer is a dict with 'class_name'"):
        regularizers.deserialize(["L2"])
    with pytest.raises(ValueError, match="^Unknown regularizer 'L1_L2'. Did you mean 'L1L2'"):
        regularizers.deserialize({"class_name": "L1_L2", "config": {}})
    with pytest.raises(ValueError, match=r"^Regularizer L2: bad config \("):
        regularizers.deserialize({"class_name": "L2", "config": {"l1": 0.1}})
