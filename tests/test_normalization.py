"""Normalization (gpunet/normalization.py), as Keras 3: adapt, given statistics, invert, axis,
its gradient, and its statistics kept with the weights, in checkpoints and in configs."""

import numpy as np
import pytest

import gpunet as gn
from gpunet import checkpoint, config, run, runs
from gpunet.normalization import EPSILON
from tests.gradcheck import assert_grad_close, numerical_grad


def _data(n=200, seed=0):
    rs = np.random.default_rng(seed)
    return (rs.normal(0, 1, (n, 4)) * [1.0, 5.0, 0.1, 2.0] + [3.0, -1.0, 0.0, 10.0]).astype(
        np.float32
    )


def test_adapt_learns_each_features_mean_and_population_variance():
    x = _data()
    layer = gn.layers.Normalization()
    layer.adapt(x)
    mean, variance = layer.get_weights()
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(variance, x.astype(np.float64).var(axis=0), rtol=1e-6)
    out = layer.forward(gn.backend.to_device(x, "float32"), training=False)
    out = gn.backend.to_host(out)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), 1.0, rtol=1e-4)


def test_given_statistics_invert_and_axis_none():
    x = np.array([[1.0, 2.0], [3.0, 6.0]], dtype=np.float32)
    layer = gn.layers.Normalization(mean=[1.0, 2.0], variance=[4.0, 16.0])
    layer.build((2,))
    y = gn.backend.to_host(layer.forward(gn.backend.to_device(x, "float32"), False))
    np.testing.assert_allclose(y, [[0.0, 0.0], [1.0, 1.0]])
    back = gn.layers.Normalization(mean=[1.0, 2.0], variance=[4.0, 16.0], invert=True)
    back.build((2,))
    restored = back.forward(gn.backend.to_device(y, "float32"), False)
    np.testing.assert_allclose(gn.backend.to_host(restored), x)
    single = gn.layers.Normalization(axis=None)
    single.adapt(x)
    assert single.get_weights()[0].shape == (1,)
    assert float(single.get_weights()[0][0]) == pytest.approx(3.0)
    flat = gn.layers.Normalization(mean=0.0, variance=0.0)  # a zero variance divides by 1e-7
    flat.build((2,))
    out = gn.backend.to_host(flat.forward(gn.backend.to_device(x, "float32"), False))
    np.testing.assert_allclose(out, x / EPSILON, rtol=1e-6)


@pytest.mark.parametrize("invert", [False, True])
def test_backward_matches_central_differences_float64(invert):
    rs = np.random.default_rng(3)
    layer = gn.layers.Normalization(mean=[0.5, -1.0, 2.0], variance=[4.0, 0.25, 9.0], invert=invert)
    layer.build((3,))
    x = rs.standard_normal((5, 3))
    gy = rs.standard_normal((5, 3))
    gx = gn.backend.to_host(layer.backward(gn.backend.to_device(gy)))

    def loss(v):
        out = gn.backend.to_host(layer.forward(gn.backend.to_device(v), False))
        return float((out * gy).sum())

    assert_grad_close(gx, numerical_grad(loss, x.copy()))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mean": [0.0]}, "give both mean and variance, or neither"),
        ({"mean": [0.0], "variance": [-1.0]}, "variance must be >= 0"),
        ({"axis": "x"}, "axis must be an int, a tuple of ints or None"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gn.layers.Normalization(**kwargs)


def test_adapt_refuses_data_of_another_shape():
    layer = gn.layers.Normalization()
    layer.build((4,))
    with pytest.raises(
        ValueError, match=r"adapt data has per-sample shape \(3,\), the layer \(4,\)"
    ):
        layer.adapt(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="adapt needs a batch of samples"):
        layer.adapt(np.zeros(4))


def _model(x):
    gn.utils.clear_session()
    gn.utils.set_random_seed(1)
    norm = gn.layers.Normalization()
    norm.adapt(x)
    model = gn.Sequential([gn.Input((4,)), norm, gn.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def test_in_a_model_it_trains_and_its_statistics_travel_with_the_weights(tmp_path):
    x = _data()
    y = (x[:, 1] > -1).astype(int) + (x[:, 3] > 10).astype(int)
    model = _model(x)
    history = model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert len(model.get_weights()) == 4  # mean, variance, kernel, bias
    runs.save_weights(str(tmp_path / "w.npz"), model)
    other = _model(_data(seed=5))  # other statistics
    runs.assign_weights(other, runs.load_weights(str(tmp_path / "w.npz")), "w.npz")
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.save_checkpoint(str(tmp_path / "c.npz"))
    resumed = _model(_data(seed=6))
    resumed.resume_from(str(tmp_path / "c.npz"))
    resumed.fit(x, y, epochs=3, batch_size=32, verbose=0)  # nothing left to run
    np.testing.assert_array_equal(
        resumed.layers[0].get_weights()[0], model.layers[0].get_weights()[0]
    )


def test_a_config_normalization_is_adapted_on_the_training_part(tmp_path):
    x = _data(300)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 3).astype(int))
    raw = {
        "seed": 0,
        "data": {"path": str(tmp_path / "d.npz"), "validation_split": 0.5},
        "model": [
            {"type": "Normalization"},
            {"type": "Dense", "units": 2, "activation": "softmax"},
        ],
        "compile": {"loss": "sparse_categorical_crossentropy", "optimizer": "adam"},
        "fit": {"epochs": 1, "verbose": 0},
        "output": {"dir": str(tmp_path / "runs")},
    }
    outcome = run.train(config.from_dict(raw, "c.yaml"), "c.yaml", quiet=True)
    _, model, _ = run.load_run(outcome.run_dir)
    mean = model.layers[0].get_weights()[0]
    np.testing.assert_allclose(mean, x[:150].astype(np.float64).mean(axis=0), rtol=1e-5)
    _, meta = checkpoint.load(f"{outcome.run_dir}/checkpoint.npz")
    assert meta["epoch"] == 1
    assert model.get_config()["layers"][1]["class_name"] == "Normalization"
