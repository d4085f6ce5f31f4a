"""Training configs: YAML (safe_load only) -> dataclasses, validated in full before any work.

Every fault is a ConfigError: one line naming the file, the key path (`model[2].activation`),
what was found and what is allowed. Keys equal the Python argument names of the API.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import types
import typing
from dataclasses import dataclass, field

import yaml

from gpunet import backend, layers, losses, metrics, optimizers, yamlfile
from gpunet.kernels import activations
from gpunet.messages import excerpt

DATASETS = ("mnist", "fashion_mnist")
MAX_MESSAGE = 1000  # characters in one error line


class ConfigError(ValueError):
    """A config fault; `str()` is the one-line message the CLI prints."""

    def __init__(self, source: str, key: str, message: str):
        key = key if key.isprintable() else repr(key)
        self.source, self.key = source, key
        where = f"{source}: {key}" if key else source
        text = " ".join(f"{where}: {message}".splitlines())
        if len(text) > MAX_MESSAGE:  # a safety net: values in messages are excerpts already
            text = text[: MAX_MESSAGE - 3] + "..."
        super().__init__(text)


@dataclass
class DataConfig:
    name: str | None = None  # "mnist" or "fashion_mnist"; or None with a user file in `path`
    path: str | None = None  # a folder for a named data set, else a .npz/.npy/.csv file
    labels_path: str | None = None  # labels of a .npy features file
    label_column: str | int = "label"  # CSV label column, by header name or index
    encoding: str = "utf-8"  # of CSV files (a byte-order mark is skipped)
    x_key: str = "x"
    y_key: str = "y"
    test_path: str | None = None  # a user test file, read like `path`
    test_labels_path: str | None = None
    validation_path: str | None = None  # a separate validation file (wins over the split)
    validation_labels_path: str | None = None
    validation_split: float = 0.0  # the LAST fraction of the training data, before shuffling
    validation_samples: int | None = None  # or the last N samples (wins over the split)
    scale: bool = True  # image sets: divide by 255 into float32
    flatten: bool = True  # image sets: (28, 28) -> 784
    one_hot: bool = True  # labels -> one-hot (for categorical_crossentropy)
    standardize: bool = False  # zero mean, unit variance from the training part only


@dataclass
class CompileConfig:
    loss: str = "categorical_crossentropy"
    optimizer: str | dict = "rmsprop"  # a name, or {name: adam, learning_rate: ...}
    metrics: list = field(default_factory=list)
    steps_per_execution: int = 1  # steps between callbacks; on CuPy one CUDA graph replay each
    cuda_graphs: bool = True  # false: the fused CuPy step runs eagerly (debugging)
    precision: str = "float32"  # tf32 | bf16: the fused CuPy step's GEMMs on tensor cores


@dataclass
class FitConfig:
    epochs: int = 1
    batch_size: int = 32
    shuffle: bool = True
    verbose: int | str = "auto"
    class_weight: dict | None = None
    validation_batch_size: int | None = None
    callbacks: list = field(default_factory=list)  # [{type: EarlyStopping, patience: 3}, ...]


@dataclass
class OutputConfig:
    dir: str = "runs"  # run directories are created inside it


@dataclass
class Config:
    seed: int | None = None
    backend: str | None = None  # auto, numpy or cupy; None: $GPUNET_BACKEND, else auto
    data: DataConfig = field(default_factory=DataConfig)
    model: list = field(default_factory=list)
    compile: CompileConfig = field(default_factory=CompileConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _type_name(hint) -> str:
    names = {
        int: "an int",
        float: "a number",
        bool: "true/false",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        type(None): "null",
    }
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _matches(value, hint) -> bool:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _unknown_key(source: str, path: str, key, allowed) -> ConfigError:
    close = difflib.get_close_matches(str(key), [str(a) for a in allowed], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(
        source,
        f"{path}{key}" if path else str(key),
        f"unknown key.{hint} Allowed: {', '.join(map(str, allowed))}.",
    )


def _section(source: str, raw, cls, path: str):
    """Build dataclass `cls` from mapping `raw`, checking keys and value types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, path.rstrip("."), f"expected a mapping, found {excerpt(raw)}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            raise _unknown_key(source, path, key, names)
    values = {}
    for name in names:
        if name not in raw:
            continue
        value = raw[name]
        if not _matches(value, hints[name]):
            raise ConfigError(
                source,
                f"{path}{name}",
                f"expected {_type_name(hints[name])}, found {excerpt(value)}.",
            )
        values[name] = value
    return cls(**values)


def _check_choice(source: str, key: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(
            source,
            key,
            f"{excerpt(value)} is not allowed; expected one of {', '.join(map(str, allowed))}.",
        )


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
            raise _unknown_key(source, f"{key}.", name, allowed)
        default = defaults.get(name)
        expected = {bool: bool, int: int, float: float, str: str}.get(type(default))
        if name in _SEVERAL_TYPES:
            expected = None
        if expected is not None and value is not None and not _matches(value, expected):
            raise ConfigError(
                source, f"{key}.{name}", f"expected {_type_name(expected)}, found {excerpt(value)}."
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


def validate(config: Config, source: str) -> Config:
    """Check values and names that the dataclass types cannot express."""
    if config.backend is not None:
        _check_choice(source, "backend", config.backend, backend.BACKENDS)
    if config.seed is not None and config.seed < 0:
        raise ConfigError(source, "seed", f"expected an int >= 0, found {config.seed}.")
    data = config.data
    if data.name is None and data.path is None:
        raise ConfigError(
            source,
            "data",
            "give a data set name (mnist, fashion_mnist) or a path "
            "to your own .npz/.npy/.csv file.",
        )
    if data.name is not None:
        _check_choice(source, "data.name", data.name, DATASETS)
    if not 0.0 <= data.validation_split < 1.0:
        raise ConfigError(
            source,
            "data.validation_split",
            f"expected a number in [0, 1), found {data.validation_split}.",
        )
    if data.validation_samples is not None and data.validation_samples < 1:
        raise ConfigError(
            source,
            "data.validation_samples",
            f"expected an int >= 1, found {data.validation_samples}.",
        )
    if not config.model:
        raise ConfigError(source, "model", "expected a non-empty list of layers.")
    for index, spec in enumerate(config.model):
        build_layer(source, index, spec)
    try:
        losses.get(config.compile.loss)
    except ValueError as exc:
        raise ConfigError(source, "compile.loss", str(exc)) from None
    build_optimizer(source, config.compile.optimizer)
    for index, name in enumerate(config.compile.metrics):
        try:
            metrics.check_name(name)
        except ValueError as exc:
            raise ConfigError(source, f"compile.metrics[{index}]", str(exc)) from None
    _check_choice(
        source, "compile.precision", config.compile.precision, ("float32", "tf32", "bf16")
    )
    if config.compile.steps_per_execution < 1:
        raise ConfigError(
            source,
            "compile.steps_per_execution",
            f"expected an int >= 1, found {config.compile.steps_per_execution}.",
        )
    fit = config.fit
    for key, value, low in (("epochs", fit.epochs, 1), ("batch_size", fit.batch_size, 1)):
        if value < low:
            raise ConfigError(source, f"fit.{key}", f"expected an int >= {low}, found {value}.")
    if fit.validation_batch_size is not None and fit.validation_batch_size < 1:
        raise ConfigError(
            source,
            "fit.validation_batch_size",
            f"expected an int >= 1, found {fit.validation_batch_size}.",
        )
    _check_choice(source, "fit.verbose", fit.verbose, (0, 1, 2, "auto"))
    for label, weight in (fit.class_weight or {}).items():
        if isinstance(label, bool) or not isinstance(label, int) or label < 0:
            raise ConfigError(
                source, f"fit.class_weight.{label}", "class keys must be ints >= 0 (class indices)."
            )
        if not _matches(weight, float) or not math.isfinite(weight) or weight < 0:
            raise ConfigError(
                source,
                f"fit.class_weight.{label}",
                f"expected a finite number >= 0, found {excerpt(weight)}.",
            )
    for index, spec in enumerate(fit.callbacks):
        build_callback(source, index, spec)
    return config


def from_dict(raw, source: str) -> Config:
    """Validate a parsed YAML document into a Config."""
    if not isinstance(raw, dict):
        raise ConfigError(source, "", f"expected a mapping at the top level, found {excerpt(raw)}.")
    sections = {
        "data": DataConfig,
        "compile": CompileConfig,
        "fit": FitConfig,
        "output": OutputConfig,
    }
    top = {k: v for k, v in raw.items() if k not in sections}
    config = _section(source, top, Config, "")
    for name, cls in sections.items():
        setattr(config, name, _section(source, raw.get(name), cls, f"{name}."))
    return validate(config, source)


def _path_parts(key: str) -> list[str]:
    """`model[0].units` and `model.0.units` -> ['model', '0', 'units']."""
    return key.strip().replace("[", ".").replace("]", "").split(".")


def set_value(raw: dict, assignment: str, source: str = "--set") -> None:
    """Apply `a.b.c=value` (value parsed as YAML) to a raw config mapping; a number steps into a
    list (`model.0.units=64`, or `model[0].units=64` as messages write it)."""
    if "=" not in assignment:
        raise ConfigError(source, assignment, "expected KEY=VALUE, e.g. fit.epochs=5.")
    key, text = assignment.split("=", 1)
    key = key.strip()
    try:
        value = yamlfile.load(text)
    except (yaml.YAMLError, yamlfile.YamlError) as exc:
        raise ConfigError(
            source, key, f"value {excerpt(text)} is not valid YAML ({_problem(exc)})."
        ) from None
    parts = _path_parts(key)
    if "" in parts:
        raise ConfigError(source, key, "expected a key path such as fit.epochs or model.0.units.")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        node = _step_into(node, part, source, key, ".".join(parts[:depth]))
    if isinstance(node, list):
        _check_index(node, parts[-1], source, key)
        node[int(parts[-1])] = value
    elif isinstance(node, dict):
        node[parts[-1]] = value
    else:
        raise ConfigError(source, key, f"{'.'.join(parts[:-1])!r} is a value, not a section.")


def _check_index(node: list, part: str, source: str, key: str) -> None:
    if not part.isdigit() or int(part) >= len(node):
        allowed = {0: "none, the list is empty", 1: "0"}.get(len(node), f"0 to {len(node) - 1}")
        raise ConfigError(source, key, f"{part!r} is not an index of the list; indices: {allowed}.")


def _step_into(node, part: str, source: str, key: str, parent: str):
    """One level down a `--set` key path: into a list by index, a mapping by key (made if new)."""
    if isinstance(node, list):
        _check_index(node, part, source, key)
        return node[int(part)]
    if isinstance(node, dict):
        if node.get(part) is None:
            node[part] = {}
        if not isinstance(node[part], (dict, list)):
            raise ConfigError(source, key, f"{part!r} is a value, not a section or a list.")
        return node[part]
    raise ConfigError(source, key, f"{parent!r} is a value, not a section or a list.")


def _problem(exc) -> str:
    if isinstance(exc, yamlfile.YamlError):
        return exc.problem.rstrip(".")
    return getattr(exc, "problem", None) or str(exc)


def load_raw(path: str) -> dict:
    """Read a YAML config file (safe tags, YAML 1.2 floats, bounded); errors name file and line."""
    try:
        with open(path, "rb") as f:
            data = f.read(yamlfile.MAX_BYTES + 1)
        raw = yamlfile.load(data.decode("utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(path, "", "no such file.") from None
    except IsADirectoryError:
        raise ConfigError(path, "", "is a directory; expected a YAML config file.") from None
    except PermissionError:
        raise ConfigError(path, "", "permission denied; the config cannot be read.") from None
    except yamlfile.YamlError as exc:
        raise ConfigError(path, f"line {exc.line}" if exc.line else "", exc.problem) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise ConfigError(path, where, f"invalid YAML ({_problem(exc)}).") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "", "not a text file (a config is UTF-8 YAML).") from None
    return {} if raw is None else raw


def load(path: str, overrides: list[str] = ()) -> Config:
    """Load, override (`--set`), and validate a config file."""
    raw = load_raw(path)
    if not isinstance(raw, dict):
        raise ConfigError(path, "", f"expected a mapping at the top level, found {excerpt(raw)}.")
    for assignment in overrides:
        set_value(raw, assignment)
    return from_dict(raw, path)
