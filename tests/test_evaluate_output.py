"""What evaluate() and predict() print (Keras 3: one bar over their batches, then the results
on the same line; the plain line off a terminal; nothing with verbose=0)."""

import io
import re

import numpy as np
import pytest
from rich.console import Console

import gpunet as gn
from gpunet.callbacks import ProgbarLogger
from tests.terminal import screen

BAR = "━" * 20


def _model():
    gn.utils.clear_session()
    gn.utils.set_random_seed(0)
    model = gn.Sequential([gn.layers.Input((4,)), gn.layers.Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    x = np.random.default_rng(0).random((70, 4), dtype=np.float32)
    return model, x, gn.utils.to_categorical(np.arange(70) % 3, 3)


def _clock(dt, start=1000.0):
    ticks = iter(range(10**6))
    return lambda: start + next(ticks) * dt


def test_the_test_hooks_draw_keras_evaluate_line_on_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    bar = ProgbarLogger(1, console=console, clock=_clock(0.5))
    bar.set_params({"verbose": 1, "epochs": 1, "steps": 3})
    bar.on_test_begin()
    for step in range(3):
        bar._last_draw = -1.0
        bar.on_test_batch_end(step)
    bar.on_test_end({"loss": 0.37901, "accuracy": 0.86281})
    # begin 0, steps at 0.5, 1.0, 1.5, end 2.0: 2s, (2.0 - 0.5) / 2 steps after the first
    lines = [line for line in screen(out.getvalue()) if line]
    assert lines == [f"3/3 {BAR} 2s 750ms/step - accuracy: 0.8628 - loss: 0.3790"]


def test_the_predict_hooks_end_with_the_bar_alone():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False)
    bar = ProgbarLogger(1, console=console, clock=_clock(0.001))
    bar.set_params({"verbose": 1, "epochs": 1, "steps": 2})
    bar.on_predict_begin()
    bar.on_predict_batch_end(0)
    bar.on_predict_batch_end(1)
    bar.on_predict_end()
    assert out.getvalue() == "2/2 - 0s - 2ms/step\n"  # (0.003 - 0.001) / 1 step after the first


@pytest.mark.parametrize("verbose", ["auto", 1, 2])
def test_evaluate_prints_one_line_off_a_terminal(capsys, verbose):
    model, x, y = _model()
    loss, accuracy = model.evaluate(x, y, batch_size=32, verbose=verbose)
    line = capsys.readouterr().out
    match = re.fullmatch(
        r"3/3 - \d+s - \d+(us|ms)/step - accuracy: (\d\.\d{4}) - loss: (\d\.\d{4})\n", line
    )
    assert match, line
    assert (match[2], match[3]) == (f"{accuracy:.4f}", f"{loss:.4f}")


def test_predict_prints_its_line_and_verbose_0_nothing(capsys):
    model, x, _ = _model()
    model.predict(x, batch_size=32)
    assert re.fullmatch(r"3/3 - \d+s - \d+(us|ms)/step\n", capsys.readouterr().out)
    model.predict(x, verbose=0)
    model.evaluate(x, _model()[2], verbose=0)
    assert capsys.readouterr().out == ""
    for call in (lambda: model.predict(x, verbose=3), lambda: model.evaluate(x, x, verbose="x")):
        with pytest.raises(ValueError, match="verbose must be 0, 1, 2 or 'auto'"):
            call()


def test_validation_inside_fit_draws_no_bar_of_its_own(capsys):
    model, x, y = _model()
    model.fit(x, y, epochs=1, batch_size=32, validation_split=0.2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "val_loss" in lines[0]


class _Batches(gn.utils.PyDataset):
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return 3

    def __getitem__(self, index):
        return self.x[index * 10 : (index + 1) * 10], self.y[index * 10 : (index + 1) * 10]


def test_the_bars_of_evaluate_and_predict_know_their_steps(monkeypatch):
    # Keras gives the bar its params before the first batch: the live bar counts "2/3" mid-way,
    # not "2/Unknown". Arrays and PyDatasets, evaluate and predict.
    from gpunet import callbacks as callbacks_module

    seen = []

    class Recording(ProgbarLogger):
        def set_params(self, params):
            seen.append(dict(params))
            super().set_params(params)

    monkeypatch.setattr(callbacks_module, "ProgbarLogger", Recording)
    model, x, y = _model()
    model.evaluate(x, y, batch_size=32, verbose=2)
    model.predict(x, batch_size=32, verbose=2)
    model.evaluate(_Batches(x, y), verbose=2)
    model.predict(_Batches(x, y), verbose=2)
    assert seen == [{"verbose": 2, "epochs": 1, "steps": 3}] * 4
