"""Layer and model configs (gpunet/model_config.py, Layer.get_config), clone_model, and
gn.backend.clear_session, as Keras 3."""

import json

import numpy as np
import pytest

import gpunet as gn


def _model():
    gn.backend.clear_session()
    return gn.Sequential(
        [
            gn.Input((4,)),
            gn.layers.Dense(
                8,
                activation="relu",
                kernel_initializer="he_normal",
                kernel_regularizer=gn.regularizers.l2(1e-3),
            ),
            gn.layers.Dropout(0.25, seed=3),
            gn.layers.Activation("tanh"),
            gn.layers.Dense(2, activation="softmax", use_bias=False),
        ],
        name="net",
    )


def test_layer_configs_hold_keras_keys():
    dense, dropout, activation, last = _model().layers
    config = dense.get_config()
    assert {k: config[k] for k in ("name", "trainable", "dtype", "units", "activation")} == {
        "name": "dense",
        "trainable": True,
        "dtype": "float32",
        "units": 8,
        "activation": "relu",
    }
    assert config["kernel_initializer"]["class_name"] == "HeNormal"
    assert config["kernel_regularizer"]["config"] == {"l2": 0.001}
    assert config["bias_regularizer"] is None
    assert dropout.get_config()["rate"] == 0.25 and dropout.get_config()["seed"] == 3
    assert activation.get_config()["activation"] == "tanh"
    assert last.get_config()["use_bias"] is False


def test_a_layer_rebuilt_from_its_config_is_equal():
    for layer in _model().layers:
        again = type(layer).from_config(layer.get_config())
        assert again.get_config() == layer.get_config()


def test_a_model_config_is_json_and_rebuilds_the_model():
    model = _model()
    config = model.get_config()
    assert config["name"] == "net" and config["layers"][0]["class_name"] == "InputLayer"
    assert config["layers"][0]["config"]["batch_shape"] == [None, 4]
    again = gn.Sequential.from_config(json.loads(json.dumps(config)))
    assert again.get_config() == config
    assert again.input_shape == (None, 4) and again.name == "net"


def test_clone_model_has_the_structure_and_fresh_weights():
    model = _model()
    model.build()
    gn.utils.set_random_seed(9)
    clone = gn.models.clone_model(model)
    clone.build()
    assert clone.get_config() == model.get_config()
    assert clone is not model and clone.optimizer is None  # not compiled, as Keras
    shapes = [w.shape for w in model.get_weights()]
    assert [w.shape for w in clone.get_weights()] == shapes
    assert not np.array_equal(clone.get_weights()[0], model.get_weights()[0])
    assert gn.models.Sequential is gn.Sequential
    with pytest.raises(ValueError, match="clone_model expects a Sequential model"):
        gn.models.clone_model("model")


@pytest.mark.parametrize(
    "config, message",
    [
        ({"layers": "x"}, "A Sequential config is a dict with a 'layers' list"),
        ({"layers": [3]}, "A serialized layer is a dict with 'class_name' and 'config'"),
        ({"layers": [{"class_name": "Dens"}]}, "Unknown layer 'Dens'. Did you mean 'Dense'?"),
        ({"layers": [{"class_name": "Dense", "config": []}]}, "layer Dense: config must be"),
        (
            {"layers": [{"class_name": "Dense", "config": {"units": 2, "colour": 1}}]},
            r"layer Dense: bad config \(",
        ),
    ],
)
def test_a_bad_model_config_is_one_line(config, message):
    with pytest.raises(ValueError, match=message):
        gn.Sequential.from_config(config)


def test_clear_session_restarts_default_names():
    gn.layers.Dense(2)
    gn.backend.clear_session()
    assert gn.layers.Dense(2).name == "dense"
