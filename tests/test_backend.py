import subprocess
import sys

import numpy as np
import pytest

from gpunet import backend


def test_numpy_backend_and_edges():
    assert backend.set_backend("numpy") == "numpy"
    assert backend.xp() is np
    a = np.arange(3, dtype=np.float32)
    assert backend.to_device(a, "float32") is a  # no copy on NumPy when nothing changes
    assert backend.to_host(a) is a
    assert backend.get_array_module(a) is np


def test_unknown_backend_lists_the_choices():
    with pytest.raises(
        ValueError, match="Unknown backend 'tpu'; expected one of auto, numpy, cupy"
    ):
        backend.set_backend("tpu")


def test_cupy_request_without_a_device_is_an_error_not_a_fallback(monkeypatch):
    monkeypatch.setattr(backend, "_load_cupy", lambda: (None, "CuPy found no CUDA device"))
    before = backend.get_backend()
    with pytest.raises(
        backend.BackendError, match="(?s)cannot run: CuPy found no CUDA device.*numpy"
    ):
        backend.set_backend("cupy")
    assert backend.get_backend() == before  # unchanged


def test_missing_cupy_keeps_its_import_error():
    cupy, why = backend._load_cupy()
    if cupy is not None:
        pytest.skip(f"a CuPy module ({cupy.__name__}) loads here; this test is about its absence")
    assert "CuPy" in why and "(" in why  # carries CuPy's own exception text


def test_auto_is_silent_and_keeps_its_reason(monkeypatch, capsys):
    monkeypatch.setattr(backend, "_load_cupy", lambda: (None, "CuPy is not installed"))
    assert backend.set_backend("auto") == "numpy"
    assert capsys.readouterr().err == ""
    assert backend.auto_reason == "CuPy is not installed"


def test_environment_variable_selects_the_backend():
    code = "import gpunet as gn; print(gn.backend.get_backend())"
    env = {"GPUNET_BACKEND": "numpy", "PATH": "", "PYTHONPATH": ":".join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "numpy" and out.stderr == ""
    env["GPUNET_BACKEND"] = "tpu"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert "Unknown backend 'tpu'" in out.stderr
