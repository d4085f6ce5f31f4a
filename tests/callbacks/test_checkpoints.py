"""ModelCheckpoint (gpunet/callbacks/checkpoints.py): which epochs it saves, what it writes and
prints, and how its options change that; driven hook by hook with scripted logs, and in a fit."""

import os

import numpy as np
import pytest

import gpunet as gn


def _model():
    gn.utils.clear_session()
    gn.utils.set_random_seed(1)
    model = gn.Sequential([gn.layers.Input((4,)), gn.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def _data():
    rs = np.random.default_rng(0)
    return rs.random((40, 4), dtype=np.float32), rs.integers(0, 3, 40)


def _drive(saver, values, monitor="val_loss"):
    """on_epoch_end with scripted logs, on a built model; returns the files written."""
    model = _model()
    model.build()
    saver.set_model(model)
    for epoch, value in enumerate(values):
        logs = {} if value is None else {monitor: value}
        saver.on_epoch_end(epoch, logs)
    folder = os.path.dirname(saver.filepath)
    return sorted(os.listdir(folder))


def test_by_default_every_epoch_is_saved_as_a_full_checkpoint_silently(tmp_path, capsys):
    model = _model()
    x, y = _data()
    saver = gn.callbacks.ModelCheckpoint(str(tmp_path / "ck-{epoch}.npz"))
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[saver])
    assert sorted(os.listdir(tmp_path)) == ["ck-1.npz", "ck-2.npz", "ck-3.npz"]
    assert capsys.readouterr().out == ""
    # A full checkpoint, with the epoch's logs: a fit resumed from epoch 2's ends as the
    # unbroken one did, with its whole history.
    resumed = _model()
    resumed.resume_from(str(tmp_path / "ck-2.npz"))
    again = resumed.fit(x, y, batch_size=8, epochs=3, verbose=0)
    assert again.history == history.history
    for a, b in zip(model.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_file_name_takes_the_epoch_and_logged_values(tmp_path):
    saver = gn.callbacks.ModelCheckpoint(
        str(tmp_path / "ck-{epoch:02d}-{val_loss:.3f}.npz"), save_weights_only=True
    )
    assert _drive(saver, [0.51234, 0.4]) == ["ck-01-0.512.npz", "ck-02-0.400.npz"]


def test_verbose_says_where_each_epoch_is_saved(tmp_path, capsys):
    saver = gn.callbacks.ModelCheckpoint(str(tmp_path / "w-{epoch}.npz"), verbose=1,
                                         save_weights_only=True)  # fmt: skip
    _drive(saver, [1.0, 2.0])
    out = capsys.readouterr().out
    assert out == (
        f"\nEpoch 1: saving model to {tmp_path / 'w-1.npz'}\n"
        f"\nEpoch 2: saving model to {tmp_path / 'w-2.npz'}\n"
    )


def test_max_mode_needs_a_strictly_better_value(tmp_path, capsys):
    saver = gn.callbacks.ModelCheckpoint(
        str(tmp_path / "b-{epoch}.npz"), monitor="val_accuracy", save_best_only=True,
        save_weights_only=True, verbose=1,
    )  # fmt: skip
    files = _drive(saver, [0.5, 0.5, 0.75, 0.25], monitor="val_accuracy")
    assert files == ["b-1.npz", "b-3.npz"]
    out = capsys.readouterr().out
    assert "Epoch 2: val_accuracy did not improve from 0.50000" in out
    assert "Epoch 3: val_accuracy improved from 0.50000 to 0.75000, saving model to" in out
    assert saver.best == 0.75 and saver.get_state() == {"best": 0.75}


def test_the_initial_threshold_must_be_beaten_first(tmp_path, capsys):
    saver = gn.callbacks.ModelCheckpoint(
        str(tmp_path / "t-{epoch}.npz"), save_best_only=True, save_weights_only=True,
        initial_value_threshold=0.3, verbose=1,
    )  # fmt: skip
    assert _drive(saver, [0.5, 0.2]) == ["t-2.npz"]
    assert "Epoch 1: val_loss did not improve from 0.30000" in capsys.readouterr().out


def test_a_missing_monitor_warns_and_saves_nothing(tmp_path):
    saver = gn.callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch}.npz"), monitor="val_nope",
                                         save_best_only=True)  # fmt: skip
    with pytest.warns(UserWarning, match="^Can save best model only with val_nope available.$"):
        assert _drive(saver, [None]) == []


def test_bad_options_name_the_callback():
    with pytest.raises(ValueError, match="^ModelCheckpoint: mode must be 'auto', 'min' or"):
        gn.callbacks.ModelCheckpoint("x.npz", mode="sideways")
    with pytest.raises(ValueError, match="^ModelCheckpoint: save_freq must be 'epoch'"):
        gn.callbacks.ModelCheckpoint("x.npz", save_freq=3)


def test_best_only_is_quiet_without_verbose(tmp_path, capsys):
    saver = gn.callbacks.ModelCheckpoint(str(tmp_path / "q-{epoch}.npz"), save_best_only=True,
                                         save_weights_only=True)  # fmt: skip
    assert _drive(saver, [0.5, 0.7, 0.4]) == ["q-1.npz", "q-3.npz"]
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "filepath, why",
    [
        ("m-{epoch:zz}.npz", "Unknown format code 'z'"),
        ("m-{epoch.npz", "expected '}' before end of string"),
        ("m-{}.npz", "positional"),
        ("m-{loss:d}.npz", "Unknown format code 'd'"),
    ],
)
def test_a_filepath_that_cannot_be_formatted_is_refused_at_once(filepath, why):
    with pytest.raises(ValueError) as info:
        gn.callbacks.ModelCheckpoint(filepath)
    message = str(info.value)
    assert message.startswith(f"ModelCheckpoint: filepath {filepath!r} cannot be formatted (")
    assert why in message


def test_a_filepath_naming_a_value_the_fit_does_not_log_fails_before_the_first_step(tmp_path):
    model = _model()
    x, y = _data()
    saver = gn.callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch}-{val_acuracy:.2f}.npz"))
    steps = []
    spy = gn.callbacks.LambdaCallback(on_train_batch_begin=lambda batch, logs: steps.append(batch))
    with pytest.raises(ValueError) as info:
        model.fit(x, y, epochs=2, verbose=0, validation_split=0.25, callbacks=[saver, spy])
    assert steps == [] and os.listdir(tmp_path) == []
    assert str(info.value) == (
        f"ModelCheckpoint: filepath {saver.filepath!r} names {{val_acuracy}}, which this fit "
        "does not log; it may use epoch, loss, val_loss, learning_rate."
    )
    saver.check(["loss", "val_acuracy"])  # a fit logging it passes


@pytest.mark.parametrize("threshold", ["abc", True, None, 0.5, 1])
def test_the_initial_threshold_is_a_number(threshold):
    if isinstance(threshold, (str, bool)):
        with pytest.raises(ValueError, match="^ModelCheckpoint: initial_value_threshold must be"):
            gn.callbacks.ModelCheckpoint("m.npz", initial_value_threshold=threshold)
    else:
        saver = gn.callbacks.ModelCheckpoint("m.npz", initial_value_threshold=threshold)
        assert saver.best == (float("inf") if threshold is None else threshold)


def test_a_missing_folder_is_made_as_keras_does(tmp_path):
    saver = gn.callbacks.ModelCheckpoint(str(tmp_path / "new" / "deeper" / "m-{epoch}.npz"))
    model = _model()
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[saver])
    assert os.listdir(tmp_path / "new" / "deeper") == ["m-1.npz"]


# ----- TrainingCheckpoint (the CLI's) ------------------------------------------------------------


def test_training_checkpoint_keeps_the_config_and_each_epochs_logs(tmp_path):
    from gpunet import checkpoint

    path = tmp_path / "ck.npz"
    stale = tmp_path / ".ck.npz.x1y2.tmp"  # what a process killed mid-write leaves
    stale.write_bytes(b"partial")
    other = tmp_path / ".other.npz.x.tmp"
    other.write_bytes(b"someone else's")
    model = _model()
    x, y = _data()
    saver = gn.callbacks.TrainingCheckpoint(str(path), config={"seed": 7})
    assert saver.saved_epoch is None and saver.signal_received is None
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[saver])
    assert not stale.exists() and other.exists()
    assert saver.saved_epoch == 2
    _, meta = checkpoint.load(str(path))
    assert meta["config"] == {"seed": 7} and meta["epoch"] == 2
    assert meta["history"] == history.history  # the last epoch's logs too


def test_training_checkpoint_skips_an_epoch_whose_loss_is_not_finite(tmp_path):
    saver = gn.callbacks.TrainingCheckpoint(str(tmp_path / "ck.npz"))
    saver.set_model(_model())
    saver.on_epoch_end(0, {"loss": float("nan")})
    saver.on_epoch_end(0, {"loss": float("inf")})
    saver.on_epoch_end(0, {})
    assert os.listdir(tmp_path) == [] and saver.saved_epoch is None


def test_a_signal_during_fit_checkpoints_the_step_and_stops(tmp_path):
    import signal

    from gpunet import checkpoint

    model = _model()
    x, y = _data()
    saver = gn.callbacks.TrainingCheckpoint(str(tmp_path / "ck.npz"))
    before = signal.getsignal(signal.SIGTERM)
    interrupt = gn.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: (
            os.kill(os.getpid(), signal.SIGTERM) if batch == 2 else None
        )
    )
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[interrupt, saver])
    assert saver.signal_received == signal.SIGTERM
    assert model.stop_training is True and model.interrupted is True
    assert history.epoch == []  # stopped inside the first epoch
    _, meta = checkpoint.load(str(tmp_path / "ck.npz"))
    assert (meta["epoch"], meta["step"]) == (0, 3)
    assert signal.getsignal(signal.SIGTERM) == before  # put back at the end


# ----- TerminateOnNaN ---------------------------------------------------------------------------


def test_terminate_on_nan_takes_plain_dict_logs_as_keras_does(capsys):
    stopper = gn.callbacks.TerminateOnNaN()
    assert stopper.failed_at is None
    model = _model()
    stopper.set_model(model)
    stopper.on_train_batch_end(2, {"loss": 0.5})
    assert not model.stop_training
    stopper.on_train_batch_end(3, {"loss": float("nan")})  # no on_epoch_begin was called
    assert stopper.failed_at == (0, 3) and model.stop_training
    assert capsys.readouterr().out == "Batch 3: Invalid loss, terminating training\n"
    stopper.on_epoch_begin(4)
    stopper.on_train_batch_end(1, {"loss": float("-inf")})
    assert stopper.failed_at == (4, 1)


def test_a_training_checkpoint_serves_two_fits(tmp_path):
    model = _model()
    x, y = _data()
    saver = gn.callbacks.TrainingCheckpoint(str(tmp_path / "ck.npz"))
    model.fit(x, y, epochs=1, verbose=0, callbacks=[saver])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[saver])
    assert saver.saved_epoch == 1


def test_filepath_fields_may_be_batch_and_attributes_of_logged_values():
    saver = gn.callbacks.ModelCheckpoint("m-{epoch:02d}-{batch:03d}-{loss.real:.2f}.npz")
    saver.check(["loss"])
    assert saver.fields == ["epoch", "batch", "loss"]
    with pytest.raises(ValueError) as info:
        gn.callbacks.ModelCheckpoint("m-{epoch[0]}.npz")
    assert str(info.value) == (
        "ModelCheckpoint: filepath 'm-{epoch[0]}.npz' cannot be formatted ('int' object is not "
        "subscriptable); it may hold {epoch} and logged names, with format specs: "
        "'best-{epoch:02d}-{val_loss:.3f}.npz'."
    )
