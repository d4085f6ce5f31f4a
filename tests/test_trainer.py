"""The training loop's costs on the CuPy path, counted by the strict stand-in: host syncs,
host-to-device copies and new device arrays per step, and NumPy/CuPy agreement."""

import io

import numpy as np
import pytest
from rich.console import Console

import gpunet as gn
from gpunet import backend, run
from tests import standin
from tests.conftest import use_standin
from tests.ledger import record_fit

W1 = dict(units=(128, 128), dropout=0.0, optimizer=gn.optimizers.SGD)
W2 = dict(units=(128, 128), dropout=0.3, optimizer=gn.optimizers.Adam)


def _data(n, seed=0):
    rs = np.random.default_rng(seed)
    x = rs.random((n, 784), dtype=np.float32)
    labels = ((x - 0.5) @ rs.standard_normal((784, 10))).argmax(axis=1)
    return x, labels


def _workload(spec, seed=1):
    gn.utils.clear_session()
    gn.utils.set_random_seed(seed)
    layers = [gn.layers.Input((784,))]
    for width in spec["units"]:
        layers.append(gn.layers.Dense(width, activation="relu"))
        if spec["dropout"]:
            layers.append(gn.layers.Dropout(spec["dropout"]))
    layers.append(gn.layers.Dense(10, activation="softmax"))
    model = gn.Sequential(layers)
    model.compile(
        loss="sparse_categorical_crossentropy", optimizer=spec["optimizer"](), metrics=["accuracy"]
    )
    return model


def _fit_under_the_cli_callbacks(spec, tmp_path, epochs=3):
    """A W1/W2 fit on the stand-in with what `gpunet train` adds, and a live progress bar."""
    use_standin()
    x, y = _data(128 * 5 + 40)  # five full batches and a partial one
    model = _workload(spec)
    bar = gn.callbacks.ProgbarLogger(1, console=Console(file=io.StringIO(), force_terminal=True))
    callbacks = [*run.standard_callbacks(str(tmp_path / "checkpoint.npz")), bar]
    return record_fit(model, x, y, callbacks, batch_size=128, epochs=epochs, verbose=1)


def test_w1_step_budget_on_the_cupy_path(tmp_path):
    _, records = _fit_under_the_cli_callbacks(W1, tmp_path)
    assert len(records) == 3 * 6
    for r in records:
        where = f"epoch {r['epoch']} step {r['step']}: {r['sites']}"
        assert r["h2d"] == 0, where
        if r["synced"]:
            assert r["syncs"] <= 2, where
        else:
            assert r["syncs"] == 0, where
        if r["epoch"] >= 1:
            assert r["allocs"] == 0, where
    # The refreshes did read: the bar shows the running loss and accuracy at the last step.
    assert all(r["syncs"] == 1 for r in records if r["step"] == 5)


def test_w2_step_allocates_nothing_after_the_first_epoch(tmp_path):
    _, records = _fit_under_the_cli_callbacks(W2, tmp_path)
    for r in records:
        assert r["h2d"] == 0 and (r["syncs"] == 0 or r["synced"])
        if r["epoch"] >= 1:
            assert r["allocs"] == 0, r["sites"]


def _seeded_fit(spec, switch):
    switch()
    x, y = _data(500, seed=2)
    model = _workload(spec, seed=4)
    history = model.fit(x, y, batch_size=64, epochs=2, validation_split=0.2, verbose=0)
    return history.history, model.get_weights()


@pytest.mark.parametrize("spec", [W1, W2], ids=["w1", "w2-dropout"])
def test_numpy_and_the_cupy_path_train_alike(spec, cupy_path):
    switch, rtol = cupy_path
    numpy_history, numpy_weights = _seeded_fit(spec, lambda: backend.set_backend("numpy"))
    cupy_history, cupy_weights = _seeded_fit(spec, switch)
    assert numpy_history.keys() == cupy_history.keys()
    for name, values in numpy_history.items():
        np.testing.assert_allclose(cupy_history[name], values, rtol=rtol, err_msg=name)
    for a, b in zip(numpy_weights, cupy_weights):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol / 10)


def test_evaluate_and_predict_read_the_device_once():
    use_standin()
    x, y = _data(300)
    model = _workload(W1)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    mark = standin.ledger.mark()
    model.evaluate(x, y, batch_size=64)
    assert standin.ledger.since(mark)["syncs"] == 1
    mark = standin.ledger.mark()
    model.predict(x, batch_size=64)
    assert standin.ledger.since(mark)["syncs"] == 1


def test_the_reference_step_keeps_its_budget_on_the_cupy_path(tmp_path, caplog):
    """A model the fused step does not take (an Activation layer) trains on the reference step
    on CuPy: no copy, no sync between refreshes and no new array after the first epoch there
    too (the batch gather writes into kept buffers)."""
    use_standin()
    x, y = _data(128 * 5 + 40)
    gn.utils.clear_session()
    gn.utils.set_random_seed(1)
    model = gn.Sequential([
        gn.layers.Input((784,)), gn.layers.Dense(64), gn.layers.Activation("relu"),
        gn.layers.Dense(10, activation="softmax"),
    ])  # fmt: skip
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    bar = gn.callbacks.ProgbarLogger(1, console=Console(file=io.StringIO(), force_terminal=True))
    callbacks = [*run.standard_callbacks(str(tmp_path / "checkpoint.npz")), bar]
    _, records = record_fit(model, x, y, callbacks, batch_size=128, epochs=3, verbose=1)
    assert type(model._trainer.training).__name__ == "ReferenceTraining"
    for r in records:
        where = f"epoch {r['epoch']} step {r['step']}: {r['sites']}"
        assert r["h2d"] == 0 and (r["syncs"] == 0 or r["synced"]), where
        if r["epoch"] >= 1:
            assert r["allocs"] == 0, where


def test_predict_drops_no_units_and_returns_float32(xp):
    x, y = _data(200)
    model = _workload(W2)
    model.fit(xp.asarray(x), xp.asarray(y), batch_size=64, epochs=1, verbose=0)
    dropout = [layer for layer in model.layers if isinstance(layer, gn.layers.Dropout)]
    streams = [layer.get_stream() for layer in dropout]
    first, second = model.predict(x, batch_size=64), model.predict(x, batch_size=64)
    assert first.dtype == np.float32 and first.shape == (200, 10)
    np.testing.assert_array_equal(first, second)  # no masks drawn: the same outputs
    assert [layer.get_stream() for layer in dropout] == streams
