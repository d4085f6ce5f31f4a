"""Metrics with Keras 3 names and semantics: stateful, weighted running values over an epoch.

Each metric keeps its accumulators in a small float64 device vector (its own, or, inside fit
and evaluate, a slice of a `Tracker`'s, which reads every metric in one copy): updating never
syncs with the host; only reading the state does.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np

from gpunet import serialization
from gpunet.backend import get_array_module
from gpunet.messages import unknown_name
from gpunet.metric_base import Mean, MeanMetricWrapper, Metric, _row_weights, _same_rank  # noqa: F401
from gpunet.metrics_confusion import AUC, Precision, Recall


def _kept(buffers, xp, name, shape, dtype):
    return xp.empty(shape, dtype) if buffers is None else buffers.get(xp, name, shape, dtype)


def binary_accuracy(y_true, y_pred, threshold: float = 0.5, buffers=None):
    """Per sample: the fraction of outputs where (y_pred > threshold) equals y_true."""
    xp = get_array_module(y_pred)
    predicted = _kept(buffers, xp, "predicted", y_pred.shape, "bool")
    actual = _kept(buffers, xp, "actual", y_pred.shape, "bool")
    xp.greater(y_pred, threshold, out=predicted)
    xp.greater(y_true, 0.5, out=actual)
    xp.equal(predicted, actual, out=predicted)
    out = _kept(buffers, xp, "values", y_pred.shape[:-1], y_pred.dtype)
    return predicted.mean(axis=-1, dtype=y_pred.dtype, out=out)


def categorical_accuracy(y_true, y_pred, buffers=None):
    """Per sample: 1.0 where argmax(y_pred) == argmax(y_true)."""
    xp = get_array_module(y_pred)
    rows = y_pred.shape[:-1]
    predicted = y_pred.argmax(axis=-1, out=_kept(buffers, xp, "predicted", rows, "int64"))
    actual = y_true.argmax(axis=-1, out=_kept(buffers, xp, "actual", rows, "int64"))
    return xp.equal(predicted, actual, out=_kept(buffers, xp, "values", rows, y_pred.dtype))


def sparse_categorical_accuracy(y_true, y_pred, buffers=None):
    """Per sample: 1.0 where argmax(y_pred) equals the integer label."""
    xp = get_array_module(y_pred)
    rows = y_pred.shape[:-1]
    predicted = y_pred.argmax(axis=-1, out=_kept(buffers, xp, "predicted", rows, "int64"))
    labels = y_true.reshape(rows)
    return xp.equal(predicted, labels, out=_kept(buffers, xp, "values", rows, y_pred.dtype))


# These write their values into kept buffers (MeanMetricWrapper passes its own).
for _fn in (binary_accuracy, categorical_accuracy, sparse_categorical_accuracy):
    _fn.buffered = True


def _in_top_k(target_scores, y_pred, k: int):
    # The target is in the top k when fewer than k scores beat it strictly (tf.math.in_top_k).
    return ((y_pred > target_scores[:, None]).sum(axis=-1) < k).astype(y_pred.dtype)


def top_k_categorical_accuracy(y_true, y_pred, k: int = 5):
    """Per sample: 1.0 where the true class (argmax of y_true) is among the k highest scores."""
    xp = get_array_module(y_pred)
    target = y_pred[xp.arange(y_pred.shape[0]), y_true.argmax(axis=-1)]
    return _in_top_k(target, y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k: int = 5):
    """Per sample: 1.0 where the integer label is among the k highest scores."""
    xp = get_array_module(y_pred)
    target = y_pred[xp.arange(y_pred.shape[0]), y_true.reshape(-1)]
    return _in_top_k(target, y_pred, k)


def mean_squared_error(y_true, y_pred):
    diff = y_pred - _same_rank(y_true, y_pred)
    return (diff * diff).mean(axis=-1)


def mean_absolute_error(y_true, y_pred):
    return get_array_module(y_pred).abs(y_pred - _same_rank(y_true, y_pred)).mean(axis=-1)


class RootMeanSquaredError(Mean):
    """sqrt of the weighted mean of squared errors over all outputs."""

    def __init__(self, name: str = "root_mean_squared_error"):
        super().__init__(name)

    def _update(self, state, y_true, y_pred, sample_weight):
        diff = y_pred - _same_rank(y_true, y_pred)
        self._add(state, diff * diff, sample_weight)

    def result_from(self, state):
        return float(np.sqrt(super().result_from(state)))


def mean_absolute_percentage_error(y_true, y_pred):
    """100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7)) over the last axis (Keras 3)."""
    xp = get_array_module(y_pred)
    y_true = _same_rank(y_true, y_pred)
    scale = xp.maximum(xp.abs(y_true), 1e-7)
    return 100.0 * (xp.abs(y_true - y_pred) / scale).mean(axis=-1)


def _with_options(fn, options: dict):
    """`fn` with its keyword options fixed; it keeps fn's attributes (`buffered`: a metric
    built with a threshold still writes into kept buffers rather than new arrays each step)."""
    if not options:
        return fn
    return functools.update_wrapper(functools.partial(fn, **options), fn)


def _wrapper(class_name: str, fn, default_name: str, doc: str):
    """A MeanMetricWrapper class for `fn` with Keras 3's class name and default log name; its
    keyword options (threshold, k) go to `fn`."""

    # The options and their defaults, as Keras's config lists them (threshold, k).
    defaults = {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.default is not inspect.Parameter.empty and p.name != "buffers"
    }

    def __init__(self, name: str = default_name, **options):
        MeanMetricWrapper.__init__(self, _with_options(fn, options), name)
        self._given = options

    def _options(self):
        return {**defaults, **self._given}

    body = {"__init__": __init__, "_options": _options, "__doc__": doc, "__module__": __name__}
    return type(class_name, (MeanMetricWrapper,), body)


BinaryAccuracy = _wrapper(
    "BinaryAccuracy", binary_accuracy, "binary_accuracy", "(y_pred > threshold) == y_true."
)
CategoricalAccuracy = _wrapper(
    "CategoricalAccuracy", categorical_accuracy, "categorical_accuracy", "Argmaxes equal."
)
SparseCategoricalAccuracy = _wrapper(
    "SparseCategoricalAccuracy",
    sparse_categorical_accuracy,
    "sparse_categorical_accuracy",
    "argmax(y_pred) == the integer label.",
)
TopKCategoricalAccuracy = _wrapper(
    "TopKCategoricalAccuracy",
    top_k_categorical_accuracy,
    "top_k_categorical_accuracy",
    "The true class is among the k highest scores (k=5).",
)
SparseTopKCategoricalAccuracy = _wrapper(
    "SparseTopKCategoricalAccuracy",
    sparse_top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy",
    "The integer label is among the k highest scores (k=5).",
)
MeanSquaredError = _wrapper(
    "MeanSquaredError", mean_squared_error, "mean_squared_error", "Mean of squared errors."
)
MeanAbsoluteError = _wrapper(
    "MeanAbsoluteError", mean_absolute_error, "mean_absolute_error", "Mean of absolute errors."
)
MeanAbsolutePercentageError = _wrapper(
    "MeanAbsolutePercentageError",
    mean_absolute_percentage_error,
    "mean_absolute_percentage_error",
    "100 * mean(|y_true - y_pred| / |y_true|).",
)

_FUNCTIONS = {
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
    "mean_squared_error": mean_squared_error,
    "mse": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "mae": mean_absolute_error,
    "mean_absolute_percentage_error": mean_absolute_percentage_error,
    "mape": mean_absolute_percentage_error,
}
_CLASSES = {
    "precision": Precision,
    "recall": Recall,
    "auc": AUC,
    "root_mean_squared_error": RootMeanSquaredError,
    "rmse": RootMeanSquaredError,
}
# Keras 3 also takes the class names as strings ("RootMeanSquaredError"); the metric then logs
# under its default name, as there.
_BY_CLASS_NAME = {
    cls.__name__: cls
    for cls in (
        Precision,
        Recall,
        AUC,
        RootMeanSquaredError,
        BinaryAccuracy,
        CategoricalAccuracy,
        SparseCategoricalAccuracy,
        TopKCategoricalAccuracy,
        SparseTopKCategoricalAccuracy,
        MeanSquaredError,
        MeanAbsoluteError,
        MeanAbsolutePercentageError,
    )
}
NAMES = (
    ("accuracy", "acc")
    + tuple(sorted(_FUNCTIONS))
    + tuple(sorted(_CLASSES))
    + tuple(sorted(_BY_CLASS_NAME))
)


def resolve_accuracy(y_true_shape: tuple, y_pred_shape: tuple):
    """Keras's choice for "accuracy": binary when the output has one unit, sparse when the
    targets have lower rank (or a last dimension of 1 against a wider output), else categorical.
    Shapes include the batch dimension."""
    if y_pred_shape[-1] == 1:
        return binary_accuracy
    if len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1):
        return sparse_categorical_accuracy
    return categorical_accuracy


def serialize(metric: Metric) -> dict:
    """Keras 3's serialized form of a metric object."""
    return serialization.serialize(metric, "keras.metrics")


def deserialize(config: dict) -> Metric:
    """The metric `serialize` (or Keras 3) described."""
    return serialization.deserialize(
        config, _BY_CLASS_NAME, "metric", lambda cls, arguments: cls.from_config(arguments)
    )


def get(identifier, y_true_shape: tuple = (None,), y_pred_shape: tuple = (None, 1)) -> Metric:
    """Build the metric for a name or serialized dict (or return a Metric instance), given the
    shapes it will see ("accuracy" depends on them)."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier in _BY_CLASS_NAME:
            return _BY_CLASS_NAME[identifier]()
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            return MeanMetricWrapper(resolve_accuracy(y_true_shape, y_pred_shape), identifier)
        if key in _FUNCTIONS:
            return MeanMetricWrapper(_FUNCTIONS[key], identifier)
        if key in _CLASSES:
            return _CLASSES[key](name=identifier)
    raise unknown_name("metric", identifier, NAMES)


def log_name(identifier) -> str:
    """The name a compiled metric logs under, known before its shapes are: an instance's name,
    a class name's default ("RootMeanSquaredError" -> "root_mean_squared_error"), else the
    string as written ("acc" stays "acc")."""
    if isinstance(identifier, Metric):
        return identifier.name
    if isinstance(identifier, dict):
        return deserialize(identifier).name
    if identifier in _BY_CLASS_NAME:
        return _BY_CLASS_NAME[identifier]().name
    return identifier


def check_name(identifier) -> None:
    """Raise ValueError at compile time for a name `get` will not resolve."""
    if isinstance(identifier, Metric):
        return
    if isinstance(identifier, dict):
        deserialize(identifier)  # raises for a bad one
        return
    if not isinstance(identifier, str) or (
        identifier not in _BY_CLASS_NAME and identifier.lower() not in NAMES
    ):
        raise unknown_name("metric", identifier, NAMES)
