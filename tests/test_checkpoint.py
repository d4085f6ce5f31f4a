"""Checkpoints and resume: bit-for-bit continuation, and the callbacks that use them."""

import os

import numpy as np
import pytest

import gpunet as gn
from gpunet import backend, checkpoint
from gpunet.datasets.idx import DataError


def _data(n=300, seed=0):
    rs = np.random.default_rng(seed)
    x = rs.random((n, 12), dtype=np.float32)
    labels = ((x - 0.5) @ rs.standard_normal((12, 3))).argmax(axis=1)
    return x, gn.utils.to_categorical(labels, 3)


def _model(seed=3, optimizer="adam"):
    gn.utils.clear_session()
    gn.utils.set_random_seed(seed)
    model = gn.Sequential(
        [
            gn.layers.Input((12,)),
            gn.layers.Dense(16, activation="relu"),
            gn.layers.Dropout(0.3),
            gn.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy", "auc"])
    return model


class Interrupt(gn.callbacks.Callback):
    """Stops the fit after step `step` of epoch `epoch`, as a signal would."""

    def __init__(self, epoch, step):
        super().__init__()
        self.at = (epoch, step)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            self.model.stop_training = self.model.interrupted = True


def _fit(model, callbacks=(), epochs=3):
    x, y = _data()
    return model.fit(
        x,
        y,
        batch_size=32,
        epochs=epochs,
        validation_split=0.2,
        verbose=0,
        callbacks=list(callbacks),
    )


@pytest.mark.parametrize("optimizer", ["adam", "nadam", "sgd"])
@pytest.mark.parametrize("save_freq, at", [(1, (1, 4)), (1, (1, 0)), ("epoch", (1, 7))])
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(
    tmp_path, optimizer, save_freq, at
):
    reference = _model(optimizer=optimizer)
    expected = _fit(reference).history
    backup = gn.callbacks.BackupAndRestore(tmp_path, save_freq=save_freq)
    first = _model(optimizer=optimizer)
    _fit(first, [backup, Interrupt(*at)])
    assert os.path.exists(backup.path)  # kept: training did not finish
    resumed = _model(optimizer=optimizer)
    history = _fit(resumed, [gn.callbacks.BackupAndRestore(tmp_path, save_freq=save_freq)])
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert history.history == expected
    assert history.epoch == [0, 1, 2]
    assert not os.path.exists(backup.path)  # finished: the backup is deleted


@pytest.mark.parametrize("cupy_first", [False, True], ids=["numpy-then-cupy", "cupy-then-numpy"])
def test_a_checkpoint_from_one_backend_resumes_on_the_other(tmp_path, cupy_first, cupy_path):
    # Dropout's counter-based masks are the same on both, so a run cut mid-epoch on one backend
    # continues on the other to the uninterrupted run's weights, within the path's tolerance.
    to_cupy, rtol = cupy_path
    to_numpy = lambda: backend.set_backend("numpy")  # noqa: E731
    first, then = (to_cupy, to_numpy) if cupy_first else (to_numpy, to_cupy)
    first()
    reference = _model()
    expected = _fit(reference).history
    backup = gn.callbacks.BackupAndRestore(tmp_path, save_freq=1)
    _fit(_model(), [backup, Interrupt(1, 4)])
    then()
    resumed = _model()
    history = _fit(resumed, [gn.callbacks.BackupAndRestore(tmp_path, save_freq=1)])
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol / 10)
    for name, values in expected.items():
        np.testing.assert_allclose(history.history[name], values, rtol=rtol, err_msg=name)


def test_checkpoint_holding_pickles_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, meta=np.array([{"format": "gpunet-checkpoint-1"}], dtype=object))
    with pytest.raises(DataError, match="refused: the file holds pickled objects"):
        checkpoint.load(str(path))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DataError, match="refused|not a readable checkpoint"):
        checkpoint.load(str(tmp_path / "junk.npz"))


def test_checkpoint_of_another_model_is_refused(tmp_path):
    model = _model()
    _fit(model, epochs=1)
    model.save_checkpoint(str(tmp_path / "c.npz"))
    other = gn.Sequential([gn.layers.Input((12,)), gn.layers.Dense(3, activation="softmax")])
    other.compile(loss="categorical_crossentropy", optimizer="adam")
    other.resume_from(str(tmp_path / "c.npz"))
    x, y = _data()
    with pytest.raises(DataError, match="belongs to another model"):
        other.fit(x, y, verbose=0)


def test_early_stopping_restores_the_best_weights(capsys):
    model = _model()
    seen = []

    class Record(gn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((logs["val_loss"], model.get_weights()))

    stopper = gn.callbacks.EarlyStopping(
        monitor="val_loss", patience=1, min_delta=10.0, restore_best_weights=True, verbose=1
    )
    _fit(model, [Record(), stopper], epochs=10)
    # min_delta=10: no later epoch counts as better than the first, so it stops after epoch 2.
    assert len(seen) == 2 and stopper.stopped_epoch == 1
    for a, b in zip(model.get_weights(), seen[0][1]):
        np.testing.assert_array_equal(a, b)
    out = capsys.readouterr().out
    assert "Epoch 2: early stopping" in out
    assert "Restoring model weights from the end of the best epoch: 1." in out


@pytest.mark.parametrize(
    "values, patience, stops_after",
    [
        ([1.0, 0.9, 0.95, 0.96, 0.5, 0.4], 2, 4),  # two epochs without improvement after epoch 2
        ([1.0, 0.9, 0.95, 0.8, 0.96, 0.97, 0.98], 2, 6),  # epoch 4 improves: the count restarts
        ([1.0, 1.1, 0.5], 0, 2),  # patience 0 stops at the first epoch that does not improve
    ],
)
def test_early_stopping_waits_patience_epochs(values, patience, stops_after):
    # A scripted val_loss: training stops exactly after `stops_after` epochs.
    scripted = iter(values)

    class Scripted(gn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = next(scripted)

    stopper = gn.callbacks.EarlyStopping(monitor="val_loss", patience=patience)
    history = _fit(_model(), [Scripted(), stopper], epochs=len(values))
    assert len(history.epoch) == stops_after
    assert stopper.stopped_epoch == stops_after - 1


def test_early_stopping_mode_auto_and_min_delta_sign():
    stopper = gn.callbacks.EarlyStopping(monitor="val_accuracy", patience=2)
    assert stopper.upward
    assert not gn.callbacks.EarlyStopping(monitor="val_loss").upward
    # Keras takes |min_delta| and turns it against the direction of improvement.
    assert gn.callbacks.EarlyStopping(monitor="val_loss", min_delta=-0.5).min_delta == -0.5
    assert gn.callbacks.EarlyStopping(monitor="val_auc", min_delta=-0.5).min_delta == 0.5


def test_reduce_lr_on_plateau_changes_the_rate_in_history(capsys):
    model = _model(optimizer="sgd")
    reducer = gn.callbacks.ReduceLROnPlateau(
        monitor="val_loss", factor=0.5, patience=1, min_delta=10.0, verbose=1
    )
    history = _fit(model, [reducer], epochs=3)
    # As Keras, each epoch logs the rate it trained with; the cut applies from the next.
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.01, 0.005])
    assert "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.005." in capsys.readouterr().out
    with pytest.raises(ValueError, match="factor >= 1.0"):
        gn.callbacks.ReduceLROnPlateau(factor=2.0)


def test_learning_rate_scheduler_and_lambda_callback():
    model = _model(optimizer="sgd")
    calls = []
    history = _fit(
        model,
        [
            gn.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1)),
            gn.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: calls.append(epoch)),
        ],
        epochs=2,
    )
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05])
    assert calls == [0, 1]
    with pytest.raises(ValueError, match="unknown hook"):
        gn.callbacks.LambdaCallback(on_epoch_finish=print)


def test_csv_logger_appends_across_a_resume(tmp_path):
    log = tmp_path / "log.csv"
    backup = tmp_path / "backup"
    _fit(
        _model(),
        [
            gn.callbacks.BackupAndRestore(backup),
            gn.callbacks.CSVLogger(log, append=True),
            Interrupt(1, 7),
        ],
    )
    _fit(
        _model(), [gn.callbacks.BackupAndRestore(backup), gn.callbacks.CSVLogger(log, append=True)]
    )
    lines = log.read_text().splitlines()
    assert lines[0] == "epoch,accuracy,auc,loss,val_accuracy,val_auc,val_loss"
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1", "2"]


def test_terminate_on_nan(capsys):
    model = _model(optimizer=gn.optimizers.SGD(1e30))
    terminator = gn.callbacks.TerminateOnNaN()
    history = _fit(model, [terminator], epochs=5)
    assert terminator.failed_at is not None and len(history.epoch) == 1
    assert "Invalid loss, terminating training" in capsys.readouterr().out


def test_terminate_on_nan_names_the_first_bad_step_though_it_looks_later(capsys, monkeypatch):
    # The loss turns NaN at step 3 of epoch 1; TerminateOnNaN reads the device only at progress
    # refreshes (here only the first and the last step), yet reports step 3, from the per-step
    # totals.
    import gpunet.trainer

    monkeypatch.setattr(gpunet.trainer, "REFRESH_INTERVAL", 1e9)
    flags = []

    class Poison(gn.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 3:
                self.model.set_weights([np.full_like(w, np.nan) for w in self.model.get_weights()])

        def on_train_batch_end(self, batch, logs=None):
            flags.append(logs.synced)

    terminator = gn.callbacks.TerminateOnNaN()
    history = _fit(_model(optimizer="sgd"), [Poison(), terminator], epochs=3)
    assert terminator.failed_at == (0, 3) and len(history.epoch) == 1
    assert flags[0] and not any(flags[1:-1]) and flags[-1]  # refreshes at the ends only
    assert "Batch 3: Invalid loss, terminating training" in capsys.readouterr().out


def test_model_checkpoint_best_only(tmp_path, capsys):
    model = _model()
    path = str(tmp_path / "best-{epoch:02d}.npz")
    saver = gn.callbacks.ModelCheckpoint(
        path, monitor="val_accuracy", save_best_only=True, save_weights_only=True, verbose=1
    )
    _fit(model, [saver], epochs=3)
    out = capsys.readouterr().out
    assert "Epoch 1: val_accuracy improved from -inf to " in out
    assert f"saving model to {tmp_path / 'best-01.npz'}" in out
    assert os.path.exists(tmp_path / "best-01.npz")
    with np.load(tmp_path / "best-01.npz", allow_pickle=False) as weights:
        assert weights["dense/kernel"].shape == (12, 16)


def test_model_checkpoint_best_only_saves_exactly_the_improving_epochs(tmp_path, capsys):
    # A monitor whose values are scripted (improve, worse, improve, equal, worse): files
    # appear for epochs 1 and 3 only, and the file holds the weights of the epoch that saved it.
    values = iter([0.5, 0.7, 0.4, 0.4, 0.9])
    weights_at = {}

    class Scripted(gn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = next(values)
            weights_at[epoch + 1] = self.model.get_weights()

    model = _model()
    path = str(tmp_path / "best-{epoch}.npz")
    saver = gn.callbacks.ModelCheckpoint(
        path, save_best_only=True, save_weights_only=True, verbose=1
    )
    _fit(model, [Scripted(), saver], epochs=5)
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved == ["best-1.npz", "best-3.npz"]
    out = capsys.readouterr().out
    assert "Epoch 2: val_loss did not improve from 0.50000" in out
    assert "Epoch 4: val_loss did not improve from 0.40000" in out  # equal is no improvement
    with np.load(tmp_path / "best-3.npz", allow_pickle=False) as archive:
        np.testing.assert_array_equal(archive["dense/kernel"], weights_at[3][0])
        assert not np.array_equal(archive["dense/kernel"], weights_at[5][0])


def test_a_changed_learning_rate_is_restored_on_resume(tmp_path):
    # ReduceLROnPlateau lowers the rate at the end of epoch 2 (it logs the rate each epoch ran
    # with); a run cut in epoch 3 resumes with the lowered rate, not the compiled one, and ends
    # where the uninterrupted run ends.
    def callbacks():
        return [gn.callbacks.ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=10.0)]

    reference = _model(optimizer=gn.optimizers.SGD(0.1))
    expected = _fit(reference, callbacks()).history
    assert expected["learning_rate"] == [0.1, 0.1, 0.05]
    backup = gn.callbacks.BackupAndRestore(tmp_path, save_freq=1)
    _fit(_model(optimizer=gn.optimizers.SGD(0.1)), [*callbacks(), backup, Interrupt(2, 3)])
    resumed = _model(optimizer=gn.optimizers.SGD(0.1))
    history = _fit(resumed, [*callbacks(), gn.callbacks.BackupAndRestore(tmp_path, save_freq=1)])
    assert history.history["learning_rate"] == expected["learning_rate"]
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_save_checkpoint_after_fit_resumes_the_next_fit(tmp_path):
    model = _model()
    _fit(model, epochs=1)
    model.save_checkpoint(str(tmp_path / "after.npz"))
    _, meta = checkpoint.load(str(tmp_path / "after.npz"))
    assert meta["epoch"] == 1 and meta["step"] == 0
    assert list(meta["history"]) == [
        "loss",
        "accuracy",
        "auc",
        "val_loss",
        "val_accuracy",
        "val_auc",
    ]


def _scripted(monitor, values):
    scripted = iter(values)

    class Scripted(gn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs[monitor] = next(scripted)

    return Scripted()


@pytest.mark.parametrize("baseline, epochs_run", [(None, 3), (0.5, 2)])
def test_early_stopping_baseline_must_be_beaten_to_reset_the_wait(baseline, epochs_run):
    # Keras: the first epoch improves on "no best yet", but resets the wait only if it also
    # beats the baseline; a flat loss then stops one epoch sooner.
    stopper = gn.callbacks.EarlyStopping(patience=2, baseline=baseline)
    history = _fit(_model(), [_scripted("val_loss", [1.0] * 4), stopper], epochs=4)
    assert len(history.epoch) == epochs_run


def test_reduce_lr_on_plateau_cooldown_and_its_default_min_delta():
    # Flat loss, patience 1, cooldown 2: a reduction, two epochs of cooldown, the next one.
    reducer = gn.callbacks.ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2)
    model = _model(optimizer=gn.optimizers.SGD(0.1))
    history = _fit(model, [_scripted("val_loss", [1.0] * 6), reducer], epochs=6)
    assert history.history["learning_rate"] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    # Steps of 2e-4 beat the default min_delta of 1e-4: no reduction.
    reducer = gn.callbacks.ReduceLROnPlateau(factor=0.5, patience=1)
    values = [1.0, 0.9998, 0.9996, 0.9994]
    history = _fit(
        _model(optimizer=gn.optimizers.SGD(0.1)), [_scripted("val_loss", values), reducer], epochs=4
    )
    assert history.history["learning_rate"] == [0.1] * 4


def test_monitors_take_an_explicit_mode_and_warn_about_a_missing_value():
    assert gn.callbacks.EarlyStopping(monitor="val_loss", mode="max").upward
    assert not gn.callbacks.ReduceLROnPlateau(monitor="val_accuracy", mode="min").upward
    with pytest.warns(UserWarning, match="Early stopping conditioned on metric `val_x` which"):
        gn.callbacks.EarlyStopping(monitor="val_x").on_epoch_end(0, {"loss": 1.0})
    reducer = gn.callbacks.ReduceLROnPlateau(monitor="val_x")
    reducer.set_model(_model())
    with pytest.warns(UserWarning, match="Learning rate reduction conditioned on metric `val_x`"):
        reducer.on_epoch_end(0, {"loss": 1.0})


def test_monitor_states_round_trip():
    stopper = gn.callbacks.EarlyStopping()
    stopper.wait, stopper.stopped_epoch, stopper.best, stopper.best_epoch = 2, 5, 0.25, 3
    stopper.best_weights = [np.ones(2), np.zeros(3)]
    other = gn.callbacks.EarlyStopping()
    other.set_state(stopper.get_state())
    other.set_arrays(stopper.get_arrays())
    assert (other.wait, other.stopped_epoch, other.best, other.best_epoch) == (2, 5, 0.25, 3)
    assert [w.tolist() for w in other.best_weights] == [[1.0, 1.0], [0.0, 0.0, 0.0]]
    reducer = gn.callbacks.ReduceLROnPlateau()
    reducer.best, reducer.wait, reducer.cooldown_counter = 0.5, 1, 2
    again = gn.callbacks.ReduceLROnPlateau()
    again.set_state(reducer.get_state())
    assert (again.best, again.wait, again.cooldown_counter) == (0.5, 1, 2)


def test_checkpoint_callbacks_refuse_bad_arguments_and_name_their_file(tmp_path):
    with pytest.raises(ValueError, match="ModelCheckpoint: save_freq must be 'epoch'"):
        gn.callbacks.ModelCheckpoint("m.npz", save_freq=5)
    with pytest.raises(ValueError, match="BackupAndRestore: save_freq must be 'epoch' or a pos"):
        gn.callbacks.BackupAndRestore(tmp_path, save_freq=0)
    assert gn.callbacks.BackupAndRestore(tmp_path).path == str(tmp_path / "checkpoint.npz")


def test_restore_refuses_a_checkpoint_of_another_size_naming_the_file(tmp_path):
    model = _model()
    _fit(model, epochs=1)
    path = str(tmp_path / "c.npz")
    model.save_checkpoint(path)
    arrays, meta = checkpoint.load(path)
    other = _model()
    _fit(other, epochs=1)
    meta = dict(meta, num_params=meta["num_params"] + 1)  # the arrays fit; the count does not
    with pytest.raises(DataError, match=r"^c\.npz: holds \d+ parameters, the model has"):
        checkpoint.restore(other, arrays, meta, path="c.npz")
    with pytest.raises(DataError, match=r"^checkpoint: holds"):
        checkpoint.restore(other, arrays, meta)


def test_callback_states_survive_a_resume_with_a_callback_added_in_front(tmp_path):
    """EarlyStopping's best epoch and weights come back from the checkpoint (its arrays, not
    only its scalars), and a callback the first run did not have does not stop the restore.
    The scripted score is best at epoch 1, before the interruption in epoch 2."""
    scores = [0.3, 0.5, 0.4]

    def callbacks():
        score = gn.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: logs.__setitem__("score", scores[epoch])
        )
        stopper = gn.callbacks.EarlyStopping(
            monitor="score", mode="min", patience=10, restore_best_weights=True
        )
        return [score, stopper]

    reference = _model()
    _fit(reference, callbacks(), epochs=3)
    best = reference.get_weights()
    backup = gn.callbacks.BackupAndRestore(tmp_path, save_freq=1)
    first = _model()
    _fit(first, [backup, *callbacks(), Interrupt(1, 4)], epochs=3)
    resumed = _model()
    added = gn.callbacks.CSVLogger(tmp_path / "log.csv")  # new on resume, in front
    again = callbacks()
    _fit(resumed, [added, gn.callbacks.BackupAndRestore(tmp_path, save_freq=1), *again], epochs=3)
    assert again[1].best_epoch == 0 and again[1].best == 0.3
    for a, b in zip(best, resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
