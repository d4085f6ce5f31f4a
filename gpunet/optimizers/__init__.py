"""Optimizers with Keras 3 names, defaults and update rules, applied to the whole model at once
(the base and its step scalars in `base`, the rules in `rules`)."""

from gpunet import schedules, serialization
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


_CLASSES = {cls.__name__: cls for cls in _BY_NAME.values()}


def serialize(optimizer: Optimizer) -> dict:
    """Keras 3's serialized form of an optimizer (a schedule's rate serialized inside)."""
    return serialization.serialize(optimizer, "keras.optimizers")


def deserialize(config: dict) -> Optimizer:
    """The optimizer `serialize` (or Keras 3) described."""
    arguments = dict(config.get("config") or {}) if isinstance(config, dict) else None
    if arguments is not None and isinstance(arguments.get("learning_rate"), dict):
        arguments["learning_rate"] = schedules.deserialize(arguments["learning_rate"])
        config = dict(config, config=arguments)
    return serialization.deserialize(config, _CLASSES, "optimizer")


def get(identifier) -> Optimizer:
    """Resolve an optimizer name (with Keras defaults), class name, serialized dict or
    instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier in _CLASSES:
        return _CLASSES[identifier]()
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
    "deserialize",
    "get",
    "serialize",
]
