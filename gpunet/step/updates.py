"""`Updates`: the optimizer's update over the flat parameters as fused kernels, one launch
per step (plus three for norm clipping, one more for Nadam's running product): every built-in
optimizer's rule, with clipvalue, clipnorm, global_clipnorm and weight decay, each the xp
rule's arithmetic (gpunet/cuda/optimizers.cu). An optimizer no kernel knows (a subclass) runs
its own xp update instead.
"""

from __future__ import annotations

import numpy as np

from gpunet.buffers import Buffers
from gpunet.cuda import kernels
from gpunet.optimizers import SGD, Adagrad, Adam, Adamax, AdamW, Nadam, RMSprop

FUSED_UPDATES = {
    SGD: "sgd",
    RMSprop: "rmsprop",
    Adam: "adam",
    AdamW: "adam",
    Adagrad: "adagrad",
    Adamax: "adamax",
    Nadam: "nadam",
}
CLIP_PARTS = 256  # threads per variable summing its squares, for norm clipping


def fused_rule(optimizer) -> str | None:
    """The fused update kernel computing this optimizer's rule ('sgd', 'adam', ...), or None
    (a subclass: its own xp update runs)."""
    return FUSED_UPDATES.get(type(optimizer))


def _starts(values: list[int]):
    """A maker of a device int32 array holding `values`, written on the device."""

    def make(xp, shape, dtype):
        out = xp.empty(shape, dtype)
        for k, value in enumerate(values):
            out[k : k + 1].fill(np.int32(value))
        return out

    return make


# The running products step_end advances after the update (Nadam's: nadam_advance).
_ADVANCED_BY_STEP_END = {"adam": ("beta_1_power", "beta_2_power"), "adamax": ("beta_1_power",)}


class Updates:
    """The update of one optimizer over one model's flat parameters.

    Args:
        xp: the device array module.
        optimizer: the model's built optimizer.
        params, grads: the flat parameter and gradient vectors.
    """

    def __init__(self, xp, optimizer, params, grads):
        self.xp, self.optimizer, self.params, self.grads = xp, optimizer, params, grads
        self.rule = fused_rule(optimizer)
        # The loss kernel applies the optimizer's loss scale (SGD's -lr) unless the update
        # needs the true gradient (clipping); an xp rule gets what the loss kernel scaled.
        self.scaled_loss = self.rule in ("sgd", None) and optimizer.loss_scale() != 1.0
        self.buffers = Buffers()
        if optimizer.clipnorm is not None or optimizer.global_clipnorm is not None:
            self._clip_buffers()  # made now: a capture allocates nothing

    def loss_scale(self) -> float:
        """The factor the loss kernel multiplies the loss by."""
        return self.optimizer.loss_scale() if self.scaled_loss else 1.0

    def products(self):
        """[(running product, its factor)] that step_end advances after the update (<= 2)."""
        optimizer = self.optimizer
        names = _ADVANCED_BY_STEP_END.get(self.rule, ())
        return [(optimizer.products[n], getattr(optimizer, "beta_" + n[5])) for n in names]

    def sync_rates(self) -> None:
        """The learning rates the update kernels read, written where they changed."""
        optimizer = self.optimizer
        if self.rule is not None:
            rate = optimizer.learning_rate
            optimizer._scalar("learning_rate", rate)
            optimizer._scalar("learning_rate_64", rate, "float64")
            optimizer._scalar("negative_learning_rate", -rate)

    def _clip_buffers(self):
        """Each variable's start in the flat vector (and the end), its partial sums of
        squares and its clip factor."""
        segments = self.optimizer._segments
        bounds = [start for start, _ in segments] + [self.grads.size]
        return (
            self.buffers.constant(
                self.xp, "segment_starts", (len(bounds),), np.int32, _starts(bounds)
            ),
            self.buffers.get(self.xp, "clip_partials", (len(segments) * CLIP_PARTS,), np.float64),
            self.buffers.get(self.xp, "clip_factors", (len(segments),), np.float32),
        )

    def _clip_norms(self) -> None:
        """clipnorm (each variable) or global_clipnorm, on the device: three launches."""
        xp, optimizer, grads = self.xp, self.optimizer, self.grads
        limit = optimizer.clipnorm if optimizer.clipnorm is not None else optimizer.global_clipnorm
        segments = len(optimizer._segments)
        starts, partials, factors = self._clip_buffers()
        launch = kernels.launch
        launch(xp, "sum_squares", segments * CLIP_PARTS, grads, starts, segments, CLIP_PARTS,
               partials)  # fmt: skip
        launch(xp, "clip_factors", 1, partials, segments, CLIP_PARTS, float(np.float32(limit)),
               int(optimizer.clipnorm is None), factors)  # fmt: skip
        launch(xp, "scale_segments", grads.size, grads, starts, segments, factors, grads.size)

    def enqueue(self) -> None:
        """The update's launches (after the backward pass and the penalties)."""
        xp, optimizer = self.xp, self.optimizer
        params, grads = self.params, self.grads
        n, rule = params.size, self.rule
        if rule is None:  # the optimizer's own xp rule, from what the loss kernel scaled
            optimizer.apply(params, grads, self.loss_scale())
            return
        if optimizer.clipnorm is not None or optimizer.global_clipnorm is not None:
            self._clip_norms()
        slots, products, scalars = optimizer.slots, optimizer.products, optimizer._host_scalars
        lr = scalars["learning_rate"].array
        clip = -1.0 if optimizer.clipvalue is None else float(np.float32(optimizer.clipvalue))
        decay = float(np.float32(optimizer.weight_decay or 0.0))

        def f32(value):
            return float(np.float32(value))

        launch = kernels.launch
        if rule == "sgd":
            negative = None if self.scaled_loss else scalars["negative_learning_rate"].array
            launch(xp, "sgd_update", n, params, grads, slots.get("momentum"), n,
                   f32(optimizer.momentum), int(optimizer.nesterov), negative, clip, decay,
                   lr)  # fmt: skip
        elif rule == "rmsprop":
            launch(xp, "rmsprop_update", n, params, grads, slots["velocity"],
                   slots.get("average_gradient"), slots.get("momentum"), n, lr,
                   f32(optimizer.rho), f32(1.0 - optimizer.rho), f32(optimizer.momentum),
                   f32(optimizer.epsilon), clip, decay)  # fmt: skip
        elif rule == "adagrad":
            launch(xp, "adagrad_update", n, params, grads, slots["accumulator"], n, lr,
                   f32(optimizer.epsilon), clip, decay)  # fmt: skip
        elif rule == "adam":
            launch(xp, "adam_update", n, params, grads, slots["momentum"], slots["velocity"],
                   slots.get("velocity_hat"), n, lr, scalars["learning_rate_64"].array,
                   products["beta_1_power"], products["beta_2_power"], optimizer.beta_1,
                   optimizer.beta_2, f32(1.0 - optimizer.beta_1), f32(1.0 - optimizer.beta_2),
                   f32(optimizer.epsilon), clip, decay)  # fmt: skip
        elif rule == "adamax":
            launch(xp, "adamax_update", n, params, grads, slots["momentum"], slots["norm"], n,
                   lr, products["beta_1_power"], optimizer.beta_1, f32(optimizer.beta_2),
                   f32(1.0 - optimizer.beta_1), f32(optimizer.epsilon), clip, decay)  # fmt: skip
        elif rule == "nadam":
            launch(xp, "nadam_update", n, params, grads, slots["momentum"], slots["velocity"],
                   n, lr, products["decay_power"], products["u_product"],
                   products["beta_2_power"], optimizer.beta_1, optimizer.beta_2,
                   f32(1.0 - optimizer.beta_1), f32(1.0 - optimizer.beta_2),
                   f32(optimizer.epsilon), clip, decay)  # fmt: skip
            launch(xp, "nadam_advance", 1, products["decay_power"], products["u_product"],
                   products["beta_2_power"], optimizer.beta_1, optimizer.beta_2)  # fmt: skip
