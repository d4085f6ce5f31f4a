"""ONNX export of a Sequential's inference graph (`model.export(path, format="onnx")`): Dense as
Gemm, each activation as its ONNX operator,
Dropout left out, BatchNormalization folded into one Mul and one Add with its moving
statistics, Normalization as Sub and Div (Mul and Add when inverted) by the constants gpunet
computes; a dynamic batch axis. Needs the `onnx` package (`pip install 'gpunet[onnx]'`).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from gpunet import backend
from gpunet.kernels.activations import LEAKY_SLOPE
from gpunet.layers import Dense, Dropout, Flatten, InputLayer
from gpunet.normalization import EPSILON, BatchNormalization, Normalization

OPSET = 21  # Gelu arrived in opset 20; 21 is what current onnxruntime releases all run
IR_VERSION = 10

# activation -> (ONNX operator, its attributes); silu is x * Sigmoid(x), linear nothing.
OPERATORS = {
    "relu": ("Relu", {}),
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
    "softmax": ("Softmax", {"axis": -1}),
    "softplus": ("Softplus", {}),
    "softsign": ("Softsign", {}),
    "elu": ("Elu", {"alpha": 1.0}),
    "selu": ("Selu", {}),  # ONNX's default alpha and gamma are Keras's constants
    "leaky_relu": ("LeakyRelu", {"alpha": LEAKY_SLOPE}),
    "gelu": ("Gelu", {"approximate": "none"}),  # gpunet's gelu is the exact one
    "hard_sigmoid": ("HardSigmoid", {"alpha": 1.0 / 6.0, "beta": 0.5}),  # relu6(x + 3) / 6
    "exponential": ("Exp", {}),
}


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError(
            "export(format='onnx') needs the onnx package: pip install 'gpunet[onnx]'."
        ) from None
    return onnx


class _Graph:
    """Nodes and constants, each value named after the layer that makes it."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.constants = onnx, [], []

    def constant(self, name: str, value: np.ndarray) -> str:
        self.constants.append(self.onnx.numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attributes) -> str:
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [output], **attributes))
        return output


def _host(array) -> np.ndarray:
    return np.ascontiguousarray(backend.to_host(array), dtype=np.float32)


def _activation(graph: _Graph, name: str, value: str, prefix: str) -> str:
    if name == "linear":
        return value
    if name == "silu":
        gate = graph.node("Sigmoid", [value], f"{prefix}/sigmoid")
        return graph.node("Mul", [value, gate], f"{prefix}/silu")
    op, attributes = OPERATORS[name]
    return graph.node(op, [value], f"{prefix}/{name}", **attributes)


def _layer(graph: _Graph, layer, value: str) -> str:
    """The nodes of one layer applied to `value`."""
    p = layer.name
    if isinstance(layer, Dropout):
        return value  # identity at inference
    if isinstance(layer, Flatten):
        return graph.node("Flatten", [value], f"{p}/flatten", axis=1)
    if isinstance(layer, Dense):  # its inputs are (batch, features): gpunet's Dense says so
        inputs = [value, graph.constant(f"{p}/kernel", _host(layer.kernel))]
        if layer.use_bias:
            inputs.append(graph.constant(f"{p}/bias", _host(layer.bias)))
        value = graph.node("Gemm", inputs, f"{p}/gemm")
        return _activation(graph, layer.activation.name, value, p)
    if isinstance(layer, BatchNormalization):
        # y = (x - mean) / sqrt(var + eps) * gamma + beta = x * s + (beta - mean * s)
        mean, variance = _host(layer.moving_mean), _host(layer.moving_variance)
        scale = 1.0 / np.sqrt(variance + np.float32(layer.epsilon))
        if layer.scale:
            scale = scale * _host(layer.gamma)
        shift = -mean * scale + (_host(layer.beta) if layer.center else 0.0)
        value = graph.node("Mul", [value, graph.constant(f"{p}/scale", scale)], f"{p}/mul")
        return graph.node("Add", [value, graph.constant(f"{p}/shift", shift)], f"{p}/add")
    if isinstance(layer, Normalization):
        mean = graph.constant(f"{p}/mean", _host(layer.mean))
        scale = _host(np.maximum(np.sqrt(_host(layer.variance)), np.float32(EPSILON)))
        scale = graph.constant(f"{p}/scale", scale)
        if layer.invert:
            value = graph.node("Mul", [value, scale], f"{p}/mul")
            return graph.node("Add", [value, mean], f"{p}/add")
        value = graph.node("Sub", [value, mean], f"{p}/sub")
        return graph.node("Div", [value, scale], f"{p}/div")
    activation = getattr(layer, "activation", None)
    if type(layer).__name__ == "Activation" and activation is not None:
        return _activation(graph, activation.name, value, p)
    raise ValueError(f"export: layer {p!r} ({type(layer).__name__}) has no ONNX form in gpunet.")


def export(model, path: str) -> None:
    """Write `model`'s inference graph to `path` as ONNX (opset OPSET), atomically."""
    onnx = _onnx()
    model._ensure_built()
    graph = _Graph(onnx)
    value, shape = "input", model._input_shape
    for layer in model.layers:
        if not isinstance(layer, InputLayer):
            value = _layer(graph, layer, value)
    output = graph.node("Identity", [value], "output")
    helper = onnx.helper
    float32 = onnx.TensorProto.FLOAT
    proto = helper.make_model(
        helper.make_graph(
            graph.nodes,
            model.name,
            [helper.make_tensor_value_info("input", float32, ["batch", *shape])],
            [
                helper.make_tensor_value_info(
                    output, float32, ["batch", *model.layers[-1].output_shape]
                )
            ],
            graph.constants,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="gpunet",
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(proto)
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(suffix=".onnx", dir=folder)
    os.close(handle)
    try:
        onnx.save(proto, temporary)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
