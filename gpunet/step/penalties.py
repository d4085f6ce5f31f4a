"""`Penalties`: the L1/L2 weight penalties of a model's regularized Dense variables, on the
device for the fused step: each step adds N * penalty to its loss total (through step_end)
and the penalty's gradient to the flat gradient, in two launches, none without regularizers.

The gradient's coefficients carry the loss scale (SGD's -lr), which moves with the learning
rate, so they live in device memory and are rewritten only when they change (`sync`).
"""

from __future__ import annotations

import numpy as np

from gpunet.cuda import kernels
from gpunet.layers import Dense

PARTS = 64  # threads per variable summing its penalty


def _variables(model):
    """(start, stop, regularizer) of each regularized variable in the flat parameter vector."""
    params = model._params
    found = []
    for layer in model.layers:
        if not isinstance(layer, Dense):
            continue
        for array, regularizer in (
            (layer.kernel, layer.kernel_regularizer),
            (layer.bias, layer.bias_regularizer),
        ):
            if array is None or regularizer is None or not (regularizer.l1 or regularizer.l2):
                continue
            start = (array.data.ptr - params.data.ptr) // params.itemsize
            found.append((start, start + array.size, regularizer))
    return found


class Penalties:
    """The regularized variables of one model, and their device arrays.

    Args:
        xp: the device array module.
        model: a built Sequential whose parameters are on that device.
        gradient: add the penalty's gradient (data-parallel ranks but rank 0 add none: the sum
            over the ranks holds it once; each still adds its rows' share of the loss total).
    """

    def __init__(self, xp, model, gradient: bool = True):
        self.xp, self.gradient = xp, gradient
        self.variables = _variables(model)
        count = len(self.variables)
        self.parts = PARTS * count if count else 0
        self.partials = xp.zeros(max(self.parts, 1), np.float64) if count else None
        if not count:
            return
        self.starts = self._filled(np.int32, [start for start, _, _ in self.variables])
        self.stops = self._filled(np.int32, [stop for _, stop, _ in self.variables])
        self.l1 = self._filled(np.float32, [r.l1 for _, _, r in self.variables])
        self.l2 = self._filled(np.float32, [r.l2 for _, _, r in self.variables])
        self.c1, self.c2 = xp.zeros(count, np.float32), xp.zeros(count, np.float32)
        self._held_scale = None

    def _filled(self, dtype, values):
        out = self.xp.empty(len(values), dtype)
        for k, value in enumerate(values):  # device writes: no host-to-device copy
            out[k : k + 1].fill(dtype(value))
        return out

    def sync(self, scale: float) -> None:
        """The gradient's coefficients for loss scale `scale` (outside any capture)."""
        if not self.variables or scale == self._held_scale:
            return
        for k, (_, _, regularizer) in enumerate(self.variables):
            # Regularizer.add_grad's factors, rounded to float32 as NumPy rounds them.
            self.c1[k : k + 1].fill(np.float32(scale * regularizer.l1))
            self.c2[k : k + 1].fill(np.float32(2.0 * regularizer.l2 * scale))
        self._held_scale = scale

    def enqueue(self, params, grads) -> None:
        """The penalty's partial sums (of the weights before the update) and its gradient."""
        if not self.variables:
            return
        count, xp = len(self.variables), self.xp
        kernels.launch(xp, "penalty_partials", self.parts, params, self.starts, self.stops,
                       self.l1, self.l2, count, PARTS, self.partials)  # fmt: skip
        if not self.gradient:
            return
        kernels.launch(xp, "penalty_grad", params.size, params, grads, self.starts, self.stops,
                       self.c1, self.c2, count, params.size)  # fmt: skip
