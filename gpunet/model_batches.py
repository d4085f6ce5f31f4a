"""`train_on_batch`, `test_on_batch`, `predict_on_batch` and `reset_metrics` (Keras 3): one step
on one batch; the loss and metrics they return are running means over the calls since the last
`reset_metrics()` (or fit, evaluate, compile), as Keras 3 keeps them. The step is the reference
(xp) one on both backends: a single batch gains nothing from the fused step's CUDA graph."""

from __future__ import annotations

from gpunet import backend, inputs
from gpunet.tracker import Tracker


class BatchMethods:
    """Mixed into Sequential, which provides `_prepare`, `_get_trainer`, `_metrics`, `predict`."""

    def reset_metrics(self) -> None:
        """Start the running loss and metrics of train_on_batch and test_on_batch afresh."""
        self.__dict__.pop("_batch_trackers", None)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One training step on (x, y): gradients and one optimizer update; returns the running
        loss (and metrics) as `evaluate` does."""
        if class_weight is not None and sample_weight is not None:
            raise ValueError("train_on_batch: pass class_weight or sample_weight, not both.")
        x_dev, y_dev = self._prepare(x, y, "train_on_batch")
        if class_weight is not None:
            sample_weight = inputs.class_weights(backend.to_host(y_dev), class_weight)
        w_dev = self._batch_weights(sample_weight, len(x_dev), "train_on_batch")
        return self._one_step("train", x_dev, y_dev, w_dev, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss and metrics on (x, y) (dropout off), folded into the running ones."""
        x_dev, y_dev = self._prepare(x, y, "test_on_batch")
        w_dev = self._batch_weights(sample_weight, len(x_dev), "test_on_batch")
        return self._one_step("test", x_dev, y_dev, w_dev, return_dict)

    def predict_on_batch(self, x):
        """The model's outputs for the batch x (dropout off), a host float32 array."""
        x = inputs.as_array(x, "predict_on_batch: x")
        return self.predict(x, batch_size=max(len(x), 1), verbose=0)

    def _batch_weights(self, sample_weight, n: int, where: str):
        if sample_weight is None:
            return None
        weights = inputs.check_sample_weight(sample_weight, n, where)
        return backend.to_device(weights, inputs.FLOATX)

    def _one_step(self, kind: str, x, y, w, return_dict: bool):
        trackers = self.__dict__.setdefault("_batch_trackers", {})
        tracker = trackers.get(kind)
        if tracker is None or tracker.metrics is not self._metrics:  # new, or recompiled
            tracker = trackers[kind] = Tracker(backend.get_array_module(x), self._metrics, 2)
        step = self._get_trainer().step
        run = step.train if kind == "train" else step.evaluate
        # Slot 1 takes this batch's loss total (a step writes its slot); slot 0 keeps the sum.
        y_pred = run(x, y, w, tracker.step_total(1))
        tracker.step_totals[0] += tracker.step_totals[1]
        tracker.step_totals[1] = 0.0
        tracker.update(len(x), y, y_pred, w)
        logs = tracker.read()
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values
