"""`Tracker`: the running loss and metrics of one pass over data (a training epoch, an
evaluation), kept on the device. Updating never syncs; `read()` copies everything in one go."""

from __future__ import annotations

import numpy as np

from gpunet import backend


class Tracker:
    """Device accumulators of one pass: each step's loss total, and every metric's state in
    one float64 vector, so reading all of them is one device-to-host copy.

    Args:
        xp: the array module of the pass.
        metrics: the compiled metrics; this tracker keeps their states, in slices of its vector.
        steps: the number of steps of the pass (one loss total each); None when unknown (data
            from a generator): the totals then grow as steps come.
    """

    def __init__(self, xp, metrics: list, steps: int | None):
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
        self.seen = 0  # samples so far (known on the host)
        self._host = None  # the values as last read, until the next update

    def reset(self) -> None:
        self.values.fill(0.0)
        self.step_totals.fill(0.0)
        self.seen, self._host = 0, None

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

    def _read(self) -> np.ndarray:
        if self._host is None:
            self.step_totals.sum(out=self.values[0, ...])
            self._host = np.asarray(backend.to_host(self.values))  # the one sync
        return self._host

    def read(self, prefix: str = "") -> dict:
        """Log name -> value: the batch-size-weighted mean loss, then each metric's result."""
        host = self._read()
        logs = {prefix + "loss": float(host[0]) / max(self.seen, 1)}
        for metric, part in zip(self.metrics, self._slices):
            logs[prefix + metric.name] = metric.result_from(host[part])
        return logs

    def first_nonfinite_step(self) -> int | None:
        """The first step whose loss was NaN or infinite, or None (a second read, made only when
        the running loss is no longer finite)."""
        if np.isfinite(self._read()[0]):
            return None
        totals = backend.to_host(self.step_totals)
        bad = np.flatnonzero(~np.isfinite(totals))
        return int(bad[0]) if bad.size else None

    def get_state(self) -> dict:
        """Host copies, for a checkpoint taken mid-epoch."""
        return {
            "values": np.array(backend.to_host(self.values)),
            "step_totals": np.array(backend.to_host(self.step_totals)),
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
            # Into the tracker's own module (not the global backend's).
            target[...] = backend.get_array_module(target).asarray(arrays[name], "float64")
        self.seen, self._host = int(seen), None
