"""Training checkpoints: everything needed to continue a fit exactly, in one `.npz` file.

Arrays (parameters, optimizer slots, the epoch's permutation, the epoch's loss and metric
accumulators, callback arrays) are stored as arrays; everything else (epoch, step, optimizer
scalars, the shuffling generator's state, each Dropout stream's (seed, offset), history,
callback states, the config) as JSON text in the array `meta`. Files are written to a
temporary file, fsynced and renamed, so the previous checkpoint stays until the new one is
complete; they are read with `allow_pickle=False`, so a file holding pickled objects is refused.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from gpunet import backend, distributed, runs
from gpunet.datasets.idx import DataError
from gpunet.layers import Dropout
from gpunet.messages import excerpt

# 2: dropout as counter-based streams (seed, offset), the same on NumPy and CuPy; the epoch's
# accumulators as one tracker state.
FORMAT = "gpunet-checkpoint-2"


@dataclass
class FitProgress:
    """Where a fit is: `step` steps of `epoch` done, with that epoch's shuffle `order`."""

    epoch: int
    step: int = 0
    order: np.ndarray | None = None
    shuffle_rng: np.random.Generator | None = None
    history: dict = field(default_factory=dict)
    tracker_state: tuple | None = None  # (arrays, samples seen) of a partial epoch, to restore
    stopped: bool = False  # a callback (EarlyStopping) had ended the fit when this was saved
    # Seconds the current epoch ran before this process took it over from a checkpoint, and
    # when (time.perf_counter) it began here: a resumed epoch's time counts both parts.
    seconds_before: float = 0.0
    epoch_began: float | None = None

    def seconds_in_epoch(self) -> float:
        """Wall time of the current epoch so far, its part before a resume included."""
        if self.epoch_began is None:
            return 0.0
        return self.seconds_before + time.perf_counter() - self.epoch_began


def _history_through(progress: FitProgress, epoch_logs) -> dict:
    """The history up to `progress.epoch`, adding the logs of the epoch just ended when History
    has not recorded them yet."""
    history = {k: list(v) for k, v in progress.history.items()}
    recorded = len(next(iter(history.values()), []))
    if epoch_logs is not None and recorded < progress.epoch:
        for name, value in epoch_logs.items():
            history.setdefault(name, [None] * recorded).append(float(value))
    return history


def save(
    path: str,
    model,
    progress: FitProgress,
    tracker=None,
    callbacks=(),
    config: dict | None = None,
    epoch_logs=None,
) -> None:
    """Write the model's full training state at `progress` to `path`, atomically; `tracker`
    holds the running loss and metrics of a partial epoch. With ranks (data-parallel), every
    rank calls this (the tracker's sums are read from all of them) and rank 0 writes: each
    rank holds the same weights and optimizer state, so any number of ranks resumes it."""
    scalars, slots = model.optimizer.get_state()
    arrays = {"params": backend.to_host(model._params)}
    for layer in model.layers:  # statistics training does not update (Normalization's)
        for name, value in layer.state().items():
            arrays[f"state/{layer.name}/{name}"] = backend.to_host(value)
    arrays.update({f"optimizer/{name}": value for name, value in slots.items()})
    if progress.order is not None:
        arrays["order"] = progress.order
    seen = 0
    if tracker is not None and progress.step > 0:
        arrays.update({f"tracker/{k}": v for k, v in tracker.get_state().items()})
        seen = tracker.seen
    callback_states = []
    for i, callback in enumerate(callbacks):
        callback_states.append({"class": type(callback).__name__, "state": callback.get_state()})
        arrays.update({f"callback/{i}/{k}": v for k, v in callback.get_arrays().items()})
    meta = {
        "format": FORMAT,
        "epoch": progress.epoch,
        "step": progress.step,
        "stopped": bool(getattr(model, "stop_training", False)),
        "seconds_in_epoch": progress.seconds_in_epoch() if progress.step > 0 else 0.0,
        "seen": seen,
        "optimizer": scalars,
        "shuffle_rng": None
        if progress.shuffle_rng is None
        else progress.shuffle_rng.bit_generator.state,
        "dropout_streams": {
            layer.name: list(layer.get_stream())
            for layer in model.layers
            if isinstance(layer, Dropout)
        },
        "history": _history_through(progress, epoch_logs),
        "callbacks": callback_states,
        "config": config,
        "backend": backend.get_backend(),
        "num_params": int(model._params.size),
        "ranks": distributed.world().size,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    if distributed.world().writes:
        np.savez(buffer, **arrays)
        runs.atomic_write(path, buffer.getvalue())


def load(path: str) -> tuple[dict, dict]:
    """(arrays, meta) of a checkpoint; refuses pickled objects and foreign files."""
    if not os.path.exists(path):
        raise DataError(f"{path}: no checkpoint there.")
    arrays = runs.read_npz(path, "a gpunet checkpoint")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (KeyError, ValueError, UnicodeDecodeError):
        raise DataError(f"{path}: not a gpunet checkpoint (no readable metadata).") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise DataError(f"{path}: checkpoint format {found!r}, expected {FORMAT!r}.")
    for key, kinds in _META.items():
        if key not in meta:
            raise DataError(f"{path}: damaged checkpoint: its metadata lacks {key!r}.")
        value = meta[key]
        if not isinstance(value, kinds) or isinstance(value, bool) or _negative(value):
            raise DataError(
                f"{path}: damaged checkpoint: metadata {key!r} is {excerpt(value)}, expected "
                f"{' or '.join(k.__name__ for k in kinds)}{' >= 0' if int in kinds else ''}."
            )
    if "params" not in arrays or arrays["params"].ndim != 1:
        raise DataError(f"{path}: damaged checkpoint: no 1-D 'params' array.")
    return arrays, meta


# What each metadata entry must be, so that a damaged file fails here in one line, not later.
_META = {
    "epoch": (int,),
    "step": (int,),
    "seen": (int,),
    "optimizer": (dict,),
    "shuffle_rng": (dict, type(None)),
    "dropout_streams": (dict,),
    "history": (dict,),
    "callbacks": (list,),
    "num_params": (int,),
}


def _negative(value) -> bool:
    return isinstance(value, int) and value < 0


def check_fits(model, arrays: dict, meta: dict, path: str) -> None:
    """Refuse a checkpoint of another model, or one whose parameters are not finite."""
    if meta["num_params"] != model._params.size or arrays["params"].shape != model._params.shape:
        raise DataError(
            f"{path}: holds {meta['num_params']} parameters, the model has "
            f"{model._params.size}; it belongs to another model."
        )
    if not np.isfinite(arrays["params"]).all():
        raise DataError(
            f"{path}: its parameters hold NaN or inf; it cannot be resumed (the file is kept)."
        )


def restore(model, arrays: dict, meta: dict, callbacks=(), path: str = "checkpoint") -> FitProgress:
    """Put a loaded checkpoint back into a built, compiled model; returns where the fit was."""
    check_fits(model, arrays, meta, path)
    model._params[...] = backend.to_device(arrays["params"], model._params.dtype)
    for layer in model.layers:
        for name, target in layer.state().items():
            saved = arrays.get(f"state/{layer.name}/{name}")
            if saved is None or saved.shape != target.shape:
                raise DataError(f"{path}: damaged checkpoint: no {layer.name} {name} of its shape.")
            target[...] = backend.to_device(saved, target.dtype)
    slots = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("optimizer/")}
    try:
        model.optimizer.set_state(meta["optimizer"], slots)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(
            f"{path}: damaged checkpoint: the optimizer state cannot be restored "
            f"({type(exc).__name__}: {exc})."
        ) from None
    for layer in model.layers:
        stream = meta["dropout_streams"].get(layer.name) if isinstance(layer, Dropout) else None
        if stream is not None:
            layer.set_stream(*stream)
    # The k-th saved callback of a class goes to the k-th callback of that class now: a
    # callback added or left out on resume does not shift the others' states.
    saved: dict[str, list[int]] = {}
    for i, entry in enumerate(meta["callbacks"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("class"), str):
            raise DataError(f"{path}: damaged checkpoint: callback entry {i} has no class.")
        saved.setdefault(entry["class"], []).append(i)
    for callback in callbacks:
        indices = saved.get(type(callback).__name__)
        if not indices:
            continue
        i = indices.pop(0)
        prefix = f"callback/{i}/"
        try:
            callback.set_state(meta["callbacks"][i].get("state", {}))
            callback.set_arrays(
                {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DataError(
                f"{path}: damaged checkpoint: the state of {type(callback).__name__} "
                f"cannot be restored ({type(exc).__name__}: {exc})."
            ) from None
    shuffle_rng = np.random.default_rng()
    if meta["shuffle_rng"] is not None:
        shuffle_rng.bit_generator.state = meta["shuffle_rng"]
    tracker_state = None
    if meta["step"] > 0:
        tracker = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("tracker/")}
        tracker_state = (tracker, meta["seen"])
    return FitProgress(
        meta["epoch"],
        meta["step"],
        arrays.get("order"),
        shuffle_rng,
        meta["history"],
        tracker_state,
        meta.get("stopped") is True,
        _seconds(meta.get("seconds_in_epoch")) if meta["step"] > 0 else 0.0,
    )


def _seconds(value) -> float:
    """A saved duration; anything else (an older checkpoint has none) counts as 0."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) and value >= 0 else 0.0
