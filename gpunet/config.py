"""Training configs: YAML (gpunet.yamlfile) -> dataclasses, validated in full before any work.

Every fault is a ConfigError (gpunet.config_errors): one line naming the file, the key path
(`model[2].activation`), what was found and what is allowed. Keys equal the Python argument
names of the API; layers, the optimizer and callbacks are built by gpunet.config_objects.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field

import yaml

from gpunet import backend, losses, metrics, yamlfile
from gpunet.config_errors import (  # noqa: F401  (ConfigError and MAX_MESSAGE: this module's API)
    MAX_MESSAGE,
    ConfigError,
    check_choice,
    matches,
    type_name,
    unknown_key,
)
from gpunet.config_objects import build_callback, build_layer, build_optimizer
from gpunet.messages import excerpt

DATASETS = ("mnist", "fashion_mnist")


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
            raise unknown_key(source, path, key, names)
    values = {}
    for name in names:
        if name not in raw:
            continue
        value = raw[name]
        if not matches(value, hints[name]):
            raise ConfigError(
                source,
                f"{path}{name}",
                f"expected {type_name(hints[name])}, found {excerpt(value)}.",
            )
        values[name] = value
    return cls(**values)


def validate(config: Config, source: str) -> Config:
    """Check values and names that the dataclass types cannot express."""
    if config.backend is not None:
        check_choice(source, "backend", config.backend, backend.BACKENDS)
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
        check_choice(source, "data.name", data.name, DATASETS)
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
    check_choice(source, "compile.precision", config.compile.precision, ("float32", "tf32", "bf16"))
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
    check_choice(source, "fit.verbose", fit.verbose, (0, 1, 2, "auto"))
    for label, weight in (fit.class_weight or {}).items():
        if isinstance(label, bool) or not isinstance(label, int) or label < 0:
            raise ConfigError(
                source, f"fit.class_weight.{label}", "class keys must be ints >= 0 (class indices)."
            )
        if not matches(weight, float) or not math.isfinite(weight) or weight < 0:
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
            data = f.read(yamlfile.MAX_BYTES + 1)  # never more: the file may be anything
        if len(data) > yamlfile.MAX_BYTES:
            raise ConfigError(
                path, "", f"larger than {yamlfile.MAX_BYTES:,} bytes; a config is a few hundred."
            )
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
