"""Metrics counted from a confusion matrix at thresholds: Precision, Recall and AUC (Keras 3's
definitions: labels cast to bool, scores clipped into [0, 1] for AUC)."""

from __future__ import annotations

import numpy as np

from gpunet.backend import get_array_module
from gpunet.metric_base import Metric, _same_rank


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
    keras_only = {"thresholds": None, "top_k": None, "class_id": None}

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

    keras_only = {
        "curve": "ROC",
        "summation_method": "interpolation",
        "multi_label": False,
        "num_labels": None,
        "label_weights": None,
        "from_logits": False,
    }

    def __init__(self, num_thresholds: int = 200, name: str = "auc"):
        if num_thresholds < 2:
            raise ValueError(f"AUC num_thresholds must be > 1, received {num_thresholds!r}.")
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        # Keras clips scores to [0, 1] and puts the outer thresholds at 0 - eps and 1 + eps:
        # every score is above the first and none above the last, as with infinities here.
        self.thresholds = np.array([-np.inf] + inner + [np.inf])
        self.state_size = 2 * num_thresholds + 2
        self.num_thresholds = num_thresholds
        super().__init__(name)

    def _options(self) -> dict:
        return {"num_thresholds": self.num_thresholds}

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
