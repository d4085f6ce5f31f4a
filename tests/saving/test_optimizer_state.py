"""The optimizer's state in Keras 3's `optimizer/vars` (gpunet/saving/optimizer_state.py): a
saved and loaded model trains on as the unbroken run does, and Keras's saved state continues
in gpunet as it does in Keras."""

import pathlib
import zipfile

import h5py
import numpy as np
import pytest

import gpunet as gn
from gpunet.saving import optimizer_state

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures"

OPTIMIZERS = {
    "sgd-momentum": lambda: gn.optimizers.SGD(0.05, momentum=0.9),
    "sgd": lambda: gn.optimizers.SGD(0.05),
    "adam-amsgrad": lambda: gn.optimizers.Adam(amsgrad=True),
    "adamw": lambda: gn.optimizers.AdamW(),
    "rmsprop-centered-momentum": lambda: gn.optimizers.RMSprop(momentum=0.5, centered=True),
    "adagrad": lambda: gn.optimizers.Adagrad(),
    "adamax": lambda: gn.optimizers.Adamax(),
    "nadam": lambda: gn.optimizers.Nadam(),
    "schedule": lambda: gn.optimizers.Adam(gn.schedules.ExponentialDecay(0.01, 3, 0.5)),
}


def _data():
    rs = np.random.default_rng(0)
    x = rs.random((96, 5), dtype=np.float32)
    return x, (x.sum(axis=1) > 2.5).astype(np.int64)


def _model(optimizer, layers=None):
    gn.utils.clear_session()
    gn.utils.set_random_seed(3)
    model = gn.Sequential(
        [gn.Input((5,))]
        + (layers or [gn.layers.Dense(6, activation="relu"), gn.layers.Dense(2, "softmax")])
    )
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


def _fit(model):
    x, y = _data()
    model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_a_saved_and_loaded_model_trains_on_as_the_unbroken_run(tmp_path, name):
    unbroken = _model(OPTIMIZERS[name]())
    _fit(unbroken)
    path = str(tmp_path / "m.keras")
    unbroken.save(path)
    loaded = gn.models.load_model(path)
    assert loaded.optimizer.iterations == unbroken.optimizer.iterations == 6
    _fit(unbroken)
    _fit(loaded)
    for a, b in zip(unbroken.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_frozen_layers_have_no_slots_and_the_rest_continue(tmp_path):
    def layers():
        first = gn.layers.Dense(6, activation="relu")
        first.trainable = False
        return [first, gn.layers.BatchNormalization(), gn.layers.Dense(2, "softmax")]

    unbroken = _model(gn.optimizers.Adam(), layers())
    _fit(unbroken)
    path = tmp_path / "m.weights.h5"
    unbroken.save_weights(str(path))
    with h5py.File(path) as file:  # iteration, learning rate, then (m, v) of gamma, beta,
        shapes = [file[f"optimizer/vars/{i}"].shape for i in range(len(file["optimizer/vars"]))]
    assert shapes == [(), (), (6,), (6,), (6,), (6,), (6, 2), (6, 2), (2,), (2,)]  # kernel, bias
    loaded = _model(gn.optimizers.Adam(), layers())
    loaded.build()
    loaded.load_weights(str(path))
    _fit(unbroken)
    _fit(loaded)
    for a, b in zip(unbroken.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_keras_saved_state_continues_as_keras_continued():
    # bench/keras_weights_fixture.py: Keras 3.15.1 trained 3 steps with Adam(amsgrad), saved,
    # then took a 4th step on the same batch and stored the weights.
    model = gn.models.load_model(str(FIXTURES / "keras3_adam.keras"))
    assert model.optimizer.iterations == 3 and model.optimizer.amsgrad
    rs = np.random.default_rng(0)
    x = rs.normal(size=(16, 6)).astype(np.float32) * 3 + 1
    with np.load(FIXTURES / "keras3_adam_next_step.npz") as stored:
        target = stored["target"]
        after = [stored[f"w{i}"] for i in range(4)]
    model.fit(x, target, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for ours, theirs in zip(model.get_weights(), after):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def test_gpunet_writes_keras_arrays_for_keras_state(tmp_path):
    model = gn.models.load_model(str(FIXTURES / "keras3_adam.keras"))
    path = tmp_path / "again.keras"
    model.save(str(path))

    def arrays(keras_file):
        with zipfile.ZipFile(keras_file) as archive:
            data = archive.read("model.weights.h5")
        with h5py.File(__import__("io").BytesIO(data)) as file:
            group = file["optimizer/vars"]
            return [group[str(i)][()] for i in range(len(group))]

    theirs, ours = arrays(FIXTURES / "keras3_adam.keras"), arrays(path)
    assert len(ours) == len(theirs) == 2 + 3 * 4  # iteration, rate, m and v, v_hat per variable
    for a, b in zip(ours, theirs):
        assert np.shape(a) == np.shape(b)
        np.testing.assert_allclose(a, b, rtol=0, atol=0)


def test_a_state_for_another_optimizer_is_named_and_left(tmp_path):
    adam = _model(gn.optimizers.Adam())
    _fit(adam)
    path = str(tmp_path / "m.weights.h5")
    adam.save_weights(path)
    sgd = _model(gn.optimizers.SGD(0.1, momentum=0.9))
    sgd.build()
    with pytest.warns(
        UserWarning, match=r"not restored \(it is adam's, this model's optimizer is sgd"
    ):
        sgd.load_weights(path)
    for a, b in zip(adam.get_weights(), sgd.get_weights()):
        np.testing.assert_array_equal(a, b)  # the weights still load
    assert sgd.optimizer.iterations == 0
    other = _model(gn.optimizers.Adam(name="mine", amsgrad=True))
    other.build()  # a name of its own: the arrays decide
    with pytest.warns(UserWarning, match=r"not restored \(it holds 10 arrays, this Adam 14\)"):
        other.load_weights(path)
    uncompiled = gn.Sequential([gn.Input((5,)), gn.layers.Dense(2)])
    uncompiled.build()
    assert optimizer_state.arrays(uncompiled) is None
