"""Training callbacks with Keras 3 names, defaults and messages."""

from gpunet.callbacks.base import Callback, CallbackList, History, LazyLogs
from gpunet.callbacks.checkpoints import BackupAndRestore, ModelCheckpoint, TrainingCheckpoint
from gpunet.callbacks.monitors import EarlyStopping, ReduceLROnPlateau
from gpunet.callbacks.progbar import ProgbarLogger
from gpunet.callbacks.simple import (
    CSVLogger,
    LambdaCallback,
    LearningRateScheduler,
    TerminateOnNaN,
)

# The callbacks a YAML config may name in fit.callbacks (with their arguments).
CONFIGURABLE = {
    cls.__name__: cls
    for cls in (
        EarlyStopping,
        ModelCheckpoint,
        ReduceLROnPlateau,
        CSVLogger,
        TerminateOnNaN,
        BackupAndRestore,
    )
}

__all__ = [
    "BackupAndRestore",
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LazyLogs",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ProgbarLogger",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
    "TrainingCheckpoint",
    "CONFIGURABLE",
]
