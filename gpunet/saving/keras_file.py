"""`.keras`: Keras 3's whole-model file, a zip of `metadata.json`, `config.json` (the model's
config, its build input shape and compile config) and `model.weights.h5` (weights_h5.py's
layout). gpunet writes what Keras 3 loads and loads what Keras 3 writes, for the layers gpunet
has. A loaded model is compiled from the file's compile config, and its optimizer takes the
saved state (optimizer_state.py), so training continues where it stopped; data order,
dropout streams and callbacks are the `.npz` checkpoint's, for an exact resume of a fit.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import tempfile
import zipfile

from gpunet import __version__ as gpunet_version
from gpunet.messages import excerpt
from gpunet.saving import keras_config, weights_h5

SUFFIX = ".keras"
KERAS_FORMAT = "3.15.1"  # the Keras release whose files these match (checked against it)


def _compile_config(model):
    if model.optimizer is None or model.loss is None:
        return None
    from gpunet import losses, metrics, optimizers

    named = [m if isinstance(m, str) else metrics.serialize(m) for m in model._metric_ids]
    return {
        "optimizer": optimizers.serialize(model.optimizer),
        "loss": losses.serialize(model.loss),
        "loss_weights": None,
        "metrics": named or None,
        "weighted_metrics": None,
        "run_eagerly": False,
        "steps_per_execution": model.steps_per_execution,
        "jit_compile": False,
    }


def save(model, path: str) -> None:
    """Write `model` to `path` (`*.keras`), atomically."""
    if not str(path).endswith(SUFFIX):
        raise ValueError(
            f"save: the filename must end in `{SUFFIX}` (Keras 3's model file), received "
            f"{path!r}; for the weights alone use save_weights(`*.weights.h5`)."
        )
    model._ensure_built()
    weights = io.BytesIO()
    with weights_h5._h5py().File(weights, "w") as file:
        weights_h5.write(model, file)
    config = {
        "module": "keras",
        "class_name": "Sequential",
        "config": model.get_config(),
        "registered_name": None,
        "build_config": {"input_shape": [None, *model._input_shape]},
        "compile_config": _compile_config(model),
    }
    metadata = {
        "keras_version": KERAS_FORMAT,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "gpunet_version": gpunet_version,
    }
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(suffix=SUFFIX, dir=folder)
    os.close(handle)
    try:
        with zipfile.ZipFile(temporary, "w") as archive:
            archive.writestr("metadata.json", json.dumps(metadata))
            archive.writestr("config.json", json.dumps(config))
            archive.writestr("model.weights.h5", weights.getvalue())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _read(path: str) -> tuple[dict, bytes]:
    """(config.json, model.weights.h5's bytes) of a `.keras` file, or one ValueError."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_model: no file at {path!r}.")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = {"config.json", "model.weights.h5"} - names
            if missing:
                raise ValueError(
                    f"load_model: {path} is not a Keras 3 model file: it lacks "
                    f"{', '.join(sorted(missing))}."
                )
            config = json.loads(archive.read("config.json"))
            weights = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(f"load_model: {path} is not a readable .keras file ({exc}).") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"load_model: {path}: config.json is not JSON ({exc}).") from None
    return config, weights


def load(path: str, compile: bool = True):
    """The model a `.keras` file holds, with its weights, compiled as it was saved."""
    from gpunet.model import Sequential

    config, weights = _read(path)
    if not isinstance(config, dict) or config.get("class_name") != "Sequential":
        kind = config.get("class_name") if isinstance(config, dict) else config
        raise ValueError(
            f"load_model: {path} holds a {excerpt(kind)} model; gpunet loads Sequential ones."
        )
    inner = config.get("config")
    if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
        raise ValueError(f"load_model: {path}: config.json has no list of layers.")
    for entry in inner["layers"]:
        name = entry.get("class_name") if isinstance(entry, dict) else None
        if name == "Lambda" or (isinstance(entry, dict) and entry.get("registered_name")):
            raise ValueError(
                f"load_model: {path}: layer {excerpt(name)} is Python code or a custom object "
                "(a Lambda or a registered class), which gpunet does not load."
            )
    try:
        model = Sequential.from_config(
            {**inner, "layers": [keras_config.layer(e) for e in inner["layers"]]}
        )
        shape = (config.get("build_config") or {}).get("input_shape")
        model.build(shape if shape is not None else None)
        if compile and config.get("compile_config") is not None:
            model.compile(**keras_config.compile_arguments(config["compile_config"]))
    except (TypeError, KeyError) as exc:
        raise ValueError(f"load_model: {path}: the config cannot be read ({exc}).") from None
    except ValueError as exc:
        raise ValueError(f"load_model: {path}: {exc}") from None
    try:
        file = weights_h5._h5py().File(io.BytesIO(weights), "r")
    except OSError as exc:
        raise ValueError(f"load_model: {path}: model.weights.h5 is not HDF5 ({exc}).") from None
    with file:
        weights_h5.read(model, file, f"{path} (model.weights.h5)")
    return model
