"""Metrics with Keras 3 names and semantics: stateful, weighted running values over an epoch.

Each metric keeps its accumulators in a small float64 device vector (its own, or, inside fit
and evaluate, a slice of a `Tracker`'s, which reads every metric in one copy): updating never
syncs with the host; only reading the state does.
"""

from __future__ import annotations

import numpy as np

from gpunet.backend import get_array_module, to_host
from gpunet.buffers import Buffers
from gpunet.messages import unknown_name


class Metric:
    """Base metric: `update_state(y_true, y_pred, sample_weight)`, `result()`, `reset_state()`.

    Subclasses give `state_size`, `_update(state, ...)` (adds into the float64 device vector
    `state` in place) and `result_from(state)` (the value, from a host copy of the state).
    """

    state_size = 0

    def __init__(self, name: str):
        self.name = name
        self._state = None
        self._buffers = Buffers()

    def _accumulators(self, like):
        xp = get_array_module(like)
        if self._state is None or get_array_module(self._state) is not xp:
            self._state = xp.zeros(self.state_size, dtype="float64")
        return self._state

    def reset_state(self) -> None:
        if self._state is not None:
            self._state.fill(0.0)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        self._update(self._accumulators(y_pred), y_true, y_pred, sample_weight)

    def read_state(self) -> np.ndarray:
        """A host float64 copy of the accumulators (one device read)."""
        if self._state is None:
            return np.zeros(self.state_size)
        return np.asarray(to_host(self._state), dtype="float64")

    def result(self) -> float:
        return self.result_from(self.read_state())

    def _update(self, state, y_true, y_pred, sample_weight) -> None:
        raise NotImplementedError

    def result_from(self, state: np.ndarray) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


def _row_weights(sample_weight, values):
    """The (N,) sample weights shaped to broadcast against per-sample values (N, ...)."""
    return sample_weight.reshape(sample_weight.shape + (1,) * (values.ndim - 1))


class Mean(Metric):
    """Weighted mean of the values it is given: sum(v * w) / sum(w). State: [total, count]."""

    state_size = 2

    def _add(self, state, values, sample_weight):
        xp = get_array_module(values)
        total, count = state[0:1], state[1:2]
        partial = self._buffers.get(xp, "partial", (), "float64")
        if sample_weight is None:
            values.sum(dtype="float64", out=partial)
            total += partial
            count += values.size
            return
        weighted = self._buffers.get(xp, "weighted", values.shape, values.dtype)
        xp.multiply(values, _row_weights(sample_weight, values), out=weighted)
        weighted.sum(dtype="float64", out=partial)
        total += partial
        sample_weight.sum(dtype="float64", out=partial)
        partial *= values.size // max(values.shape[0], 1)  # each weight counts once per value
        count += partial

    def result_from(self, state):
        total, count = state
        return float(total / count) if count else 0.0


class MeanMetricWrapper(Mean):
    """The weighted mean of a per-sample function `fn(y_true, y_pred) -> (N,)`; a function that
    takes `buffers=` writes its values into kept buffers instead of new arrays."""

    def __init__(self, fn, name: str):
        self.fn = fn
        super().__init__(name)

    def _update(self, state, y_true, y_pred, sample_weight):
        if self.fn in _BUFFERED:
            values = self.fn(y_true, y_pred, buffers=self._buffers)
        else:
            values = self.fn(y_true, y_pred)
        self._add(state, values, sample_weight)


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


_BUFFERED = (binary_accuracy, categorical_accuracy, sparse_categorical_accuracy)


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


def _same_rank(y_true, y_pred):
    """Targets with one axis fewer than the outputs (class labels) get a trailing axis, as
    Keras's squeeze_or_expand_to_same_rank gives them, so they broadcast against the outputs."""
    if y_true.ndim == y_pred.ndim - 1:
        return y_true.reshape(y_true.shape + (1,))
    return y_true


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


def _weights_like(xp, y_pred, sample_weight):
    if sample_weight is None:
        return xp.ones(y_pred.shape, dtype="float64")
    shape = sample_weight.shape + (1,) * (y_pred.ndim - 1)
    return xp.broadcast_to(sample_weight.reshape(shape), y_pred.shape).astype("float64")


def _positive_labels(xp, y_true, y_pred):
    """Which targets are positives, shaped like the outputs: Keras casts labels to bool, so
    every nonzero label (0.3 as 1.0) is a positive."""
    return xp.broadcast_to(_same_rank(y_true, y_pred), y_pred.shape) != 0


class _Confusion(Metric):
    """True/false positive/negative counts at the 0.5 threshold, over every output element.
    State: [tp, fp, fn]."""

    state_size = 3

    def _update(self, state, y_true, y_pred, sample_weight):
        xp = get_array_module(y_pred)
        predicted = y_pred > 0.5
        actual = _positive_labels(xp, y_true, y_pred)
        weights = _weights_like(xp, y_pred, sample_weight)
        tp, fp, fn = state[0:1], state[1:2], state[2:3]
        tp += (weights * (predicted & actual)).sum()
        fp += (weights * (predicted & ~actual)).sum()
        fn += (weights * (~predicted & actual)).sum()


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


class Precision(_Confusion):
    """tp / (tp + fp) at threshold 0.5."""

    def __init__(self, name: str = "precision"):
        super().__init__(name)

    def result_from(self, state):
        tp, fp, _ = state
        return _ratio(tp, tp + fp)


class Recall(_Confusion):
    """tp / (tp + fn) at threshold 0.5."""

    def __init__(self, name: str = "recall"):
        super().__init__(name)

    def result_from(self, state):
        tp, _, fn = state
        return _ratio(tp, tp + fn)


class AUC(Metric):
    """Area under the ROC curve from confusion counts at `num_thresholds` thresholds (Keras's
    interpolation rule: trapezoids over the false positive rate).

    State: [tp at each threshold, fp at each threshold, positives, negatives]. An update is
    one comparison of every score with every threshold and two GEMVs: no histogram, so no
    `bincount`, which syncs on CuPy.
    """

    def __init__(self, num_thresholds: int = 200, name: str = "auc"):
        if num_thresholds < 2:
            raise ValueError(f"AUC num_thresholds must be > 1, received {num_thresholds!r}.")
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        # Keras clips scores to [0, 1] and puts the outer thresholds at 0 - eps and 1 + eps:
        # every score is above the first and none above the last, as with infinities here.
        self.thresholds = np.array([-np.inf] + inner + [np.inf])
        self.state_size = 2 * num_thresholds + 2
        super().__init__(name)

    def _update(self, state, y_true, y_pred, sample_weight):
        xp = get_array_module(y_pred)
        count = len(self.thresholds)
        thresholds = self._buffers.constant(
            xp,
            "thresholds",
            (count,),
            y_pred.dtype,
            lambda xp, s, d: xp.asarray(self.thresholds, d),
        )
        # A score is a predicted positive at threshold i when it exceeds it (Keras).
        above = (y_pred.reshape(-1, 1) > thresholds.reshape(1, -1)).astype("float64")
        actual = _positive_labels(xp, y_true, y_pred).reshape(-1)
        weights = _weights_like(xp, y_pred, sample_weight).reshape(-1)
        positive = weights * actual
        negative = weights - positive
        tp, fp = state[:count], state[count : 2 * count]
        tp += positive @ above
        fp += negative @ above
        positives, negatives = state[2 * count : 2 * count + 1], state[2 * count + 1 :]
        positives += positive.sum()
        negatives += negative.sum()

    def result_from(self, state):
        count = len(self.thresholds)
        tp, fp = state[:count], state[count : 2 * count]
        positives, negatives = state[2 * count], state[2 * count + 1]
        fn, tn = positives - tp, negatives - fp
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
            fp_rate = np.where(fp + tn > 0, fp / (fp + tn), 0.0)
        heights = (recall[:-1] + recall[1:]) / 2.0
        return float(np.sum((fp_rate[:-1] - fp_rate[1:]) * heights))


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
}
_CLASSES = {
    "precision": Precision,
    "recall": Recall,
    "auc": AUC,
    "root_mean_squared_error": RootMeanSquaredError,
}
NAMES = ("accuracy", "acc") + tuple(sorted(_FUNCTIONS)) + tuple(sorted(_CLASSES))


def resolve_accuracy(y_true_shape: tuple, y_pred_shape: tuple):
    """Keras's choice for "accuracy": binary when the output has one unit, sparse when the
    targets have lower rank (or a last dimension of 1 against a wider output), else categorical.
    Shapes include the batch dimension."""
    if y_pred_shape[-1] == 1:
        return binary_accuracy
    if len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1):
        return sparse_categorical_accuracy
    return categorical_accuracy


def get(identifier, y_true_shape: tuple, y_pred_shape: tuple) -> Metric:
    """Build the metric for a name (or return a Metric instance), given the shapes it will see."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            return MeanMetricWrapper(resolve_accuracy(y_true_shape, y_pred_shape), identifier)
        if key in _FUNCTIONS:
            return MeanMetricWrapper(_FUNCTIONS[key], identifier)
        if key in _CLASSES:
            return _CLASSES[key](name=identifier)
    raise unknown_name("metric", identifier, NAMES)


def check_name(identifier) -> None:
    """Raise ValueError at compile time for a name `get` will not resolve."""
    if isinstance(identifier, Metric):
        return
    if not isinstance(identifier, str) or identifier.lower() not in NAMES:
        raise unknown_name("metric", identifier, NAMES)
