"""`Tracker`: the running loss and metrics of one pass over data (a training epoch, an
evaluation), kept on the device. Updating never syncs; `read()` copies everything in one go."""

from __future__ import annotations

import numpy as np

from gpunet import backend
from gpunet.distributed import Single


class Tracker:
    """Device accumulators of one pass: each step's loss total, and every metric's state in
    one float64 vector, so reading all of them is one device-to-host copy.

    Args:
        xp: the array module of the pass.
        metrics: the compiled metrics; this tracker keeps their states, in slices of its vector.
        steps: the number of steps of the pass (one loss total each); None when unknown (data
            from a generator): the totals then grow as steps come.
        world: the ranks of a data-parallel pass (gpunet.distributed): each keeps the sums of
            its shards, and a read sums them over the ranks, so every rank reads the values of
            the whole pass. Its reads are then collective: every rank reads at the same steps.
    """

    def __init__(self, xp, metrics: list, steps: int | None, world=None):
        self.world = Single() if world is None else world
        self.growable = steps is None
        self.metrics = metrics
        sizes = [metric.state_size for metric in metrics]
        # values[0] is the pass's loss total, summed from step_totals when read.
        self.values = xp.zeros(1 + sum(sizes), dtype="float64")
        self.step_totals = xp.zeros(64 if steps is None else steps, dtype="float64")
        self._slices, start = [], 1
        for size in sizes:
            self._slices.append(slice(start, start + size))
            start += size
        self._states = [self.values[part] for part in self._slices]  # views, kept
        self._values_summed = xp.empty_like(self.values) if self.world.size > 1 else None
        self._totals_summed = None  # likewise the step totals (made at the first read)
        self.seen = 0  # samples so far, of every rank (known on the host)
        self._host = None  # the values as last read, until the next update
        self._last = None  # (values, samples) as last read, kept across updates

    def reset(self) -> None:
        self.values.fill(0.0)
        self.step_totals.fill(0.0)
        self.seen, self._host, self._last = 0, None, None

    def reserve(self, steps: int) -> None:
        """Room for `steps` step totals: a growable tracker doubles its vector as needed (a
        fixed one is sized for its pass already)."""
        held = self.step_totals.shape[0]
        if steps > held and self.growable:
            xp = backend.get_array_module(self.step_totals)
            grown = xp.zeros(max(steps, 2 * held), dtype="float64")
            grown[:held] = self.step_totals
            self.step_totals = grown

    def step_total(self, step: int):
        """The 0-d device slot for step `step`'s loss total: sum(loss * weight) + N * penalty."""
        return self.step_totals[step, ...]  # a 0-d view (NumPy gives a scalar for [step])

    def update(self, rows: int, y_true, y_pred, sample_weight=None) -> None:
        """Count a step of `rows` samples (its loss total already in its slot) and update every
        metric on the device."""
        self.seen += rows
        self._host = None
        for metric, state in zip(self.metrics, self._states):
            metric._update(state, y_true, y_pred, sample_weight)

    def metric_state(self, index: int):
        """The device view of metric `index`'s state (a fused step writes it directly)."""
        return self._states[index]

    def add_rows(self, rows: int) -> None:
        """Count a step whose loss and metric states a fused step wrote on the device."""
        self.seen += rows
        self._host = None

    def _summed(self, array, out=None):
        """`array` summed over the ranks, into `out` (default: a new array): the tracker
        keeps its own sums."""
        if self.world.size == 1:
            return array
        out = backend.get_array_module(array).empty_like(array) if out is None else out
        self.world.all_sum(array, out=out, what="the sums of the logs")
        self.world.settle(out)
        return out

    def _read(self) -> np.ndarray:
        if self._host is None:
            if self.world.size == 1:
                values = self.values
                self.step_totals.sum(out=values[0, ...])
            else:
                # Each step's total summed over the ranks first, then over the steps: a
                # checkpoint's totals (rank 0's) continue in the same order on any rank count.
                values = self._summed(self.values, self._values_summed)
                totals = self.step_totals
                if self._totals_summed is None or self._totals_summed.shape != totals.shape:
                    self._totals_summed = backend.get_array_module(totals).empty_like(totals)
                self._summed(totals, self._totals_summed).sum(out=values[0, ...])
            self._host = np.asarray(backend.to_host(values))  # the one sync
            self._last = self._host, self.seen
        return self._host

    def read(self, prefix: str = "", fresh: bool = True) -> dict:
        """Log name -> value: the batch-size-weighted mean loss, then each metric's result.
        fresh=False: the values of the last read, without reading (none yet: a read)."""
        host, seen = (self._read(), self.seen) if fresh or self._last is None else self._last
        logs = {prefix + "loss": float(host[0]) / max(seen, 1)}
        for metric, part in zip(self.metrics, self._slices):
            logs[prefix + metric.name] = metric.result_from(host[part])
        return logs

    def first_nonfinite_step(self) -> int | None:
        """The first step whose loss was NaN or infinite, or None (a second read, made only when
        the running loss is no longer finite)."""
        if np.isfinite(self._read()[0]):
            return None
        totals = backend.to_host(self._summed(self.step_totals))
        bad = np.flatnonzero(~np.isfinite(totals))
        return int(bad[0]) if bad.size else None

    def get_state(self) -> dict:
        """Host copies (summed over the ranks), for a checkpoint taken mid-epoch."""
        return {
            "values": np.array(backend.to_host(self._summed(self.values))),
            "step_totals": np.array(backend.to_host(self._summed(self.step_totals))),
        }

    def set_state(self, arrays: dict, seen: int) -> None:
        self.reserve(arrays["step_totals"].shape[0])  # a growable tracker had grown this far
        if self.growable:
            self.step_totals = self.step_totals[: arrays["step_totals"].shape[0]]
        for name in ("values", "step_totals"):
            target = getattr(self, name)
            if arrays[name].shape != target.shape:
                raise ValueError(
                    f"checkpoint: tracker {name} of shape {arrays[name].shape}, expected "
                    f"{target.shape} (another model, metrics or batch size)."
                )
            # Into the tracker's own module (not the global backend's). Rank 0 holds the sums
            # of every rank so far (a checkpoint from any number of ranks), the others none.
            if self.world.rank == 0:
                target[...] = backend.get_array_module(target).asarray(arrays[name], "float64")
            else:
                target.fill(0.0)
        self.seen, self._host, self._last = int(seen), None, None
