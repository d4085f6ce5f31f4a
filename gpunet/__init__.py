"""gpunet: a GPU-accelerated multilayer-perceptron trainer with Keras 3 semantics.

import gpunet as gn
model = gn.Sequential([gn.layers.Input((784,)), gn.layers.Dense(10, activation="softmax")])
"""

from gpunet import (
    backend,
    callbacks,
    datasets,
    initializers,
    layers,
    losses,
    metrics,
    optimizers,
    regularizers,
    schedules,
    utils,
)
from gpunet.kernels import activations
from gpunet.model import Sequential

__version__ = "0.1.0"

__all__ = [
    "Sequential",
    "activations",
    "backend",
    "callbacks",
    "datasets",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "optimizers",
    "regularizers",
    "schedules",
    "utils",
    "__version__",
]
