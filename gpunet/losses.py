"""Losses with Keras 3 names and formulas: per-sample values and their gradients, against `xp`.

A model reduces per-sample losses as Keras's "sum_over_batch_size": sum(loss * weight) / N.
Cross-entropies on probabilities follow Keras (normalise, clip to [1e-7, 1 - 1e-7], log); when
the model ends in the matching activation (softmax or sigmoid) the model instead computes them
from the logits in one stable step, finite for logits of +-1e4, as Keras's TensorFlow backend
and PyTorch do.
"""

from __future__ import annotations

import numpy as np

from gpunet import serialization
from gpunet.backend import get_array_module, to_host
from gpunet.buffers import Buffers
from gpunet.kernels import activations
from gpunet.messages import unknown_name

EPSILON = 1e-7  # keras.config.epsilon()


class Loss:
    """Base loss. Subclasses give `per_sample(y_true, y_pred)` (N,) and `grad(y_true, y_pred)`,
    the gradient of each sample's loss w.r.t. y_pred."""

    name = "loss"
    sparse = False  # targets are integer class indices, not arrays shaped like the output
    fusable_activation: str | None = None  # output activation this loss can absorb

    def per_sample(self, y_true, y_pred):
        raise NotImplementedError

    def grad(self, y_true, y_pred):
        raise NotImplementedError

    def fused(
        self, y_true, logits, probs_out, grad_out=None, grad_scale: float = 1.0, buffers=None
    ):
        """Per-sample losses of `fusable_activation(logits)`, computed from the logits.

        Writes the activation's output into `probs_out` and, when `grad_out` is given, each
        sample's d loss / d logits times `grad_scale` into it. With `buffers` (a gpunet
        Buffers), a loss that can writes its temporaries into kept arrays.
        """
        probs = activations.get(self.fusable_activation).fwd(logits, probs_out)
        if grad_out is not None:
            get_array_module(logits).multiply(
                self.grad_from_logits(y_true, logits, probs), grad_scale, out=grad_out
            )
        return self.per_sample_from_logits(y_true, logits)

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        """The reduced loss, as `keras.losses.X()(y_true, y_pred, sample_weight)`."""
        values = self.per_sample(y_true, y_pred)
        if sample_weight is not None:
            values = values * sample_weight
        return float(values.sum() / values.shape[0])

    def get_config(self) -> dict:
        """The constructor arguments that rebuild this loss (Keras's `get_config`)."""
        return serialization.constructor_config(self)

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def check_targets(self, y_true: np.ndarray, output_shape: tuple[int, ...], where: str) -> None:
        """Raise ValueError when targets don't fit the model's output; targets shaped (N,) fit
        an output of one unit (Keras expands them to (N, 1))."""
        if y_true.ndim == 1 and tuple(output_shape) == (1,):
            return
        if y_true.shape[1:] != output_shape:
            expected = (None,) + tuple(output_shape)
            raise ValueError(
                f"{where}: {self.name} expects targets shaped like the model output {expected}, "
                f"received {y_true.shape}."
                + (
                    "\nHint: one-hot encode labels with gn.utils.to_categorical, or use "
                    "sparse_categorical_crossentropy."
                    if y_true.ndim == 1 and self.name == "categorical_crossentropy"
                    else ""
                )
            )


class MeanSquaredError(Loss):
    """mean((y_pred - y_true)^2) over the last axis."""

    name = "mean_squared_error"

    def per_sample(self, y_true, y_pred):
        diff = y_pred - y_true
        return (diff * diff).mean(axis=-1)

    def grad(self, y_true, y_pred):
        return (y_pred - y_true) * (2.0 / y_pred.shape[-1])


class MeanAbsoluteError(Loss):
    """mean(|y_pred - y_true|) over the last axis."""

    name = "mean_absolute_error"

    def per_sample(self, y_true, y_pred):
        return get_array_module(y_pred).abs(y_pred - y_true).mean(axis=-1)

    def grad(self, y_true, y_pred):
        return get_array_module(y_pred).sign(y_pred - y_true) * (1.0 / y_pred.shape[-1])


class Huber(Loss):
    """0.5 e^2 where |e| <= delta, else delta * (|e| - 0.5 delta); mean over the last axis."""

    name = "huber"

    def __init__(self, delta: float = 1.0):
        if delta <= 0:
            raise ValueError(f"Huber delta must be positive, received {delta!r}.")
        self.delta = float(delta)

    def per_sample(self, y_true, y_pred):
        xp = get_array_module(y_pred)
        error = xp.abs(y_pred - y_true)
        quadratic = xp.minimum(error, self.delta)
        linear = error - quadratic
        return (0.5 * quadratic * quadratic + self.delta * linear).mean(axis=-1)

    def grad(self, y_true, y_pred):
        xp = get_array_module(y_pred)
        return xp.clip(y_pred - y_true, -self.delta, self.delta) * (1.0 / y_pred.shape[-1])


class BinaryCrossentropy(Loss):
    """-(y log p + (1 - y) log(1 - p)), mean over the last axis; p = sigmoid(y_pred) with
    from_logits=True."""

    name = "binary_crossentropy"
    fusable_activation = "sigmoid"

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    def per_sample(self, y_true, y_pred):
        if self.from_logits:
            return self.per_sample_from_logits(y_true, y_pred)
        xp = get_array_module(y_pred)
        p = xp.clip(y_pred, EPSILON, 1.0 - EPSILON)
        return -(y_true * xp.log(p) + (1.0 - y_true) * xp.log(1.0 - p)).mean(axis=-1)

    def grad(self, y_true, y_pred):
        if self.from_logits:
            return self.grad_from_logits(y_true, y_pred, None)
        xp = get_array_module(y_pred)
        p = xp.clip(y_pred, EPSILON, 1.0 - EPSILON)
        g = ((1.0 - y_true) / (1.0 - p) - y_true / p) * (1.0 / y_pred.shape[-1])
        g *= y_pred == p  # the clip passes no gradient where it bites
        return g

    def per_sample_from_logits(self, y_true, z):
        # max(z, 0) - z*y + log(1 + exp(-|z|)): no overflow for any z.
        xp = get_array_module(z)
        return (xp.maximum(z, 0.0) - z * y_true + xp.log1p(xp.exp(-xp.abs(z)))).mean(axis=-1)

    def grad_from_logits(self, y_true, z, probs):
        if probs is None:
            probs = activations.get("sigmoid")(z)
        return (probs - y_true) * (1.0 / z.shape[-1])


class CategoricalCrossentropy(Loss):
    """-sum(y log p) over the last axis, p = y_pred / sum(y_pred) (or softmax(y_pred) with
    from_logits=True)."""

    name = "categorical_crossentropy"
    fusable_activation = "softmax"

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    def _targets(self, y_true, like):
        return y_true

    def per_sample(self, y_true, y_pred):
        if self.from_logits:
            return self.per_sample_from_logits(y_true, y_pred)
        xp = get_array_module(y_pred)
        t = self._targets(y_true, y_pred)
        p = xp.clip(y_pred / y_pred.sum(axis=-1, keepdims=True), EPSILON, 1.0 - EPSILON)
        return -(t * xp.log(p)).sum(axis=-1)

    def grad(self, y_true, y_pred):
        if self.from_logits:
            return self.grad_from_logits(y_true, y_pred, None)
        # Through q = y_pred / s (s the row sum) and c = clip(q): with a = -t / c where the
        # clip passes gradient (else 0), d/dy_j = (a_j - sum_k a_k q_k) / s.
        xp = get_array_module(y_pred)
        t = self._targets(y_true, y_pred)
        s = y_pred.sum(axis=-1, keepdims=True)
        q = y_pred / s
        c = xp.clip(q, EPSILON, 1.0 - EPSILON)
        a = -t / c
        a *= q == c
        return (a - (a * q).sum(axis=-1, keepdims=True)) / s

    def fused(
        self, y_true, logits, probs_out, grad_out=None, grad_scale: float = 1.0, buffers=None
    ):
        # The softmax and the log-sum-exp share one exp pass; both are exact for any logits.
        buffers = Buffers() if buffers is None else buffers
        probs, lse = activations.softmax_lse(logits, probs_out, buffers)
        targets = self._fused_targets(y_true, logits, buffers)
        if grad_out is not None:
            self._softmax_grad(targets, probs, grad_out, grad_scale, buffers)
        return self._xent(targets, logits, lse, buffers)

    def _fused_targets(self, y_true, like, buffers):
        """The targets in the form `_xent` and `_softmax_grad` take (here: as given)."""
        return y_true

    def per_sample_from_logits(self, y_true, z):
        return self.fused(y_true, z, get_array_module(z).empty_like(z))

    def grad_from_logits(self, y_true, z, probs):
        if probs is None:
            probs = activations.get("softmax")(z)
        xp = get_array_module(probs)
        buffers = Buffers()
        targets = self._fused_targets(y_true, z, buffers)
        return self._softmax_grad(targets, probs, xp.empty_like(probs), 1.0, buffers)

    def _xent(self, targets, z, lse, buffers):
        # -sum(t * log_softmax(z)) = logsumexp(z) * sum(t) - sum(t * z)
        xp = get_array_module(z)
        rows = z.shape[:-1]
        total = targets.sum(axis=-1, out=buffers.get(xp, "xent_tsum", rows, z.dtype))
        out = xp.multiply(lse, total, out=buffers.get(xp, "xent", rows, z.dtype))
        product = xp.multiply(z, targets, out=buffers.get(xp, "xent_tz", z.shape, z.dtype))
        out -= product.sum(axis=-1, out=total)
        return out

    def _softmax_grad(self, targets, probs, out, scale, buffers):
        # d/dz of -sum(t * log_softmax(z)) = softmax(z) * sum(t) - t, times scale.
        xp = get_array_module(probs)
        rows = probs.shape[:-1] + (1,)
        total = targets.sum(
            axis=-1, keepdims=True, out=buffers.get(xp, "grad_tsum", rows, probs.dtype)
        )
        xp.multiply(probs, total, out=out)
        out -= targets
        if scale != 1.0:
            out *= scale
        return out


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Categorical cross-entropy with integer class targets of shape (N,) or (N, 1)."""

    name = "sparse_categorical_crossentropy"
    sparse = True

    def _targets(self, y_true, like):
        # One-hot rows, for the loss on probabilities (a new array: not the training step's
        # fused path).
        xp = get_array_module(like)
        classes = xp.arange(like.shape[-1], dtype=y_true.dtype)
        return xp.equal(y_true.reshape(-1, 1), classes.reshape(1, -1)).astype(like.dtype)

    def _fused_targets(self, labels, like, buffers):
        """row * classes + label for each row: where each row's label sits in the flattened
        (N, classes) array, into a kept buffer (a gather and a scatter without fancy indexing,
        which allocates)."""
        xp = get_array_module(like)
        rows, classes = like.shape[0], like.shape[-1]
        offsets = buffers.constant(
            xp,
            "row_offsets",
            (rows,),
            labels.dtype,
            lambda xp, s, d: xp.arange(s[0], dtype=d) * classes,
        )
        return xp.add(
            offsets, labels.reshape(rows), out=buffers.get(xp, "flat_index", (rows,), labels.dtype)
        )

    def _xent(self, index, z, lse, buffers):
        # logsumexp(z) - z[label]
        xp = get_array_module(z)
        rows = z.shape[:-1]
        # take() without an axis reads the flattened array: `index` holds flat positions.
        picked = z.take(index, out=buffers.get(xp, "xent_picked", rows, z.dtype))
        return xp.subtract(lse, picked, out=buffers.get(xp, "xent", rows, z.dtype))

    def _softmax_grad(self, index, probs, out, scale, buffers):
        # (softmax(z) - one_hot(label)) * scale: the scaled probabilities, less scale at each
        # row's label.
        xp = get_array_module(probs)
        xp.multiply(probs, scale, out=out)
        # take() and put() address the flattened array: `index` holds flat positions.
        at_label = out.take(index, out=buffers.get(xp, "grad_at_label", index.shape, out.dtype))
        at_label -= scale
        xp.put(out, index, at_label)
        return out

    def check_targets(self, y_true, output_shape, where):
        if y_true.ndim > 2 or (y_true.ndim == 2 and y_true.shape[1] != 1):
            raise ValueError(
                f"{where}: {self.name} expects integer class indices shaped (N,) or (N, 1), "
                f"received {y_true.shape}.\nHint: for one-hot targets use categorical_crossentropy."
            )
        num_classes = output_shape[-1]
        labels = to_host(y_true)
        if labels.size and (
            not np.all(np.mod(labels, 1) == 0) or labels.min() < 0 or labels.max() >= num_classes
        ):
            raise ValueError(
                f"{where}: {self.name} expects integer labels in [0, {num_classes}) for a model "
                f"with {num_classes} outputs, received values from {labels.min()} to "
                f"{labels.max()}."
            )


_BY_NAME = {
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "huber": Huber,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}


_CLASSES = {
    cls.__name__: cls
    for cls in (
        MeanSquaredError,
        MeanAbsoluteError,
        Huber,
        BinaryCrossentropy,
        CategoricalCrossentropy,
        SparseCategoricalCrossentropy,
    )
}


def serialize(loss: Loss) -> dict:
    """Keras 3's serialized form of a loss."""
    return serialization.serialize(loss, "keras.losses")


def deserialize(config: dict) -> Loss:
    """The loss `serialize` (or Keras 3) described."""
    return serialization.deserialize(config, _CLASSES, "loss")


def get(identifier) -> Loss:
    """Resolve a loss name, class name, serialized dict or instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier in _CLASSES:
        return _CLASSES[identifier]()
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise unknown_name("loss", identifier, sorted(_BY_NAME))
