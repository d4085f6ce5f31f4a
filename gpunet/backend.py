"""Pick the array module (NumPy or CuPy) once, and move arrays across the host/device edge.

Everything else in gpunet is written against the module this returns (`xp`), so the same
layer, loss and optimizer code runs on a CUDA GPU or on the CPU.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import numpy as np

BACKENDS = ("auto", "numpy", "cupy")
ENV_VAR = "GPUNET_BACKEND"
# The module imported for the "cupy" backend: CuPy itself, unless this names another module with
# CuPy's API (the test suite's strict CPU stand-in, tests/standin.py, runs the CuPy path in CI).
MODULE_ENV_VAR = "GPUNET_CUPY_MODULE"


class BackendError(RuntimeError):
    """The requested backend cannot run here; the message says why and how to fix it."""


_name: str | None = None
_xp: ModuleType | None = None


def _load_cupy() -> tuple[ModuleType | None, str]:
    """Import CuPy and check a device is usable; return (module, "") or (None, why not)."""
    module_name = os.environ.get(MODULE_ENV_VAR, "cupy")
    try:
        cupy = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        return None, f"CuPy is not installed or failed to import ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, driver too old, ...: keep CuPy's own words
        return None, f"CuPy cannot reach a CUDA device ({type(exc).__name__}: {exc})"
    if count < 1:
        return None, "CuPy found no CUDA device"
    return cupy, ""


# Why "auto" chose what it chose (None until it has run): `gpunet info` and `train` say it.
auto_reason: str | None = None


def set_backend(name: str) -> str:
    """Select the array backend: "numpy", "cupy", or "auto" (CuPy when a device works, else NumPy).

    Returns the name of the backend that now runs. Asking for "cupy" where it cannot run
    raises BackendError; it never falls back silently. "auto" prints nothing (a library does
    not write to stderr); it keeps its reason in `auto_reason`.
    """
    global _name, _xp, auto_reason
    if not isinstance(name, str) or name.lower() not in BACKENDS:
        raise ValueError(f"Unknown backend {name!r}; expected one of {', '.join(BACKENDS)}.")
    name = name.lower()
    auto_reason = None
    if name == "numpy":
        _name, _xp = "numpy", np
    elif name == "cupy":
        cupy, why = _load_cupy()
        if cupy is None:
            raise BackendError(
                f"The cupy backend was requested but cannot run: {why}.\n"
                "Hint: install the CuPy extra matching your CUDA version "
                "(pip install 'gpunet[cuda12]' or 'gpunet[cuda13]'), or use backend 'numpy'."
            )
        _use_device(cupy)
    else:
        cupy, why = _load_cupy()
        if cupy is not None:
            _use_device(cupy)
        else:
            _name, _xp = "numpy", np
        auto_reason = why or "a CUDA device was found"
    return _name


def _use_device(module: ModuleType) -> None:
    global _name, _xp
    from gpunet import distributed

    if distributed.launched_size() > 1:  # each rank of an MPI job on its own GPU
        count = module.cuda.runtime.getDeviceCount()
        module.cuda.Device(distributed.local_rank_from_env() % count).use()
    _name, _xp = "cupy", module
    _DEVICE_MODULES[module.ndarray] = module


# Device array type -> its module, for every CuPy-like module loaded in this process. An array
# keeps its module even after the backend switches back to NumPy.
_DEVICE_MODULES: dict[type, ModuleType] = {}


def _ensure() -> None:
    if _xp is None:
        set_backend(os.environ.get(ENV_VAR, "auto"))


def get_backend() -> str:
    """Name of the active backend ("numpy" or "cupy"), resolving it on first use."""
    _ensure()
    return _name  # type: ignore[return-value]


def xp() -> ModuleType:
    """The active array module."""
    _ensure()
    return _xp  # type: ignore[return-value]


def get_array_module(x) -> ModuleType:
    """The array module that owns `x` (CuPy for CuPy arrays, else NumPy), from `x` alone."""
    return _DEVICE_MODULES.get(type(x), np)


def is_device_array(x) -> bool:
    """Whether `x` lives on a device (a CuPy array), not in host memory."""
    return type(x) in _DEVICE_MODULES


def to_device(array, dtype=None):
    """Copy a host array to the active backend (no copy on NumPy when dtype already matches)."""
    return xp().asarray(array, dtype=dtype)


def copy_to_device(target, host: np.ndarray) -> None:
    """Copy a host array into the existing array `target` (device or host), allocating nothing."""
    if type(target) in _DEVICE_MODULES:
        target.set(np.ascontiguousarray(host, dtype=target.dtype))
    else:
        target[...] = host


def to_host(array) -> np.ndarray:
    """Return a NumPy array for `array`, copying from the device when needed."""
    if type(array) in _DEVICE_MODULES:
        return array.get()
    return np.asarray(array)


def clear_session() -> None:
    """`keras.backend.clear_session()`: default layer and model names start afresh."""
    from gpunet import naming

    naming.reset()
