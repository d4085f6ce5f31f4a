"""Callbacks that write checkpoints: `ModelCheckpoint`, `BackupAndRestore` (Keras 3 names and
messages) and `TrainingCheckpoint`, the CLI's every-epoch checkpoint that also turns SIGINT and
SIGTERM into a checkpoint at the end of the current step."""

from __future__ import annotations

import glob
import math
import numbers
import os
import signal
import string
import warnings

from gpunet import distributed
from gpunet.callbacks.base import Callback
from gpunet.callbacks.monitors import _upward


class ModelCheckpoint(Callback):
    """Save the model after every epoch, or only when `monitor` improves.

    Args:
        filepath: may hold `{epoch}` and logged names, e.g. "best-{epoch:02d}.keras". Keras 3's
            files: `.keras` (the model) or, with save_weights_only, `.weights.h5`; any other
            path is gpunet's `.npz`: a full checkpoint that `resume_from` continues exactly
            (data order, dropout streams, callbacks), or the weights alone.
        monitor: logged value compared with save_best_only ("val_loss").
        save_best_only: save only when the monitored value improves.
        save_weights_only: weights alone; else a full checkpoint that `resume_from` continues.
        mode: "auto", "min" or "max".
        initial_value_threshold: the value to beat first.
    """

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        verbose=0,
        save_best_only=False,
        save_weights_only=False,
        mode="auto",
        save_freq="epoch",
        initial_value_threshold=None,
    ):
        super().__init__()
        if save_freq != "epoch":
            raise ValueError(f"ModelCheckpoint: save_freq must be 'epoch', received {save_freq!r}.")
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), monitor, verbose
        self.fields = _format_fields(self.filepath)
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        if save_weights_only and self.filepath.endswith(".keras"):
            raise ValueError(
                "ModelCheckpoint: with save_weights_only=True the filepath must end in "
                f"`.weights.h5` (or be an .npz path), received {self.filepath!r}."
            )
        if not save_weights_only and self.filepath.endswith(".weights.h5"):
            raise ValueError(
                "ModelCheckpoint: a `.weights.h5` filepath holds weights only: pass "
                f"save_weights_only=True, or save the model to a `.keras` path ({self.filepath!r})."
            )
        self.upward = _upward(monitor, mode, "ModelCheckpoint")
        if initial_value_threshold is not None:
            if not _is_number(initial_value_threshold):
                raise ValueError(
                    "ModelCheckpoint: initial_value_threshold must be a number or None, "
                    f"received {initial_value_threshold!r}."
                )
            self.best = float(initial_value_threshold)
        else:
            self.best = -math.inf if self.upward else math.inf

    def check(self, log_names):
        unknown = [name for name in self.fields if name not in ("epoch", "batch", *log_names)]
        if unknown:
            raise ValueError(
                f"ModelCheckpoint: filepath {self.filepath!r} names {{{unknown[0]}}}, which this "
                f"fit does not log; it may use epoch, {', '.join(log_names)}."
            )

    def _save(self, path: str) -> None:
        # With ranks, rank 0 writes; the others take part in a full checkpoint (it reads
        # the running sums from every rank) and write nothing.
        full = not path.endswith((".keras", ".weights.h5")) and not self.save_weights_only
        writes = distributed.world().writes
        folder = os.path.dirname(path)
        if folder and writes:
            os.makedirs(folder, exist_ok=True)  # as Keras does
        if full:
            self.model.save_checkpoint(path, epoch_logs=self._logs)
        elif not writes:
            return
        elif path.endswith(".keras"):
            self.model.save(path)
        elif path.endswith(".weights.h5"):
            self.model.save_weights(path)
        else:
            from gpunet import runs

            runs.save_weights(path, self.model)

    def on_epoch_end(self, epoch, logs=None):
        logs = self._logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {path}")
            self._save(path)
            return
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=2)
            return
        better = current > self.best if self.upward else current < self.best
        if better:
            if self.verbose > 0:
                print(
                    f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                    f"{current:.5f}, saving model to {path}"
                )
            self.best = current
            self._save(path)
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")

    def get_state(self):
        return {"best": self.best}

    def set_state(self, state):
        self.best = state["best"]


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class _AnyLog(dict):
    """Logs for a trial format: every name is a float, as logged values are."""

    def __missing__(self, key):
        return 0.5


def _format_fields(filepath: str) -> list[str]:
    """The names a ModelCheckpoint filepath formats, after a trial format that finds bad braces
    and format specs (`{epoch:zz}`) now rather than after the first epoch."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(filepath) if f is not None]
        filepath.format_map(_AnyLog(epoch=1, batch=1))
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        raise ValueError(
            f"ModelCheckpoint: filepath {filepath!r} cannot be formatted ({exc}); it may hold "
            "{epoch} and logged names, with format specs: 'best-{epoch:02d}-{val_loss:.3f}.npz'."
        ) from None
    return [f.split(".")[0] for f in fields]  # `{loss.real}` names loss (an index fails above)


class BackupAndRestore(Callback):
    """Back up the training state to `backup_dir` and, when a backup is there at the start of
    `fit`, continue from it exactly (mid-epoch too, with an integer save_freq).

    Args:
        backup_dir: folder of the backup (`checkpoint.npz`).
        save_freq: "epoch", or a number of steps between backups.
        delete_checkpoint: remove the backup once training finishes without interruption.
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        super().__init__()
        if save_freq != "epoch" and (not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(
                f"BackupAndRestore: save_freq must be 'epoch' or a positive int, "
                f"received {save_freq!r}."
            )
        self.backup_dir, self.save_freq = os.fspath(backup_dir), save_freq
        self.delete_checkpoint = delete_checkpoint
        self.path = os.path.join(self.backup_dir, "checkpoint.npz")

    def on_train_begin(self, logs=None):
        os.makedirs(self.backup_dir, exist_ok=True)
        if os.path.exists(self.path):
            self.model.resume_from(self.path)

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq != "epoch" and (batch + 1) % self.save_freq == 0:
            self.model.save_checkpoint(self.path)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self.model.save_checkpoint(self.path, epoch_logs=logs)

    def on_train_end(self, logs=None):
        if (
            self.delete_checkpoint
            and not self.model.interrupted
            and distributed.world().writes
            and os.path.exists(self.path)
        ):
            os.remove(self.path)


class TrainingCheckpoint(Callback):
    """The CLI's checkpoint: written after every epoch whose loss is finite (a diverged epoch
    never replaces the last good checkpoint), and, on SIGINT or SIGTERM, at the end of the
    current step, after which training stops (`signal_received` says which signal).

    Under MPI the handler only records the signal (`signal_pending`): it reaches each rank at
    its own moment, and every rank checkpoints at the step their agreement names (the trainer
    sets `signal_received` on each), so no rank sums its tracker while another sums a
    gradient. Alone, the signal is obeyed at the end of the step it arrived in.

    Args:
        path: the checkpoint file.
        config: the resolved config, kept in the checkpoint.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, path: str, config: dict | None = None):
        super().__init__()
        self.path, self.config = path, config
        self.signal_received = None  # the signal training stops for
        self.signal_pending = None  # the signal received, not yet agreed on (under MPI)
        self.saved_epoch = None  # epochs done in the newest checkpoint written
        self._previous = {}

    def _handle(self, signum, frame):
        self.signal_pending = signum

    def on_train_begin(self, logs=None):
        self.signal_received = self.signal_pending = None
        # A process killed mid-write leaves its temporary file; the checkpoint itself is whole.
        folder, name = os.path.split(os.path.abspath(self.path))
        if distributed.world().writes:
            for stale in glob.glob(os.path.join(folder, f".{name}.*.tmp")):
                os.remove(stale)
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def _save(self, epoch_logs=None):
        self.model.save_checkpoint(self.path, config=self.config, epoch_logs=epoch_logs)
        self.saved_epoch = self.model._fit_progress.epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.signal_received is None and distributed.world().size == 1:
            self.signal_received = self.signal_pending
        if self.signal_received is not None:
            self._save()
            self.model.stop_training = self.model.interrupted = True

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and math.isfinite(loss):
            self._save(logs)

    def on_train_end(self, logs=None):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
