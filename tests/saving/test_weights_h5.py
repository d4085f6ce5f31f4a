"""`.weights.h5` in Keras 3's layout (gpunet/saving/weights_h5.py): Keras's own file loads,
gpunet's file has Keras's groups, round trips are exact, bad files are one line."""

import os
import pathlib

import h5py
import numpy as np
import pytest

import gpunet as gn
from gpunet.saving import weights_h5

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures"


def _expected() -> dict:
    """x and Keras's predictions, stored beside the fixtures."""
    with np.load(FIXTURES / "keras3_mlp_expected.npz") as stored:
        return {name: stored[name] for name in stored.files}


def _model(layers=None):
    return gn.Sequential(
        [gn.Input((6,))]
        + (
            layers
            or [
                gn.layers.Normalization(),
                gn.layers.Dense(8, activation="relu"),
                gn.layers.Dropout(0.3),
                gn.layers.BatchNormalization(),
                gn.layers.Dense(5, activation="tanh"),
                gn.layers.Dense(3),
                gn.layers.Activation("softmax"),
            ]
        )
    )


def test_a_file_keras_3_wrote_gives_keras_predictions():
    # bench/keras_weights_fixture.py: Keras 3.15.1 adapted, trained (moving statistics) and
    # saved this model, and stored its predictions.
    expected = _expected()
    model = _model()
    model.load_weights(str(FIXTURES / "keras3_mlp.weights.h5"))
    np.testing.assert_allclose(
        model.predict(expected["x"], verbose=0), expected["predictions"], rtol=0, atol=1e-6
    )


def test_gpunet_writes_keras_groups_and_round_trips_exactly(tmp_path):
    gn.utils.set_random_seed(4)
    model = _model()
    model.layers[0].adapt(np.random.default_rng(0).normal(size=(40, 6)))
    x = np.random.default_rng(1).normal(size=(64, 6)).astype(np.float32)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, np.arange(64) % 3, epochs=2, verbose=0)
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    with h5py.File(path) as file:
        assert sorted(file["layers"]) == [
            "activation", "batch_normalization", "dense", "dense_1", "dense_2", "dropout",
            "normalization",
        ]  # fmt: skip
        keras_file = h5py.File(FIXTURES / "keras3_mlp.weights.h5")
        for key in file["layers"]:
            ours, theirs = file[f"layers/{key}/vars"], keras_file[f"layers/{key}/vars"]
            assert sorted(ours) == sorted(theirs), key
            for i in ours:
                assert ours[i].shape == theirs[i].shape and ours[i].dtype == theirs[i].dtype
        assert file["layers/normalization/vars/2"][()] == 40  # the samples adapt() saw
        assert file["layers/dense_2/vars"].attrs["name"] == model.layers[5].name
        assert file["vars"].attrs["name"] == model.name
    again = _model()
    again.load_weights(path)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert again.layers[0].adapted_count == 40
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_layers_match_by_class_and_position_whatever_their_names(tmp_path):
    first = _model([gn.layers.Dense(4, name="a"), gn.layers.Dense(2, name="b")])
    path = str(tmp_path / "m.weights.h5")
    first.save_weights(path)
    second = _model([gn.layers.Dense(4, name="x"), gn.layers.Dense(2, name="y")])
    second.load_weights(path)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, r"the filename must end in `\.weights\.h5`"),
        (lambda p: p.write_bytes(b"not hdf5"), "is not a readable HDF5 file"),
        (lambda p: _model([gn.layers.Dense(4)]).save_weights(str(p)), "no weights for layer"),
        (
            lambda p: _model([gn.layers.Dense(5), gn.layers.Dense(2)]).save_weights(str(p)),
            r"weight 0 has shape \(6, 5\), the model's \(6, 4\)",
        ),
        (
            lambda p: _model([gn.layers.Dense(4, use_bias=False), gn.layers.Dense(2)]).save_weights(
                str(p)
            ),
            "holds 1 arrays, gpunet's Dense has 2",
        ),
    ],
    ids=["suffix", "not-hdf5", "missing-layer", "shape", "count"],
)
def test_a_file_that_does_not_fit_is_one_line_and_changes_nothing(tmp_path, make, message):
    path = tmp_path / ("m.h5" if "must end" in message else "m.weights.h5")
    make(path)
    model = _model([gn.layers.Dense(4), gn.layers.Dense(2)])
    before = model.get_weights()
    with pytest.raises(ValueError, match=message) as error:
        model.load_weights(str(path))
    assert "\n" not in str(error.value)
    if "must end" not in message:
        assert str(path) in str(error.value)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_saving_is_atomic_and_overwrite_false_refuses(tmp_path, monkeypatch):
    path = tmp_path / "m.weights.h5"
    model = _model([gn.layers.Dense(4), gn.layers.Dense(2)])
    model.save_weights(str(path))
    original = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=False"):
        model.save_weights(str(path), overwrite=False)

    def broken(self, name, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save_weights(str(path))
    assert path.read_bytes() == original  # the old file stands
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.weights.h5"]  # no temporary left
    with pytest.raises(ValueError, match="save_weights: the filename must end in"):
        model.save_weights(str(tmp_path / "m.h5"))
    with pytest.raises(ValueError, match="load_weights: the filename must end in"):
        model.load_weights(str(tmp_path / "m.h5"))
    with pytest.raises(FileNotFoundError, match="load_weights: no file at .*gone.weights.h5"):
        model.load_weights(str(tmp_path / "gone.weights.h5"))
    assert weights_h5.layer_keys(model)[1][0] == "dense_1"


@pytest.mark.parametrize(
    "write, name",
    [
        (lambda m, p: m.save_weights(p), "m.weights.h5"),
        (lambda m, p: m.save(p), "m.keras"),
        (lambda m, p: m.export(p), "m.onnx"),
    ],
    ids=["weights", "keras", "onnx"],
)
def test_the_temporary_file_sits_beside_the_target(tmp_path, monkeypatch, write, name):
    # os.replace renames; across file systems (a temporary in /tmp) it would fail.
    renamed = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renamed.append((a, b)), real(a, b)))
    write(_model([gn.layers.Dense(2)]), str(tmp_path / name))
    ((source, target),) = renamed
    assert os.path.dirname(source) == os.path.dirname(target) == str(tmp_path)


def test_groups_of_layers_without_weights_may_be_absent(tmp_path):
    path = tmp_path / "k.weights.h5"
    path.write_bytes((FIXTURES / "keras3_mlp.weights.h5").read_bytes())
    with h5py.File(path, "r+") as file:
        del file["layers/dropout"], file["layers/activation"]
    expected = _expected()
    model = _model()
    model.load_weights(str(path))
    np.testing.assert_allclose(
        model.predict(expected["x"], verbose=0), expected["predictions"], rtol=0, atol=1e-6
    )
