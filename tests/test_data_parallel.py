"""Data-parallel training as each rank runs it, in one process (gpunet/distributed.py's world
stood in by tests/ranks.py): a rank's step on its shard, the tracker a checkpoint restores, what
fit refuses, and that rank 0 alone prints and writes. With real ranks:
tests/test_distributed_mpi.py."""

import signal

import numpy as np
import pytest

import gpunet as gn
from gpunet import distributed
from gpunet.step import ReferenceStep
from gpunet.tracker import Tracker
from tests.ranks import Alone, ranks


@pytest.fixture(autouse=True)
def fresh_world(monkeypatch):
    monkeypatch.setattr(distributed, "_world", None)


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
    assert layer.offset == 54
    following = layer.forward(x, training=True).copy()  # the next draw: offset 54
    assert layer.offset == 108 and not np.array_equal(following, whole)
    # Shards of unequal sizes, then of one size at three places (each its own units).
    for shards in ([(0, 4), (4, 9)], [(0, 3), (3, 6), (6, 9)]):
        parts = []
        for low, high in shards:
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
    with pytest.raises(ValueError) as error:
        normalized.fit(x, y, batch_size=4, verbose=0)
    assert str(error.value) == (
        "fit: layer bn: BatchNormalization's batch statistics would be each rank's own (2 "
        "ranks), and they are not synchronized across ranks; train this model on one rank."
    )
    assert model.optimizer.iterations == 0 and normalized.optimizer.iterations == 0


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


@pytest.mark.parametrize("rank", [0, 1])
def test_rank_0_alone_prints_and_writes(monkeypatch, tmp_path, capsys, rank):
    monkeypatch.setattr(distributed, "_world", Alone(rank, 2))
    rs = np.random.default_rng(1)
    x, y = rs.random((20, 5), dtype=np.float32), rs.integers(0, 3, 20)
    model = _model()
    callbacks = [
        gn.callbacks.ModelCheckpoint(str(tmp_path / "models" / "best.keras")),
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
    else:  # not even a folder
        assert written == [] and out == "" and not (tmp_path / "models").exists()


def test_a_ranks_reference_training_takes_its_shard_of_each_batch_of_the_order(monkeypatch):
    # Rank 1 of 2, batches of 4 over 13 rows: its shard of each batch of the epoch's order,
    # and the shard's place in the batch; the tracker counts the global rows.
    monkeypatch.setattr(distributed, "_world", Alone(1, 2))
    gn.backend.set_backend("numpy")
    from gpunet.step import ReferenceTraining

    rs = np.random.default_rng(4)
    x = np.arange(13 * 5, dtype=np.float32).reshape(13, 5)
    y, w = rs.integers(0, 3, 13), rs.random(13).astype(np.float32)
    order = rs.permutation(13)
    model = _model()
    step = ReferenceStep(model)
    calls = []

    def train(xb, yb, wb, total, position=None):
        calls.append((xb.copy(), yb.copy(), wb.copy(), position))
        total[...] = len(calls)  # into this step's slot
        return np.full((len(xb), 3), 1 / 3, np.float32)

    monkeypatch.setattr(step, "train", train)
    training = ReferenceTraining(step, x, y, w, 4)
    training.begin_epoch(order, 0)
    tracker = Tracker(np, [], 4, Alone(1, 2))
    assert training.run(tracker, 0, 4) == 4 and training.more()
    expected = [(2, 4, 0, 4), (6, 8, 4, 4), (10, 12, 8, 4), (12, 13, 12, 1)]
    for (xb, yb, wb, position), (low, high, start, rows) in zip(calls, expected):
        rows_of = order[low:high]
        np.testing.assert_array_equal(xb, x[rows_of])
        np.testing.assert_array_equal(yb, y[rows_of])
        np.testing.assert_array_equal(wb, w[rows_of])
        assert position == (low - start, rows)
    assert len(calls) == 4 and tracker.seen == 13
    np.testing.assert_array_equal(tracker.step_totals, [1.0, 2.0, 3.0, 4.0])


class _Recording(Alone):
    def __init__(self, rank, size):
        super().__init__(rank, size)
        self.sums = []

    def all_sum(self, array, out=None, what=""):
        self.sums.append((array, what))
        return super().all_sum(array, out, what)


def test_a_ranks_step_sums_the_flat_gradient_once_before_the_update(monkeypatch):
    world = _Recording(0, 2)
    monkeypatch.setattr(distributed, "_world", world)
    gn.backend.set_backend("numpy")
    model = _model()
    step = ReferenceStep(model)
    seen = []
    monkeypatch.setattr(
        model.optimizer, "apply", lambda params, grads, scale: seen.append(len(world.sums))
    )
    x = np.ones((4, 5), np.float32)
    dropout = model.layers[1]
    before = dropout.offset
    step.train(x[2:], np.zeros(2, int), None, np.zeros((), "float64"), (2, 4))
    assert seen == [1]  # summed, then applied
    assert dropout.offset == before + 4 * 8  # its stream moved by the global batch's 4 rows
    ((array, what),) = world.sums
    assert array is model._grads and what == "a step's gradient all-reduce"


@pytest.mark.parametrize(
    "n, size, empty",
    [(801, 2, True), (802, 2, False), (804, 2, False), (800, 2, False), (802, 3, True)],
)
def test_the_fused_step_is_not_chosen_where_a_shard_would_be_empty(n, size, empty):
    from gpunet.step import _empty_shard

    reason = _empty_shard(ranks(0, size), n, 16)
    if not empty:
        assert reason is None
    else:
        assert reason == (
            f"the last batch of the epoch has {n % 16} rows for {size} ranks, so some rank's "
            "shard is empty"
        )


class _Partnered(Alone):
    """Rank `rank` of 2, whose partner's part of each agreement is scripted: it wants a refresh
    at every step, stops when this rank does, and reports SIGINT from agreement
    `partner_signalled` on. Records every exchange, in order."""

    def __init__(self, rank, partner_signalled):
        super().__init__(rank, 2)
        self.partner_signalled, self.exchanges, self.agreements = partner_signalled, [], 0

    def all_sum(self, array, out=None, what=""):
        self.exchanges.append(what)
        return super().all_sum(array, out, what)

    def agree(self, values, what=""):
        self.exchanges.append(what)
        signalled = self.agreements >= self.partner_signalled
        partner = [1, values[1], values[2], int(signal.SIGINT) if signalled else 0]
        self.agreements += 1
        return [max(int(a), int(b)) for a, b in zip(values, partner)]


class _SignalDuring(gn.callbacks.Callback):
    """SIGINT to this process while step `step` runs (after the agreement that ends the step
    before it)."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.step:
            signal.raise_signal(signal.SIGINT)


def test_a_signal_is_obeyed_at_the_step_the_ranks_agree_on(monkeypatch, tmp_path):
    # mpirun hands SIGINT to each rank at its own moment: here rank 0 gets it while step 3
    # runs (before the agreement after that step), rank 1 while step 4 runs. Both must
    # checkpoint after step 4, the step the agreement names: a rank that checkpointed alone
    # would sum its tracker while the other sums a gradient, and the job would hang.
    from gpunet.callbacks.checkpoints import TrainingCheckpoint

    rs = np.random.default_rng(1)
    x, y = rs.random((40, 5), dtype=np.float32), rs.integers(0, 3, 40)
    exchanges = []
    for rank, signalled_during, partner_signalled in [(0, 3, 4), (1, 4, 3)]:
        world = _Partnered(rank, partner_signalled)
        monkeypatch.setattr(distributed, "_world", world)
        model = _model()
        saver = TrainingCheckpoint(str(tmp_path / f"checkpoint{rank}.npz"))
        callbacks = [_SignalDuring(signalled_during), saver]
        model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=callbacks)
        assert saver.signal_received == signal.SIGINT and model.interrupted
        assert model.optimizer.iterations == 5  # steps 0 to 4, then the checkpoint
        assert world.agreements == 5
        exchanges.append(world.exchanges)
    assert exchanges[0] == exchanges[1]


@pytest.mark.parametrize(
    "tick, expected", [(1.0, [True] * 5), (0.0, [True] + [False] * 3 + [True])]
)
def test_ranks_refresh_at_the_first_step_then_when_rank_0s_clock_says(monkeypatch, tick, expected):
    # Rank 0's clock, agreed on after each step, decides the next step's refresh: every step
    # when a second passes per step, else only the first (so callbacks have logs) and the last.
    monkeypatch.setattr(distributed, "_world", Alone(0, 2))
    rs = np.random.default_rng(1)
    x, y = rs.random((20, 5), dtype=np.float32), rs.integers(0, 3, 20)
    model = _model()
    now = [0.0]

    def clock():
        now[0] += tick
        return now[0]

    model._get_trainer().clock = clock
    synced = []
    seen = gn.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: synced.append(logs.synced)
    )
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[seen])
    assert synced == expected


def test_the_fused_steps_gradient_all_reduce_is_named_for_its_errors(monkeypatch):
    # As the reference step's: a rank that stops answering is reported during this exchange.
    from gpunet.step.fused import FusedTraining
    from tests.conftest import use_standin

    use_standin()
    world = _Recording(0, 2)
    monkeypatch.setattr(distributed, "_world", world)
    gn.utils.clear_session()
    model = gn.Sequential([gn.layers.Input((5,)), gn.layers.Dense(4, activation="relu"),
                           gn.layers.Dense(3, activation="softmax")])  # fmt: skip
    # Eager: a CUDA graph would replay the captured exchange without calling all_sum again.
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", cuda_graphs=False)
    rs = np.random.default_rng(2)
    history = model.fit(rs.random((16, 5), np.float32), rs.integers(0, 3, 16), batch_size=4,
                        verbose=0)  # fmt: skip
    assert isinstance(model._get_trainer().training, FusedTraining)
    grads = [what for array, what in world.sums if array is model._grads]
    steps = model.optimizer.iterations
    assert steps > 1 and history.history["loss"]
    assert grads == ["a step's gradient all-reduce"] * steps  # once per step
