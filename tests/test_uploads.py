"""Batches copied to the device one ahead (gpunet/uploads.py): two slots alternating, pinned
staging reused and grown, NumPy batches used where they lie."""

import numpy as np

from gpunet.uploads import Prefetcher, Uploader
from tests import standin
from tests.conftest import use_standin


def _batches(sizes):
    for i, rows in enumerate(sizes):
        yield np.full((rows, 3), i, np.float32), np.full(rows, i, np.int64), None


def test_numpy_batches_are_used_where_they_lie():
    batch = next(_batches([4]))
    slot, device = Uploader(np).put(batch)
    assert device is batch


def test_each_batch_arrives_intact_through_two_alternating_slots():
    cp = use_standin()
    uploader = Uploader(cp)
    prefetch = Prefetcher(_batches([4, 4, 4, 2, 6]), uploader)
    seen = []
    while prefetch.more():
        host, (x, y, w) = prefetch.next()
        assert w is None and type(x) is cp.ndarray
        np.testing.assert_array_equal(x.get(), host[0])
        np.testing.assert_array_equal(y.get(), host[1])
        seen.append((int(y.get()[0]), uploader.slot))
    prefetch.close()
    # Batch k is in slot k % 2; the slot printed is the one the batch after it went to.
    assert [index for index, _ in seen] == [0, 1, 2, 3, 4]
    assert [slot for _, slot in seen] == [1, 0, 1, 0, 0]
    # The 6-row batch outgrew its slot's 4-row staging: grown, and kept for the next.
    sizes = {key: size for key, (_, size) in uploader.pinned.items()}
    assert sizes[0, "x"] == 2 * 4 * 3 * 4 and sizes[1, "x"] == 4 * 3 * 4


def test_a_kept_slot_allocates_nothing_on_the_device_after_its_first_batch():
    cp = use_standin()
    uploader = Uploader(cp)
    Prefetcher(_batches([4, 4]), uploader).next()
    mark = standin.ledger.mark()
    prefetch = Prefetcher(_batches([4, 4, 4]), uploader)
    while prefetch.more():
        prefetch.next()
    counts = standin.ledger.since(mark)
    assert counts["allocs"] == 0 and counts["pageable"] == 0 and counts["h2d"] == 6


def test_copies_and_reads_are_ordered_by_the_slots_events_and_staging_is_kept():
    cp = use_standin()
    uploader = Uploader(cp)
    prefetch = Prefetcher(_batches([4, 4, 4]), uploader)
    assert uploader.copied[0].recorded and not uploader.consumed[0].recorded
    memory = uploader.pinned[0, "x"][0]
    prefetch.next()  # batch 0 (slot 0) in use; batch 1 copied into slot 1
    assert uploader.copied[1].recorded and not uploader.consumed[0].recorded
    prefetch.next()  # batch 0 released: slot 0 may take batch 2
    assert uploader.consumed[0].recorded and not uploader.consumed[1].recorded
    assert uploader.pinned[0, "x"][0] is memory  # same size: the same pinned memory
    prefetch.next()
    prefetch.close()
    assert uploader.consumed[1].recorded and prefetch._in_use is None
