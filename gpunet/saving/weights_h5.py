"""`.weights.h5`: a model's weights in Keras 3's HDF5 layout, which Keras reads and writes.

Keras names each layer's group after its class and position, not the layer's name:
`layers/dense`, `layers/dropout`, `layers/dense_1` (the second Dense), each holding a `vars`
group of datasets "0", "1", ... in the layer's weight order (kernel, bias; gamma, beta,
moving_mean, moving_variance; Normalization's mean, variance and sample count). So a file
loads into any model of the same architecture, whatever its layers are called. A compiled
model's optimizer state goes in `optimizer/vars` (optimizer_state.py), as Keras writes it.
"""

from __future__ import annotations

import os
import re
import tempfile

import numpy as np

from gpunet import backend
from gpunet.normalization import Normalization
from gpunet.saving import optimizer_state

SUFFIX = ".weights.h5"


def _h5py():
    import h5py  # imported on first use: the command line starts without it

    return h5py


def _check_suffix(path: str, where: str) -> None:
    if not str(path).endswith(SUFFIX):
        raise ValueError(f"{where}: the filename must end in `{SUFFIX}`, received {path!r}.")


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def layer_keys(model) -> list[tuple[str, object]]:
    """(group name, layer) for each layer, as Keras names the groups: the class name in snake
    case, `_1`, `_2`, ... for the second and later of a class."""
    used: dict[str, int] = {}
    keys = []
    for layer in model.layers:  # an Input is not among them: Sequential keeps its shape only
        base = _snake_case(type(layer).__name__)
        count = used.get(base, 0)
        used[base] = count + 1
        keys.append((base if count == 0 else f"{base}_{count}", layer))
    return keys


def _keras_shape(layer, target) -> tuple:
    """A weight's shape as Keras keeps it: Normalization's statistics hold only the feature
    axes (gpunet's broadcast against the inputs, 1 on the other axes)."""
    if isinstance(layer, Normalization):
        axes = layer._axes(len(layer.input_shape) + 1)
        return tuple(n for i, n in enumerate(layer.input_shape) if i + 1 in axes)
    return tuple(target.shape)


def _values(layer) -> list[np.ndarray]:
    values = [backend.to_host(w).reshape(_keras_shape(layer, w)) for w in layer.weights]
    if isinstance(layer, Normalization) and values:
        values.append(np.asarray(layer.adapted_count, dtype=np.int32))  # Keras's third variable
    return values


def save(model, path: str) -> None:
    """Write `model`'s weights to `path` (`*.weights.h5`), atomically: a file already there is
    replaced only once the new one is complete."""
    _check_suffix(path, "save_weights")
    model._ensure_built()
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(suffix=".h5", dir=folder)
    os.close(handle)
    try:
        with _h5py().File(temporary, "w") as file:
            write(model, file)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write(model, file) -> None:
    """The weights into an open, empty h5py File, in Keras 3's groups."""
    layers = file.create_group("layers")
    for key, layer in layer_keys(model):
        group = layers.create_group(key).create_group("vars")
        group.attrs["name"] = layer.name
        for i, value in enumerate(_values(layer)):
            group.create_dataset(str(i), data=value)
    file.create_group("vars").attrs["name"] = model.name
    optimizer_state.write(model, file)


def load(model, path: str) -> None:
    """Set `model`'s weights from a `*.weights.h5` written by Keras 3 or by `save`; every layer
    is checked before any weight changes."""
    _check_suffix(path, "load_weights")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_weights: no file at {path!r}.")
    model._ensure_built()
    try:
        file = _h5py().File(path, "r")
    except OSError as exc:
        raise ValueError(f"load_weights: {path} is not a readable HDF5 file ({exc}).") from None
    with file:
        read(model, file, path)


def read(model, file, where: str) -> None:
    """Set `model`'s weights from an open h5py File in Keras 3's groups (`where` names it in
    messages); every layer is checked before any weight changes."""
    updates = []
    for key, layer in layer_keys(model):
        targets = layer.weights
        group = file.get(f"layers/{key}/vars")
        if group is None:
            if not targets:
                continue
            raise ValueError(
                f"load_weights: {where} has no weights for layer {layer.name!r} (group "
                f"layers/{key}): not the same architecture."
            )
        count = len(targets) + (1 if isinstance(layer, Normalization) and targets else 0)
        if set(group.keys()) != {str(i) for i in range(count)}:
            raise ValueError(
                f"load_weights: {where}: layer {layer.name!r} (layers/{key}) holds "
                f"{len(group.keys())} arrays, gpunet's {type(layer).__name__} has {count}."
            )
        for i, target in enumerate(targets):
            value = group[str(i)][()]
            if value.shape != _keras_shape(layer, target):
                raise ValueError(
                    f"load_weights: {where}: layer {layer.name!r} weight {i} has shape "
                    f"{value.shape}, the model's {_keras_shape(layer, target)}."
                )
            updates.append((target, value.reshape(target.shape)))
        if isinstance(layer, Normalization) and targets:
            updates.append((layer, int(group[str(len(targets))][()])))
    for target, value in updates:
        if isinstance(target, Normalization):
            target.adapted_count = value
        else:
            backend.copy_to_device(target, value)  # cast to the weight's float32
    optimizer_state.read(model, file, where)
