"""How each Dense layer runs in the fused step: its mode (a GEMM epilogue, or kernels around a
plain GEMM), and the cuBLASLt plans of its three products at one batch shape."""

from __future__ import annotations

from gpunet.cuda import kernels
from gpunet.cuda.gemm import Unsupported
from gpunet.layers import Dense, Dropout, Flatten

# How each Dense layer runs: its forward and what its backward needs.
RELU_EPILOGUE = "relu_epilogue"  # GEMM + bias + ReLU (mask kept); backward in the next GEMM
LINEAR_EPILOGUE = "linear_epilogue"  # GEMM + bias; nothing to undo
KERNEL = "kernel"  # GEMM (+ bias), then bias_act_fwd (activation, dropout), act_bwd back
LOGITS = "logits"  # the last layer: GEMM + bias; the loss kernel takes the logits


class DenseRun:
    """One Dense layer as the fused step runs it."""

    def __init__(self, layer: Dense, dropout: Dropout | None, mode: str, stream: int):
        self.layer, self.dropout, self.mode = layer, dropout, mode
        self.stream = stream  # index of its dropout stream, or -1
        self.act = layer.activation.name
        self.code = kernels.activation_code(self.act) if self.act in kernels.ACTIVATIONS else 0
        self.units = layer.units
        self.bias_grad_by_next = False  # computed by the next layer's DRELU_BGRAD GEMM


def layer_runs(model, epilogues: bool) -> list[DenseRun]:
    """How each Dense layer of the model runs; `epilogues`: cuBLASLt is there to fuse ReLU and
    linear layers into their GEMMs."""
    layers = [layer for layer in model.layers if not isinstance(layer, Flatten)]
    runs, streams = [], 0
    for i, layer in enumerate(layers):
        if not isinstance(layer, Dense):
            continue
        following = layers[i + 1] if i + 1 < len(layers) else None
        dropout = following if isinstance(following, Dropout) and following.rate else None
        last = i == len(layers) - 1 or all(not isinstance(k, Dense) for k in layers[i + 1 :])
        act = layer.activation.name
        if last:
            mode = LOGITS
        elif epilogues and dropout is None and act == "relu":
            mode = RELU_EPILOGUE
        elif epilogues and dropout is None and act == "linear":
            mode = LINEAR_EPILOGUE
        else:
            mode = KERNEL
        runs.append(DenseRun(layer, dropout, mode, streams if dropout else -1))
        streams += dropout is not None
    return runs


def gemm_plans(gemm, runs: list[DenseRun], features: int, rows: int) -> dict:
    """The plans of every product at this batch shape: (layer, "fwd" | "inputs") -> plan,
    (layer, "weights") -> (plan, whether it computes the bias gradient). A layer whose epilogue
    cuBLASLt has no algorithm for moves to the kernel path (its run's mode changes)."""
    inputs = features
    plans = {}
    for i, run in enumerate(runs):
        layer, bias = run.layer, run.layer.use_bias
        try:
            plans[i, "fwd"] = gemm.forward(rows, inputs, run.units, bias, run.mode == RELU_EPILOGUE)
        except Unsupported:
            run.mode = KERNEL if run.mode != LOGITS else LOGITS
            plans[i, "fwd"] = gemm.forward(rows, inputs, run.units, bias, False)
        inputs = layer.units
    for i, run in enumerate(runs):
        previous = runs[i - 1] if i else None
        relu = previous is not None and previous.mode == RELU_EPILOGUE
        if previous is not None:
            try:
                plans[i, "inputs"] = gemm.inputs(
                    rows, previous.units, run.units, relu, relu and previous.layer.use_bias
                )
                previous.bias_grad_by_next = relu and previous.layer.use_bias
            except Unsupported:  # plain product; the kernel path before it
                previous.mode = KERNEL
                previous.bias_grad_by_next = False
                plans[i, "inputs"] = gemm.inputs(rows, previous.units, run.units, False, False)
    for i, run in enumerate(runs):
        inputs = runs[i - 1].units if i else features
        with_bias = run.layer.use_bias and not run.bias_grad_by_next
        try:
            plans[i, "weights"] = (gemm.weights(rows, inputs, run.units, with_bias), True)
        except Unsupported:
            plans[i, "weights"] = (gemm.weights(rows, inputs, run.units, False), False)
    return plans
