"""The fused step captured into CUDA graphs (gpunet/step/graph.py), on the stand-in: replays
that train exactly as the eager fused step, the per-step launch budgets of the benchmark
workloads, and one graph launch per execution with nothing copied, read or allocated."""

import io
import logging

import numpy as np
import pytest
from rich.console import Console

import gpunet as gn
from gpunet import backend, run
from tests import standin
from tests.conftest import use_standin
from tests.ledger import record_fit

W1 = dict(dropout=0.0, optimizer=gn.optimizers.SGD)
W2 = dict(dropout=0.3, optimizer=gn.optimizers.Adam)
BUDGET = {"w1": 12, "w2": 16}  # launches per step (issue 15; the reference step takes 43 / 90)


def _data(n, seed=0):
    rs = np.random.default_rng(seed)
    x = rs.random((n, 784), dtype=np.float32)
    return x, ((x - 0.5) @ rs.standard_normal((784, 10))).argmax(axis=1)


def _workload(spec, graphs=True, per_execution=1, seed=1):
    gn.utils.clear_session()
    gn.utils.set_random_seed(seed)
    layers = [gn.layers.Input((784,))]
    for _ in range(2):
        layers.append(gn.layers.Dense(128, activation="relu"))
        if spec["dropout"]:
            layers.append(gn.layers.Dropout(spec["dropout"]))
    layers.append(gn.layers.Dense(10, activation="softmax"))
    model = gn.Sequential(layers)
    model.compile(
        loss="sparse_categorical_crossentropy", optimizer=spec["optimizer"](),
        metrics=["accuracy"], cuda_graphs=graphs, steps_per_execution=per_execution,
    )  # fmt: skip
    return model


@pytest.mark.parametrize("name, spec", [("w1", W1), ("w2", W2)])
def test_a_step_is_within_its_launch_budget_and_an_execution_is_one_graph_launch(
    name, spec, tmp_path
):
    use_standin()
    x, y = _data(128 * 6 + 40)  # six full batches and a partial one
    model = _workload(spec, per_execution=2)
    bar = gn.callbacks.ProgbarLogger(1, console=Console(file=io.StringIO(), force_terminal=True))
    callbacks = [*run.standard_callbacks(str(tmp_path / "checkpoint.npz")), bar]
    _, records = record_fit(model, x, y, callbacks, batch_size=128, epochs=3, verbose=1)
    training = model._trainer.training
    assert type(training).__name__ == "GraphTraining" and training.captures == 1
    graph = training._graphs[2, 128]
    per_step = len(graph.ops) / 2
    assert per_step <= BUDGET[name], per_step
    print(f"{name}: {per_step:g} launches per step")
    executions = [r for r in records if r["step"] != 6]  # the partial batch runs eagerly
    assert len(executions) == 3 * 3
    for r in executions:
        where = f"epoch {r['epoch']} step {r['step']}: {r['sites']}"
        assert r["graph_launches"] == 1 and r["h2d"] == 0, where
        assert r["syncs"] == (1 if r["synced"] else 0), where
        # Outside the graph: at an epoch's first execution the position back to 0 (the fit's
        # first: the setup), at a refresh the tracker's one sum before its one read.
        if r["epoch"] or r["step"] != 1:
            assert r["launches"] == (r["step"] == 1) + bool(r["synced"]), where
        if r["epoch"] >= 1:
            assert r["allocs"] == 0, where
    partial = [r for r in records if r["step"] == 6]
    assert all(r["launches"] <= BUDGET[name] + 1 and r["allocs"] == 0 for r in partial[1:])


@pytest.mark.parametrize("per_execution", [1, 3])
@pytest.mark.parametrize("spec", [W1, W2], ids=["w1", "w2-dropout"])
def test_replayed_graphs_train_bit_for_bit_as_the_eager_fused_step(spec, per_execution, cupy_path):
    switch, _ = cupy_path
    switch()
    x, y = _data(128 * 5 + 17, seed=2)
    results = {}
    for graphs in (True, False):
        model = _workload(spec, graphs=graphs, per_execution=per_execution, seed=4)
        history = model.fit(x, y, batch_size=128, epochs=2, verbose=0, validation_split=0.1)
        assert type(model._trainer.training).__name__ == (
            "GraphTraining" if graphs else "FusedTraining"
        )
        results[graphs] = history.history, model.get_weights(), model.optimizer.iterations
    (h_graph, w_graph, it_graph), (h_eager, w_eager, it_eager) = results[True], results[False]
    assert h_graph == h_eager and it_graph == it_eager
    for a, b in zip(w_graph, w_eager):
        np.testing.assert_array_equal(a, b)


def test_steps_per_execution_calls_the_batch_callbacks_once_per_execution():
    calls = []

    class Spy(gn.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            calls.append(("begin", batch))

        def on_train_batch_end(self, batch, logs=None):
            calls.append(("end", batch))

    for switch in (lambda: backend.set_backend("numpy"), use_standin):
        calls.clear()
        switch()
        x, y = _data(10 * 32, seed=3)
        model = _workload(W1, per_execution=4)
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[Spy()])
        assert calls == [("begin", 0), ("end", 3), ("begin", 4), ("end", 7), ("begin", 8),
                         ("end", 9)]  # fmt: skip


def test_a_schedule_over_an_execution_of_several_steps_is_not_captured(caplog):
    use_standin()
    x, y = _data(256)
    gn.utils.clear_session()
    schedule = gn.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    model = gn.Sequential([gn.layers.Input((784,)), gn.layers.Dense(10, "softmax")])
    model.compile(optimizer=gn.optimizers.SGD(schedule), loss="sparse_categorical_crossentropy",
                  steps_per_execution=2)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="gpunet"):
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    assert type(model._trainer.training).__name__ == "FusedTraining"
    assert "learning-rate schedule" in caplog.text
    assert model.optimizer.iterations == 4


def test_compile_checks_the_execution_options():
    model = gn.Sequential([gn.layers.Input((4,)), gn.layers.Dense(2)])
    with pytest.raises(ValueError, match="steps_per_execution must be an int >= 1"):
        model.compile(loss="mse", steps_per_execution=0)
    with pytest.raises(TypeError, match="cuda_graphs must be True or False"):
        model.compile(loss="mse", cuda_graphs="yes")


@pytest.mark.parametrize("optimizer", ["adam", "nadam", "sgd"])
@pytest.mark.parametrize("per_execution", [1, 2])
def test_a_graph_fit_interrupted_and_resumed_equals_the_uninterrupted_one(
    tmp_path, optimizer, per_execution
):
    """The device counters (batch position, dropout offsets, beta powers) come back from a
    checkpoint taken between executions, and the graph replays from there exactly."""
    from tests.test_checkpoint import Interrupt

    use_standin()
    x, y = _data(300, seed=5)

    def model():
        gn.utils.clear_session()
        gn.utils.set_random_seed(3)
        layers = [gn.layers.Input((784,)), gn.layers.Dense(16, activation="relu")]
        layers += [gn.layers.Dropout(0.3), gn.layers.Dense(10, activation="softmax")]
        m = gn.Sequential(layers)
        m.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer,
                  metrics=["accuracy"], steps_per_execution=per_execution)  # fmt: skip
        return m

    def fit(m, callbacks=()):
        return m.fit(x, y, batch_size=32, epochs=3, validation_split=0.2, verbose=0,
                     callbacks=list(callbacks))  # fmt: skip

    reference = model()
    expected = fit(reference).history
    assert type(reference._trainer.training).__name__ == "GraphTraining"
    first = model()
    fit(first, [gn.callbacks.BackupAndRestore(tmp_path, save_freq=1), Interrupt(1, 3)])
    resumed = model()
    history = fit(resumed, [gn.callbacks.BackupAndRestore(tmp_path, save_freq=1)])
    assert history.history == expected
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_capture_that_fails_says_why_and_trains_on_eagerly(monkeypatch, caplog):
    from gpunet.step import fused

    use_standin()
    x, y = _data(128 * 3, seed=6)
    expected = _workload(W2, graphs=False, seed=2)
    expected.fit(x, y, batch_size=128, epochs=2, verbose=0)
    enqueue = fused.FusedTraining.enqueue

    def allocating(self, rows):  # what a graph cannot hold: a new array mid-step
        standin.empty(3, standin.float32)
        enqueue(self, rows)

    monkeypatch.setattr(fused.FusedTraining, "enqueue", allocating)
    model = _workload(W2, seed=2)
    with caplog.at_level(logging.WARNING, logger="gpunet"):
        model.fit(x, y, batch_size=128, epochs=2, verbose=0)
    assert "capturing the step into a CUDA graph failed (CaptureError" in caplog.text
    assert "allocating device memory is not allowed during capture); the fused" in caplog.text
    assert model._trainer.training.eager
    for a, b in zip(expected.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_each_execution_length_is_captured_once():
    use_standin()
    x, y = _data(128 * 5, seed=3)  # five full batches: executions of 2, 2 and 1 steps
    model = _workload(W1, per_execution=2)
    model.fit(x, y, batch_size=128, epochs=2, verbose=0)
    training = model._trainer.training
    assert training.captures == 2 and sorted(training._graphs) == [(1, 128), (2, 128)]


def test_what_keeps_the_fused_step_out_of_a_graph_is_named():
    from gpunet.step import graph

    use_standin()

    class OwnSGD(gn.optimizers.SGD):  # a subclass: its own update, no fused kernel
        pass

    def model(optimizer, steps_per_execution=1):
        gn.utils.clear_session()
        made = gn.Sequential([gn.layers.Input((4,)), gn.layers.Dense(3, activation="softmax")])
        made.compile(
            optimizer=optimizer,
            loss="sparse_categorical_crossentropy",
            steps_per_execution=steps_per_execution,
        )
        return made

    schedule = gn.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert graph.unsupported(model(gn.optimizers.SGD(schedule)), standin) is None
    assert graph.unsupported(model(gn.optimizers.SGD(schedule), 2), standin) == (
        "a learning-rate schedule changes the rate inside an execution of several steps"
    )
    assert graph.unsupported(model(OwnSGD()), standin) == (
        "the optimizer OwnSGD (with these options) has no fused update kernel"
    )
