"""Data that is not an array (generators, iterators, iterables, PyDataset): the same training
as the arrays give, Keras's epoch rules, and one clear line for each bad batch."""

import io
import re
import warnings

import numpy as np
import pytest
from rich.console import Console

import gpunet as gn
from gpunet import backend, streams, trainer
from tests import standin
from tests.conftest import use_standin
from tests.ledger import record_fit
from tests.test_checkpoint import Interrupt

N, BATCH = 230, 32  # seven full batches and a partial one of 6


def _data(n=N, seed=0):
    rs = np.random.default_rng(seed)
    x = rs.random((n, 12), dtype=np.float32)
    labels = ((x - 0.5) @ rs.standard_normal((12, 3))).argmax(axis=1)
    return x, labels


def _model(seed=3, metrics=("accuracy",)):
    gn.utils.clear_session()
    gn.utils.set_random_seed(seed)
    model = gn.Sequential(
        [
            gn.layers.Input((12,)),
            gn.layers.Dense(16, activation="relu"),
            gn.layers.Dropout(0.25),
            gn.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=list(metrics))
    return model


def _batches(x, y, w=None, batch=BATCH):
    for start in range(0, len(x), batch):
        part = slice(start, start + batch)
        yield (x[part], y[part]) if w is None else (x[part], y[part], w[part])


def _endless(x, y, counter=None):
    while True:
        for batch in _batches(x, y):
            if counter is not None:
                counter.append(1)
            yield batch


class Batches(gn.utils.PyDataset):
    """The arrays' batches by index, recording the calls fit makes."""

    def __init__(self, x, y, batch=BATCH, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch = x, y, batch
        self.asked, self.calls = [], []

    def __len__(self):
        return -(-len(self.x) // self.batch)

    def __getitem__(self, index):
        self.asked.append(index)
        part = slice(index * self.batch, (index + 1) * self.batch)
        return self.x[part], self.y[part]

    def on_epoch_begin(self):
        self.calls.append("begin")

    def on_epoch_end(self):
        self.calls.append("end")


class Reiterable:
    """An iterable that starts a new pass each time it is iterated (unlike a generator)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        return _batches(self.x, self.y)


def _assert_same(a, b):
    """Equal on NumPy (both the reference step); on the CuPy path the arrays train on the fused
    step, whose float32 sums run in another order."""
    if backend.get_backend() == "numpy":
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


def _assert_same_training(streamed, arrays, history, expected):
    for a, b in zip(streamed.get_weights(), arrays.get_weights()):
        _assert_same(a, b)
    assert history.history.keys() == expected.history.keys()
    for name, values in expected.history.items():
        _assert_same(np.array(history.history[name]), np.array(values))


@pytest.mark.parametrize(
    "make, extra",
    [
        (lambda x, y: _endless(x, y), dict(steps_per_epoch=8)),
        (lambda x, y: Batches(x, y), {}),
        (lambda x, y: Reiterable(x, y), {}),
        (lambda x, y: iter(list(_batches(x, y)) * 3), dict(steps_per_epoch=8)),
    ],
    ids=["generator-with-steps", "pydataset", "iterable", "iterator"],
)
def test_streamed_batches_train_as_the_same_arrays_unshuffled(make, extra):
    x, y = _data()
    xv, yv = _data(64, seed=5)
    arrays = _model()
    expected = arrays.fit(
        x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, validation_data=(xv, yv)
    )
    streamed = _model()
    history = streamed.fit(
        make(x, y),
        epochs=3,
        shuffle=False,
        verbose=0,
        validation_data=Batches(xv, yv),
        **extra,
    )
    _assert_same_training(streamed, arrays, history, expected)
    _assert_same(streamed.predict(_batches(x, y), verbose=0), arrays.predict(x, verbose=0))
    _assert_same(
        np.array(streamed.evaluate(Batches(x, y), verbose=0)),
        np.array(arrays.evaluate(x, y, batch_size=BATCH, verbose=0)),
    )


def test_sample_weights_and_class_weights_in_streamed_batches():
    x, y = _data()
    w = np.random.default_rng(1).random(N).astype(np.float32) + 0.5
    arrays = _model()
    expected = arrays.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
                          sample_weight=w)  # fmt: skip
    streamed = _model()
    history = streamed.fit(
        _endless_weighted(x, y, w), steps_per_epoch=8, epochs=2, shuffle=False, verbose=0
    )
    _assert_same_training(streamed, arrays, history, expected)

    weights = {0: 0.5, 1: 2.0, 2: 1.25}
    arrays = _model()
    expected = arrays.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
                          class_weight=weights)  # fmt: skip
    streamed = _model()
    history = streamed.fit(Batches(x, y), epochs=2, shuffle=False, verbose=0, class_weight=weights)
    _assert_same_training(streamed, arrays, history, expected)


def _endless_weighted(x, y, w):
    while True:
        yield from _batches(x, y, w)


def test_steps_per_epoch_keeps_one_iterator_across_epochs_and_draws_no_more():
    x, y = _data()
    drawn = []
    _model().fit(_endless(x, y, drawn), steps_per_epoch=5, epochs=3, verbose=0)
    assert len(drawn) == 15  # 5 per epoch, not one more (the first batch included)


def test_a_generator_that_runs_out_ends_training_with_keras_warning():
    x, y = _data()
    model = _model()
    with pytest.warns(UserWarning, match="Your input ran out of data; interrupting training"):
        history = model.fit(_batches(x, y), steps_per_epoch=5, epochs=4, verbose=0)
    assert history.epoch == [0, 1]  # 5 batches, then the 3 left; then no more data
    with pytest.warns(UserWarning, match="ran out of data"):
        history = _model().fit(_batches(x, y), epochs=3, verbose=0)  # one pass, then nothing
    assert history.epoch == [0]


def test_a_source_that_can_start_over_starts_a_new_pass_each_epoch():
    x, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = _model().fit(Reiterable(x, y), epochs=3, verbose=0)
    assert history.epoch == [0, 1, 2]
    # With steps_per_epoch beyond its length: Keras's warning, a new pass the next epoch.
    with pytest.warns(UserWarning, match="ran out of data"):
        history = _model().fit(Batches(x, y), steps_per_epoch=10, epochs=2, verbose=0)
    assert history.epoch == [0, 1]


def test_validation_steps_feed_every_validation_from_one_generator():
    x, y = _data()
    drawn = []
    history = _model().fit(
        x, y, epochs=3, verbose=0, validation_data=_endless(x, y, drawn), validation_steps=2
    )
    assert len(drawn) == 6 and len(history.history["val_loss"]) == 3
    with pytest.raises(ValueError, match="without validation_steps: the first validation"):
        _model().fit(x, y, epochs=2, verbose=0, validation_data=_batches(x, y))


def test_predict_takes_inputs_alone_or_with_targets_and_steps():
    x, y = _data()
    model = _model()
    expected = model.predict(x, verbose=0)
    alone = model.predict((x[i : i + 50] for i in range(0, N, 50)), verbose=0)
    _assert_same(alone, expected)
    tuples = model.predict(((x[i : i + 50],) for i in range(0, N, 50)), verbose=0)
    _assert_same(tuples, expected)
    assert model.predict(_endless(x, y), steps=3, verbose=0).shape == (3 * BATCH, 3)
    assert model.evaluate(_endless(x, y), steps=2, verbose=0, return_dict=True).keys() == {
        "loss",
        "accuracy",
    }


@pytest.mark.parametrize(
    "batches, message",
    [
        ([(np.ones((4, 12)), np.zeros(4), None, None)], "^fit: x: batch 0 is a tuple of 4 items"),
        ([np.ones((4, 12))], r"batch 0 has no targets; yield \(x, y\)"),
        ([(np.ones((4, 11)), np.zeros(4))], r"batch 0.*expected shape \(None, 12\)"),
        ([(np.ones((4, 12)), np.zeros(4)), (np.ones((4, 12)), np.zeros(3))], "batch 1"),
        ([(np.ones((4, 12)), np.zeros(4)), (np.full((2, 12), np.nan), np.zeros(2))], "NaN"),
        ([(np.ones((4, 12)), np.full(4, 7))], "batch 0"),  # a label past the 3 classes
        ([(np.ones((4, 12)), np.zeros(4), np.ones(3))], r"sample_weight must have shape \(4,\)"),
        ([], "yielded no batches"),
    ],
    ids=["four-items", "no-targets", "features", "rows", "nan", "label", "weights", "empty"],
)
def test_a_bad_batch_is_one_line_naming_it(batches, message):
    with pytest.raises(ValueError, match=message) as error:
        _model().fit(iter(batches), epochs=1, verbose=0)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, x, y: m.fit(_batches(x, y), y, verbose=0), "y must be None"),
        (lambda m, x, y: m.fit(Batches(x, y), sample_weight=y, verbose=0), "sample_weight"),
        (lambda m, x, y: m.fit(_batches(x, y), validation_split=0.2, verbose=0), "split"),
        (lambda m, x, y: m.fit(x, y, steps_per_epoch=3, verbose=0), "steps_per_epoch is for"),
        (lambda m, x, y: m.fit(_batches(x, y), steps_per_epoch=0, verbose=0), "int >= 1"),
        (lambda m, x, y: m.evaluate(_batches(x, y), steps=1.5, verbose=0), "int >= 1"),
        (lambda m, x, y: m.evaluate(_batches(x, y), y, verbose=0), "y and sample_weight"),
    ],
    ids=["y", "sample-weight", "split", "array-steps", "zero-steps", "float-steps", "eval-y"],
)
def test_arguments_that_do_not_go_with_a_generator_are_refused(call, message):
    x, y = _data()
    with pytest.raises(ValueError, match=message):
        call(_model(), x, y)


def test_is_stream_tells_batches_from_arrays():
    x, y = _data()
    assert streams.is_stream(_batches(x, y)) and streams.is_stream(Batches(x, y))
    assert streams.is_stream(Reiterable(x, y)) and streams.is_stream(iter([]))
    for array_like in (x, [[1.0, 2.0]], (1, 2), None, "text", backend.to_device(x)):
        assert not streams.is_stream(array_like)


def test_the_first_epoch_of_unknown_length_shows_keras_unknown_count_then_the_total(monkeypatch):
    x, y = _data()
    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    bar = gn.callbacks.ProgbarLogger(1, console=console, refresh_interval=0.0)
    monkeypatch.setattr(trainer, "REFRESH_INTERVAL", 0.0)  # every step a progress refresh
    model = _model()
    model.fit(Reiterable(x, y), epochs=2, verbose=1, callbacks=[bar])
    text = console.file.getvalue()
    first, second = text.split("Epoch 2/2")
    assert "      1/Unknown" in first and "8/8" in first  # the end of the epoch tells the total
    assert re.search(r"      1/Unknown\S* \S*0s\S* \d+\w+/step - accuracy: [\d.]+ - loss: ", first)
    assert "Unknown" not in second and "1/8" in second


def test_each_streamed_batch_is_one_pinned_copy_per_array_overlapped_with_the_step():
    use_standin()
    x, y = _data()
    model = _model()
    _, records = record_fit(model, _endless(x, y), None, steps_per_epoch=8, epochs=3, verbose=0)
    assert len(records) == 24
    for r in records:
        where = f"epoch {r['epoch']} step {r['step']}: {r['sites']}"
        # The next batch's x and y, from pinned memory on the copy stream (none at the
        # epoch's last step: steps_per_epoch says no batch follows).
        assert r["h2d"] == (0 if r["step"] == 7 else 2), where
        assert r["pageable"] == 0, where
        # One host wait, on the copy issued two batches before (its pinned memory is reused
        # now); nothing else syncs (verbose=0: no progress read).
        assert r["syncs"] == (0 if r["step"] == 7 else 1), where
        assert all(site.startswith("gpunet/uploads.py") for site in r["sites"]["syncs"]), where
        if r["epoch"] >= 1:
            assert r["allocs"] == 0, where


def test_lists_of_samples_train_as_the_array():
    x, y = _data()
    expected = _model()
    expected.fit(x, y, epochs=1, verbose=0, shuffle=False)
    for as_list in (list(x), x.tolist()):
        model = _model()
        model.fit(as_list, list(y), epochs=1, verbose=0, shuffle=False)
        for a, b in zip(expected.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_predict_batches_are_checked_and_computed_in_float32():
    x, y = _data()
    model = _model()
    out = model.predict((x[i : i + 50].astype(np.float64) for i in range(0, N, 50)), verbose=0)
    assert out.dtype == np.float32
    for bad, message in (
        ([x[:4], x[:4, :11]], r"predict: x: batch 1: input of model .* expected shape"),
        ([x[:4], x[0]], r"predict: x: batch 1: x must have a batch axis"),
        ([x[:4], np.full((2, 12), np.inf)], r"predict: x: batch 1: x contains NaN or inf"),
    ):
        with pytest.raises(ValueError, match=message):
            model.predict(iter(bad), verbose=0)


def test_the_cupy_path_says_why_streamed_data_trains_on_the_reference_step(caplog):
    x, y = _data()
    _model().fit(_batches(x, y), epochs=1, verbose=0)
    notices = [r.getMessage() for r in caplog.records if "reference CuPy step" in r.getMessage()]
    if backend.get_backend() == "numpy":
        assert notices == []
    else:
        assert notices == [
            "gpunet: data from a generator: the reference CuPy step trains on each batch as "
            "it is copied (the fused step needs array data)."
        ]


def test_stream_training_fills_the_step_totals_of_the_steps_it_runs():
    from gpunet.step.streaming import StreamTraining
    from gpunet.tracker import Tracker

    x, y = _data()
    model = _model()
    stream = model._open_stream(Batches(x, y), None, "fit: x", targets=True)
    xp = backend.xp()
    training = StreamTraining(model._get_trainer().step, stream, xp)
    tracker = Tracker(xp, [], None)
    training.begin_epoch(None, first=2)
    assert training.run(tracker, 2, 3) == 3
    totals = backend.to_host(tracker.step_totals)
    assert not totals[:2].any() and totals[2:5].all() and not totals[5:].any()
    assert tracker.seen == 3 * BATCH


def test_an_empty_dataset_and_a_missing_input_are_named():
    x, y = _data()
    with pytest.raises(ValueError, match="fit: x: the Batches has no batches"):
        _model().fit(Batches(x[:0], y[:0]), verbose=0)
    with pytest.raises(ValueError, match=r"predict: x: batch 0: x is required"):
        _model().predict(iter([(None,)]), verbose=0)


def test_predict_builds_a_model_without_input_from_the_first_batch():
    x, _ = _data()
    model = gn.Sequential([gn.layers.Dense(4), gn.layers.Dense(2)])
    assert model.predict((x[i : i + 50] for i in range(0, N, 50)), verbose=0).shape == (N, 2)
    assert model.input_shape == (None, 12)


def test_a_mid_epoch_generator_resume_is_refused_with_the_reason(tmp_path):
    x, y = _data()
    backup = gn.callbacks.BackupAndRestore(tmp_path, save_freq=1)
    _model().fit(
        _endless(x, y), steps_per_epoch=8, epochs=2, verbose=0, callbacks=[backup, Interrupt(0, 3)]
    )
    with pytest.raises(ValueError) as error:
        _model().fit(
            _endless(x, y), steps_per_epoch=8, epochs=2, verbose=0,
            callbacks=[gn.callbacks.BackupAndRestore(tmp_path)],
        )  # fmt: skip
    assert str(error.value) == (
        "fit: this checkpoint was saved mid-epoch, and only array data or a PyDataset without "
        "steps_per_epoch can be resumed mid-epoch exactly (a generator cannot go back to a "
        "batch). Resume from a checkpoint saved at an epoch's end."
    )


def test_evaluation_of_a_long_stream_of_unknown_length_weights_its_metrics():
    x, y = _data(2000, seed=3)
    w = np.random.default_rng(4).random(2000).astype(np.float32)
    model = _model()
    expected = model.evaluate(x, y, batch_size=25, sample_weight=w, verbose=0, return_dict=True)
    streamed = model.evaluate(
        _batches(x, y, w, batch=25), verbose=0, return_dict=True
    )  # 80 batches: past the 64 steps an unknown-length tracker starts with
    assert streamed.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(streamed[name], expected[name], rtol=1e-6)
    unweighted = model.evaluate(x, y, batch_size=25, verbose=0, return_dict=True)
    assert unweighted["accuracy"] != expected["accuracy"]  # the weights do reach the metric


def test_predict_on_a_stream_draws_keras_line(capsys):
    x, y = _data()
    model = _model()
    model.predict(_batches(x, y), verbose=2)
    assert capsys.readouterr().out.startswith("8/8 - ")


def test_what_counts_as_a_stream_and_as_a_step_count():
    class ArrayLike:  # iterable, but an array to NumPy (as a pandas frame is)
        def __array__(self, dtype=None, copy=None):
            return np.zeros((2, 2))

        def __iter__(self):
            return iter([])

    class NextOnly:
        def __next__(self):
            raise StopIteration

    assert not streams.is_stream(ArrayLike()) and streams.is_stream(NextOnly())
    assert streams.check_steps(1, "s") == 1 and streams.check_steps(np.int64(3), "s") == 3
    for bad in (0, 1.0, True, "3"):
        with pytest.raises(ValueError, match="s must be None or an int >= 1"):
            streams.check_steps(bad, "s")


def test_batches_given_as_lists_and_in_other_dtypes_train_as_float32_arrays():
    x, y = _data()
    w = np.random.default_rng(5).random(N) + 0.5
    arrays = _model()
    expected = arrays.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
                          sample_weight=w.astype(np.float32))  # fmt: skip
    streamed = _model()
    wide = ([b[0].astype(np.float64), b[1].astype(np.float32), b[2]] for b in _batches(x, y, w))
    history = streamed.fit(wide, epochs=1, shuffle=False, verbose=0)
    _assert_same_training(streamed, arrays, history, expected)


def test_a_bad_later_batch_and_mixed_weights_are_named_with_their_index():
    x, y = _data()
    good = list(_batches(x, y))
    with pytest.raises(ValueError) as error:
        _model().fit(iter(good[:2] + [(x[:4], y[:4], None, None)]), epochs=1, verbose=0)
    assert str(error.value) == (
        "fit: x: batch 2 is a tuple of 4 items; a batch must be (x,), (x, y) or "
        "(x, y, sample_weight)."
    )
    weighted = (x[:4], y[:4], np.ones(4))
    with pytest.raises(ValueError, match=r"^fit: x: batch 1: pass class_weight or sample_weight"):
        _model().fit(iter(good[:1] + [weighted]), class_weight={0: 1.0}, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"^fit: x: batch 0: sample_weight must have shape"):
        _model().fit(iter([(x[:4], y[:4], np.ones(3))]), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"^fit: x: batch 0 has no targets"):
        _model().fit(iter([(x[:4],)]), epochs=1, verbose=0)


def test_an_epoch_longer_than_the_first_growth_of_its_totals():
    x, y = _data()
    batches = [(x[i : i + 3], y[i : i + 3]) for i in range(0, N, 3)]  # 77 batches, one pass
    model = _model()
    history = model.fit(iter(batches), epochs=1, verbose=0)
    expected = _model()
    reference = expected.fit(x, y, batch_size=3, epochs=1, shuffle=False, verbose=0)
    _assert_same(np.array(history.history["loss"]), np.array(reference.history["loss"]))


def test_a_kept_pass_followed_by_an_empty_one_ends_training():
    x, y = _data()

    class Once:  # an iterable with one pass of batches, then empty ones
        def __init__(self):
            self.passes = 0

        def __iter__(self):
            self.passes += 1
            return _batches(x, y) if self.passes == 1 else iter([])

    with pytest.warns(UserWarning, match="ran out of data"):
        history = _model().fit(Once(), steps_per_epoch=8, epochs=3, verbose=0)
    assert history.epoch == [0]


def test_a_second_streamed_evaluation_reuses_the_copier_and_its_buffers():
    use_standin()
    x, y = _data()
    model = _model()
    model.evaluate(Batches(x, y), verbose=0)
    uploader = model._get_trainer()._kept_uploader
    mark = standin.ledger.mark()
    model.evaluate(Batches(x, y), verbose=0)
    assert model._get_trainer()._kept_uploader is uploader
    # Only the pass's own tracker is new; every batch buffer and pinned page is reused.
    sites = standin.ledger.sites("allocs", mark)
    assert sites and all(site.startswith("gpunet/tracker.py") for site in sites), sites
