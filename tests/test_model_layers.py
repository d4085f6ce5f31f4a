"""Reaching a model's layers, weights and logged names (gpunet/model_layers.py), as Keras does."""

import numpy as np
import pytest

import gpunet as gn


def _model(metrics=("accuracy",)):
    gn.utils.clear_session()
    model = gn.Sequential(
        [
            gn.Input((4,)),
            gn.layers.Dense(5, activation="relu", name="hidden"),
            gn.layers.Dropout(0.2),
            gn.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=list(metrics))
    return model


def test_get_layer_by_name_and_by_index():
    model = _model()
    assert model.get_layer("hidden") is model.layers[0]
    assert model.get_layer(name="dropout") is model.layers[1]
    assert model.get_layer(index=2) is model.layers[2]
    assert model.get_layer(index=-1) is model.layers[2]
    assert model.get_layer(index=np.int64(0)) is model.layers[0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "nope"}, "no layer named 'nope'; its layers are hidden, dropout, dense."),
        ({"index": 3}, "no layer at index 3; the model has 3 layers."),
        ({"index": -4}, "no layer at index -4; the model has 3 layers."),
        ({"index": "0"}, "no layer at index '0'; the model has 3 layers."),
        ({"name": "hidden", "index": 0}, "get_layer takes a layer name or an index, not both"),
        ({}, "get_layer needs a layer name or an index."),
    ],
)
def test_get_layer_refuses_with_what_there_is(kwargs, message):
    with pytest.raises(ValueError) as info:
        _model().get_layer(**kwargs)
    assert str(info.value).startswith(f"sequential: {message}")


def test_metrics_names_follow_evaluate():
    model = _model(metrics=("accuracy", "mae"))
    assert model.metrics_names == ["loss", "accuracy", "mae"]
    x = np.random.default_rng(0).random((12, 4), dtype=np.float32)
    y = gn.utils.to_categorical(np.arange(12) % 3, 3)
    model.fit(x, y, epochs=1, verbose=0)
    scores = model.evaluate(x, y, verbose=0)
    assert list(dict(zip(model.metrics_names, scores))) == ["loss", "accuracy", "mae"]
    assert model.metrics_names == list(model.evaluate(x, y, verbose=0, return_dict=True))
    assert gn.Sequential([gn.layers.Dense(2)]).metrics_names == []  # not compiled


def test_weights_lists():
    model = _model()
    assert [w.shape for w in model.weights] == [(4, 5), (5,), (5, 3), (3,)]
    assert [id(w) for w in model.trainable_weights] == [id(w) for w in model.weights]
    assert model.non_trainable_weights == []
    assert model.count_params() == 4 * 5 + 5 + 5 * 3 + 3


def test_input_at_the_top_level_as_keras_input():
    assert gn.Input is gn.layers.Input and gn.InputLayer is gn.layers.InputLayer
    assert "Input" in dir(gn)
    model = gn.Sequential([gn.Input(shape=(6,)), gn.layers.Dense(2)])
    assert model.input_shape == (None, 6)
