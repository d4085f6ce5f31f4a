"""The Tracker: one pass's device accumulators, read in one copy."""

import numpy as np
import pytest

from gpunet import metrics
from gpunet.tracker import Tracker


def _tracker(steps=3):
    return Tracker(np, [metrics.get("accuracy", (None,), (None, 3))], steps)


def test_read_gives_the_weighted_mean_loss_and_each_metric():
    tracker = _tracker()
    y_pred = np.eye(3, dtype=np.float32)
    for step, (labels, total) in enumerate(
        [(np.array([0, 1, 2]), 3.0), (np.array([0, 0, 0]), 6.0)]
    ):
        tracker.step_total(step)[...] = total
        tracker.update(3, labels, y_pred)
    logs = tracker.read("val_")
    assert logs == {"val_loss": pytest.approx(9.0 / 6), "val_accuracy": pytest.approx(4 / 6)}
    assert tracker.first_nonfinite_step() is None
    tracker.step_total(2)[...] = np.nan
    tracker.update(3, np.array([0, 1, 2]), y_pred)
    assert tracker.first_nonfinite_step() == 2


def test_a_state_from_another_shape_is_refused():
    tracker = _tracker()
    state = _tracker(steps=5).get_state()
    with pytest.raises(ValueError, match=r"tracker step_totals of shape \(5,\), expected \(3,\)"):
        tracker.set_state(state, seen=0)
    tracker.set_state(_tracker().get_state(), seen=7)
    assert tracker.seen == 7


def test_a_sum_that_overflows_names_no_step():
    """Finite step totals whose sum overflows: the running loss is inf, yet no step's loss
    went bad, so there is no first bad step to name."""
    from gpunet.tracker import Tracker

    tracker = Tracker(np, [], 2)
    tracker.step_totals[...] = [1e308, 1e308]
    tracker.seen = 2
    with np.errstate(over="ignore"):  # as fit reads it
        assert tracker.read()["loss"] == np.inf
        assert tracker.first_nonfinite_step() is None


def test_a_pass_of_unknown_length_grows_its_totals_and_a_fixed_one_does_not():
    tracker = _tracker(steps=None)  # a generator's first epoch
    y_pred = np.eye(3, dtype=np.float32)
    for step in range(150):  # past the 64 it starts with, twice
        tracker.reserve(step + 1)
        tracker.step_total(step)[...] = float(step)
        tracker.update(3, np.array([0, 1, 2]), y_pred)
    assert tracker.step_totals.shape == (256,)
    assert tracker.read()["loss"] == pytest.approx(sum(range(150)) / 450)
    restored = _tracker(steps=None)
    restored.set_state(tracker.get_state(), seen=tracker.seen)  # a checkpoint mid-epoch
    assert restored.read() == tracker.read()
    fixed = _tracker(steps=3)
    fixed.reserve(10)
    assert fixed.step_totals.shape == (3,)
