"""ONNX export (gpunet/saving/onnx_export.py): the graph passes onnx's checker and
onnxruntime gives model.predict's outputs, for every activation and layer type."""

import numpy as np
import onnx
import onnxruntime
import pytest

import gpunet as gn
from gpunet.kernels.activations import NAMES


def _run(path, x):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.mark.parametrize("activation", sorted(set(NAMES) - {"swish"}))
def test_each_activation_runs_as_predict_does(tmp_path, activation):
    gn.utils.set_random_seed(3)
    model = gn.Sequential([gn.Input((6,)), gn.layers.Dense(5, activation=activation)])
    x = np.random.default_rng(0).normal(size=(9, 6)).astype(np.float32) * 2
    path = tmp_path / "m.onnx"
    model.export(str(path), format="onnx")
    np.testing.assert_allclose(_run(path, x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_every_layer_type_with_trained_statistics_and_a_dynamic_batch(tmp_path):
    gn.utils.set_random_seed(5)
    rs = np.random.default_rng(1)
    x = (rs.normal(size=(64, 3, 4)) * 3 + 1).astype(np.float32)
    normalization = gn.layers.Normalization()
    normalization.adapt(x)
    model = gn.Sequential(
        [
            gn.Input((3, 4)),
            normalization,
            gn.layers.Flatten(),
            gn.layers.Dense(8, activation="relu"),
            gn.layers.Dropout(0.4),
            gn.layers.BatchNormalization(),
            gn.layers.Dense(6, use_bias=False),
            gn.layers.Activation("tanh"),
            gn.layers.Normalization(mean=0.5, variance=4.0, invert=True),
            gn.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, np.arange(64) % 3, epochs=3, verbose=0)  # moves BatchNorm's statistics
    path = tmp_path / "m.onnx"
    model.export(str(path))
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 21
    assert "Dropout" not in {node.op_type for node in proto.graph.node}
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    for rows in (1, 7, 64):
        np.testing.assert_allclose(
            _run(path, x[:rows]), model.predict(x[:rows], verbose=0), rtol=1e-5, atol=1e-6
        )


def test_other_formats_are_refused_in_one_line(tmp_path):
    model = gn.Sequential([gn.Input((2,)), gn.layers.Dense(1)])
    with pytest.raises(ValueError, match="format 'tf_saved_model' is not available"):
        model.export(str(tmp_path / "m"), format="tf_saved_model")


def test_without_the_onnx_package_the_extra_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    model = gn.Sequential([gn.Input((2,)), gn.layers.Dense(1)])
    with pytest.raises(ImportError) as error:
        model.export(str(tmp_path / "m.onnx"))
    assert str(error.value) == (
        "export(format='onnx') needs the onnx package: pip install 'gpunet[onnx]'."
    )


def test_names_batch_axes_and_layers_of_the_same_kind(tmp_path, monkeypatch):
    gn.utils.set_random_seed(6)
    model = gn.Sequential(
        [
            gn.Input((4,)),
            gn.layers.Dense(5, activation="relu"),
            gn.layers.Dense(5, activation="relu"),
            gn.layers.BatchNormalization(center=False, scale=False),
            gn.layers.Dense(2),
        ]
    )
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(3).normal(size=(16, 4)).astype(np.float32)
    model.fit(x, x[:, :2], epochs=2, verbose=0)
    path = tmp_path / "m.onnx"
    model.export(str(path))
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    (output,) = proto.graph.output
    assert output.name == "output" and output.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert proto.producer_name == "gpunet" and proto.ir_version == 10
    np.testing.assert_allclose(_run(path, x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)

    def broken(proto, path):
        raise OSError("disk full")

    monkeypatch.setattr(onnx, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        model.export(str(path))
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_a_layer_without_an_onnx_form_is_named_with_its_class(tmp_path):
    class Doubling(gn.layers.Layer):
        def forward(self, x, training):
            return 2 * x

        def backward(self, gy):
            return 2 * gy

    model = gn.Sequential([gn.Input((3,)), gn.layers.Dense(2), Doubling(name="twice")])
    model.build()
    with pytest.raises(ValueError) as error:
        model.export(str(tmp_path / "m.onnx"), format="onnx")
    assert str(error.value) == "export: layer 'twice' (Doubling) has no ONNX form in gpunet."
