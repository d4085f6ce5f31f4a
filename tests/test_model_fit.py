"""Sequential.fit's loop as a Keras user sees it (gpunet/model_fit.py, gpunet/trainer.py):
validation split, data and frequency, shuffling, sample weights of the loss, the callbacks'
hooks and logs, the progress bar it draws."""

import numpy as np
import pytest

import gpunet as gn
from tests.test_model import _compiled, _data, _readme_model


@pytest.mark.parametrize("n, split, train", [(100, 0.25, 75), (10, 0.25, 7), (7, 0.3, 4)])
def test_validation_split_takes_the_last_fraction_before_shuffling(n, split, train):
    # train = floor(n * (1 - split)) (Keras): 10 * 0.75 = 7.5 trains on 7, not 8.
    x, y, _ = _data(n=n)
    model = _readme_model()
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    history = model.fit(x, y, epochs=1, validation_split=split, verbose=0, batch_size=1)
    expected = model.evaluate(x[train:], y[train:], verbose=0)
    assert history.params["steps"] == train  # one sample per step
    assert history.history["val_loss"][0] == pytest.approx(expected, rel=1e-6)


def test_validation_data_wins_over_split():
    x, y, _ = _data(n=100)
    model = _readme_model()
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    history = model.fit(
        x,
        y,
        epochs=1,
        validation_split=0.5,
        validation_data=(x[:10], y[:10]),
        verbose=0,
        batch_size=10,
    )
    assert history.params["steps"] == 10  # all 100 samples trained
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(x[:10], y[:10]))


def test_stop_training_from_a_callback():
    class StopAfterTwo(gn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    x, y, _ = _data(n=64)
    model = _readme_model()
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    history = model.fit(x, y, epochs=10, callbacks=[StopAfterTwo()], verbose=0)
    assert history.epoch == [0, 1]


def test_callback_hooks_and_lazy_batch_logs():
    seen = []

    class Recorder(gn.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            seen.append(f"epoch_begin {epoch}")

        def on_train_batch_end(self, batch, logs=None):
            seen.append(f"batch {batch} {sorted(logs)}")

        def on_epoch_end(self, epoch, logs=None):
            seen.append(f"epoch_end {epoch} {sorted(logs)}")

    x, y, _ = _data(n=20)
    model = _readme_model()
    model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=10, callbacks=[Recorder()], verbose=0, initial_epoch=0)
    assert seen == [
        "train_begin",
        "epoch_begin 0",
        "batch 0 ['accuracy', 'loss']",
        "batch 1 ['accuracy', 'loss']",
        "epoch_end 0 ['accuracy', 'loss']",
    ]


def test_batch_logs_say_which_steps_are_progress_refreshes():
    # Reading a batch log is a host sync on a GPU: fit marks the steps where reading is
    # expected (a refresh, and the epoch's last step); TerminateOnNaN reads only those.
    flags, losses = [], []

    class Watcher(gn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            flags.append(logs.synced)
            if logs.synced:
                losses.append(logs["loss"])

    x, y, _ = _data(n=40)
    model = _readme_model()
    model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    history = model.fit(
        x,
        y,
        epochs=1,
        batch_size=10,
        verbose=0,
        callbacks=[Watcher(), gn.callbacks.TerminateOnNaN()],
    )
    assert len(flags) == 4 and flags[0] is True and flags[-1] is True
    assert losses[-1] == pytest.approx(history.history["loss"][0])


def test_verbose_prints_keras_epoch_lines(capsys):
    x, y, _ = _data(n=64)
    model = _readme_model()
    model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=32, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/2" and out[2] == "Epoch 2/2"
    assert out[1].startswith("2/2 - 0s - ") and " - accuracy: " in out[1]
    assert out[1].index("accuracy") < out[1].index("loss")


def test_unshuffled_training_weights_its_loss_by_sample_weight():
    x, y, _ = _data()

    def first_step_loss(weights):
        gn.utils.set_random_seed(0)
        model = _compiled()
        model.optimizer.learning_rate = 1e-9  # the reported loss: the weights barely move
        history = model.fit(x, y, epochs=1, batch_size=600, shuffle=False, verbose=0,
                            sample_weight=weights)  # fmt: skip
        return history.history["loss"][0]

    full = first_step_loss(np.ones(len(x)))
    assert first_step_loss(np.full(len(x), 0.5)) == pytest.approx(0.5 * full, rel=1e-5)


def test_validation_sample_weights_weight_the_validation_loss_and_bad_tuples_are_named():
    rs = np.random.default_rng(0)
    x = rs.random((60, 4), dtype=np.float32)
    y = (x.sum(axis=1) > 2).astype(np.float32).reshape(-1, 1)
    w = rs.random(60).astype(np.float32)
    gn.utils.set_random_seed(1)
    model = gn.Sequential([gn.layers.Input((4,)), gn.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    history = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y, w), shuffle=False)
    weighted = model.evaluate(x, y, sample_weight=w, verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(weighted, rel=1e-6)
    assert weighted != pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-3)
    for bad in ([x], (x, y, w, w)):
        with pytest.raises(ValueError) as error:
            model.fit(x, y, epochs=1, verbose=0, validation_data=bad)
        assert str(error.value) == (
            "fit: validation_data must be a tuple (x_val, y_val[, sample_weight])."
        )
    with pytest.raises(ValueError, match=r"fit: validation_data: sample_weight must have shape"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y, w[:5]))
    with pytest.raises(ValueError, match="fit: validation_data: x must have a batch axis"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x[0], y))


def test_fit_draws_the_bar_it_was_asked_for(monkeypatch):
    made = []
    real = gn.callbacks.ProgbarLogger

    class Recording(real):
        def __init__(self, verbose=1, *args, **kwargs):
            made.append(verbose)
            super().__init__(verbose, *args, **kwargs)

    monkeypatch.setattr(gn.callbacks, "ProgbarLogger", Recording)
    x = np.ones((8, 4), np.float32)
    model = gn.Sequential([gn.layers.Input((4,)), gn.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, x[:, :1], epochs=1, verbose=1)
    model.fit(x, x[:, :1], epochs=1, verbose=2)
    assert made == [1, 2]


def test_validation_freq_validates_every_nth_epoch():
    # Keras: validation_freq=3 validates after epochs 3 and 6 (counted from 1) of 7.
    x, y, _ = _data(n=200)
    model = _readme_model()
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    seen = []
    keys = gn.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(sorted(logs)))
    history = model.fit(x, y, epochs=7, validation_split=0.2, validation_freq=3, verbose=0,
                        callbacks=[keys])  # fmt: skip
    validated = [epoch for epoch, names in enumerate(seen) if "val_loss" in names]
    assert validated == [2, 5] and len(history.history["val_loss"]) == 2


def test_on_train_end_gets_the_last_epochs_logs_as_in_keras():
    x, y, _ = _data(n=100)
    model = _readme_model()
    model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    ends = []
    record = gn.callbacks.LambdaCallback(on_train_end=lambda logs: ends.append(logs))
    history = model.fit(x, y, epochs=2, validation_split=0.2, verbose=0, callbacks=[record])
    assert ends == [{name: values[-1] for name, values in history.history.items()}]
    model.fit(x, y, epochs=2, initial_epoch=2, verbose=0, callbacks=[record])  # no epoch runs
    assert ends[-1] is None


def test_shuffle_permutes_the_rows_each_epoch_from_the_seed():
    # shuffle=True (the default) trains on another order than shuffle=False, the same order
    # for the same seed.
    x, y, _ = _data(n=96)

    def weights_after(shuffle):
        gn.utils.set_random_seed(7)
        model = _readme_model()
        model.compile(loss="categorical_crossentropy", optimizer="sgd")
        model.fit(x, y, batch_size=16, epochs=2, shuffle=shuffle, verbose=0)
        return model.get_weights()[0]

    shuffled = weights_after(True)
    np.testing.assert_array_equal(weights_after(True), shuffled)
    assert not np.array_equal(weights_after(False), shuffled)
