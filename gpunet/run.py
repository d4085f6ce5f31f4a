"""`gpunet train`: a validated Config -> data -> model -> fit -> a complete run directory.

Under an MPI launcher (`mpirun -n N gpunet train ...`) every rank runs this; rank 0 alone
prints and writes the run directory, whose path it gives the others (gpunet.distributed)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import sys
import threading
import time

import yaml

import gpunet as gn
from gpunet import backend, distributed, runs
from gpunet import config as config_module
from gpunet.config import Config
from gpunet.datasets.idx import DataError
from gpunet.run_data import load_data
from gpunet.trainer import log_names


def build_model(cfg: Config, input_shape: tuple, source: str = "config"):
    """The compiled Sequential model of a config (default names start afresh)."""
    gn.utils.clear_session()
    model = gn.Sequential(name="sequential")
    model.add(gn.layers.Input(input_shape))
    for index, spec in enumerate(cfg.model):
        model.add(config_module.build_layer(source, index, spec))
    model.compile(
        optimizer=config_module.build_optimizer(source, cfg.compile.optimizer),
        loss=cfg.compile.loss,
        metrics=list(cfg.compile.metrics),
        steps_per_execution=cfg.compile.steps_per_execution,
        cuda_graphs=cfg.compile.cuda_graphs,
        precision=cfg.compile.precision,
    )
    model.build()  # here, so that a size that cannot fit fails before any file is written
    return model


class _EpochRecorder(gn.callbacks.Callback):
    """Learning rate and wall time of each epoch, for history.csv (kept in checkpoints)."""

    def __init__(self):
        super().__init__()
        self.learning_rate, self.epoch_seconds = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter() - self.resumed_seconds()
        self._rate = float(self.model.optimizer.learning_rate)

    def on_epoch_end(self, epoch, logs=None):
        self.learning_rate.append(self._rate)
        self.epoch_seconds.append(time.perf_counter() - self._start)

    def get_state(self):
        return {"learning_rate": self.learning_rate, "epoch_seconds": self.epoch_seconds}

    def set_state(self, state):
        self.learning_rate, self.epoch_seconds = state["learning_rate"], state["epoch_seconds"]


def standard_callbacks(checkpoint_path: str, config: dict | None = None) -> tuple:
    """The callbacks `gpunet train` always adds: each epoch's learning rate and time, a
    TerminateOnNaN, and the every-epoch checkpoint (which also handles SIGINT/SIGTERM)."""
    return (
        _EpochRecorder(),
        gn.callbacks.TerminateOnNaN(),
        gn.callbacks.TrainingCheckpoint(checkpoint_path, config),
    )


def select_backend(cfg: Config, announce: bool = False) -> None:
    """The config's backend, else $GPUNET_BACKEND, else auto; `announce` says in one short line
    which one auto chose (the reason is in `gpunet info`)."""
    if cfg.backend is not None:
        backend.set_backend(cfg.backend)
    else:
        backend.get_backend()
    if announce and backend.auto_reason is not None:
        chosen = (
            "a CUDA device; using CuPy"
            if backend.get_backend() == "cupy"
            else ("no CUDA device; using NumPy (gpunet info says why)")
        )
        print(f"gpunet: {chosen}", file=sys.stderr)


@dataclasses.dataclass
class Outcome:
    """How a `train` call ended: finished, interrupted by a signal, or diverged."""

    run_dir: str
    signal: int | None = None  # SIGINT/SIGTERM that interrupted it (a checkpoint holds it)
    diverged_at: tuple | None = None  # (epoch, step) of a NaN/inf loss
    checkpoint_epochs: int | None = None  # epochs in the newest good checkpoint
    finished: bool = False  # every epoch ran and the results are written

    @property
    def checkpoint(self) -> str:
        return os.path.join(self.run_dir, CHECKPOINT)


CHECKPOINT = "checkpoint.npz"


def _new_run_dir(cfg: Config, config_path: str, output: str | None, input_shape) -> str:
    name = os.path.splitext(os.path.basename(config_path))[0]
    run_dir = runs.create_run_dir(output or cfg.output.dir, name)
    runs.atomic_write(
        os.path.join(run_dir, "config.yaml"),
        yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode(),
    )
    runs.write_json(
        os.path.join(run_dir, "model.json"),
        {
            "input_shape": list(input_shape),
            "layers": cfg.model,
            "compile": dataclasses.asdict(cfg.compile),
        },
    )
    return run_dir


def train(
    cfg: Config,
    config_path: str,
    output: str | None = None,
    quiet: bool = False,
    resume: str | None = None,
    extra_callbacks=(),
) -> Outcome:
    """Run the training a config describes, in a new run directory, or continue the one in
    `resume` from its checkpoint. A checkpoint is written after every epoch."""
    select_backend(cfg)
    world = distributed.world()
    quiet = quiet or not world.writes
    if cfg.seed is not None:
        gn.utils.set_random_seed(cfg.seed)
    data = load_data(cfg)
    model = build_model(cfg, data.x_train.shape[1:], config_path)
    for layer in model.layers:  # a config's Normalization learns from the training part
        if isinstance(layer, gn.layers.Normalization) and layer._given is None:
            layer.adapt(data.x_train)
    callbacks = [
        config_module.build_callback(config_path, i, spec)
        for i, spec in enumerate(cfg.fit.callbacks)
    ] + list(extra_callbacks)
    names = log_names(model, data.validation is not None)
    for callback in callbacks:  # what would fail after an epoch fails now, before the run dir
        if not _relative_path_of(callback):
            callback.check(names)
    problem = world.batch_size_problem(cfg.fit.batch_size)
    if problem is not None:
        raise config_module.ConfigError(config_path, "fit.batch_size", problem)
    resumed_epochs = None
    if resume is None:
        run_dir = world.from_rank_0(
            lambda: _new_run_dir(cfg, config_path, output, data.x_train.shape[1:]),
            "the run directory's creation",
        )
    else:
        run_dir = resume
        resumed_epochs = model.resume_from(os.path.join(run_dir, CHECKPOINT))
    _place_in_run_dir(callbacks, run_dir)
    recorder, terminator, saver = standard_callbacks(
        os.path.join(run_dir, CHECKPOINT), cfg.to_dict()
    )
    if not quiet:
        select_backend(cfg, announce=True)
    try:
        history = model.fit(
            data.x_train,
            data.y_train,
            batch_size=cfg.fit.batch_size,
            epochs=cfg.fit.epochs,
            verbose=0 if quiet else cfg.fit.verbose,
            shuffle=cfg.fit.shuffle,
            validation_data=data.validation,
            class_weight=cfg.fit.class_weight,
            validation_batch_size=cfg.fit.validation_batch_size,
            callbacks=callbacks + [recorder, terminator, saver],
        )
    except BaseException as exc:
        if resume is None and saver.saved_epoch is None and world.writes:
            shutil.rmtree(run_dir, ignore_errors=True)  # a failed start leaves no run behind
        if isinstance(exc, Exception) and _is_device_oom(exc):
            raise TrainingError(_oom_message(exc, cfg, saver, run_dir)) from None
        raise
    newest = saver.saved_epoch if saver.saved_epoch is not None else resumed_epochs
    outcome = Outcome(run_dir, saver.signal_received, terminator.failed_at, newest)
    if (
        outcome.diverged_at is not None
        and resume is None
        and saver.saved_epoch is None
        and world.writes
    ):
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing to resume: leave nothing behind
    if outcome.signal is not None or outcome.diverged_at is not None:
        return outcome  # the checkpoint holds the last good state; nothing else is replaced
    # A signal after the last step's agreement came too late to stop training: like one
    # while the results are written, it is obeyed once they are.
    with _signals_deferred() as received:
        _write_results(cfg, config_path, run_dir, model, data, history, recorder, quiet)
    outcome.finished = True
    outcome.signal = saver.signal_pending or (received[0] if received else None)
    return outcome


@contextlib.contextmanager
def _signals_deferred():
    """SIGINT and SIGTERM while the results are written (a second or two) are recorded, not
    obeyed, so the run directory is complete; the caller acts on them afterwards."""
    received = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # only the main thread may set handlers; its own stay in place
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {
        sig: signal.signal(sig, lambda signum, _: received.append(signum)) for sig in signals
    }
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _relative_path_of(callback) -> str | None:
    """A config callback's relative path (CSVLogger's filename, ModelCheckpoint's filepath):
    it names a file in the run directory, as the run's other files are."""
    if isinstance(callback, gn.callbacks.CSVLogger):
        path = callback.filename
    elif isinstance(callback, gn.callbacks.ModelCheckpoint):
        path = callback.filepath
    else:
        return None
    return None if os.path.isabs(os.path.expanduser(path)) else path


def _place_in_run_dir(callbacks, run_dir: str) -> None:
    for callback in callbacks:
        path = _relative_path_of(callback)
        if path is not None:
            placed = os.path.join(run_dir, path)
            os.makedirs(os.path.dirname(placed), exist_ok=True)
            attribute = "filename" if isinstance(callback, gn.callbacks.CSVLogger) else "filepath"
            setattr(callback, attribute, placed)


class TrainingError(RuntimeError):
    """Training could not go on (e.g. the GPU ran out of memory); the message says what to try."""


def _is_device_oom(exc: Exception) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" and type(exc).__module__.startswith("cupy")


def _oom_message(exc: Exception, cfg: Config, saver, run_dir: str) -> str:
    memory = ""
    try:
        import cupy

        free, total = cupy.cuda.runtime.memGetInfo()
        memory = f" The device has {total / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free."
    except Exception:  # the figures are a courtesy; the advice stands without them
        pass
    kept = (
        "no checkpoint was written yet"
        if saver.saved_epoch is None
        else f"the last good checkpoint ({saver.saved_epoch} epochs) is kept at "
        f"{os.path.join(run_dir, CHECKPOINT)}"
    )
    return (
        f"out of GPU memory with batch_size={cfg.fit.batch_size} ({exc}).{memory} "
        f"Try a smaller fit.batch_size or model, or --backend numpy; {kept}."
    )


def _write_results(cfg, config_path, run_dir, model, data, history, recorder, quiet) -> None:
    results = {}
    if data.x_test is not None:  # with ranks, each evaluates its shards: all take part
        results = model.evaluate(
            data.x_test, data.y_test, batch_size=cfg.fit.batch_size, return_dict=True, verbose=0
        )
    if not distributed.world().writes:
        return
    extra = (
        {} if data.mean is None else {"standardize/mean": data.mean, "standardize/std": data.std}
    )
    runs.save_weights(os.path.join(run_dir, runs.WEIGHTS), model, extra)
    model.save(os.path.join(run_dir, "model.keras"))  # the model as Keras 3 loads it
    rows = runs.history_rows(
        history.history,
        {"learning_rate": recorder.learning_rate, "epoch_seconds": recorder.epoch_seconds},
    )
    runs.write_history(run_dir, rows)
    runs.write_json(
        os.path.join(run_dir, "metrics.json"),
        {
            "test": results,
            "backend": backend.get_backend(),
            "epochs": len(rows),
            "train_seconds": sum(recorder.epoch_seconds),
        },
    )
    name = os.path.splitext(os.path.basename(config_path))[0]
    # A file name that is not UTF-8 arrives with surrogate escapes, which fonts cannot draw.
    printable = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    runs.plot_curves(
        os.path.join(run_dir, "curves.png"), rows, f"{printable} ({cfg.data.name or 'data'})"
    )
    if not quiet and results:
        print("Test: " + " - ".join(f"{k}: {v:.4f}" for k, v in results.items()))


def load_run(run_dir: str, backend_name: str | None = None):
    """(config, model with its final weights, weights arrays) of a finished run."""
    config_path = os.path.join(run_dir, "config.yaml")
    if not os.path.isdir(run_dir):
        raise config_module.ConfigError(run_dir, "", "no such run directory.")
    weights_path = os.path.join(run_dir, runs.WEIGHTS)
    if not os.path.isfile(weights_path):
        if os.path.isfile(os.path.join(run_dir, CHECKPOINT)):
            raise DataError(
                f"{run_dir}: the run is unfinished (no {runs.WEIGHTS} yet, only its checkpoint); "
                f"finish it with: gpunet train {config_path} --resume {run_dir}"
            )
        raise DataError(f"{run_dir}: no {runs.WEIGHTS}; not a finished gpunet run directory.")
    cfg = config_module.from_dict(config_module.load_raw(config_path), config_path)
    if backend_name:
        cfg.backend = backend_name
    shape = _input_shape_of_run(os.path.join(run_dir, "model.json"))
    select_backend(cfg)
    model = build_model(cfg, shape, config_path)
    arrays = runs.load_weights(weights_path)
    runs.assign_weights(model, arrays, weights_path)
    return cfg, model, arrays


def _input_shape_of_run(path: str) -> tuple:
    info = runs.read_json(path)
    shape = info.get("input_shape") if isinstance(info, dict) else None
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)
    ):
        raise DataError(
            f"{path}: damaged: expected a mapping whose 'input_shape' is a list of positive ints."
        )
    return tuple(shape)
