"""EarlyStopping and ReduceLROnPlateau (gpunet/callbacks/monitors.py), driven epoch by epoch
with scripted logs: when they stop or reduce, what they keep and print (Keras 3's rules)."""

import math
import warnings

import numpy as np
import pytest

import gpunet as gn
from tests.callbacks.fakes import Model as _Model


def _run(callback, values, monitor="val_loss", model=None):
    """Epochs of scripted `values` until the callback stops the run; returns (model, the epoch
    it stopped at or None, the learning rate logged at each epoch)."""
    model = model or _Model()
    callback.set_model(model)
    callback.on_train_begin()
    rates, stopped = [], None
    for epoch, value in enumerate(values):
        model.epoch = epoch
        logs = {monitor: value}
        callback.on_epoch_end(epoch, logs)
        rates.append(logs.get("learning_rate"))
        if model.stop_training:
            stopped = epoch
            break
    callback.on_train_end()
    return model, stopped, rates


# ----- EarlyStopping ----------------------------------------------------------------------------


def test_early_stopping_defaults_stop_at_the_first_epoch_without_improvement(capsys):
    model, stopped, _ = _run(gn.callbacks.EarlyStopping(), [1.0, 0.9, 0.95, 0.5])
    assert stopped == 2 and model.restored is None  # no restore by default
    assert capsys.readouterr().out == ""  # verbose 0


def test_early_stopping_equal_is_no_improvement_in_either_direction():
    assert _run(gn.callbacks.EarlyStopping(mode="max"), [0.5, 0.5])[1] == 1
    assert _run(gn.callbacks.EarlyStopping(mode="min"), [0.5, 0.5])[1] == 1
    assert _run(gn.callbacks.EarlyStopping(mode="max"), [0.5, 0.6, 0.7])[1] is None
    rising = gn.callbacks.EarlyStopping(monitor="val_my_accuracy")  # auto: *_accuracy goes up
    assert rising.upward and _run(rising, [0.5, 0.6, 0.7], "val_my_accuracy")[1] is None


def test_early_stopping_min_delta_and_patience():
    # min_delta 0.1: 0.95 and 0.91 do not count as better than 1.0; patience 2 waits two.
    stopper = gn.callbacks.EarlyStopping(min_delta=0.1, patience=2)
    assert _run(stopper, [1.0, 0.95, 0.91, 0.5])[1] == 2


def test_early_stopping_baseline_must_be_beaten_to_reset_the_wait():
    # 0.4 beats the baseline 0.5: the wait resets, and patience 2 stops at epoch 2.
    assert _run(gn.callbacks.EarlyStopping(baseline=0.5, patience=2), [0.4, 0.45, 0.46])[1] == 2
    # Never beaten: improving epochs do not reset the wait, so the first worse one stops.
    stopper = gn.callbacks.EarlyStopping(baseline=0.3, patience=2)
    assert _run(stopper, [0.6, 0.55, 0.52, 0.56])[1] == 3


def test_early_stopping_restores_the_best_weights_and_says_so(capsys):
    stopper = gn.callbacks.EarlyStopping(patience=1, restore_best_weights=True, verbose=1)
    model, stopped, _ = _run(stopper, [1.0, 0.5, 0.7])
    assert stopped == 2 and model.restored == ["weights after epoch 1"]
    assert capsys.readouterr().out == (
        "Epoch 3: early stopping\nRestoring model weights from the end of the best epoch: 2.\n"
    )


def test_early_stopping_says_nothing_when_it_did_not_stop(capsys):
    _run(gn.callbacks.EarlyStopping(patience=5, verbose=1), [1.0, 0.9])
    assert capsys.readouterr().out == ""


def test_early_stopping_starts_afresh_each_fit():
    stopper = gn.callbacks.EarlyStopping(restore_best_weights=True)
    _run(stopper, [1.0, 2.0])
    stopper.on_train_begin()
    assert stopper.get_state() == {"wait": 0, "stopped_epoch": 0, "best": None, "best_epoch": 0}
    assert stopper.best_weights is None and stopper.get_arrays() == {}


def test_a_missing_monitor_warns_with_the_metrics_there_are():
    stopper = gn.callbacks.EarlyStopping(monitor="val_nope")
    stopper.set_model(_Model())
    with pytest.warns(UserWarning) as record:
        stopper.on_epoch_end(0, {"loss": 1.0, "accuracy": 0.5})
    message = str(record[0].message)
    assert message == (
        "Early stopping conditioned on metric `val_nope` which is not available. Available "
        "metrics are: loss,accuracy."
    )


# ----- ReduceLROnPlateau ------------------------------------------------------------------------


def test_reduce_lr_defaults_wait_ten_epochs_then_divide_by_ten(capsys):
    _, _, rates = _run(gn.callbacks.ReduceLROnPlateau(), [1.0] * 22)
    expected = [0.1] * 11 + [0.1 * 0.1] * 10 + [0.1 * 0.1 * 0.1]
    assert rates == pytest.approx(expected, rel=1e-12)
    assert rates[10] == 0.1 and rates[11] == pytest.approx(0.01)  # reduced at the 11th epoch
    assert capsys.readouterr().out == ""


def test_reduce_lr_patience_and_cooldown(capsys):
    # patience 2, cooldown 2: reduced at epochs 2 and 5 (the cooldown's epochs do not count).
    reducer = gn.callbacks.ReduceLROnPlateau(patience=2, cooldown=2, verbose=1)
    _, _, rates = _run(reducer, [1.0] * 7)
    assert rates == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001], rel=1e-12)
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out if line] == ["Epoch 3", "Epoch 6"]
    # the rate as float32 holds it (Keras's reference line), not 0.1 * 0.1's 0.010000000000000002
    assert out[1] == "Epoch 3: ReduceLROnPlateau reducing learning rate to 0.01."
    assert out[3] == "Epoch 6: ReduceLROnPlateau reducing learning rate to 0.001."


def test_reduce_lr_stops_at_min_lr_and_then_stays_quiet(capsys):
    reducer = gn.callbacks.ReduceLROnPlateau(patience=1, min_lr=0.02, verbose=1)
    _, _, rates = _run(reducer, [1.0] * 5)
    assert rates == [0.1, 0.1, 0.02, 0.02, 0.02]
    assert capsys.readouterr().out.count("reducing learning rate") == 1


@pytest.mark.parametrize(
    "mode, values, reduced",
    [
        # min_delta 0.25, patience 2: a value must beat the best by more than 0.25.
        ("max", [0.5, 0.75, 0.75], True),  # 0.75 is not better than 0.5 + 0.25
        ("max", [0.5, 0.6, 0.6], True),
        ("max", [0.5, 0.76, 1.02], False),
        ("min", [0.5, 0.25, 0.25], True),  # 0.25 is not better than 0.5 - 0.25
        ("min", [0.5, 0.24, -0.02], False),
    ],
)
def test_reduce_lr_min_delta_is_a_strict_threshold(mode, values, reduced):
    reducer = gn.callbacks.ReduceLROnPlateau(mode=mode, patience=2, min_delta=0.25)
    model, _, _ = _run(reducer, values)
    assert model.optimizer.learning_rate == pytest.approx(0.01 if reduced else 0.1)


def test_reduce_lr_starts_afresh_and_logs_the_rate_even_without_its_monitor():
    up = gn.callbacks.ReduceLROnPlateau(monitor="val_accuracy")
    up.set_model(_Model())
    up.best, up.wait, up.cooldown_counter = 0.9, 3, 2
    up.on_train_begin()
    assert up.get_state() == {"best": -math.inf, "wait": 0, "cooldown_counter": 0}
    down = gn.callbacks.ReduceLROnPlateau()
    assert down.best == math.inf
    down.set_model(_Model(0.25))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        down.on_epoch_end(0, None)  # no logs at all: warns, does not fail
        logs = {"loss": 1.0}
        down.on_epoch_end(1, logs)
    assert logs["learning_rate"] == 0.25
    assert "Learning rate reduction conditioned on metric `val_loss`" in str(caught[0].message)


def test_reduce_lr_refuses_a_factor_of_one_or_more_and_a_bad_mode():
    for factor in (1.0, 1.5):
        with pytest.raises(ValueError, match="does not support a factor >= 1.0"):
            gn.callbacks.ReduceLROnPlateau(factor=factor)
    with pytest.raises(ValueError, match="^ReduceLROnPlateau: mode must be"):
        gn.callbacks.ReduceLROnPlateau(mode="up")
    with pytest.raises(ValueError, match="^EarlyStopping: mode must be"):
        gn.callbacks.EarlyStopping(mode="up")


def test_early_stopping_restores_quietly_without_verbose(capsys):
    stopper = gn.callbacks.EarlyStopping(patience=1, restore_best_weights=True)
    model, stopped, _ = _run(stopper, [1.0, 0.5, 0.7])
    assert stopped == 2 and model.restored == ["weights after epoch 1"]
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "cls, argument, value, message",
    [
        (gn.callbacks.EarlyStopping, "patience", -1, "patience must be an int >= 0, received -1."),
        (gn.callbacks.EarlyStopping, "patience", 1.5, "patience must be an int >= 0"),
        (gn.callbacks.EarlyStopping, "start_from_epoch", -2, "start_from_epoch must be an int"),
        (
            gn.callbacks.EarlyStopping,
            "baseline",
            "abc",
            "baseline must be a number, received 'abc'.",
        ),
        (gn.callbacks.EarlyStopping, "min_delta", float("nan"), "min_delta must be a number"),
        (gn.callbacks.ReduceLROnPlateau, "patience", -1, "patience must be an int >= 0"),
        (gn.callbacks.ReduceLROnPlateau, "cooldown", True, "cooldown must be an int >= 0"),
        (gn.callbacks.ReduceLROnPlateau, "min_lr", "0", "min_lr must be a number"),
        (gn.callbacks.ReduceLROnPlateau, "factor", None, "factor must be a number"),
        (gn.callbacks.ReduceLROnPlateau, "min_delta", "x", "min_delta must be a number"),
    ],
)
def test_monitor_arguments_are_checked_when_made(cls, argument, value, message):
    with pytest.raises(ValueError) as info:
        cls(**{argument: value})
    assert str(info.value).startswith(f"{cls.__name__}: {message}")


def test_monitor_counts_take_numpy_ints():
    stopper = gn.callbacks.EarlyStopping(patience=np.int64(2), baseline=np.float32(0.5))
    assert stopper.patience == 2


def test_a_bare_callback_and_history_start_empty():
    callback = gn.callbacks.Callback()
    assert callback.model is None and callback.params == {}
    assert callback.resumed_seconds() == 0.0  # no model, no fit: nothing resumed
    assert gn.callbacks.History().epoch == []


def test_callback_list_refuses_hooks_that_are_not_keras_hooks():
    hooks = gn.callbacks.CallbackList([], None, {})
    for name in ("on_bogus", "fit", "on_"):
        with pytest.raises(AttributeError) as info:
            getattr(hooks, name)
        assert str(info.value) == name


def test_the_model_holds_the_running_history_during_fit():
    gn.utils.clear_session()
    model = gn.Sequential([gn.layers.Input((2,)), gn.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    seen = []
    spy = gn.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: (
            seen.append((model.history, list(model.history.epoch))) if epoch == 1 else None
        )
    )
    history = model.fit(np.zeros((8, 2), np.float32), np.zeros((8, 1)), epochs=2, verbose=0,
                        callbacks=[spy])  # fmt: skip
    assert seen == [(history, [0])]  # set at epoch 0's end, before fit returns
