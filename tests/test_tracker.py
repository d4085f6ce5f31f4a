"""The Tracker: one pass's device accumulators, read in one copy."""

import numpy as np
import pytest

from gpunet import backend, metrics
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


class _Partnered:
    """Rank 0 of 2, whose partner's sums are given: a sum over the ranks adds them. Checks
    what a real World would refuse: a sum in place of the tracker's own state, a settle of
    anything but the sum just made."""

    rank, size, writes = 0, 2, True

    def __init__(self, partner):
        self.partner, self.sums, self.settled = partner, 0, []

    def all_sum(self, array, out=None, what=""):
        assert out is not None and out is not array, "a read sums into its own buffer"
        assert what == "the sums of the logs"
        backend.get_array_module(array).add(array, self.partner[array.shape], out=out)
        self.sums += 1
        return out

    def settle(self, array, what=""):
        assert array is not None
        self.settled.append(array)


def _two_metric_tracker(xp, world, steps=2):
    found = [metrics.get(name, (None,), (None, 3)) for name in ("accuracy", "mae")]
    return Tracker(xp, found, steps, world)


def _two_steps(xp, tracker):
    y_pred = xp.asarray(np.eye(3, dtype=np.float32))
    for step, (labels, total) in enumerate([([0, 1, 2], 3.0), ([0, 0, 0], 6.0)]):
        tracker.step_total(step).fill(total)
        tracker.update(6, xp.asarray(np.array(labels)), y_pred)  # 6 rows: both ranks' 3


def test_a_read_sums_every_rank_into_its_own_buffers_and_keeps_the_trackers_sums():
    # The partner's state: loss totals 1 and 2, accuracy 0 of 3 then 3 of 3, and mae's sums.
    partner_values = np.array([99.0, 3.0, 6.0, 5.0, 6.0])  # its [0] is never read
    world = _Partnered({(5,): partner_values, (2,): np.array([1.0, 2.0])})
    tracker = _two_metric_tracker(np, world)
    _two_steps(np, tracker)
    own = tracker.values.copy(), tracker.step_totals.copy()
    logs = tracker.read()
    accuracy_state, mae_state = own[0][1:3] + [3.0, 6.0], own[0][3:5] + [5.0, 6.0]
    assert logs == {
        "loss": pytest.approx((3.0 + 6.0 + 1.0 + 2.0) / 12),
        "accuracy": pytest.approx(accuracy_state[0] / accuracy_state[1]),
        "mae": pytest.approx(mae_state[0] / mae_state[1]),
    }
    assert world.sums == 2 and len(world.settled) == 2
    np.testing.assert_array_equal(tracker.values[1:], own[0][1:])  # its own sums, unsummed
    np.testing.assert_array_equal(tracker.step_totals, own[1])
    state = tracker.get_state()  # a checkpoint: the sums of both ranks, the tracker unchanged
    np.testing.assert_array_equal(state["step_totals"], own[1] + [1.0, 2.0])
    np.testing.assert_array_equal(state["values"][1:], own[0][1:] + partner_values[1:])
    assert tracker.read() == logs and world.sums == 4  # read again after get_state: the same


def test_reads_reuse_their_buffers_and_a_stale_read_neither_syncs_nor_sums():
    # Between refreshes, data-parallel callbacks read the last refresh's logs (fresh=False): its
    # loss is that read's total over that read's samples, not over the samples since.
    from tests import standin
    from tests.conftest import use_standin

    use_standin()
    partner = {(5,): standin.zeros(5, np.float64), (2,): standin.zeros(2, np.float64)}
    world = _Partnered(partner)
    tracker = _two_metric_tracker(standin, world)
    assert tracker.read(fresh=False)["loss"] == 0.0  # nothing read yet: this one reads
    _two_steps(standin, tracker)
    tracker.read()  # the first read with data makes the totals' buffer
    labels, y_pred = standin.asarray(np.array([0, 1, 2])), standin.asarray(np.eye(3, dtype="f"))
    tracker.update(6, labels, y_pred)
    mark, sums = standin.ledger.mark(), world.sums
    fresh = tracker.read()
    counts = standin.ledger.since(mark)
    assert (counts["allocs"], counts["syncs"], world.sums - sums) == (0, 1, 2)
    tracker.update(6, labels, y_pred)
    mark = standin.ledger.mark()
    assert tracker.read(fresh=False) == fresh
    assert standin.ledger.since(mark)["syncs"] == 0 and world.sums - sums == 2


def test_a_reset_pass_starts_from_zero_and_one_sample_is_its_own_mean():
    tracker = _tracker()
    y_pred = np.eye(3, dtype=np.float32)
    tracker.step_total(0)[...] = 4.0
    tracker.update(3, np.array([0, 1, 2]), y_pred)
    tracker.read()
    tracker.reset()  # a new epoch: nothing counted yet
    assert tracker.read() == {"loss": 0.0, "accuracy": 0.0}
    tracker.step_total(0)[...] = 2.5
    tracker.update(1, np.array([1]), y_pred[1:2])
    assert tracker.read() == {"loss": 2.5, "accuracy": 1.0}


def test_a_growing_pass_keeps_its_totals_on_the_device():
    from tests import standin
    from tests.conftest import use_standin

    use_standin()
    tracker = Tracker(standin, [], None)
    for step in range(70):  # past the 64 it starts with
        tracker.reserve(step + 1)
        tracker.step_total(step).fill(1.0)
        tracker.add_rows(1)
    assert isinstance(tracker.step_totals, standin.ndarray) and tracker.step_totals.shape == (128,)
    assert tracker.read()["loss"] == 1.0
