"""Data-parallel training across processes (`mpirun -n N gpunet train ...`): the ranks, each
rank's shard of a global batch, and the sums the ranks share.

A process started by an MPI launcher (mpirun, mpiexec, or a scheduler's launcher that sets one
of SIZE_VARIABLES) with more than one rank joins the world through mpi4py; every other process
is a world of one, whose operations cost nothing.
Gradients and the tracker's sums cross ranks as one all-reduce each: NCCL for CuPy arrays (on
the current stream, so no host sync), MPI for NumPy arrays. Small host values (a stop flag, a
signal) cross as MPI all-reduces of a few ints.

Every MPI wait has a deadline (GPUNET_RANK_TIMEOUT seconds, default 300): a rank that died or
hangs would otherwise hold the others forever. At the deadline the waiting ranks call the roll
on a channel of their own, the lowest one still answering names the ranks that did not, and the
job ends (MPI Abort).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time

import numpy as np

TIMEOUT_ENV = "GPUNET_RANK_TIMEOUT"
DEFAULT_TIMEOUT = 300.0
# What MPI launchers set in each rank's environment: the world's size, and the local rank.
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
LOCAL_RANK_VARIABLES = (
    "MPI_LOCALRANKID",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "MV2_COMM_WORLD_LOCAL_RANK",
)
ROLL_CALL_SECONDS = 2.0  # how long a rank at the deadline listens for the others
BUSY_SECONDS = 0.05  # how long a wait polls without sleeping


class DistributedError(RuntimeError):
    """The ranks cannot start or go on together; the message says why and what to do."""


class RankZeroError(ValueError):
    """What rank 0 failed to do for every rank (its own exception is raised on rank 0; the
    others get its words: rank 0 says what was wrong)."""


def _launcher_says(names: tuple, default: int) -> int:
    for name in names:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return default


def launched_size() -> int:
    """The number of ranks an MPI launcher started (1 outside one)."""
    return _launcher_says(SIZE_VARIABLES, 1)


def launched_rank() -> int:
    """This process's rank, as the MPI launcher says (0 outside one)."""
    return _launcher_says(RANK_VARIABLES, 0)


def local_rank_from_env() -> int:
    """This process's rank among the ranks on its machine, as the launcher says (0 if none)."""
    return _launcher_says(LOCAL_RANK_VARIABLES, 0)


def _timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DistributedError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds > 0.")
    return value


def shard_rows(start: int, stop: int, rank: int, size: int) -> tuple[int, int]:
    """Rank `rank`'s rows of the global batch [start, stop) among `size` ranks: the parts in
    rank order, their sizes differing by at most one (equal where `size` divides the batch)."""
    rows = stop - start
    return start + rank * rows // size, start + (rank + 1) * rows // size


class Single:
    """The world of one process: every shard is the whole batch and every sum is the value."""

    size, rank, local_rank = 1, 0, 0
    writes = True  # this rank writes files (run directories, checkpoints)

    def shard(self, start: int, stop: int) -> tuple[int, int]:
        return start, stop

    def batch_size_problem(self, batch_size: int) -> str | None:
        """Why `batch_size` (a global batch) cannot be split across the ranks, or None."""
        return None

    def prepare_device(self, xp) -> None:
        pass

    def from_rank_0(self, make, what: str = "a value from rank 0"):
        """make(), called on rank 0, its result (or exception) on every rank."""
        return make()

    def describe(self) -> list[str]:
        """What `gpunet info` says of the ranks (rank 0 gathers every rank's line)."""
        return ["ranks: 1 (not started by an MPI launcher)"]


class World(Single):
    """The ranks of an MPI job.

    Args:
        comm: the mpi4py communicator of every rank (COMM_WORLD).
        timeout: seconds any rank waits for the others before ending the job.
    """

    def __init__(self, comm, timeout: float):
        from mpi4py import MPI

        self._mpi = MPI
        self.comm = comm
        self.size, self.rank = comm.Get_size(), comm.Get_rank()
        node = comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self.writes = self.rank == 0
        self.timeout = timeout
        _share_cores(self.local_size)
        self._roll = comm.Dup()  # the roll call's channel, apart from the training's messages
        self._nccl = None  # the NCCL communicator, made at the first device all-reduce

    def describe(self) -> list[str]:
        from gpunet import backend

        mine = (
            f"  rank {self.rank}: {self._mpi.Get_processor_name()}, local rank "
            f"{self.local_rank} of {self.local_size}"
        )
        if backend.get_backend() == "cupy":
            mine += f", GPU {backend.xp().cuda.Device().id}"
        lines = [self._gather_text(mine, other) for other in range(self.size)]
        return [f"ranks: {self.size}"] + lines if self.writes else []

    def _gather_text(self, mine: str, source: int) -> str:
        """Rank `source`'s line on rank 0 (the others send theirs): plain UTF-8 bytes."""
        if self.rank == source:
            if self.rank == 0:
                return mine
            data = mine.encode()
            self.comm.Send(np.array([len(data)], np.int64), dest=0, tag=2)
            self.comm.Send(np.frombuffer(data, np.uint8), dest=0, tag=3)
            return mine
        if self.rank != 0:
            return ""
        size = np.empty(1, np.int64)
        self.comm.Recv(size, source=source, tag=2)
        data = np.empty(int(size[0]), np.uint8)
        self.comm.Recv(data, source=source, tag=3)
        return data.tobytes().decode()

    def shard(self, start: int, stop: int) -> tuple[int, int]:
        return shard_rows(start, stop, self.rank, self.size)

    def batch_size_problem(self, batch_size: int) -> str | None:
        if batch_size % self.size == 0:
            return None
        return (
            f"batch_size {batch_size} is the global batch, split evenly across {self.size} "
            f"ranks: it must be a multiple of {self.size} (e.g. "
            f"{batch_size - batch_size % self.size or self.size})."
        )

    # ----- sums across ranks ------------------------------------------------------------------

    def all_sum(self, array, out=None, what: str = "an all-reduce"):
        """out (default: array itself) = the sum of `array` over the ranks. A CuPy array goes
        through NCCL on the current stream (no host sync); a NumPy array through MPI."""
        out = array if out is None else out
        if isinstance(array, np.ndarray):
            send = self._mpi.IN_PLACE if out is array else array
            self._wait(self.comm.Iallreduce(send, out, op=self._mpi.SUM), what)
            return out
        self._device_sum(array, out)
        return out

    def agree(self, values: list[int], what: str = "a step's end") -> list[int]:
        """Each int's maximum over the ranks (host values: flags, signal numbers)."""
        mine = np.asarray(values, dtype=np.int64)
        found = np.empty_like(mine)
        self._wait(self.comm.Iallreduce(mine, found, op=self._mpi.MAX), what)
        return [int(v) for v in found]

    def from_rank_0(self, make, what: str = "a value from rank 0"):
        """make(), called on rank 0 alone (it creates a file, say): its result (JSON: a path, a
        list of ints) on every rank; if it raised, rank 0 raises its exception and the others
        a RankZeroError with its words. Nothing is unpickled."""
        failure = None
        if self.rank == 0:
            try:
                payload = json.dumps({"value": make()}).encode()
            except Exception as exc:
                failure = exc
                payload = json.dumps({"error": str(exc)}).encode()
        else:
            payload = b""
        size = np.array([len(payload)], dtype=np.int64)
        self._wait(self.comm.Ibcast(size, root=0), what)
        buffer = bytearray(payload) if self.rank == 0 else bytearray(int(size[0]))
        self._wait(self.comm.Ibcast(buffer, root=0), what)
        if failure is not None:
            raise failure
        found = json.loads(bytes(buffer))
        if "error" in found:
            raise RankZeroError(found["error"])
        return found["value"]

    def prepare_device(self, xp) -> None:
        """The NCCL communicator of the ranks' devices, made now (before a CUDA graph capture,
        which cannot hold its setup)."""
        if self._nccl is None:
            nccl = _nccl_module(xp)
            unique_id = self.from_rank_0(
                lambda: list(nccl.get_unique_id()), "the NCCL communicator's unique id"
            )
            self._nccl = nccl.NcclCommunicator(self.size, tuple(unique_id), self.rank)

    def _device_sum(self, array, out) -> None:
        from gpunet import backend

        xp = backend.get_array_module(array)
        nccl = _nccl_module(xp)
        self.prepare_device(xp)
        types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}
        self._nccl.allReduce(
            array.data.ptr,
            out.data.ptr,
            array.size,
            types[np.dtype(array.dtype)],
            nccl.NCCL_SUM,
            xp.cuda.get_current_stream().ptr,
        )

    # ----- deadlines --------------------------------------------------------------------------

    def settle(self, array, what: str = "a read of the logs") -> None:
        """Wait, until the deadline, for the device work queued so far (an NCCL all-reduce
        that waits for every rank included) before a read of `array`: the read itself would
        wait forever for a rank that hangs. NumPy arrays are settled already."""
        if isinstance(array, np.ndarray):
            return
        from gpunet import backend

        event = backend.get_array_module(array).cuda.Event(disable_timing=True)
        event.record()
        self._poll(lambda: event.done, what)

    def _wait(self, request, what: str) -> None:
        """Wait for an MPI request, polling, until the deadline."""
        self._poll(request.Test, what)

    def _poll(self, done, what: str) -> None:
        # Busy for the first BUSY_SECONDS: each poll drives MPI's progress, and a step's sum
        # takes microseconds (sleeping between polls made a 470 KB sum 2.8x slower here); then
        # a millisecond's sleep between polls, until the deadline.
        start = time.monotonic()
        while not done():
            waited = time.monotonic() - start
            if waited > BUSY_SECONDS:
                if waited > self.timeout:
                    self._end_job(what)
                time.sleep(1e-3)

    def _end_job(self, what: str) -> None:
        """Name the ranks that did not answer (the lowest answering rank says it), then end
        every rank."""
        mine = np.array([self.rank], np.int64)
        _sends = [  # left pending: Abort ends every rank
            self._roll.Isend(mine, dest=other, tag=1)
            for other in range(self.size)
            if other != self.rank
        ]
        heard, answer = {self.rank}, np.empty(1, np.int64)
        listen_until = time.monotonic() + ROLL_CALL_SECONDS
        while time.monotonic() < listen_until:
            while self._roll.Iprobe(source=self._mpi.ANY_SOURCE, tag=1):
                self._roll.Recv(answer, source=self._mpi.ANY_SOURCE, tag=1)
                heard.add(int(answer[0]))
            time.sleep(0.01)
        silent = sorted(set(range(self.size)) - heard)
        if self.rank == min(heard):
            names = ", ".join(str(r) for r in silent) or "none (they answered late)"
            print(
                f"gpunet: rank {names} did not reach {what} within {self.timeout:g} s "
                f"({TIMEOUT_ENV}): it died or hangs; ending the job.",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(1.0)  # the launcher forwards the line before Abort ends every rank
        else:
            time.sleep(ROLL_CALL_SECONDS)  # the reporting rank prints first
        self.comm.Abort(3)


def _nccl_module(xp):
    """CuPy's NCCL bindings (`cupy.cuda.nccl`), or a DistributedError saying how to get them."""
    found = getattr(xp.cuda, "nccl", None)
    if found is not None:
        return found
    try:
        return importlib.import_module(f"{xp.__name__}.cuda.nccl")
    except Exception as exc:  # ImportError, or CuPy built without NCCL raising at import
        raise DistributedError(
            f"data-parallel training on CuPy needs NCCL, which CuPy cannot load ({exc}); "
            "install NCCL for your CUDA version (CuPy's installation guide, 'Additional CUDA "
            "Libraries'), or train on NumPy ranks with --backend numpy"
        ) from None


def _share_cores(ranks_here: int) -> int | None:
    """With several ranks on this machine, each one's BLAS threads get an equal share of its
    cores (unless OMP_NUM_THREADS or OPENBLAS_NUM_THREADS says): every rank's BLAS using every
    core made a NumPy step 16x slower here (2 ranks on 2 cores). Returns the threads set
    (None: left as they were)."""
    if ranks_here < 2 or any(v in os.environ for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")):
        return None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None  # gpunet[mpi] installs it; without it the BLAS keeps its own count
    affinity = getattr(os, "sched_getaffinity", None)  # Linux: the cores this rank may use
    cores = len(affinity(0)) if affinity else (os.cpu_count() or 1)
    threads = max(1, cores // ranks_here)
    threadpool_limits(threads, user_api="blas")
    return threads


_world: Single | None = None


def world() -> Single:
    """The world of this process, made on first use: the MPI job's when an MPI launcher started
    more than one rank, else a world of one."""
    global _world
    if _world is None:
        size = launched_size()
        if size <= 1:
            _world = Single()
        else:
            timeout = _timeout()  # before MPI starts: a bad value is one line, not a hang
            try:
                from mpi4py import MPI
            except ImportError as exc:
                raise DistributedError(
                    f"an MPI launcher started {size} ranks, but mpi4py is not installed "
                    f"({exc}); install it with: pip install 'gpunet[mpi]'"
                ) from None
            _world = World(MPI.COMM_WORLD, timeout)
    return _world
