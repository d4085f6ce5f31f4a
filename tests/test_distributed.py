"""gpunet/distributed.py in one process: shards, the step on a rank's shard, the launcher's
environment, and what data-parallel training refuses. The ranks themselves (mpirun) are in
tests/test_distributed_mpi.py."""

import sys

import numpy as np
import pytest

import gpunet as gn
from gpunet import distributed
from gpunet.step import ReferenceStep
from gpunet.tracker import Tracker


def ranks(rank: int, size: int) -> distributed.World:
    """A World's arithmetic (shards, batch sizes) for rank `rank` of `size`, with no MPI."""
    world = object.__new__(distributed.World)
    world.rank, world.size, world.writes = rank, size, rank == 0
    return world


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


def test_a_world_of_one_is_the_whole_batch():
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


@pytest.mark.parametrize("raw, seconds", [(None, 300.0), ("2.5", 2.5), ("60", 60.0)])
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


def _model(seed=3):
    gn.utils.set_random_seed(seed)
    model = gn.Sequential(
        [
            gn.layers.Input((5,)),
            gn.layers.Dense(8, activation="relu", kernel_regularizer=gn.regularizers.L2(0.01)),
            gn.layers.Dropout(0.4),
            gn.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.build()
    return model


@pytest.mark.parametrize("size, rows", [(2, 13), (3, 13), (3, 2)])
def test_the_shards_gradients_sum_to_the_global_batch_gradient(xp, size, rows):
    # Each rank: its rows' loss scaled by the global batch, dropout masks drawn by global
    # position, the penalty's gradient on rank 0 alone (2 rows for 3 ranks: rank 0 has none).
    # Summed, the global batch's gradient.
    rs = np.random.default_rng(0)
    x = xp.asarray(rs.standard_normal((rows, 5)).astype(np.float32))
    y = xp.asarray(rs.integers(0, 3, rows))
    w = xp.asarray(rs.random(rows).astype(np.float32))
    model = _model()
    dropout = model.layers[1]
    start = dropout.get_stream()
    step = ReferenceStep(model)
    total = xp.zeros((), dtype="float64")
    step.gradients(x, y, w, total, scale=-0.01)
    expected = model._grads.copy()
    expected_total = float(total)
    expected_offset = dropout.offset
    summed, summed_total = xp.zeros_like(expected), 0.0
    for rank in range(size):
        dropout.set_stream(*start)
        step.world = ranks(rank, size)
        low, high = step.world.shard(0, rows)
        step.gradients(x[low:high], y[low:high], w[low:high], total, -0.01, (low, rows))
        summed += model._grads
        summed_total += float(total)
        assert dropout.offset == expected_offset  # the stream moves by the global batch
    np.testing.assert_allclose(
        xp.asnumpy(summed) if xp is not np else summed,
        xp.asnumpy(expected) if xp is not np else expected,
        rtol=1e-5,
        atol=1e-7,
    )
    assert summed_total == pytest.approx(expected_total, rel=1e-7)  # float32 penalties


def test_dropout_masks_of_the_shards_are_the_global_batch_mask():
    layer = gn.layers.Dropout(0.5, seed=11)
    layer.build((6,))
    x = np.ones((9, 6), np.float32)
    whole = layer.forward(x, training=True).copy()
    parts = []
    for low, high in [(0, 4), (4, 9)]:
        layer.set_stream(11, 0)
        layer.position = (low, 9)
        parts.append(layer.forward(x[low:high], training=True).copy())
        assert layer.offset == 54
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert 0 < (whole == 0).sum() < whole.size  # some dropped, some kept


def test_a_checkpointed_tracker_goes_to_rank_0_alone():
    # The checkpoint holds the sums of every rank: rank 0 takes them, the others start from 0,
    # so the next sum over the ranks continues them (whatever the number of ranks).
    metrics = [gn.metrics.get("accuracy", (None,), (None, 3))]
    state = {"values": np.array([0.0, 7.0, 10.0]), "step_totals": np.array([1.5, 2.5, 0.0])}
    for rank, values, totals in [(0, [0.0, 7.0, 10.0], [1.5, 2.5, 0.0]), (1, [0.0] * 3, [0.0] * 3)]:
        tracker = Tracker(np, metrics, 3, ranks(rank, 2))
        tracker.set_state(state, seen=20)
        assert tracker.seen == 20
        np.testing.assert_array_equal(tracker.values, values)
        np.testing.assert_array_equal(tracker.step_totals, totals)


def _with_two_ranks(model):
    model._get_trainer().world = ranks(0, 2)
    return model


def test_data_parallel_fit_refuses_what_it_cannot_split():
    rs = np.random.default_rng(1)
    x, y = rs.random((20, 5), dtype=np.float32), rs.integers(0, 3, 20)
    model = _with_two_ranks(_model())
    with pytest.raises(ValueError) as error:
        model.fit(x, y, batch_size=5, verbose=0)
    assert str(error.value) == (
        "fit: batch_size 5 is the global batch, split evenly across 2 ranks: it must be a "
        "multiple of 2 (e.g. 4)."
    )

    def batches():
        while True:
            yield x[:4], y[:4]

    with pytest.raises(ValueError) as error:
        model.fit(batches(), steps_per_epoch=2, verbose=0)
    assert str(error.value) == (
        "fit: data-parallel training (2 ranks) takes array data; a generator cannot be split "
        "into the ranks' shards. Pass arrays, or run one rank."
    )
    normalized = gn.Sequential(
        [
            gn.layers.Input((5,)),
            gn.layers.Dense(4),
            gn.layers.BatchNormalization(name="bn"),
            gn.layers.Dense(3, activation="softmax"),
        ]
    )
    normalized.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    normalized.build()
    _with_two_ranks(normalized)
    with pytest.raises(ValueError, match=r"^fit: layer bn: BatchNormalization's batch statistics"):
        normalized.fit(x, y, batch_size=4, verbose=0)
    assert model.optimizer.iterations == 0 and normalized.optimizer.iterations == 0


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
    assert ended == ["the sums of the logs"]
    world.settle(np.zeros(3))  # host memory: nothing to wait for


def test_data_parallel_evaluation_refuses_a_generator():
    rs = np.random.default_rng(1)
    x, y = rs.random((20, 5), dtype=np.float32), rs.integers(0, 3, 20)
    model = _with_two_ranks(_model())

    def batches():
        yield x[:4], y[:4]

    with pytest.raises(ValueError, match=r"^evaluate: data-parallel training \(2 ranks\) takes"):
        model.evaluate(batches(), verbose=0)
    with pytest.raises(ValueError, match=r"^fit: validation_data: data-parallel training"):
        model.fit(x, y, batch_size=4, validation_data=batches(), validation_steps=1, verbose=0)
    assert model.optimizer.iterations == 0


def test_a_cupy_without_nccl_says_what_to_install(monkeypatch):
    from tests.conftest import use_standin

    standin = use_standin()
    monkeypatch.setattr(standin.cuda, "nccl", None)
    with pytest.raises(distributed.DistributedError) as error:
        distributed._nccl_module(standin)
    assert str(error.value).startswith("data-parallel training on CuPy needs NCCL, which CuPy")
    assert str(error.value).endswith("or train on NumPy ranks with --backend numpy")


class Alone(distributed.World):
    """Rank `rank` of `size`, alone in this process: a sum over the ranks is this rank's own
    part (enough to see what each rank prints and writes)."""

    def __init__(self, rank: int, size: int):
        self.rank, self.size, self.writes, self.timeout = rank, size, rank == 0, 5.0

    def all_sum(self, array, out=None, what=""):
        out = array if out is None else out
        if out is not array:
            out[...] = array
        return out

    def agree(self, values, what=""):
        return [int(v) for v in values]

    def from_rank_0(self, make, what=""):
        return make()

    def settle(self, array, what=""):
        pass


@pytest.mark.parametrize("rank", [0, 1])
def test_rank_0_alone_prints_and_writes(monkeypatch, tmp_path, capsys, rank):
    monkeypatch.setattr(distributed, "_world", Alone(rank, 2))
    rs = np.random.default_rng(1)
    x, y = rs.random((20, 5), dtype=np.float32), rs.integers(0, 3, 20)
    model = _model()
    callbacks = [
        gn.callbacks.ModelCheckpoint(str(tmp_path / "best.keras")),
        gn.callbacks.ModelCheckpoint(str(tmp_path / "full.npz")),
        gn.callbacks.CSVLogger(str(tmp_path / "log.csv")),
        gn.callbacks.BackupAndRestore(str(tmp_path / "backup"), delete_checkpoint=False),
    ]
    model.fit(x, y, batch_size=4, epochs=2, verbose=1, callbacks=callbacks)
    model.evaluate(x, y, verbose=1)
    written = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    out = capsys.readouterr().out
    if rank == 0:
        assert written == ["best.keras", "checkpoint.npz", "full.npz", "log.csv"]
        assert "Epoch 2/2" in out and "accuracy" in out
    else:
        assert written == [] and out == ""


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
