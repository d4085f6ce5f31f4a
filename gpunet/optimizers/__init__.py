"""Optimizers with Keras 3 names, defaults and update rules, applied to the whole model at once
(the base and its step scalars in `base`, the rules in `rules`)."""

from gpunet.messages import unknown_name
from gpunet.optimizers.base import DeviceScalar, Optimizer
from gpunet.optimizers.rules import SGD, Adagrad, Adam, Adamax, AdamW, Nadam, RMSprop

_BY_NAME = {
    "sgd": SGD,
    "rmsprop": RMSprop,
    "adam": Adam,
    "adamw": AdamW,
    "adagrad": Adagrad,
    "adamax": Adamax,
    "nadam": Nadam,
}


def get(identifier) -> Optimizer:
    """Resolve an optimizer name (with Keras defaults) or instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise unknown_name("optimizer", identifier, sorted(_BY_NAME))


__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "DeviceScalar",
    "Nadam",
    "Optimizer",
    "RMSprop",
    "get",
]
