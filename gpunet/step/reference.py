"""`ReferenceStep`: one training or evaluation step of a compiled Sequential, in plain `xp`
calls (NumPy or CuPy), the oracle every faster step is checked against.

The contract between the parts: the optimizer names a loss scale s (`loss_scale()`, 1 unless
its rule is cheaper on scaled gradients: SGD's is -lr); the loss returns its per-sample values
and the gradient of s times the batch's mean loss (s/N and the sample weights applied);
backpropagation, regularizers included, turns that into the flat gradient of s * loss; the
optimizer's `apply(params, grads, s)` updates from it. Every array the step writes is kept
across steps (per batch shape), so after the first epoch a step allocates nothing.

Data-parallel (gpunet.distributed): each rank runs the step on its shard of the global batch,
scaled by the global batch's rows, with the penalties' gradients on rank 0 alone; the ranks'
gradients are summed in one all-reduce before the update, which every rank then applies alike.
"""

from __future__ import annotations

from gpunet import distributed
from gpunet.backend import get_array_module
from gpunet.buffers import Buffers
from gpunet.layers import Dropout, _Activated


class ReferenceStep:
    """Forward, loss, backward and update of one batch, for one compiled model.

    Args:
        model: a built, compiled Sequential.
    """

    def __init__(self, model):
        self.model = model
        self.layers = model.layers
        self.loss = model.loss
        self.optimizer = model.optimizer
        last = self.layers[-1]
        fusable = getattr(self.loss, "fusable_activation", None)  # predict needs no loss
        # Softmax (sigmoid) + cross-entropy from the last layer's logits, in one stable pass.
        self.fused = (
            fusable is not None
            and not getattr(self.loss, "from_logits", False)
            and isinstance(last, _Activated)
            and last.activation.name == fusable
        )
        self.regularized = [layer for layer in self.layers if layer.regularized]
        self.dropouts = [layer for layer in self.layers if isinstance(layer, Dropout)]
        self.world = distributed.world()
        self.buffers = Buffers()

    def forward(self, x, training: bool, logits: bool = False):
        """The model's output; with logits=True, the last layer's pre-activation instead."""
        *body, last = self.layers
        for layer in body:
            x = layer.forward(x, training)
        return last.forward(x, training, activate=False) if logits else last.forward(x, training)

    def _penalty(self):
        terms = [p for p in (layer.penalty() for layer in self.regularized) if p is not None]
        return sum(terms[1:], terms[0]) if terms else None

    def _loss(self, y_true, out, weights, total, with_grad: bool, scale: float = 1.0, rows=None):
        """Writes sum(loss * weight) + N * penalty into the 0-d float64 `total`; returns
        (y_pred, scale * d mean loss / d out, or / d logits when fused, if asked). The mean is
        over `rows` rows (default: the N of this batch; a rank's shard: the global batch's)."""
        xp = get_array_module(out)
        n = out.shape[0]
        rows = n if rows is None else rows
        grad = None
        if self.fused:
            y_pred = self.buffers.get(xp, "y_pred", out.shape, out.dtype)
            if with_grad:
                grad = self.buffers.get(xp, "grad", out.shape, out.dtype)
            per_sample = self.loss.fused(y_true, out, y_pred, grad, scale / rows, self.buffers)
        else:
            y_pred = out
            per_sample = self.loss.per_sample(y_true, y_pred)
            if with_grad:
                grad = self.loss.grad(y_true, y_pred)  # a new array: scaled in place
                grad *= scale / rows
        # "sum_over_batch_size": each sample's gradient is scaled by its weight / N.
        if weights is not None:
            per_sample *= weights
            if grad is not None:
                grad *= weights.reshape((n,) + (1,) * (grad.ndim - 1))
        per_sample.sum(dtype="float64", out=total)
        penalty = self._penalty()
        if penalty is not None:
            total += penalty * n
        return y_pred, grad

    def gradients(self, x, y, weights, total, scale: float = 1.0, position=None):
        """Forward and backward on the batch: the flat gradient of scale * its mean loss fills
        the model's gradient buffer; the loss total goes into `total`. Returns the
        predictions. `position`: (first row, rows) of a shard x in its global batch."""
        rows = None
        if position is not None:
            rows = position[1]
            for layer in self.dropouts:  # masks drawn by position in the global batch
                layer.position = position
        out = self.forward(x, True, logits=self.fused)
        y_pred, grad = self._loss(y, out, weights, total, True, scale, rows)
        last = self.layers[-1]
        grad = last.backward(grad, from_logits=True) if self.fused else last.backward(grad)
        for layer in reversed(self.layers[:-1]):
            if grad is None:
                break
            grad = layer.backward(grad)
        if self.world.rank == 0:  # the penalty's gradient once, however many ranks
            for layer in self.regularized:
                layer.add_penalty_gradients(scale)
        return y_pred

    def train(self, x, y, weights, total, position=None):
        """One training step on the batch: gradients, then the optimizer's update. Returns the
        predictions, for the metrics. `position`: (first row, rows) of a rank's shard x in
        the global batch."""
        scale = self.optimizer.loss_scale()
        y_pred = self.gradients(x, y, weights, total, scale, position)
        if self.world.size > 1:
            self.world.all_sum(self.model._grads, what="a step's gradient all-reduce")
        params = self.model._params
        # Frozen layers (trainable = False) keep their weights: put them back after the update
        # (their optimizer slots may move; Keras rebuilds those on the next compile).
        kept = [(a, b, params[a:b].copy()) for a, b in self.model._frozen_segments()]
        self.optimizer.apply(params, self.model._grads, scale)
        for a, b, values in kept:
            params[a:b] = values
        return y_pred

    def evaluate(self, x, y, weights, total):
        """Forward and loss of the batch (dropout off); returns the predictions."""
        out = self.forward(x, False, logits=self.fused)
        y_pred, _ = self._loss(y, out, weights, total, False)
        return y_pred
