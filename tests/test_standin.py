"""The strict CuPy stand-in refuses what CuPy refuses and counts what a GPU pays for: if it
were lenient, the CuPy-path tests would prove nothing."""

import numpy as np
import pytest

from tests import standin as cp


@pytest.fixture(autouse=True)
def fresh_ledger():
    cp.ledger.reset()
    yield


def test_host_conversion_and_host_operands_are_refused():
    a = cp.asarray(np.ones(3, np.float32))
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Unsupported type"):
        cp.add(a, np.ones(3, np.float32))
    with pytest.raises(TypeError, match="Unsupported type"):
        a + np.ones(3, np.float32)
    with pytest.raises(TypeError, match="Unsupported type"):
        np.ones(3, np.float32) + a
    with pytest.raises(TypeError, match="Unsupported type"):
        a.take(np.array([0, 1]))
    assert (a * np.float32(2.0)).dtype == np.float32  # NumPy scalars are fine, as in CuPy


def test_reads_are_counted_syncs():
    a = cp.asarray(np.arange(4, dtype=np.float32))
    mark = cp.ledger.mark()
    float(a.sum())
    a.get()
    a[1].item()
    bool(a[0] == 0)
    repr(a)
    f"{a[2]:.1f}"
    cp.asnumpy(a)
    assert cp.ledger.since(mark)["syncs"] == 7


def test_ops_that_sync_inside_cupy_are_counted():
    a = cp.asarray(np.array([0, 1, 1, 3]))
    for op in (lambda: cp.bincount(a, minlength=4), lambda: cp.nonzero(a), lambda: a[a > 0]):
        mark = cp.ledger.mark()
        op()
        assert cp.ledger.since(mark)["syncs"] == 1


def test_launches_allocations_and_copies_are_counted_per_call_site():
    mark = cp.ledger.mark()
    a = cp.asarray(np.ones((4, 4), np.float32))  # h2d + alloc
    out = cp.empty((4, 4), cp.float32)  # alloc
    cp.multiply(a, 2.0, out=out)  # launch, no alloc
    out += a  # launch
    b = a @ a  # cuBLAS launch + alloc
    view = b[1:, :2].T[0]  # views: free
    view.sum()  # launch + alloc (a 0-d device array)
    b[1:, :2].T.reshape(-1)  # not contiguous: a copy, as in CuPy (launch + alloc)
    counts = cp.ledger.since(mark)
    assert counts == {
        "launches": 5,
        "syncs": 0,
        "h2d": 1,
        "pageable": 0,
        "allocs": 5,
        "graph_launches": 0,
        "collectives": 0,
    }
    (site,) = cp.ledger.sites("h2d", mark)
    assert site.startswith("tests/test_standin.py:")


def test_generator_random_without_size_draws_one_value_and_state_is_a_method():
    out = cp.empty((50, 50), cp.float32)
    cp.random.default_rng(0).random(dtype=cp.float32, out=out)
    values = out.get()
    assert np.all(values == values[0, 0])  # CuPy's size=None draws a single number
    assert callable(cp.random.default_rng(0).bit_generator.state)


def test_stream_capture_refuses_syncs_allocations_and_cublas_then_replays():
    a = cp.asarray(np.ones(3, np.float32))
    product = cp.empty((1, 1), cp.float32)
    stream = cp.cuda.Stream()
    with pytest.raises(cp.CaptureError, match="null stream"):
        cp.cuda.Stream.null.begin_capture()
    with stream:
        stream.begin_capture()
        a += 1.0  # captured, not run
        with pytest.raises(cp.CaptureError, match="sync"):
            float(a[0])
        with pytest.raises(cp.CaptureError, match="allocating"):
            a * 2.0
        with pytest.raises(NotImplementedError, match="cuBLAS"):
            cp.matmul(a.reshape(1, 3), a.reshape(3, 1), out=product)
        with cp.cuda.Stream.null, pytest.raises(cp.CaptureError, match="other than"):
            a += 1.0  # on another stream while one captures
        graph = stream.end_capture()
    np.testing.assert_array_equal(a.get(), [1, 1, 1])  # capturing ran nothing
    mark = cp.ledger.mark()
    graph.launch()
    graph.launch()
    np.testing.assert_array_equal(a.get(), [3, 3, 3])
    assert cp.ledger.since(mark)["graph_launches"] == 2


def test_a_copy_is_asynchronous_only_from_pinned_memory_on_a_stream_and_event_waits_sync():
    target = cp.empty((2, 3), cp.float32)
    stream = cp.cuda.Stream(non_blocking=True)
    pinned = np.frombuffer(cp.cuda.alloc_pinned_memory(24), np.float32, 6).reshape(2, 3)
    pinned[...] = 1.0
    mark = cp.ledger.mark()
    target.set(pinned, stream=stream)
    target.set(pinned[:, :].copy(), stream=stream)  # a pageable copy of it: blocking in CuPy
    target.set(pinned)  # pinned, but on no stream: blocking too
    counts = cp.ledger.since(mark)
    assert (counts["h2d"], counts["pageable"], counts["syncs"]) == (3, 2, 0)
    event = stream.record()
    cp.cuda.get_current_stream().wait_event(event)  # on the device: no sync
    assert cp.ledger.since(mark)["syncs"] == 0
    event.synchronize()
    assert cp.ledger.since(mark)["syncs"] == 1
    with pytest.raises(TypeError, match="cupy.cuda.Event"):
        stream.wait_event(object())


@pytest.mark.mpi
def test_nccl_all_reduce_sums_over_the_ranks_in_place_and_in_a_graph():
    # One process is a job of one rank: the sum is the value; what is checked is CuPy's call
    # (pointers, count, NCCL's type and op codes, the stream), the counting, and the capture.
    nccl = cp.cuda.nccl
    comm = nccl.NcclCommunicator(1, nccl.get_unique_id(), 0)
    grads = cp.asarray(np.array([1.5, -2.0, 4.0], np.float32))
    out = cp.zeros(3, cp.float32)
    mark = cp.ledger.mark()
    stream = cp.cuda.get_current_stream()
    comm.allReduce(grads.data.ptr, out.data.ptr, 3, nccl.NCCL_FLOAT32, nccl.NCCL_SUM, stream.ptr)
    np.testing.assert_array_equal(out.get(), [1.5, -2.0, 4.0])
    assert cp.ledger.since(mark)["collectives"] == 1
    with pytest.raises(NotImplementedError, match="sums float32 and float64"):
        comm.allReduce(grads.data.ptr, out.data.ptr, 3, 2, nccl.NCCL_SUM, stream.ptr)  # int32
    with pytest.raises(cp.CaptureError, match="other than the current one"):
        comm.allReduce(grads.data.ptr, grads.data.ptr, 3, nccl.NCCL_FLOAT32, 0, id(object()))
    capturing = cp.cuda.Stream()
    with capturing:
        capturing.begin_capture()
        comm.allReduce(grads.data.ptr, grads.data.ptr, 3, nccl.NCCL_FLOAT32, 0, capturing.ptr)
        graph = capturing.end_capture()
    mark = cp.ledger.mark()
    graph.launch()
    graph.launch()
    assert cp.ledger.since(mark)["collectives"] == 2  # counted as each replay runs it
    with pytest.raises(ValueError, match="not this MPI job's rank"):
        nccl.NcclCommunicator(2, nccl.get_unique_id(), 0)
