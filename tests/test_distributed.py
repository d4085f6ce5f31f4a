"""gpunet/distributed.py in one process: shards, the launcher's environment, deadlines, a World
over MPI's COMM_SELF, and the CLI's lines. What a rank's training does:
tests/test_data_parallel.py; the ranks themselves (mpirun): tests/test_distributed_mpi.py."""

import sys

import numpy as np
import pytest

from gpunet import distributed
from tests.ranks import ranks


@pytest.fixture(autouse=True)
def fresh_world(monkeypatch):
    monkeypatch.setattr(distributed, "_world", None)


@pytest.mark.parametrize("size", [1, 2, 3, 4])
@pytest.mark.parametrize("rows", [0, 1, 2, 5, 16, 17])
def test_shards_split_a_batch_in_rank_order_evenly(rows, size):
    parts = [distributed.shard_rows(10, 10 + rows, r, size) for r in range(size)]
    assert parts[0][0] == 10 and parts[-1][1] == 10 + rows
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))  # contiguous, in rank order
    sizes = [stop - start for start, stop in parts]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 0
    if rows % size == 0:
        assert sizes == [rows // size] * size


def test_a_world_of_one_is_the_whole_batch(monkeypatch):
    # No launcher: one rank, and MPI is not even imported.
    monkeypatch.setattr(distributed, "_world", None)
    for name in distributed.SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # importing it would raise
    world = distributed.world()
    assert isinstance(world, distributed.Single) and world.size == 1 and world.writes
    assert world.shard(3, 19) == (3, 19)
    assert world.batch_size_problem(7) is None
    assert world.from_rank_0(lambda: "made") == "made"


def test_the_global_batch_must_split_evenly():
    assert ranks(0, 4).batch_size_problem(128) is None
    assert ranks(1, 4).batch_size_problem(130) == (
        "batch_size 130 is the global batch, split evenly across 4 ranks: it must be a "
        "multiple of 4 (e.g. 128)."
    )
    assert "(e.g. 3)" in ranks(0, 3).batch_size_problem(2)


@pytest.mark.parametrize(
    "variables, size, rank, local",
    [
        ({}, 1, 0, 0),
        ({"PMI_SIZE": "4", "PMI_RANK": "2", "MPI_LOCALRANKID": "1"}, 4, 2, 1),
        (
            {
                "OMPI_COMM_WORLD_SIZE": "8",
                "OMPI_COMM_WORLD_RANK": "5",
                "OMPI_COMM_WORLD_LOCAL_RANK": "3",
            },
            8,
            5,
            3,
        ),
        ({"MV2_COMM_WORLD_SIZE": "2", "MV2_COMM_WORLD_RANK": "1"}, 2, 1, 0),
        ({"PMI_SIZE": "many"}, 1, 0, 0),
    ],
)
def test_the_launcher_environment(monkeypatch, variables, size, rank, local):
    for name in distributed.SIZE_VARIABLES + distributed.RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in distributed.LOCAL_RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert distributed.launched_size() == size
    assert distributed.launched_rank() == rank
    assert distributed.local_rank_from_env() == local


def test_several_ranks_without_mpi4py_say_how_to_install_it(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py raises ImportError
    with pytest.raises(distributed.DistributedError, match=r"pip install 'gpunet\[mpi\]'"):
        distributed.world()


@pytest.mark.parametrize("raw, seconds", [(None, 300.0), ("2.5", 2.5), ("60", 60.0), ("0.5", 0.5)])
def test_the_rank_timeout(monkeypatch, raw, seconds):
    if raw is None:
        monkeypatch.delenv(distributed.TIMEOUT_ENV, raising=False)
    else:
        monkeypatch.setenv(distributed.TIMEOUT_ENV, raw)
    assert distributed._timeout() == seconds


@pytest.mark.parametrize("raw", ["0", "-3", "soon", "nan"])
def test_a_bad_rank_timeout_is_one_line(monkeypatch, raw):
    monkeypatch.setenv(distributed.TIMEOUT_ENV, raw)
    with pytest.raises(distributed.DistributedError) as error:
        distributed._timeout()
    assert str(error.value) == (f"GPUNET_RANK_TIMEOUT={raw!r}: expected a number of seconds > 0.")


def test_a_device_read_waits_for_the_ranks_until_the_deadline(monkeypatch):
    # An NCCL sum waits on the device for every rank: the read after it would wait forever for
    # a rank that hangs, so the world polls an event until the deadline instead.
    from tests.conftest import use_standin

    standin = use_standin()
    world = ranks(0, 2)
    world.timeout = 0.05
    ended = []
    monkeypatch.setattr(world, "_end_job", lambda what: ended.append(what) or sys.exit(3))
    array = standin.zeros(3)
    world.settle(array, "a read")  # the stand-in's work has run: no wait
    assert ended == []
    monkeypatch.setattr(standin.Event, "done", property(lambda event: False))
    with pytest.raises(SystemExit):
        world.settle(array, "the sums of the logs")
    with pytest.raises(SystemExit):
        world.settle(array)
    assert ended == ["the sums of the logs", "a read of the logs"]
    world.settle(np.zeros(3))  # host memory: nothing to wait for


def test_a_wait_polls_busily_then_sleeps_a_millisecond_until_the_deadline(monkeypatch):
    # A clock of its own: each poll costs 0.1 ms, each sleep what it asks.
    now, sleeps, ended = [0.0], [], []

    def monotonic():
        now[0] += 1e-4
        return now[0]

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(distributed.time, "monotonic", monotonic)
    monkeypatch.setattr(distributed.time, "sleep", sleep)
    world = ranks(0, 2)
    world.timeout = 0.2
    monkeypatch.setattr(world, "_end_job", lambda what: ended.append(what) or sys.exit(3))
    with pytest.raises(SystemExit):
        world._poll(lambda: False, "a step's gradient all-reduce")
    assert ended == ["a step's gradient all-reduce"]
    assert set(sleeps) == {1e-3} and 100 <= len(sleeps) <= 150  # 0.05 s busy, then sleeps
    assert 0.2 < now[0] < 0.21
    sleeps.clear()
    world._poll(iter([False, False, True]).__next__, "a read")  # done before the deadline
    assert sleeps == []


def test_a_cupy_with_nccl_uses_it_and_one_without_says_what_to_install(monkeypatch):
    from tests.conftest import use_standin

    standin = use_standin()
    assert distributed._nccl_module(standin) is standin.cuda.nccl
    monkeypatch.delattr(standin.cuda, "nccl")  # not imported yet: not an attribute
    with pytest.raises(distributed.DistributedError) as error:
        distributed._nccl_module(standin)
    assert str(error.value) == (
        "data-parallel training on CuPy needs NCCL, which CuPy cannot load (No module named "
        "'tests.standin.cuda'; 'tests.standin' is not a package); install NCCL for your CUDA "
        "version (CuPy's installation guide, 'Additional CUDA Libraries'), or train on NumPy "
        "ranks with --backend numpy"
    )


@pytest.mark.parametrize(
    "timeout, mpi4py, message",
    [
        ("soon", True, "error: GPUNET_RANK_TIMEOUT='soon': expected a number of seconds > 0."),
        ("5", False, "error: an MPI launcher started 2 ranks, but mpi4py is not installed"),
    ],
    ids=["timeout", "no-mpi4py"],
)
def test_the_cli_says_what_is_wrong_with_the_ranks_in_one_line(
    monkeypatch, capsys, tmp_path, timeout, mpi4py, message
):
    from gpunet import cli

    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv(distributed.TIMEOUT_ENV, timeout)
    if not mpi4py:
        monkeypatch.setitem(sys.modules, "mpi4py", None)
    config = tmp_path / "c.yaml"
    config.write_text(
        "data: {name: fashion_mnist}\nmodel: [{type: Dense, units: 10, activation: softmax}]\n"
    )
    assert cli.main(["train", str(config), "--output", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def world_of_self():
    """A World over MPI's COMM_SELF: this process as the one rank of a real communicator, so
    its MPI calls run (the two-rank job is in tests/test_distributed_mpi.py)."""
    mpi4py = pytest.importorskip("mpi4py", reason="mpi4py comes with the test extra")
    del mpi4py
    from mpi4py import MPI

    return distributed.World(MPI.COMM_SELF, timeout=5.0)


@pytest.mark.mpi
def test_a_world_sums_agrees_and_hands_on_rank_0s_values(world_of_self):
    world = world_of_self
    assert (world.size, world.rank, world.local_rank, world.writes) == (1, 0, 0, True)
    grads = np.array([1.5, -2.0], np.float32)
    assert world.all_sum(grads) is grads and grads.tolist() == [1.5, -2.0]
    out = np.zeros(2, np.float32)
    assert world.all_sum(grads, out=out) is out and out.tolist() == [1.5, -2.0]
    assert world.agree([0, 3, True]) == [0, 3, 1]
    assert world.from_rank_0(lambda: {"run": "dir"}) == {"run": "dir"}
    with pytest.raises(KeyError, match="gone"):
        world.from_rank_0(lambda: {}["gone"])
    assert world.describe()[0] == "ranks: 1"
    assert "local rank 0 of 1" in world.describe()[1]  # and ", GPU 0" on the CuPy path


@pytest.mark.mpi
def test_rank_0s_failure_reaches_the_other_ranks_as_its_words(world_of_self):
    # Rank 0 raises its own exception; what it sends is JSON, and another rank receiving it
    # raises a RankZeroError (a ValueError: rank 0 alone prints it) with the same words.
    import json

    class Local(Exception):
        pass

    def fail():
        raise Local("the disk is full")

    world = world_of_self
    sent = []
    real = world.comm

    class Recording:  # COMM_SELF, keeping what rank 0 broadcasts
        def Ibcast(self, buffer, root=0):  # noqa: N802 (mpi4py's name)
            sent.append(bytes(buffer))
            return real.Ibcast(buffer, root=root)

    world.comm = Recording()
    with pytest.raises(Local):
        world.from_rank_0(fail)
    assert json.loads(sent[-1]) == {"error": "the disk is full"}

    class Replaying:  # another rank's receiving end, fed what rank 0 sent
        def __init__(self):
            self.parts = [np.array([len(sent[-1])], np.int64), sent[-1]]

        def Ibcast(self, buffer, root=0):  # noqa: N802 (mpi4py's name)
            buffer[:] = self.parts.pop(0)
            return real.Ibarrier()

    world.rank, world.comm = 1, Replaying()
    with pytest.raises(distributed.RankZeroError, match="^the disk is full$"):
        world.from_rank_0(fail)
    assert issubclass(distributed.RankZeroError, ValueError)
