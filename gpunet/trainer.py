"""`Trainer`: the loops of fit, evaluate and predict for one compiled Sequential: epochs,
batches, callbacks, progress refreshes and checkpoint positions, around one step object.

Inside an epoch the host reads nothing from the device except at a progress refresh (at most
every REFRESH_INTERVAL seconds, and at the epoch's last step): the batch logs a callback sees
are then `synced`, and reading all of them is one copy of the tracker's vector.

Data-parallel (gpunet.distributed, more than one rank): each rank trains and evaluates its shard
of every batch; the ranks agree after each step, in one all-reduce of a few host ints, on
stopping, on a signal any of them received, and on whether the next step refreshes (rank 0's
clock decides); a refresh reads the logs summed over the ranks, so every rank's callbacks see
the values a single process would.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from gpunet import backend, checkpoint, distributed, inputs, rng
from gpunet import callbacks as callbacks_module
from gpunet import metrics as metrics_module
from gpunet.step import ReferenceStep, select_training
from gpunet.step.streaming import StreamTraining
from gpunet.streams import BatchStream
from gpunet.tracker import Tracker
from gpunet.uploads import Prefetcher, Uploader

logger = logging.getLogger("gpunet")

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
        self.world = self.step.world
        self.clock = clock
        self.training = None  # the fit's training step (step/): reference, fused or graph
        self.progress: checkpoint.FitProgress | None = None
        self.tracker: Tracker | None = None  # the training pass's, during fit
        self._kept_uploader: Uploader | None = None

    # ----- fit ------------------------------------------------------------------------------

    def fit(
        self,
        data,
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
        """The epochs of `Sequential.fit`; returns the History. `data` and `validation`: the
        prepared device arrays (x, y, w), or a BatchStream (validation may be None)."""
        model = self.model
        stream = data if isinstance(data, BatchStream) else None
        if stream is None:
            x, y, w = data
            xp = backend.get_array_module(x)
            n = len(x)
            total = len(batches(n, batch_size))
        else:
            xp = backend.xp()
            total = stream.known_steps()  # None: the first pass tells
            n = total if stream.exact_order else None  # what an epoch's order permutes
        world = self.world
        if world.size > 1:
            _check_data_parallel(model, world, batch_size)
            verbose = verbose if world.writes else 0  # rank 0 draws the bar for every rank
            for where, given in (("fit", stream), ("fit: validation_data", validation)):
                if isinstance(given, BatchStream):
                    _refuse_stream(given, world, where)
        # Keras's order: the user's callbacks, then History (so it records what they add to
        # the logs, e.g. learning_rate), then the progress bar.
        user = list(callbacks or [])
        history = callbacks_module.History()
        defaults = [history]
        if verbose and not any(isinstance(c, callbacks_module.ProgbarLogger) for c in user):
            defaults.append(callbacks_module.ProgbarLogger(verbose))
        params = {"verbose": verbose, "epochs": epochs, "steps": total}
        hooks = callbacks_module.CallbackList(user + defaults, model, params)
        model.stop_training = model.interrupted = False
        model._callbacks = user  # their states go into checkpoints
        self.tracker = tracker = Tracker(xp, model._metrics, total, world)
        val_tracker = None
        if isinstance(validation, BatchStream):
            val_tracker = Tracker(xp, model._metrics, validation.known_steps(), world)
        elif validation is not None:
            val_steps = len(batches(len(validation[0]), validation_batch_size))
            val_tracker = Tracker(xp, model._metrics, val_steps, world)
        logged = log_names(model, validation is not None)
        for callback in user:
            callback.check(logged)
        hooks.on_train_begin({})
        progress = self._start_progress(initial_epoch, history, user)
        if stream is None:
            training = select_training(model, self.step, x, y, w, batch_size)
        else:
            training = _stream_training(self.step, stream, progress, shuffle, xp)
        self.training = training
        per_execution = model.steps_per_execution
        batch_end = hooks.has("on_train_batch_end")
        names = evaluation_names(model)
        # With ranks, a refresh reads for every rank at once (below); between refreshes a
        # callback sees the last refresh's values (a read of its own would stall the others).
        parallel = world.size > 1
        readers = {
            name: (lambda name=name: tracker.read(fresh=not parallel)[name]) for name in names
        }
        signalled = [c for c in user if hasattr(c, "signal_pending")]  # TrainingCheckpoint
        last_refresh, refresh_due = -float("inf"), True
        training_logs = None  # the last epoch's logs, for on_train_end (Keras's)
        # A diverging run overflows to inf/NaN: TerminateOnNaN and the logs report it, rather
        # than a NumPy warning from every ufunc.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            # A checkpoint saved as EarlyStopping ended the fit resumes to that same end.
            first = epochs if progress.stopped else progress.epoch
            for epoch in range(first, epochs):
                progress.epoch = epoch
                if progress.step == 0:  # a fresh epoch (else one resumed from a checkpoint)
                    tracker.reset()
                    shuffled = shuffle and n is not None
                    progress.order = progress.shuffle_rng.permutation(n) if shuffled else None
                training.begin_epoch(progress.order, progress.step)
                if not training.more():  # a generator used up by earlier epochs
                    break
                progress.epoch_began = time.perf_counter()
                hooks.on_epoch_begin(epoch, {})  # may read progress.seconds_before
                step = progress.step
                # A stream's epoch ends when its data does (arrays: after `total` steps).
                while (total is None or step < total) and training.more():
                    # Keras: one begin and one end call per execution of up to
                    # steps_per_execution steps, with its first and last step.
                    count = per_execution if total is None else min(per_execution, total - step)
                    hooks.on_train_batch_begin(step, {})
                    step += training.run(tracker, step, count)
                    progress.step = step
                    if batch_end or parallel:
                        now = self.clock()
                        last = step == total or not training.more()
                        due = refresh_due if parallel else now - last_refresh >= REFRESH_INTERVAL
                        synced = last or due
                        if synced:
                            last_refresh = now
                            if parallel:
                                tracker.read()  # every rank's part of the sum, at once
                    if batch_end:
                        logs = callbacks_module.LazyLogs(
                            readers, synced=synced, first_nonfinite=tracker.first_nonfinite_step
                        )
                        hooks.on_train_batch_end(step - 1, logs)
                    if parallel:
                        refresh_due = self._agree(model, signalled, last_refresh)
                    if model.stop_training:
                        break
                training.end_epoch()
                if model.interrupted:  # a checkpoint holds the partial epoch; no epoch end
                    break
                logs = tracker.read()
                if validation is not None and (epoch + 1) % validation_freq == 0:
                    logs.update(
                        self.evaluate(validation, validation_batch_size, "val_", val_tracker)
                    )
                progress.epoch, progress.step, progress.order = epoch + 1, 0, None
                progress.seconds_before = 0.0
                hooks.on_epoch_end(epoch, logs)
                training_logs = logs
                if model.stop_training or (stream is not None and stream.ran_out):
                    break
        hooks.on_train_end(training_logs)
        self.progress = None
        history.model = model
        history.params = params
        return history

    def _agree(self, model, signalled, last_refresh: float) -> bool:
        """The ranks' agreement after a step: any rank stopping stops all, a signal any rank
        received reaches each one's checkpoint callback (which acts on it at the next step),
        and rank 0's clock says whether the next step refreshes (returned)."""
        pending = max((c.signal_pending or 0 for c in signalled), default=0)
        wanted = self.world.rank == 0 and self.clock() - last_refresh >= REFRESH_INTERVAL
        refresh, stop, interrupted, signal = self.world.agree(
            [wanted, model.stop_training, model.interrupted, pending]
        )
        model.stop_training, model.interrupted = bool(stop), bool(interrupted)
        for callback in signalled:
            if signal and callback.signal_received is None:
                callback.signal_received = signal
        return bool(refresh)

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

    def _uploader(self, xp) -> Uploader:
        """The copier of evaluation and prediction streams, kept: its pinned memory and device
        buffers serve every validation of a fit (each pass releases its slots at the end)."""
        if self._kept_uploader is None or self._kept_uploader.xp is not xp:
            self._kept_uploader = Uploader(xp)
        return self._kept_uploader

    def evaluate(self, data, batch_size: int, prefix: str = "", tracker=None, progbar=None) -> dict:
        """Loss and metrics over `data` (device arrays (x, y, w), or a BatchStream) in batches
        (dropout off): one read at the end. `progbar` (a ProgbarLogger) draws the steps and
        prints the results at the end."""
        xp = backend.xp() if isinstance(data, BatchStream) else backend.get_array_module(data[0])
        if self.world.size > 1 and isinstance(data, BatchStream):
            _refuse_stream(data, self.world, "evaluate")
        steps = _steps(data, batch_size)
        if tracker is None:
            tracker = Tracker(xp, self.model._metrics, steps, self.world)
        tracker.reset()
        _begin(progbar, "test", steps)
        shards = _batches(data, batch_size, self._uploader(xp), self.world)
        for step, (rows, xb, yb, wb) in enumerate(shards):
            tracker.reserve(step + 1)
            y_pred = self.step.evaluate(xb, yb, wb, tracker.step_total(step))
            tracker.update(rows, yb, y_pred, wb)
            if progbar is not None:
                progbar.on_test_batch_end(step)
        logs = tracker.read(prefix)
        if progbar is not None:
            progbar.on_test_end(logs)
        return logs

    def predict(self, data, batch_size: int, progbar=None) -> np.ndarray:
        """Model outputs in batches of `data` (a device array, or a BatchStream), gathered on
        the device and copied to the host once."""
        if isinstance(data, BatchStream):
            xp, parts = backend.xp(), []
            _begin(progbar, "predict", data.known_steps())
            for step, (_, xb, _, _) in enumerate(_batches(data, batch_size, self._uploader(xp))):
                parts.append(self.step.forward(xb, training=False).copy())
                if progbar is not None:
                    progbar.on_predict_batch_end(step)
            out = xp.concatenate(parts)
        else:
            xp = backend.get_array_module(data)
            out = xp.empty((len(data),) + self.model.layers[-1].output_shape, inputs.FLOATX)
            spans = batches(len(data), batch_size)
            _begin(progbar, "predict", len(spans))
            for step, (start, stop) in enumerate(spans):
                out[start:stop] = self.step.forward(data[start:stop], training=False)
                if progbar is not None:
                    progbar.on_predict_batch_end(step)
        host = np.asarray(backend.to_host(out))
        if progbar is not None:
            progbar.on_predict_end()
        return host


def _stream_training(step, stream, progress, shuffle: bool, xp) -> StreamTraining:
    """The training of a fit on a BatchStream; refuses a mid-epoch resume it cannot make
    exact."""
    if progress.step and not stream.exact_order:
        raise ValueError(
            "fit: this checkpoint was saved mid-epoch, and only array data or a PyDataset "
            "without steps_per_epoch can be resumed mid-epoch exactly (a generator cannot go "
            "back to a batch). Resume from a checkpoint saved at an epoch's end."
        )
    if shuffle and stream.dataset is not None and not stream.exact_order:
        stream.rng = progress.shuffle_rng  # each pass of a PyDataset with steps_per_epoch
    if xp is not np:
        logger.warning(
            "gpunet: data from a %s: the reference CuPy step trains on each batch as it is "
            "copied (the fused step needs array data).",
            type(stream.data).__name__,
        )
    return StreamTraining(step, stream, xp)


def _refuse_stream(stream: BatchStream, world, where: str) -> None:
    raise ValueError(
        f"{where}: data-parallel training ({world.size} ranks) takes array data; a "
        f"{type(stream.data).__name__} cannot be split into the ranks' shards. Pass arrays, "
        "or run one rank."
    )


def _check_data_parallel(model, world, batch_size: int) -> None:
    """What data-parallel training cannot take yet, refused before anything runs."""
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            raise ValueError(
                f"fit: layer {layer.name}: BatchNormalization's batch statistics would be each "
                f"rank's own ({world.size} ranks), and they are not synchronized across ranks; "
                "train this model on one rank."
            )
    problem = world.batch_size_problem(batch_size)
    if problem is not None:
        raise ValueError(f"fit: {problem}")


def _steps(data, batch_size: int) -> int | None:
    """Steps of one pass over `data`, when known."""
    if isinstance(data, BatchStream):
        return data.known_steps()
    return len(batches(len(data[0]), batch_size))


def _batches(data, batch_size: int, uploader: Uploader, world=None):
    """(rows, x, y, w) on the device for each batch of one pass over `data` (a stream's copied
    by `uploader`); with a world of ranks, this rank's shard of each batch of arrays, and the
    batch's rows."""
    if isinstance(data, BatchStream):
        prefetch = Prefetcher(data.epoch(), uploader)
        while prefetch.more():
            host, (xb, yb, wb) = prefetch.next()
            yield len(host[0]), xb, yb, wb
        prefetch.close()
        data.end_epoch()
        return
    x, y, w = data
    world = world or distributed.Single()
    for start, stop in batches(len(x), batch_size):
        low, high = world.shard(start, stop)
        yield stop - start, x[low:high], y[low:high], None if w is None else w[low:high]


def _begin(progbar, kind: str, steps: int | None) -> None:
    if progbar is not None:
        progbar.set_params({"verbose": progbar.verbose, "epochs": 1, "steps": steps})
        getattr(progbar, f"on_{kind}_begin")()
