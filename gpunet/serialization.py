"""Keras 3's serialized form of an object, `{"module", "class_name", "config",
"registered_name"}`, and `get_config` read back from an object's constructor arguments."""

from __future__ import annotations

import inspect

from gpunet.messages import excerpt, unknown_name

_SKIPPED = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def constructor_config(obj) -> dict:
    """The arguments of `obj`'s constructor, each read back from the attribute of the same name:
    what rebuilds an equal object. A constructor passing **kwargs on adds its base's."""
    config = {}
    for klass in type(obj).__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            break
        parameters = inspect.signature(init).parameters.values()
        for parameter in parameters:
            name = parameter.name
            if name != "self" and parameter.kind not in _SKIPPED and name not in config:
                if not hasattr(obj, name):
                    raise TypeError(f"{type(obj).__name__}: no attribute for argument {name!r}.")
                config[name] = getattr(obj, name)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            break
    return config


def serialize(obj, module: str) -> dict:
    """`obj` in Keras 3's serialized form (module e.g. "keras.losses")."""
    return {
        "module": module,
        "class_name": type(obj).__name__,
        "config": obj.get_config(),
        "registered_name": None,
    }


def deserialize(config, classes: dict, kind: str, make=None):
    """The object a serialized form describes; `classes` maps class names to classes, `make`
    (class, arguments) builds it (default: the class called with the arguments)."""
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(
            f"A serialized {kind} is a dict with 'class_name' and 'config', received "
            f"{excerpt(config)}."
        )
    cls = classes.get(config["class_name"])
    if cls is None:
        raise unknown_name(kind, config["class_name"], sorted(classes))
    arguments = config.get("config")
    arguments = {} if arguments is None else arguments
    if not isinstance(arguments, dict):
        raise ValueError(
            f"{kind} {cls.__name__}: config must be a dict, received {excerpt(arguments)}."
        )
    try:
        return cls(**arguments) if make is None else make(cls, arguments)
    except TypeError as exc:
        raise ValueError(f"{kind} {cls.__name__}: bad config ({exc}).") from None
