"""Callbacks that watch a logged value: `EarlyStopping` and `ReduceLROnPlateau` (Keras 3 rules,
defaults and messages)."""

from __future__ import annotations

import math
import numbers
import warnings

from gpunet.callbacks.base import Callback

# Metrics that improve upwards; every other value (losses, errors) improves downwards.
_UPWARD = ("accuracy", "acc", "auc", "precision", "recall")


def _upward(monitor: str, mode: str, owner: str) -> bool:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', received {mode!r}.")
    if mode != "auto":
        return mode == "max"
    name = monitor.removeprefix("val_")
    return name in _UPWARD or name.endswith("_accuracy")


def _check_counts(owner: str, **values) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{owner}: {name} must be an int >= 0, received {value!r}.")


def _check_numbers(owner: str, **values) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
            raise ValueError(f"{owner}: {name} must be a number, received {value!r}.")


def _missing(owner: str, monitor: str, logs: dict) -> None:
    warnings.warn(
        f"{owner} conditioned on metric `{monitor}` which is not available. Available metrics "
        f"are: {','.join(logs)}.",
        stacklevel=3,
    )


class EarlyStopping(Callback):
    """Stop training when `monitor` has stopped improving for `patience` epochs.

    Args:
        monitor: logged value to watch ("val_loss").
        min_delta: smallest change that counts as an improvement.
        patience: epochs without improvement before stopping.
        mode: "auto" (max for accuracy-like names, else min), "min" or "max".
        baseline: a value the monitor must beat for the patience count to reset.
        restore_best_weights: end with the weights of the best epoch.
        start_from_epoch: epochs to wait before monitoring starts.
    """

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0.0,
        patience=0,
        verbose=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
    ):
        super().__init__()
        _check_counts("EarlyStopping", patience=patience, start_from_epoch=start_from_epoch)
        _check_numbers("EarlyStopping", min_delta=min_delta)
        if baseline is not None:
            _check_numbers("EarlyStopping", baseline=baseline)
        self.monitor, self.patience, self.verbose = monitor, patience, verbose
        self.baseline, self.restore_best_weights = baseline, restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.upward = _upward(monitor, mode, "EarlyStopping")
        self.min_delta = abs(min_delta) if self.upward else -abs(min_delta)
        self.on_train_begin()

    def _improves(self, value, reference) -> bool:
        if reference is None:
            return True
        shifted = value - self.min_delta
        return shifted > reference if self.upward else shifted < reference

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best, self.best_epoch = 0, 0, None, 0
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        current = logs.get(self.monitor)
        if current is None:
            _missing("Early stopping", self.monitor, logs)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._improves(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improves(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(
                    "Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}."
                )
            self.model.set_weights(self.best_weights)

    def get_state(self):
        return {
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "best": self.best,
            "best_epoch": self.best_epoch,
        }

    def get_arrays(self):
        weights = self.best_weights or []
        return {f"best_weights/{i}": w for i, w in enumerate(weights)}

    def set_arrays(self, arrays):
        if arrays:
            self.best_weights = [arrays[f"best_weights/{i}"] for i in range(len(arrays))]

    def set_state(self, state):
        self.wait, self.stopped_epoch = state["wait"], state["stopped_epoch"]
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` has not improved for `patience`
    epochs; logs the rate as "learning_rate" every epoch.

    Args:
        monitor: logged value to watch ("val_loss").
        factor: multiplier of the rate, in (0, 1).
        patience: epochs without improvement before reducing.
        mode: "auto", "min" or "max".
        min_delta: threshold of a significant change (1e-4).
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: lower bound of the rate.
    """

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
    ):
        super().__init__()
        _check_numbers("ReduceLROnPlateau", factor=factor, min_delta=min_delta, min_lr=min_lr)
        _check_counts("ReduceLROnPlateau", patience=patience, cooldown=cooldown)
        if factor >= 1.0:
            raise ValueError(
                f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}"
            )
        self.monitor, self.factor, self.patience, self.verbose = monitor, factor, patience, verbose
        self.min_delta, self.cooldown, self.min_lr = min_delta, cooldown, min_lr
        self.upward = _upward(monitor, mode, "ReduceLROnPlateau")
        self.on_train_begin()

    def _improves(self, value, best) -> bool:
        if self.upward:
            return value > best + self.min_delta
        return value < best - self.min_delta

    def on_train_begin(self, logs=None):
        self.best = -math.inf if self.upward else math.inf
        self.wait = self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            _missing("Learning rate reduction", self.monitor, logs)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improves(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(self.model.optimizer.learning_rate)
                if old > self.min_lr:
                    new = max(old * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new
                    if self.verbose > 0:
                        print(
                            f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                            f"to {new:.7g}."  # float32's digits: 0.01, not 0.010000000000000002
                        )
                    self.cooldown_counter, self.wait = self.cooldown, 0

    def get_state(self):
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def set_state(self, state):
        self.best, self.wait = state["best"], state["wait"]
        self.cooldown_counter = state["cooldown_counter"]
