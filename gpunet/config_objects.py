"""A config's layers, optimizer and callbacks: each `type`/`name` resolved and its arguments
checked against the class's signature (unknown names with a did-you-mean, values whose type
differs from the default's), then built."""

from __future__ import annotations

import inspect

from gpunet import layers, optimizers
from gpunet.config_errors import ConfigError, matches, type_name, unknown_key
from gpunet.kernels import activations
from gpunet.messages import excerpt


def _check_arguments(source: str, key: str, target, args: dict, skip=()) -> None:
    """Unknown keyword arguments of a layer/optimizer/callback, reported with a did-you-mean,
    and values whose type differs from the argument's default (an int where 3 is the default)."""
    allowed = [p for p in _signature_names(target) if p not in skip]
    defaults = _signature_defaults(target)
    for name in _required_names(target):
        if name not in args and name not in skip:
            raise ConfigError(
                source,
                f"{key}.{name}",
                f"required by {getattr(target, '__name__', target)}, missing; "
                f"its arguments: {', '.join(allowed)}.",
            )
    for name, value in args.items():
        if name not in allowed:
            raise unknown_key(source, f"{key}.", name, allowed)
        default = defaults.get(name)
        expected = {bool: bool, int: int, float: float, str: str}.get(type(default))
        if name in _SEVERAL_TYPES:
            expected = None
        if expected is not None and value is not None and not matches(value, expected):
            raise ConfigError(
                source, f"{key}.{name}", f"expected {type_name(expected)}, found {excerpt(value)}."
            )


# Arguments whose default's type is one of several allowed (save_freq: "epoch" or steps).
_SEVERAL_TYPES = {"save_freq"}


def _signature_defaults(target: type) -> dict:
    defaults = {}
    for klass in reversed(target.__mro__):
        init = klass.__dict__.get("__init__")
        if init is not None:
            for name, parameter in inspect.signature(init).parameters.items():
                if parameter.default is not inspect.Parameter.empty:
                    defaults[name] = parameter.default
    return defaults


def _required_names(target: type) -> list[str]:
    """Arguments of the class's __init__ that have no default."""
    return [
        p.name
        for p in inspect.signature(target.__init__).parameters.values()
        if p.name != "self"
        and p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def _signature_names(target: type) -> list[str]:
    """The arguments of the class's __init__ and of its bases' (a layer's name, input_shape
    and input_dim come from Layer's), and an optimizer's Keras 2 `lr`."""
    names = []
    for klass in target.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            parameters = inspect.signature(init).parameters
            names += [p for p in parameters if p not in ("self", "args", "kwargs")]
    if issubclass(target, optimizers.Optimizer):
        names.append("lr")
    return list(dict.fromkeys(names))


def build_layer(source: str, index: int, spec):
    """One `model` entry -> a layer; `type` names the class, the rest are its arguments."""
    key = f"model[{index}]"
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError(
            source,
            key,
            f"expected a mapping with a 'type' key (e.g. type: Dense), found {excerpt(spec)}.",
        )
    args = {k: v for k, v in spec.items() if k != "type"}
    try:
        cls = layers.get(spec["type"])
    except ValueError as exc:
        raise ConfigError(source, f"{key}.type", str(exc)) from None
    _check_arguments(source, key, cls, args)
    if "activation" in args and args["activation"] is not None:
        try:
            activations.get(args["activation"])
        except ValueError as exc:
            raise ConfigError(source, f"{key}.activation", str(exc)) from None
    try:
        return cls(**args)
    except (ValueError, TypeError) as exc:
        raise ConfigError(source, key, str(exc)) from None


def build_callback(source: str, index: int, spec):
    """One `fit.callbacks` entry -> a callback; `type` names the class, the rest its arguments."""
    from gpunet import callbacks

    key = f"fit.callbacks[{index}]"
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError(
            source,
            key,
            "expected a mapping with a 'type' key (e.g. type: EarlyStopping), "
            f"found {excerpt(spec)}.",
        )
    cls = callbacks.CONFIGURABLE.get(spec["type"]) if isinstance(spec["type"], str) else None
    if cls is None:
        raise ConfigError(
            source,
            f"{key}.type",
            f"unknown callback {excerpt(spec['type'])}; expected "
            f"one of {', '.join(callbacks.CONFIGURABLE)}.",
        )
    args = {k: v for k, v in spec.items() if k != "type"}
    _check_arguments(source, key, cls, args)
    try:
        return cls(**args)
    except (ValueError, TypeError) as exc:
        raise ConfigError(source, key, str(exc)) from None


def build_optimizer(source: str, spec):
    """`compile.optimizer`: a name with defaults, or a mapping with `name` and arguments."""
    key = "compile.optimizer"
    if isinstance(spec, str):
        try:
            return optimizers.get(spec)
        except ValueError as exc:
            raise ConfigError(source, key, str(exc)) from None
    if "name" not in spec:
        raise ConfigError(source, key, "a mapping needs a 'name' (e.g. name: adam).")
    args = {k: v for k, v in spec.items() if k != "name"}
    cls = optimizers._BY_NAME.get(str(spec["name"]).lower())
    if cls is None:
        raise ConfigError(
            source,
            f"{key}.name",
            f"unknown optimizer {excerpt(spec['name'])}; expected "
            f"one of {', '.join(sorted(optimizers._BY_NAME))}.",
        )
    _check_arguments(source, key, cls, args)
    try:
        return cls(**args)
    except (ValueError, TypeError) as exc:
        raise ConfigError(source, key, str(exc)) from None
