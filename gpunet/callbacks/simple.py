"""Small callbacks with Keras 3 names and messages: CSVLogger, TerminateOnNaN,
LearningRateScheduler, LambdaCallback."""

from __future__ import annotations

import csv
import math
import os

from gpunet import distributed
from gpunet.callbacks.base import Callback


class CSVLogger(Callback):
    """Append one row per epoch (epoch, then logged values in sorted order) to a CSV file.

    Args:
        filename: the CSV file.
        separator: the column separator.
        append: keep an existing file and add rows to it (e.g. across a resume).
    """

    def __init__(self, filename: str, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename, self.separator, self.append = os.fspath(filename), separator, append
        self.keys = None
        self._file = None

    def check(self, log_names):
        folder = os.path.dirname(os.path.abspath(self.filename))
        if not os.path.isdir(folder):
            raise ValueError(
                f"CSVLogger: the folder of {self.filename!r} does not exist; create it first."
            )

    def on_train_begin(self, logs=None):
        if not distributed.world().writes:
            return  # rank 0 writes the rows (each rank logs the same values)
        existing = self.append and os.path.exists(self.filename)
        self._write_header = not existing or os.path.getsize(self.filename) == 0
        if existing and not self._write_header:
            with open(self.filename, newline="") as f:
                self.keys = next(csv.reader(f, delimiter=self.separator))[1:]
        self._file = open(self.filename, "a" if self.append else "w", newline="")

    def on_epoch_end(self, epoch, logs=None):
        if self._file is None:
            return
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        writer = csv.writer(self._file, delimiter=self.separator, lineterminator="\n")
        if self._write_header:
            writer.writerow(["epoch"] + self.keys)
            self._write_header = False
        writer.writerow([epoch] + [logs.get(k, "NA") for k in self.keys])
        self._file.flush()
        os.fsync(self._file.fileno())

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class TerminateOnNaN(Callback):
    """Stop training when the loss becomes NaN or infinite.

    Inside fit it looks at the loss at each progress refresh and at the epoch's last step (never
    in between: on a GPU each look is a host sync), and reports the first bad step exactly.
    """

    def __init__(self):
        super().__init__()
        self.failed_at = None  # (epoch, batch) of the first invalid loss

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if logs is None or getattr(logs, "synced", None) is False:
            return
        loss = logs.get("loss")
        if loss is not None and (math.isnan(loss) or math.isinf(loss)):
            first = getattr(logs, "first_nonfinite", None)
            bad = first() if first is not None else None
            batch = batch if bad is None else bad
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.failed_at = (getattr(self, "_epoch", 0), batch)
            self.model.stop_training = True


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch's start to `schedule(epoch, lr)` (or `schedule(epoch)`).

    Args:
        schedule: a function of the epoch index (and the current rate) returning a float.
    """

    def __init__(self, schedule, verbose: int = 0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        current = float(self.model.optimizer.learning_rate)
        try:
            rate = self.schedule(epoch, current)
        except TypeError:  # a one-argument schedule
            rate = self.schedule(epoch)
        if not isinstance(rate, (int, float)) or isinstance(rate, bool):
            raise ValueError(
                f'The output of the "schedule" function should be a float. Got: {rate}'
            )
        self.model.optimizer.learning_rate = float(rate)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {rate}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class LambdaCallback(Callback):
    """A callback from plain functions: `LambdaCallback(on_epoch_end=lambda epoch, logs: ...)`."""

    HOOKS = (
        "on_epoch_begin",
        "on_epoch_end",
        "on_train_begin",
        "on_train_end",
        "on_train_batch_begin",
        "on_train_batch_end",
    )

    def __init__(self, **hooks):
        super().__init__()
        for name, function in hooks.items():
            if name not in self.HOOKS:
                raise ValueError(
                    f"LambdaCallback: unknown hook {name!r}; expected one of "
                    f"{', '.join(self.HOOKS)}."
                )
            setattr(self, name, function)
