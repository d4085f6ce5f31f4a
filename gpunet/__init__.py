"""gpunet: a GPU-accelerated multilayer-perceptron trainer with Keras 3 semantics.

import gpunet as gn
model = gn.Sequential([gn.layers.Input((784,)), gn.layers.Dense(10, activation="softmax")])

The submodules load on first use (PEP 562), so that `gpunet` starts without NumPy and a Ctrl-C
while the command starts is caught by its launcher rather than printed as a traceback.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "backend",
    "callbacks",
    "datasets",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "regularizers",
    "saving",
    "schedules",
    "utils",
)

__all__ = ["Input", "InputLayer", "Sequential", "activations", *_SUBMODULES, "__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f"gpunet.{name}")
    elif name == "activations":
        module = importlib.import_module("gpunet.kernels.activations")
    elif name == "Sequential":
        module = importlib.import_module("gpunet.model").Sequential
    elif name in ("Input", "InputLayer"):  # `gn.Input((784,))`, as `keras.Input`
        module = getattr(importlib.import_module("gpunet.layers"), name)
    else:
        raise AttributeError(f"module 'gpunet' has no attribute {name!r}")
    globals()[name] = module  # later lookups skip this function
    return module


def __dir__():
    return sorted(set(globals()) | set(__all__))
