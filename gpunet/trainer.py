"""`Trainer`: the loops of fit, evaluate and predict for one compiled Sequential: epochs,
batches, callbacks, progress refreshes and checkpoint positions, around one step object.

Inside an epoch the host reads nothing from the device except at a progress refresh (at most
every REFRESH_INTERVAL seconds, and at the epoch's last step): the batch logs a callback sees
are then `synced`, and reading all of them is one copy of the tracker's vector.
"""

from __future__ import annotations

import time

import numpy as np

from gpunet import backend, checkpoint, inputs, rng
from gpunet import callbacks as callbacks_module
from gpunet import metrics as metrics_module
from gpunet.step import ReferenceStep, select_training
from gpunet.tracker import Tracker

REFRESH_INTERVAL = 0.05  # seconds between progress refreshes (Keras's redraw rate)


def batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    """[start, stop) of each batch of an epoch of n samples."""
    return [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def evaluation_names(model) -> list[str]:
    """ "loss", then each compiled metric's log name: what evaluate returns, in order."""
    metrics = model._metrics if model._metrics is not None else model._metric_ids
    return ["loss"] + [metrics_module.log_name(m) for m in metrics]


def log_names(model, validation: bool) -> list[str]:
    """The names a fit of `model` logs each epoch (what a ModelCheckpoint filepath may use)."""
    names = evaluation_names(model)
    if validation:
        names += [f"val_{name}" for name in names]
    return names + ["learning_rate"]


class Trainer:
    """Runs fit, evaluate and predict for `model`, which must be built and compiled.

    Args:
        model: the Sequential to train.
        clock: seconds as a float, for the refresh schedule.
    """

    def __init__(self, model, clock=time.perf_counter):
        self.model = model
        self.step = ReferenceStep(model)
        self.clock = clock
        self.training = None  # the fit's training step (step/): reference, fused or graph
        self.progress: checkpoint.FitProgress | None = None
        self.tracker: Tracker | None = None  # the training pass's, during fit

    # ----- fit ------------------------------------------------------------------------------

    def fit(
        self,
        x,
        y,
        w,
        validation,
        batch_size: int,
        epochs: int,
        verbose: int,
        callbacks,
        shuffle: bool,
        initial_epoch: int,
        validation_batch_size: int,
        validation_freq: int,
    ):
        """The epochs of `Sequential.fit` on prepared device arrays; returns the History."""
        model = self.model
        xp = backend.get_array_module(x)
        n = len(x)
        steps = batches(n, batch_size)
        # Keras's order: the user's callbacks, then History (so it records what they add to
        # the logs, e.g. learning_rate), then the progress bar.
        user = list(callbacks or [])
        history = callbacks_module.History()
        defaults = [history]
        if verbose and not any(isinstance(c, callbacks_module.ProgbarLogger) for c in user):
            defaults.append(callbacks_module.ProgbarLogger(verbose))
        params = {"verbose": verbose, "epochs": epochs, "steps": len(steps)}
        hooks = callbacks_module.CallbackList(user + defaults, model, params)
        model.stop_training = model.interrupted = False
        model._callbacks = user  # their states go into checkpoints
        self.tracker = tracker = Tracker(xp, model._metrics, len(steps))
        val_tracker = None
        if validation is not None:
            val_tracker = Tracker(
                xp, model._metrics, len(batches(len(validation[0]), validation_batch_size))
            )
        logged = log_names(model, validation is not None)
        for callback in user:
            callback.check(logged)
        hooks.on_train_begin({})
        progress = self._start_progress(initial_epoch, history, user)
        training = self.training = select_training(model, self.step, x, y, w, batch_size)
        per_execution = model.steps_per_execution
        batch_end = hooks.has("on_train_batch_end")
        names = evaluation_names(model)
        readers = {name: (lambda name=name: tracker.read()[name]) for name in names}
        last_refresh = -float("inf")
        # A diverging run overflows to inf/NaN: TerminateOnNaN and the logs report it, rather
        # than a NumPy warning from every ufunc.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            # A checkpoint saved as EarlyStopping ended the fit resumes to that same end.
            first = epochs if progress.stopped else progress.epoch
            for epoch in range(first, epochs):
                progress.epoch = epoch
                if progress.step == 0:  # a fresh epoch (else one resumed from a checkpoint)
                    tracker.reset()
                    progress.order = progress.shuffle_rng.permutation(n) if shuffle else None
                training.begin_epoch(progress.order)
                progress.epoch_began = time.perf_counter()
                hooks.on_epoch_begin(epoch, {})  # may read progress.seconds_before
                step = progress.step
                while step < len(steps):
                    # Keras: one begin and one end call per execution of up to
                    # steps_per_execution steps, with its first and last step.
                    count = min(per_execution, len(steps) - step)
                    hooks.on_train_batch_begin(step, {})
                    training.run(tracker, step, count)
                    step += count
                    progress.step = step
                    if batch_end:
                        now = self.clock()
                        synced = step == len(steps) or now - last_refresh >= REFRESH_INTERVAL
                        if synced:
                            last_refresh = now
                        logs = callbacks_module.LazyLogs(
                            readers, synced=synced, first_nonfinite=tracker.first_nonfinite_step
                        )
                        hooks.on_train_batch_end(step - 1, logs)
                    if model.stop_training:
                        break
                if model.interrupted:  # a checkpoint holds the partial epoch; no epoch end
                    break
                logs = tracker.read()
                if validation is not None and (epoch + 1) % validation_freq == 0:
                    logs.update(
                        self.evaluate(*validation, validation_batch_size, "val_", val_tracker)
                    )
                progress.epoch, progress.step, progress.order = epoch + 1, 0, None
                progress.seconds_before = 0.0
                hooks.on_epoch_end(epoch, logs)
                if model.stop_training:
                    break
        hooks.on_train_end({})
        self.progress = None
        history.model = model
        history.params = params
        return history

    def _start_progress(self, initial_epoch: int, history, callbacks) -> checkpoint.FitProgress:
        """Where this fit starts: `initial_epoch`, or a checkpoint handed over by `resume_from`
        (or by a BackupAndRestore callback in on_train_begin)."""
        model = self.model
        progress = checkpoint.FitProgress(
            initial_epoch, shuffle_rng=rng.host_generator(), history=history.history
        )
        if model._pending_resume is not None:
            arrays, meta, path = model._pending_resume
            model._pending_resume = None
            progress = checkpoint.restore(model, arrays, meta, callbacks, path)
            if progress.tracker_state is not None:
                self.tracker.set_state(*progress.tracker_state)
            history.history.update(progress.history)
            progress.history = history.history
            history.epoch = list(range(len(next(iter(history.history.values()), []))))
        self.progress = progress
        return progress

    # ----- evaluate and predict ---------------------------------------------------------------

    def evaluate(
        self, x, y, w, batch_size: int, prefix: str = "", tracker=None, progbar=None
    ) -> dict:
        """Loss and metrics over (x, y[, w]) in batches (dropout off): one read at the end.
        `progbar` (a ProgbarLogger) draws the steps and prints the results at the end."""
        spans = batches(len(x), batch_size)
        if tracker is None:
            tracker = Tracker(backend.get_array_module(x), self.model._metrics, len(spans))
        tracker.reset()
        _begin(progbar, "test", len(spans))
        for step, (start, stop) in enumerate(spans):
            wb = None if w is None else w[start:stop]
            yb = y[start:stop]
            y_pred = self.step.evaluate(x[start:stop], yb, wb, tracker.step_total(step))
            tracker.update(stop - start, yb, y_pred, wb)
            if progbar is not None:
                progbar.on_test_batch_end(step)
        logs = tracker.read(prefix)
        if progbar is not None:
            progbar.on_test_end(logs)
        return logs

    def predict(self, x, batch_size: int, progbar=None) -> np.ndarray:
        """Model outputs in batches, gathered on the device and copied to the host once."""
        xp = backend.get_array_module(x)
        out = xp.empty((len(x),) + self.model.layers[-1].output_shape, dtype=inputs.FLOATX)
        spans = batches(len(x), batch_size)
        _begin(progbar, "predict", len(spans))
        for step, (start, stop) in enumerate(spans):
            out[start:stop] = self.step.forward(x[start:stop], training=False)
            if progbar is not None:
                progbar.on_predict_batch_end(step)
        host = np.asarray(backend.to_host(out))
        if progbar is not None:
            progbar.on_predict_end()
        return host


def _begin(progbar, kind: str, steps: int) -> None:
    if progbar is not None:
        progbar.set_params({"verbose": progbar.verbose, "epochs": 1, "steps": steps})
        getattr(progbar, f"on_{kind}_begin")()
