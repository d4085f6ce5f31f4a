"""`gn.utils.PyDataset` (gpunet/pydataset.py) in fit: its options, worker threads, seeded
shuffled order, epoch hooks, and exact mid-epoch resume."""

import itertools
import threading
import time

import numpy as np
import pytest

import gpunet as gn
from gpunet import streams
from tests.test_checkpoint import Interrupt
from tests.test_streams import Batches, _data, _endless, _model


def test_a_pydataset_is_visited_in_a_seeded_shuffled_order_with_its_epoch_hooks():
    x, y = _data()
    orders = []
    for _ in range(2):
        data = Batches(x, y)
        _model().fit(data, epochs=2, verbose=0)
        orders.append(data.asked)
    first, second = orders
    assert first == second  # the seed fixes the order
    assert first[:1] == [0]  # the first batch, read once to build the model
    epochs = [first[1:9], first[9:17]]
    assert all(sorted(e) == list(range(8)) for e in epochs)
    assert epochs[0] != list(range(8)) and epochs[0] != epochs[1]  # shuffled, anew each epoch
    assert data.calls == ["begin", "end"] * 2


def test_pydataset_arguments_are_checked_and_multiprocessing_is_named():
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        gn.utils.PyDataset(workers=0)
    with pytest.warns(UserWarning, match="threads, not processes"):
        gn.utils.PyDataset(use_multiprocessing=True)
    assert gn.utils.Sequence is gn.utils.PyDataset
    with pytest.raises(NotImplementedError, match="__getitem__"):
        gn.utils.PyDataset()[0]


def test_a_pydataset_resumes_mid_epoch_exactly_and_a_generator_refuses(tmp_path):
    x, y = _data()
    reference = _model()
    expected = reference.fit(Batches(x, y), epochs=3, verbose=0)
    backup = gn.callbacks.BackupAndRestore(tmp_path, save_freq=1)
    _model().fit(Batches(x, y), epochs=3, verbose=0, callbacks=[backup, Interrupt(1, 4)])
    resumed = _model()
    history = resumed.fit(
        Batches(x, y), epochs=3, verbose=0, callbacks=[gn.callbacks.BackupAndRestore(tmp_path)]
    )
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert history.history == expected.history

    backup = gn.callbacks.BackupAndRestore(tmp_path / "gen", save_freq=1)
    stream = _endless(x, y)
    _model().fit(
        stream, steps_per_epoch=8, epochs=3, verbose=0, callbacks=[backup, Interrupt(1, 4)]
    )
    with pytest.raises(ValueError, match="saved mid-epoch.*a generator cannot go back"):
        _model().fit(
            _endless(x, y), steps_per_epoch=8, epochs=3, verbose=0,
            callbacks=[gn.callbacks.BackupAndRestore(tmp_path / "gen")],
        )  # fmt: skip


def test_pydataset_workers_make_batches_ahead_in_threads_and_keep_the_order():
    x, y = _data()
    expected = _model()
    expected.fit(Batches(x, y), epochs=2, verbose=0)
    data = Batches(x, y, workers=3, max_queue_size=4)
    threaded = _model()
    threaded.fit(data, epochs=2, verbose=0)
    for a, b in zip(expected.get_weights(), threaded.get_weights()):
        np.testing.assert_array_equal(a, b)

    class Failing(Batches):
        def __getitem__(self, index):
            if index == 5:
                raise RuntimeError("batch 5 cannot be read")
            return super().__getitem__(index)

    with pytest.raises(RuntimeError, match="batch 5 cannot be read"):
        _model().fit(Failing(x, y, workers=2), epochs=1, verbose=0, shuffle=False)


def test_pydataset_options_are_checked_one_by_one_and_the_warning_points_at_the_caller():
    for options, name in (
        ({"workers": 0}, "workers"),
        ({"workers": True}, "workers"),
        ({"max_queue_size": 0}, "max_queue_size"),
        ({"max_queue_size": 2.0}, "max_queue_size"),
    ):
        with pytest.raises(ValueError, match=f"PyDataset: {name} must be an int >= 1"):
            gn.utils.PyDataset(**options)
    with pytest.warns(UserWarning) as caught:
        gn.utils.PyDataset(use_multiprocessing=True)
    (warning,) = caught
    assert not warning.filename.endswith("gpunet/pydataset.py")  # the caller's line
    assert str(warning.message) == (
        "PyDataset: use_multiprocessing=True: gpunet's workers are threads, not processes "
        "(they release the GIL in NumPy; a pure-Python __getitem__ gains less)."
    )

    class NoSuper(gn.utils.PyDataset):  # Keras code that forgets super().__init__()
        def __init__(self):
            pass

        def __len__(self):
            return 2

        def __getitem__(self, index):
            return index

    data = NoSuper()
    assert (data.workers, data.use_multiprocessing, data.max_queue_size) == (1, False, 10)
    assert list(data) == [0, 1]  # a PyDataset iterates over its batches, as in Keras

    class Endless(NoSuper):
        num_batches = None

    assert list(itertools.islice(iter(Endless()), 4)) == [0, 1, 2, 3]
    with pytest.raises(NotImplementedError, match="Bare must define __getitem__"):
        type("Bare", (gn.utils.PyDataset,), {})()[0]


def test_workers_are_that_many_threads_made_at_most_max_queue_size_ahead():
    x, y = _data()

    class Slow(Batches):
        def __getitem__(self, index):
            self.calls.append(threading.current_thread().name)
            time.sleep(0.01)
            return super().__getitem__(index)

    data = Slow(x, y, workers=3, max_queue_size=5)
    made = streams._made_ahead(data, range(8))
    next(made)
    time.sleep(0.2)  # every batch submitted so far is made by now
    assert len(data.asked) == 5  # the one taken and four more queued, never a sixth
    assert 1 < len(set(data.calls)) <= 3
    assert len(list(made)) == 7


def test_a_dataset_length_that_is_not_a_count_is_named():
    x, y = _data()

    class Negative(Batches):
        def __len__(self):
            return -1

    with pytest.raises(ValueError, match="fit: x: Negative's length must be an int >= 0 or None"):
        _model().fit(Negative(x, y), verbose=0)

    class Fractional(Batches):
        num_batches = 2.5

    with pytest.raises(ValueError, match="Fractional's length must .*, received 2.5"):
        _model().fit(Fractional(x, y), verbose=0)


def test_a_pydataset_with_steps_per_epoch_shuffles_each_pass_and_an_endless_one_counts_up():
    x, y = _data()
    shuffled = Batches(x, y)
    _model().fit(shuffled, steps_per_epoch=4, epochs=4, verbose=0)
    passes = [shuffled.asked[1:9], shuffled.asked[9:17]]  # after the first batch, read to build
    assert all(sorted(p) == list(range(8)) for p in passes)
    assert passes[0] != list(range(8)) and passes[0] != passes[1]
    in_order = Batches(x, y)
    _model().fit(in_order, steps_per_epoch=4, epochs=4, verbose=0, shuffle=False)
    assert in_order.asked[1:] == list(range(8)) * 2

    class Endless(Batches):
        num_batches = None

        def __getitem__(self, index):
            return super().__getitem__(index % 8)

    endless = Endless(x, y)
    _model().fit(endless, steps_per_epoch=5, epochs=2, verbose=0)
    assert endless.asked[1:] == list(range(8)) + [0, 1]  # indices 0.. 9, never shuffled


def test_one_worker_makes_batches_in_the_training_thread_and_two_in_others():
    x, y = _data()

    class Where(Batches):
        def __getitem__(self, index):
            self.threads.append(threading.current_thread() is threading.main_thread())
            return super().__getitem__(index)

    for workers, main in ((1, True), (2, False)):
        data = Where(x, y, workers=workers)
        data.threads = []
        _model().fit(data, epochs=1, verbose=0)
        assert set(data.threads[1:]) == {main}  # after the first, read to build the model


def test_defaults_are_keras_and_the_first_batch_is_checked_by_index():
    data = gn.utils.PyDataset()
    assert (data.workers, data.use_multiprocessing, data.max_queue_size) == (1, False, 10)
    with pytest.warns(UserWarning):
        assert gn.utils.PyDataset(use_multiprocessing=True).use_multiprocessing is True
    x, y = _data()

    class Bad(Batches):
        def __getitem__(self, index):
            return (x[:4], y[:4], None, None)

    with pytest.raises(ValueError) as error:
        _model().fit(Bad(x, y), verbose=0)
    assert str(error.value).startswith("fit: x: batch 0 is a tuple of 4 items")
