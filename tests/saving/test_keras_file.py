"""`.keras` in Keras 3's format (gpunet/saving/keras_file.py, keras_config.py): a file Keras 3
wrote loads and predicts as Keras did; gpunet's file has Keras's layout and round-trips
exactly; a file gpunet cannot load is one line naming why."""

import json
import pathlib
import re
import zipfile

import numpy as np
import pytest

import gpunet as gn

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures"
KERAS_FILE = FIXTURES / "keras3_mlp.keras"


def _expected() -> dict:
    """x and Keras's predictions, stored beside the fixtures."""
    with np.load(FIXTURES / "keras3_mlp_expected.npz") as stored:
        return {name: stored[name] for name in stored.files}


def _keras_members():
    with zipfile.ZipFile(KERAS_FILE) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rewrite(path, change):
    """A copy of Keras's fixture with config.json passed through `change`."""
    members = _keras_members()
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return str(path)


def _replace(path, member, data):
    """A copy of Keras's fixture with one member's bytes replaced."""
    members = _keras_members()
    members[member] = data
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in members.items():
            archive.writestr(name, value)


def test_a_model_keras_3_saved_loads_compiled_and_predicts_as_keras():
    expected = _expected()
    model = gn.models.load_model(str(KERAS_FILE))
    assert [type(layer).__name__ for layer in model.layers] == [
        "Normalization", "Dense", "Dropout", "BatchNormalization", "Dense", "Dense", "Activation",
    ]  # fmt: skip
    np.testing.assert_allclose(
        model.predict(expected["x"], verbose=0), expected["predictions"], rtol=0, atol=1e-6
    )
    assert type(model.optimizer).__name__ == "SGD"
    assert model.optimizer.get_config()["momentum"] == 0.5
    assert type(model.loss).__name__ == "CategoricalCrossentropy"
    history = model.fit(expected["x"], np.eye(3)[np.arange(16) % 3], epochs=1, verbose=0)
    assert sorted(history.history) == ["accuracy", "loss"]
    assert gn.saving.load_model(str(KERAS_FILE), compile=False).optimizer is None


def test_gpunet_writes_keras_layout_and_round_trips_exactly(tmp_path):
    gn.utils.set_random_seed(2)
    model = gn.Sequential(
        [
            gn.Input((5,)),
            gn.layers.Dense(7, activation="relu", kernel_regularizer=gn.regularizers.l2(1e-3)),
            gn.layers.Dropout(0.2),
            gn.layers.Dense(2, activation="sigmoid", name="out"),
        ]
    )
    model.compile(optimizer=gn.optimizers.Adam(3e-4), loss="binary_crossentropy",
                  metrics=["accuracy", gn.metrics.AUC(num_thresholds=20)])  # fmt: skip
    x = np.random.default_rng(0).normal(size=(32, 5)).astype(np.float32)
    model.fit(x, (x[:, :2] > 0).astype(np.float32), epochs=2, verbose=0)
    model.layers[0].trainable = False
    path = tmp_path / "m.keras"
    model.save(str(path))
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == sorted(_keras_members())
        config = json.loads(archive.read("config.json"))
    keras_config = json.loads(_keras_members()["config.json"])
    assert (config["module"], config["class_name"]) == ("keras", "Sequential")
    assert config["build_config"] == {"input_shape": [None, 5]}
    assert set(config["compile_config"]) <= set(keras_config["compile_config"])
    again = gn.models.load_model(str(path))
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    assert again.get_config() == model.get_config()
    assert again.optimizer.get_config() == model.optimizer.get_config()
    assert again.layers[0].trainable is False and again.layers[-1].name == "out"
    assert again.evaluate(x, (x[:, :2] > 0), verbose=0, return_dict=True).keys() == {
        "loss", "accuracy", "auc",
    }  # fmt: skip


BAD_FILE_IDS = (
    "truncated empty-zip functional lambda unknown renorm initializer policy not-a-dict "
    "no-layers ema compile-option compile-type json list registered eager hdf5 shape dtype"
).split()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(KERAS_FILE.read_bytes()[:1000]), "not a readable .keras file"),
        (lambda p: zipfile.ZipFile(p, "w").close(), "lacks config.json, model.weights.h5"),
        (
            lambda p: _rewrite(p, lambda c: c.update(class_name="Functional")),
            "holds a 'Functional' model; gpunet loads Sequential",
        ),
        (
            lambda p: _rewrite(p, lambda c: c["config"]["layers"][2].update(class_name="Lambda")),
            "layer 'Lambda' is Python code or a custom object",
        ),
        (
            lambda p: _rewrite(p, lambda c: c["config"]["layers"][2].update(class_name="Conv2D")),
            "Unknown layer 'Conv2D'",
        ),
        (
            lambda p: _rewrite(p, lambda c: c["config"]["layers"][4]["config"].update(renorm=True)),
            "layer BatchNormalization 'batch_normalization': option 'renorm' = True is not "
            "supported by gpunet",
        ),
        (
            lambda p: _rewrite(
                p,
                lambda c: c["config"]["layers"][2]["config"]["kernel_initializer"]["config"].update(
                    input_axes=[0]
                ),
            ),
            "layer Dense 'dense': kernel_initializer: option 'input_axes'",
        ),
        (
            lambda p: _rewrite(
                p,
                lambda c: c["config"]["layers"][2]["config"].update(
                    dtype={"class_name": "DTypePolicy", "config": {"name": "mixed_float16"}}
                ),
            ),
            "layer Dense 'dense': dtype 'mixed_float16'",
        ),
        (
            lambda p: _rewrite(p, lambda c: c["config"]["layers"].__setitem__(2, "Dense")),
            "A serialized layer is a dict",
        ),
        (lambda p: _rewrite(p, lambda c: c.update(config={})), "config.json has no list of layers"),
        (
            lambda p: _rewrite(
                p, lambda c: c["compile_config"]["optimizer"]["config"].update(use_ema=True)
            ),
            "optimizer SGD: option 'use_ema' = True is not supported",
        ),
        (
            lambda p: _rewrite(p, lambda c: c["compile_config"].update(loss_scale=2)),
            r"compile_config: unknown options \['loss_scale'\]",
        ),
        (
            lambda p: _rewrite(p, lambda c: c.update(compile_config=[1])),
            r"compile_config must be a dict, received \[1\]",
        ),
        (lambda p: _replace(p, "config.json", b"{nope"), "config.json is not JSON"),
        (
            lambda p: _replace(p, "config.json", b"[1]"),
            r"holds a \[1\] model; gpunet loads Sequential",
        ),
        (
            lambda p: _rewrite(
                p, lambda c: c["config"]["layers"][2].update(registered_name="MyDense")
            ),
            "is Python code or a custom object",
        ),
        (
            lambda p: _rewrite(p, lambda c: c["compile_config"].update(run_eagerly=True)),
            "compile_config: option 'run_eagerly' = True is not supported",
        ),
        (lambda p: _replace(p, "model.weights.h5", b"junk"), "model.weights.h5 is not HDF5"),
        (
            lambda p: _rewrite(p, lambda c: c["config"]["layers"][2]["config"].update(units=9)),
            r"weight 0 has shape \(6, 8\), the model's \(6, 9\)",
        ),
        (
            lambda p: _rewrite(
                p, lambda c: c["config"]["layers"][2]["config"].update(dtype="float16")
            ),
            "dtype 'float16': gpunet computes in float32",
        ),
    ],
    ids=BAD_FILE_IDS,  # fmt: skip  # fmt: skip
)
def test_a_file_gpunet_cannot_load_is_one_line(tmp_path, make, message):
    path = tmp_path / "bad.keras"
    make(path)
    with pytest.raises(ValueError, match=message) as error:
        gn.models.load_model(str(path))
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_names_overwrite_and_atomic_writes(tmp_path, monkeypatch):
    model = gn.Sequential([gn.Input((3,)), gn.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"must end in `\.keras`"):
        model.save(str(tmp_path / "m.h5"))
    with pytest.raises(ValueError, match=r"gpunet loads `\.keras` files"):
        gn.models.load_model(str(tmp_path / "m.weights.h5"))
    path = tmp_path / "m.keras"
    model.save(str(path))
    original = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=False"):
        model.save(str(path), overwrite=False)

    def broken(self, name, data, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(str(path))
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]


def test_the_file_carries_keras_metadata_and_a_model_built_from_build_config(tmp_path):
    model = gn.Sequential([gn.Input((3,)), gn.layers.Dense(2)])
    model.compile(optimizer="sgd")  # no loss: no compile config
    path = tmp_path / "m.keras"
    model.save(str(path))
    with zipfile.ZipFile(path) as archive:
        metadata = json.loads(archive.read("metadata.json"))
        config = json.loads(archive.read("config.json"))
    assert metadata["keras_version"] == "3.15.1" and metadata["gpunet_version"] == gn.__version__
    assert re.fullmatch(r"\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d", metadata["date_saved"])
    assert set(config) == {
        "module", "class_name", "config", "registered_name", "build_config", "compile_config",
    }  # fmt: skip
    assert config["registered_name"] is None and config["compile_config"] is None
    # Without its InputLayer entry, the model is built from build_config, as Keras builds it.
    expected = _expected()
    no_input = _rewrite(tmp_path / "k.keras", lambda c: c["config"]["layers"].pop(0))
    model = gn.models.load_model(no_input)
    np.testing.assert_allclose(
        model.predict(expected["x"], verbose=0), expected["predictions"], rtol=0, atol=1e-6
    )
    with pytest.raises(FileNotFoundError, match="load_model: no file at .*gone.keras"):
        gn.models.load_model(str(tmp_path / "gone.keras"))
    with pytest.raises(ValueError) as error:
        gn.models.load_model(str(tmp_path / "m.h5"))
    assert str(error.value).endswith("(weights alone: model.load_weights(`*.weights.h5`)).")


def test_string_forms_keras_also_writes_load(tmp_path):
    def change(config):
        config["config"]["layers"][2]["config"]["kernel_initializer"] = "zeros"
        config["compile_config"]["optimizer"] = "sgd"

    with pytest.warns(UserWarning, match="optimizer state was not restored"):  # momentum's
        model = gn.models.load_model(_rewrite(tmp_path / "s.keras", change))
    assert type(model.optimizer).__name__ == "SGD"
    without = _rewrite(tmp_path / "n.keras", lambda c: c["compile_config"].pop("optimizer"))
    with pytest.warns(UserWarning, match="optimizer state was not restored"):
        assert type(gn.models.load_model(without).optimizer).__name__ == "RMSprop"  # default


def test_model_checkpoint_writes_keras_files_and_refuses_mixed_kinds(tmp_path):
    rs = np.random.default_rng(0)
    x = rs.random((40, 3), dtype=np.float32)
    model = gn.Sequential([gn.Input((3,)), gn.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    callbacks = [
        gn.callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch}.keras")),
        gn.callbacks.ModelCheckpoint(str(tmp_path / "w.weights.h5"), save_weights_only=True),
    ]
    model.fit(x, np.arange(40) % 2, epochs=2, verbose=0, callbacks=callbacks)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-1.keras", "m-2.keras", "w.weights.h5"]
    again = gn.models.load_model(str(tmp_path / "m-2.keras"))
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    assert again.optimizer.iterations == model.optimizer.iterations
    weights = gn.Sequential([gn.Input((3,)), gn.layers.Dense(2, activation="softmax")])
    weights.load_weights(str(tmp_path / "w.weights.h5"))
    np.testing.assert_array_equal(weights.get_weights()[0], model.get_weights()[0])
    with pytest.raises(ValueError) as info:
        gn.callbacks.ModelCheckpoint("m.keras", save_weights_only=True)
    assert str(info.value) == (
        "ModelCheckpoint: with save_weights_only=True the filepath must end in `.weights.h5` "
        "(or be an .npz path), received 'm.keras'."
    )
    with pytest.raises(ValueError) as info:
        gn.callbacks.ModelCheckpoint("w.weights.h5")
    assert str(info.value) == (
        "ModelCheckpoint: a `.weights.h5` filepath holds weights only: pass "
        "save_weights_only=True, or save the model to a `.keras` path ('w.weights.h5')."
    )


def test_keras_config_messages_name_their_place_exactly():
    from gpunet.saving import keras_config

    entry = {
        "class_name": "Dense",
        "config": {"units": 2, "name": "d"},
        "build_config": {"input_shape": [None, 3]},
    }
    assert keras_config.layer(entry) == {"class_name": "Dense", "config": {"units": 2, "name": "d"}}
    unnamed = {"class_name": "Dense", "config": {"units": 2, "lora_rank": 4}}
    with pytest.raises(ValueError) as error:
        keras_config.layer(unnamed)
    assert str(error.value) == (
        "layer Dense: option 'lora_rank' = 4 is not supported by gpunet (only None)."
    )
    with pytest.raises(ValueError) as error:
        keras_config.layer({**unnamed, "config": {**unnamed["config"], "name": "d1"}})
    assert str(error.value).startswith("layer Dense 'd1': option 'lora_rank'")
    with pytest.raises(ValueError) as error:
        keras_config.compile_arguments({"run_eagerly": True, "jit_compile": True})
    assert str(error.value) == (
        "compile_config: option 'run_eagerly' = True is not supported by gpunet (only False)."
    )


def test_code_in_a_file_and_an_unreadable_config_are_named_exactly(tmp_path):
    lam = _rewrite(
        tmp_path / "lambda.keras", lambda c: c["config"]["layers"][2].update(class_name="Lambda")
    )
    with pytest.raises(ValueError) as error:
        gn.models.load_model(lam)
    assert str(error.value) == (
        f"load_model: {lam}: layer 'Lambda' is Python code or a custom object (a Lambda or a "
        "registered class), which gpunet does not load."
    )
    seed = {"class_name": "GlorotUniform", "config": {"seed": "x"}}
    bad = _rewrite(
        tmp_path / "seed.keras",
        lambda c: c["config"]["layers"][2]["config"].update(kernel_initializer=seed),
    )
    with pytest.raises(
        ValueError, match=r"^load_model: .*seed\.keras: the config cannot be read \("
    ):
        gn.models.load_model(bad)
