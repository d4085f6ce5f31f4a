"""Checkpoints at the edges: a damaged file is refused in one line naming it and what is wrong,
and a run that EarlyStopping ended resumes to that same end."""

import io
import json
import struct
import zipfile

import numpy as np
import pytest

import gpunet as gn
from gpunet import checkpoint
from gpunet.datasets.idx import DataError
from tests.test_checkpoint import _data, _fit, _model


@pytest.fixture
def saved(tmp_path):
    """A checkpoint after one epoch: (path, its bytes)."""
    model = _model()
    _fit(model, epochs=1)
    path = tmp_path / "c.npz"
    model.save_checkpoint(str(path))
    return path, path.read_bytes()


def _rewrite(path, change):
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(arrays["meta"].tobytes())
    change(arrays, meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def _deflate64(path):
    """The same members, marked as compressed with a method zipfile cannot read (9)."""
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    raw = bytearray(buffer.getvalue())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = raw.find(signature)
        while at >= 0:
            raw[at + offset : at + offset + 2] = struct.pack("<H", 9)
            at = raw.find(signature, at + 4)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p, b: p.write_bytes(b[: len(b) // 2]), "damaged or not a gpunet checkpoint (Bad"),
        (
            lambda p, b: p.write_bytes(b[:200] + bytes([b[200] ^ 0xFF]) + b[201:]),
            "damaged or not a gpunet checkpoint (",
        ),
        (lambda p, b: _deflate64(p), "NotImplementedError"),
        (
            lambda p, b: _rewrite(p, lambda a, m: m.pop("history")),
            "damaged checkpoint: its metadata lacks 'history'.",
        ),
        (
            lambda p, b: _rewrite(p, lambda a, m: m.update(epoch="one")),
            "damaged checkpoint: metadata 'epoch' is 'one', expected int >= 0.",
        ),
        (
            lambda p, b: _rewrite(p, lambda a, m: m.update(step=-1)),
            "damaged checkpoint: metadata 'step' is -1, expected int >= 0.",
        ),
        (
            lambda p, b: _rewrite(p, lambda a, m: m.update(shuffle_rng=[1])),
            "damaged checkpoint: metadata 'shuffle_rng' is [1], expected dict or NoneType.",
        ),
        (
            lambda p, b: _rewrite(p, lambda a, m: a.update(params=np.float32(1))),
            "damaged checkpoint: no 1-D 'params' array.",
        ),
        (
            lambda p, b: _rewrite(p, lambda a, m: m.update(format=None)),
            "checkpoint format None, expected 'gpunet-checkpoint-2'.",
        ),
    ],
    ids=[
        "truncated",
        "bit-flip",
        "deflate64",
        "lacks-key",
        "wrong-type",
        "negative",
        "rng-type",
        "0-d-params",
        "no-format",
    ],
)
def test_a_damaged_checkpoint_is_one_line_naming_the_file(saved, damage, message):
    path, data = saved
    damage(path, data)
    with pytest.raises(DataError) as info:
        checkpoint.load(str(path))
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_a_damaged_callback_or_optimizer_state_is_named(saved):
    path, _ = saved
    _rewrite(path, lambda a, m: m.update(callbacks=[{"class": "EarlyStopping", "state": {}}]))
    model = _model()
    model.resume_from(str(path))
    x, y = _data()
    with pytest.raises(
        DataError, match=r"the state of EarlyStopping cannot be restored \(KeyError"
    ):
        model.fit(x, y, verbose=0, callbacks=[gn.callbacks.EarlyStopping()])
    _rewrite(path, lambda a, m: m.update(optimizer={"products": {}}))
    model = _model()
    model.resume_from(str(path))
    with pytest.raises(DataError, match=r"the optimizer state cannot be restored \(KeyError"):
        model.fit(x, y, verbose=0)


def test_non_finite_parameters_are_refused_when_resuming(saved):
    path, _ = saved
    _rewrite(path, lambda a, m: a.update(params=np.full_like(a["params"], np.nan)))
    model = _model()
    model.build()
    with pytest.raises(DataError, match="its parameters hold NaN or inf; it cannot be resumed"):
        model.resume_from(str(path))  # a built model checks at once


def test_a_run_ended_by_early_stopping_resumes_to_the_same_end(tmp_path):
    def stopper():
        return gn.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=1)

    reference = _model()
    expected = _fit(reference, [stopper()], epochs=8)
    assert len(expected.epoch) == 2  # stopped early, well before 8
    path = str(tmp_path / "c.npz")
    first = _model()
    saver = gn.callbacks.TrainingCheckpoint(path)
    _fit(first, [stopper(), saver], epochs=8)
    resumed = _model()
    resumed.resume_from(path)
    steps = []
    spy = gn.callbacks.LambdaCallback(on_train_batch_begin=lambda batch, logs: steps.append(batch))
    history = _fit(resumed, [stopper(), spy], epochs=8)
    assert steps == []  # no epoch ran: the run had ended
    assert history.history == expected.history
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_resumed_epoch_counts_the_time_it_ran_before_the_interrupt(tmp_path):
    import time

    from tests.test_checkpoint import Interrupt

    slow = gn.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: time.sleep(0.05) if batch < 4 else None
    )
    first = _model()
    _fit(first, [slow, gn.callbacks.BackupAndRestore(tmp_path, save_freq=1), Interrupt(1, 3)])
    seen = []
    spy = gn.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: seen.append((epoch, spy.resumed_seconds()))
    )
    resumed = _model()
    _fit(resumed, [gn.callbacks.BackupAndRestore(tmp_path, save_freq=1), spy])
    (epoch, before), (later, fresh) = seen
    assert (epoch, later) == (1, 2)
    assert 0.2 <= before < 5  # four slow steps of the interrupted epoch 1, at least
    assert fresh == 0.0
    progbar = gn.callbacks.ProgbarLogger(verbose=2, clock=lambda: 1000.0)
    progbar.set_model(resumed)
    assert progbar.resumed_seconds() == 0.0  # outside fit: nothing resumed


def test_saving_after_fit_with_the_last_logs_adds_no_row(tmp_path):
    model = _model()
    history = _fit(model, epochs=2)
    path = str(tmp_path / "c.npz")
    last = {name: values[-1] for name, values in history.history.items()}
    model.save_checkpoint(path, epoch_logs=last)  # History has them already
    _, meta = checkpoint.load(path)
    assert meta["history"] == history.history
    assert meta["backend"] == gn.backend.get_backend()


def test_a_step_counter_and_times_read_back_as_saved():
    progress = checkpoint.FitProgress(0)
    assert progress.seconds_in_epoch() == 0.0  # no epoch began in this process
    assert [checkpoint._seconds(v) for v in (2, 2.5, 0, -1.0, float("nan"))] == [
        2.0,
        2.5,
        0.0,
        0.0,
        0.0,
    ]
    assert [checkpoint._seconds(v) for v in (float("inf"), True, "x", None, [1])] == [0.0] * 5


@pytest.mark.parametrize(
    "entries, message",
    [
        ([[1]], "callback entry 0 has no class."),
        ([{"state": {}}], "callback entry 0 has no class."),
        ([{"class": "EarlyStopping", "state": {}}, 7], "callback entry 1 has no class."),
    ],
)
def test_callback_entries_without_a_class_are_named(saved, entries, message):
    path, _ = saved
    _rewrite(path, lambda a, m: m.update(callbacks=entries))
    model = _model()
    model.resume_from(str(path))
    x, y = _data()
    with pytest.raises(DataError) as info:
        model.fit(x, y, verbose=0)
    assert str(info.value) == f"{path}: damaged checkpoint: {message}"


def test_load_messages_in_full(tmp_path):
    missing = tmp_path / "none.npz"
    with pytest.raises(DataError) as info:
        checkpoint.load(str(missing))
    assert str(info.value) == f"{missing}: no checkpoint there."
    path = tmp_path / "c.npz"
    np.savez(path, params=np.zeros(3, np.float32))
    with pytest.raises(DataError) as info:
        checkpoint.load(str(path))
    assert str(info.value) == f"{path}: not a gpunet checkpoint (no readable metadata)."
    meta = np.frombuffer(b'{"format": "gpunet-checkpoint-1"}', dtype=np.uint8)
    np.savez(path, params=np.zeros(3, np.float32), meta=meta)
    with pytest.raises(DataError) as info:
        checkpoint.load(str(path))
    assert str(info.value) == (
        f"{path}: checkpoint format 'gpunet-checkpoint-1', expected 'gpunet-checkpoint-2'."
    )


def test_an_epoch_interrupted_after_its_first_step_keeps_that_steps_time(tmp_path):
    import time

    from tests.test_checkpoint import Interrupt

    slow = gn.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: time.sleep(0.1))
    first = _model()
    backup = gn.callbacks.BackupAndRestore(tmp_path, save_freq=1)
    _fit(first, [slow, backup, Interrupt(0, 0)])
    _, meta = checkpoint.load(backup.path)
    assert meta["step"] == 1 and 0.1 <= meta["seconds_in_epoch"] < 5
    seen = []
    spy = gn.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: seen.append(spy.resumed_seconds())
    )
    _fit(_model(), [gn.callbacks.BackupAndRestore(tmp_path, save_freq=1), spy])
    assert seen[0] >= 0.1 and seen[1:] == [0.0, 0.0]  # then fresh epochs


def test_an_epoch_boundary_checkpoint_resumes_with_no_seconds_carried(tmp_path):
    path = str(tmp_path / "c.npz")
    first = _model()
    _fit(first, [gn.callbacks.TrainingCheckpoint(path)], epochs=1)
    seen = []
    spy = gn.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: seen.append(spy.resumed_seconds())
    )
    resumed = _model()
    resumed.resume_from(path)
    _fit(resumed, [spy], epochs=2)
    assert seen == [0.0]


def test_metadata_that_is_not_a_mapping_is_named(saved):
    path, _ = saved
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["meta"] = np.frombuffer(b"[1, 2]", dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(DataError) as info:
        checkpoint.load(str(path))
    assert str(info.value) == f"{path}: checkpoint format None, expected 'gpunet-checkpoint-2'."


def test_a_checkpoint_resumes_once_and_names_itself_when_it_does_not_fit(saved, tmp_path):
    path, _ = saved
    model = _model()
    assert model.resume_from(str(path)) == 1
    _fit(model, epochs=2)
    history = _fit(model, epochs=1)  # a later fit starts afresh: the checkpoint was used up
    assert history.epoch == [0]
    other = gn.Sequential([gn.layers.Input((12,)), gn.layers.Dense(3, activation="softmax")])
    other.compile(loss="categorical_crossentropy")
    other.build()
    with pytest.raises(DataError, match=f"^{path}: holds .* parameters, the model has"):
        other.resume_from(str(path))


def test_a_model_never_fitted_saves_a_checkpoint_at_epoch_zero(tmp_path):
    model = _model()
    model.build()
    path = str(tmp_path / "fresh.npz")
    model.save_checkpoint(path)
    assert _model().resume_from(path) == 0
