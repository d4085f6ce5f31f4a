"""get_config / serialize / deserialize (gpunet/serialization.py) for losses, initializers,
optimizers and schedules, in Keras 3's {module, class_name, config, registered_name} form."""

import json
import pathlib

import numpy as np
import pytest

import gpunet as gn
from gpunet import serialization


@pytest.mark.parametrize(
    "module, obj, keras_module",
    [
        (gn.losses, gn.losses.Huber(delta=2.5), "keras.losses"),
        (gn.losses, gn.losses.CategoricalCrossentropy(from_logits=True), "keras.losses"),
        (gn.initializers, gn.initializers.RandomNormal(0.5, 0.25, seed=7), "keras.initializers"),
        (gn.initializers, gn.initializers.HeUniform(seed=3), "keras.initializers"),
        (gn.initializers, gn.initializers.Constant(2.0), "keras.initializers"),
        (gn.optimizers, gn.optimizers.SGD(0.5, momentum=0.9, nesterov=True), "keras.optimizers"),
        (gn.optimizers, gn.optimizers.Adam(3e-4, beta_2=0.98, clipnorm=1.0), "keras.optimizers"),
        (gn.optimizers, gn.optimizers.AdamW(weight_decay=0.01, name="w"), "keras.optimizers"),
    ],
)
def test_serialize_round_trips(module, obj, keras_module):
    serialized = module.serialize(obj)
    assert serialized["module"] == keras_module
    assert serialized["class_name"] == type(obj).__name__
    assert serialized["registered_name"] is None
    again = module.get(serialized)
    assert type(again) is type(obj) and again.get_config() == obj.get_config()
    assert type(obj).from_config(obj.get_config()).get_config() == obj.get_config()


def test_configs_hold_the_arguments_given():
    assert gn.losses.Huber(delta=2.5).get_config() == {"delta": 2.5}
    assert gn.initializers.HeUniform(seed=3).get_config() == {"seed": 3}
    config = gn.optimizers.SGD(0.5, momentum=0.9).get_config()
    assert (config["learning_rate"], config["momentum"], config["name"]) == (0.5, 0.9, "sgd")


def test_a_schedule_travels_inside_its_optimizer():
    schedule = gn.schedules.ExponentialDecay(0.1, decay_steps=100, decay_rate=0.5)
    serialized = gn.optimizers.serialize(gn.optimizers.Adam(schedule))
    assert serialized["config"]["learning_rate"] == {
        "module": "keras.optimizers.schedules",
        "class_name": "ExponentialDecay",
        "config": {
            "initial_learning_rate": 0.1,
            "decay_steps": 100,
            "decay_rate": 0.5,
            "staircase": False,
        },
        "registered_name": None,
    }
    again = gn.optimizers.deserialize(serialized)
    assert again._learning_rate(200) == pytest.approx(0.025)


def test_class_names_are_names_too():
    assert type(gn.losses.get("CategoricalCrossentropy")) is gn.losses.CategoricalCrossentropy
    assert type(gn.initializers.get("GlorotUniform")) is gn.initializers.GlorotUniform
    assert type(gn.optimizers.get("RMSprop")) is gn.optimizers.RMSprop


@pytest.mark.parametrize(
    "config, message",
    [
        ("adam", "A serialized optimizer is a dict with 'class_name' and 'config', received"),
        ({"config": {}}, "A serialized optimizer is a dict with 'class_name'"),
        ({"class_name": "Adamm"}, "Unknown optimizer 'Adamm'. Did you mean 'Adam'?"),
        ({"class_name": "Adam", "config": [1]}, "optimizer Adam: config must be a dict"),
        ({"class_name": "Adam", "config": {"beta_3": 1}}, r"optimizer Adam: bad config \("),
    ],
)
def test_deserialize_refuses_in_one_line(config, message):
    with pytest.raises(ValueError, match=message):
        serialization.deserialize(config, {"Adam": gn.optimizers.Adam}, "optimizer")


def test_a_constructor_argument_without_its_attribute_is_a_bug_named():
    class Odd:
        def __init__(self, kept, lost):
            self.kept = kept

    with pytest.raises(TypeError, match="Odd: no attribute for argument 'lost'"):
        serialization.constructor_config(Odd(1, 2))


KERAS_METRICS = json.loads(
    (pathlib.Path(__file__).parent / "fixtures" / "keras3_metric_configs.json").read_text()
)


@pytest.mark.parametrize("class_name", sorted(KERAS_METRICS["configs"]))
def test_metrics_read_keras3_serialized_configs_and_write_them_back(class_name):
    # Written by Keras 3 itself (bench/keras_metric_configs.py): gpunet builds the same metric
    # and serializes it to the same dict, for the options both have.
    written = KERAS_METRICS["configs"][class_name]
    metric = gn.metrics.get(written)
    assert type(metric).__name__ == class_name
    ours = gn.metrics.serialize(metric)
    keras_only = type(metric).keras_only
    assert ours["config"] == {k: v for k, v in written["config"].items() if k not in keras_only}
    assert {k: v for k, v in ours.items() if k != "config"} == {
        k: v for k, v in written.items() if k != "config"
    }


def test_metric_options_travel_and_unsupported_keras_options_are_refused():
    top3 = gn.metrics.deserialize(gn.metrics.serialize(gn.metrics.TopKCategoricalAccuracy(k=3)))
    y_true = np.eye(4, dtype=np.float32)[[0, 1, 2, 3]]
    y_pred = np.array([[0.1, 0.2, 0.3, 0.4]] * 4, dtype=np.float32)
    top3.update_state(y_true, y_pred)
    assert top3.result() == pytest.approx(0.75)  # class 0 is 4th of 4: outside the top 3
    assert (
        gn.metrics.get({"class_name": "AUC", "config": {"num_thresholds": 9}}).num_thresholds == 9
    )
    with pytest.raises(ValueError, match="option 'curve' is not supported by gpunet"):
        gn.metrics.get({"class_name": "AUC", "config": {"curve": "PR"}})
    with pytest.raises(ValueError, match="dtype 'float64'"):
        gn.metrics.get({"class_name": "Recall", "config": {"dtype": "float64"}})
    with pytest.raises(ValueError, match="Unknown metric 'Accuracyy'"):
        gn.metrics.get({"class_name": "Accuracyy", "config": {}})
    model = gn.Sequential([gn.layers.Input((4,)), gn.layers.Dense(4, activation="softmax")])
    model.compile(loss="categorical_crossentropy", metrics=[gn.metrics.serialize(top3)])
    assert model.evaluate(y_true, y_true, verbose=0, return_dict=True).keys() == {
        "loss",
        "top_k_categorical_accuracy",
    }
