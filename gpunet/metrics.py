"""Metrics with Keras 3 names and semantics: stateful, weighted running values over an epoch.

State stays on the device (xp scalars and vectors): updating a metric never syncs with the host;
only `result()` does.
"""

from __future__ import annotations

import numpy as np

from gpunet.backend import get_array_module, to_host


class Metric:
    """Base metric: `update_state(y_true, y_pred, sample_weight)`, `result()`, `reset_state()`."""

    state_names: tuple[str, ...] = ()  # the accumulators, for checkpoints

    def __init__(self, name: str):
        self.name = name
        self.reset_state()

    def get_state(self) -> dict:
        """Host float64 copies of the accumulators (a resumed epoch continues its means)."""
        return {k: np.asarray(to_host(getattr(self, k)), dtype="float64") for k in self.state_names}

    def set_state(self, state: dict) -> None:
        for name in self.state_names:
            value = state[name]
            setattr(self, name, float(value) if value.ndim == 0 else value)

    def reset_state(self) -> None:
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


class Mean(Metric):
    """Weighted mean of the values it is given: sum(v * w) / sum(w)."""

    state_names = ("total", "count")

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_values(self, values, sample_weight=None):
        if sample_weight is None:
            self.total = self.total + values.sum(dtype="float64")
            self.count = self.count + values.size
        else:
            weights = get_array_module(values).broadcast_to(
                sample_weight.reshape(sample_weight.shape + (1,) * (values.ndim - 1)), values.shape
            )
            self.total = self.total + (values * weights).sum(dtype="float64")
            self.count = self.count + weights.sum(dtype="float64")

    def result(self):
        count = float(self.count)
        return float(self.total) / count if count else 0.0


class MeanMetricWrapper(Mean):
    """The weighted mean of a per-sample function `fn(y_true, y_pred) -> (N,)`."""

    def __init__(self, fn, name: str):
        self.fn = fn
        super().__init__(name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.update_values(self.fn(y_true, y_pred), sample_weight)


def binary_accuracy(y_true, y_pred, threshold: float = 0.5):
    """Per sample: the fraction of outputs where (y_pred > threshold) equals y_true."""
    return ((y_pred > threshold) == (y_true > 0.5)).mean(axis=-1, dtype=y_pred.dtype)


def categorical_accuracy(y_true, y_pred):
    """Per sample: 1.0 where argmax(y_pred) == argmax(y_true)."""
    return (y_pred.argmax(axis=-1) == y_true.argmax(axis=-1)).astype(y_pred.dtype)


def sparse_categorical_accuracy(y_true, y_pred):
    """Per sample: 1.0 where argmax(y_pred) equals the integer label."""
    return (y_pred.argmax(axis=-1) == y_true.reshape(-1)).astype(y_pred.dtype)


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
    diff = y_pred - y_true
    return (diff * diff).mean(axis=-1)


def mean_absolute_error(y_true, y_pred):
    return get_array_module(y_pred).abs(y_pred - y_true).mean(axis=-1)


class RootMeanSquaredError(Mean):
    """sqrt of the weighted mean of squared errors over all outputs."""

    def __init__(self, name: str = "root_mean_squared_error"):
        super().__init__(name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        diff = y_pred - y_true
        self.update_values(diff * diff, sample_weight)

    def result(self):
        return float(np.sqrt(super().result()))


class _Confusion(Metric):
    """True/false positive/negative counts at the 0.5 threshold, over every output element."""

    state_names = ("tp", "fp", "fn")

    def reset_state(self):
        self.tp = self.fp = self.fn = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        xp = get_array_module(y_pred)
        predicted = y_pred > 0.5
        actual = xp.broadcast_to(y_true, y_pred.shape) > 0.5
        if sample_weight is None:
            weights = xp.ones(y_pred.shape, dtype="float64")
        else:
            shape = sample_weight.shape + (1,) * (y_pred.ndim - 1)
            weights = xp.broadcast_to(sample_weight.reshape(shape), y_pred.shape).astype("float64")
        self.tp = self.tp + (weights * (predicted & actual)).sum()
        self.fp = self.fp + (weights * (predicted & ~actual)).sum()
        self.fn = self.fn + (weights * (~predicted & actual)).sum()


def _ratio(numerator, denominator) -> float:
    denominator = float(denominator)
    return float(numerator) / denominator if denominator else 0.0


class Precision(_Confusion):
    """tp / (tp + fp) at threshold 0.5."""

    def __init__(self, name: str = "precision"):
        super().__init__(name)

    def result(self):
        return _ratio(self.tp, self.tp + self.fp)


class Recall(_Confusion):
    """tp / (tp + fn) at threshold 0.5."""

    def __init__(self, name: str = "recall"):
        super().__init__(name)

    def result(self):
        return _ratio(self.tp, self.tp + self.fn)


class AUC(Metric):
    """Area under the ROC curve from confusion counts at `num_thresholds` thresholds (Keras's
    interpolation rule: trapezoids over the false positive rate)."""

    def __init__(self, num_thresholds: int = 200, name: str = "auc"):
        if num_thresholds < 2:
            raise ValueError(f"AUC num_thresholds must be > 1, received {num_thresholds!r}.")
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.thresholds = np.array([-1e-7] + inner + [1.0 + 1e-7])
        super().__init__(name)

    state_names = ("positive_hist", "negative_hist")

    def reset_state(self):
        self.positive_hist = self.negative_hist = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        # Bucket b = number of thresholds strictly below the score: the score counts as a
        # predicted positive at threshold i exactly when i < b. Histograms per bucket, then
        # suffix sums at result(), replace a (samples x thresholds) comparison.
        xp = get_array_module(y_pred)
        thresholds = xp.asarray(self.thresholds, dtype=y_pred.dtype)
        buckets = xp.searchsorted(thresholds, y_pred.reshape(-1), side="left")
        actual = (xp.broadcast_to(y_true, y_pred.shape) > 0.5).reshape(-1)
        if sample_weight is None:
            weights = xp.ones(actual.shape, dtype="float64")
        else:
            shape = sample_weight.shape + (1,) * (y_pred.ndim - 1)
            weights = xp.broadcast_to(sample_weight.reshape(shape), y_pred.shape).reshape(-1)
            weights = weights.astype("float64")
        size = len(self.thresholds) + 1
        self.positive_hist = self.positive_hist + xp.bincount(
            buckets, weights=weights * actual, minlength=size
        )
        self.negative_hist = self.negative_hist + xp.bincount(
            buckets, weights=weights * ~actual, minlength=size
        )

    def result(self):
        if isinstance(self.positive_hist, float):  # nothing seen yet
            return 0.0
        positive = to_host(self.positive_hist)
        negative = to_host(self.negative_hist)
        # Counts at threshold i: predicted positive where bucket > i.
        tp = np.cumsum(positive[::-1])[::-1][1:]
        fp = np.cumsum(negative[::-1])[::-1][1:]
        fn = positive.sum() - tp
        tn = negative.sum() - fp
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
    raise ValueError(f"Unknown metric {identifier!r}. Allowed: {', '.join(NAMES)}.")


def check_name(identifier) -> None:
    """Raise ValueError at compile time for a name `get` will not resolve."""
    if isinstance(identifier, Metric):
        return
    if not isinstance(identifier, str) or identifier.lower() not in NAMES:
        raise ValueError(f"Unknown metric {identifier!r}. Allowed: {', '.join(NAMES)}.")
