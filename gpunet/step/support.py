"""What the fused CuPy step takes: the layer stacks, activations, losses and metrics its
kernels compute; `unsupported` names the first thing it does not (the trainer then uses the
reference step, and says so)."""

from __future__ import annotations

import numpy as np

from gpunet import losses, metrics
from gpunet.cuda import kernels
from gpunet.layers import Dense, Dropout, Flatten


def unsupported(model, x) -> str | None:
    """Why the fused step cannot train this model on this data, or None."""
    layers = list(model.layers)
    frozen = [layer.name for layer in layers if not layer.trainable]
    if frozen:
        return f"layer {frozen[0]} is frozen (trainable = False)"
    if layers and isinstance(layers[0], Flatten):
        layers = layers[1:]
    if not layers or not isinstance(layers[-1], Dense):
        return "the last layer is not Dense"
    if not isinstance(layers[0], Dense):
        return f"layer {layers[0].name} ({type(layers[0]).__name__}) comes before any Dense"
    for previous, layer in zip([None] + layers, layers):
        if isinstance(layer, Dropout):
            if not isinstance(previous, Dense):
                return f"{layer.name} does not follow a Dense layer"
        elif not isinstance(layer, Dense):
            return f"layer {layer.name} ({type(layer).__name__}) has no fused kernel"
    dense = [layer for layer in layers if isinstance(layer, Dense)]
    for layer in dense[:-1]:
        if layer.activation.name not in kernels.ACTIVATIONS:
            return f"{layer.name}'s activation {layer.activation.name} has no fused kernel"
    loss, last = model.loss, dense[-1].activation.name
    if loss_kernel(loss, last) is None:
        return f"the loss {loss.name} with a {last} output has no fused kernel"
    allowed = FUSED_METRICS[type(loss)]
    found = model._metrics or []
    if len(found) > 1 or any(
        not (isinstance(m, metrics.MeanMetricWrapper) and m.fn is allowed) for m in found
    ):
        what = f"the metric {allowed.__name__}" if allowed else "no metric"
        return f"the fused {loss.name} kernel computes {what}, not {[m.name for m in found]}"
    if x.dtype != np.float32 or not x.flags.c_contiguous:
        return "x is not a C-contiguous float32 array"
    return None


# The loss kernels: the losses each takes, with the output activation it absorbs (or a linear
# output with from_logits=True), and the one metric it computes per sample.
FUSED_METRICS = {
    losses.SparseCategoricalCrossentropy: metrics.sparse_categorical_accuracy,
    losses.CategoricalCrossentropy: metrics.categorical_accuracy,
    losses.BinaryCrossentropy: metrics.binary_accuracy,
    losses.MeanSquaredError: None,
}
_LOSS_KERNELS = {
    losses.SparseCategoricalCrossentropy: ("softmax_xent_sparse", "softmax"),
    losses.CategoricalCrossentropy: ("softmax_xent_dense", "softmax"),
    losses.BinaryCrossentropy: ("sigmoid_xent", "sigmoid"),
    losses.MeanSquaredError: ("mse", None),
}


def loss_kernel(loss, last_activation: str) -> str | None:
    """The kernel computing `loss` from the last layer's pre-activation, or None."""
    found = _LOSS_KERNELS.get(type(loss))
    if found is None:
        return None
    kernel, absorbed = found
    from_logits = getattr(loss, "from_logits", False)
    if absorbed is None:  # MSE: of a linear output
        return kernel if last_activation == "linear" else None
    if (last_activation == absorbed and not from_logits) or (
        last_activation == "linear" and from_logits
    ):
        return kernel
    return None
