"""`ReferenceTraining`: the reference step driven over an epoch's batches.

The interface every training step offers the trainer: `begin_epoch(order, first)`, then, while
`more()`, `run(tracker, first, count)` for each execution of up to `count` consecutive steps
(it returns how many ran), then `end_epoch()`. Array data (`ArrayEpochs`) always has the
epoch's every step; a stream's epoch ends when its data does (step/streaming.py)."""

from __future__ import annotations

from gpunet import backend, inputs
from gpunet.buffers import Buffers


class ArrayEpochs:
    """The parts of the epoch interface that array data makes trivial: every step of the
    epoch is there, from any step (the order and the step index say which rows)."""

    def more(self) -> bool:
        return True

    def end_epoch(self) -> None:
        pass


class ReferenceTraining(ArrayEpochs):
    """Batches sliced (in order) or gathered (shuffled) into kept buffers, then the xp step.

    Args:
        step: the ReferenceStep of the model.
        x, y, w: the training data on the device (w may be None).
        batch_size: the fit's batch size.
    """

    name = "reference"

    def __init__(self, step, x, y, w, batch_size: int):
        self.step, self.x, self.y, self.w = step, x, y, w
        self.world = step.world  # data-parallel: each rank trains its shard of each batch
        self.batch_size = batch_size
        self.xp = backend.get_array_module(x)
        self.buffers = Buffers()
        self.order = None

    def begin_epoch(self, order, first: int = 0) -> None:
        """The epoch's permutation (host int64), copied to a kept device buffer, or None."""
        if order is None:
            self.order = None
            return
        target = self.buffers.get(self.xp, "order", order.shape, order.dtype)
        backend.copy_to_device(target, order)
        self.order = target

    def _batch(self, start: int, stop: int):
        """Rows [start, stop) of the epoch's order (a rank's shard of a global batch)."""
        x, y, w = self.x, self.y, self.w
        if self.order is None:
            return x[start:stop], y[start:stop], None if w is None else w[start:stop]
        idx = self.order[start:stop]

        def into(name, source):
            out = self.buffers.get(self.xp, name, (stop - start,) + source.shape[1:], source.dtype)
            return inputs.gather(self.xp, source, idx, out)

        return into("x", x), into("y", y), None if w is None else into("w", w)

    def run(self, tracker, first: int, count: int) -> int:
        """Steps first .. first + count - 1 of the epoch; returns count."""
        n, world = len(self.x), self.world
        for step in range(first, first + count):
            start = step * self.batch_size
            stop = min(start + self.batch_size, n)
            if world.size == 1:
                xb, yb, wb = self._batch(start, stop)
                y_pred = self.step.train(xb, yb, wb, tracker.step_total(step))
            else:
                low, high = world.shard(start, stop)
                xb, yb, wb = self._batch(low, high)
                position = (low - start, stop - start)
                y_pred = self.step.train(xb, yb, wb, tracker.step_total(step), position)
            tracker.update(stop - start, yb, y_pred, wb)
        return count
