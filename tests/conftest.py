"""Shared fixtures: a fresh session per test, and the `xp` fixture over NumPy and CuPy.

`GPUNET_TEST_BACKEND=standin` runs the whole suite with CuPy as the backend, through the strict
CPU stand-in (tests/standin.py); CI runs the suite both ways. `GPUNET_TEST_BACKEND=cupy` runs it
on real CuPy, on a GPU machine. Subprocesses (the CLI tests) inherit the choice through the
environment.
"""

import os

import numpy as np
import pytest

import gpunet as gn
from gpunet import backend

STANDIN_MODULE = "tests.standin"
SESSION_BACKEND = os.environ.get("GPUNET_TEST_BACKEND", "numpy")
if SESSION_BACKEND not in ("numpy", "standin", "cupy"):
    raise SystemExit(f"GPUNET_TEST_BACKEND must be numpy, standin or cupy, not {SESSION_BACKEND!r}")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if SESSION_BACKEND == "standin":
    # Subprocesses (`python -m gpunet ...`) load the same stand-in.
    os.environ[backend.MODULE_ENV_VAR] = STANDIN_MODULE
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))


def _cupy_ready() -> bool:
    if os.environ.get(backend.MODULE_ENV_VAR, "cupy") != "cupy":
        return False  # the stand-in is not a GPU
    return backend._load_cupy()[0] is not None


def use_standin():
    """Make the stand-in the backend (CuPy's path, on the CPU); returns the module."""
    from tests import standin

    backend._use_device(standin)
    return standin


def session_backend_env() -> dict:
    """The environment a CLI subprocess needs to run on this session's backend."""
    return {"GPUNET_BACKEND": "numpy" if SESSION_BACKEND == "numpy" else "cupy"}


@pytest.fixture(autouse=True)
def numpy_session():
    """Each test starts on the session's backend (NumPy, or the stand-in with
    GPUNET_TEST_BACKEND=standin) with fresh default names; a test may switch itself."""
    if SESSION_BACKEND == "standin":
        use_standin()
    else:
        backend.set_backend(SESSION_BACKEND)  # "cupy" raises where CuPy cannot run
    gn.utils.clear_session()
    yield
    backend.set_backend("numpy")


@pytest.fixture(
    params=[
        "numpy",
        "standin",
        pytest.param("cupy", marks=pytest.mark.gpu),
    ]
)
def xp(request):
    """The array module under test: NumPy, the CuPy stand-in, and CuPy on a CUDA device."""
    if request.param == "cupy":
        if not _cupy_ready():
            pytest.skip("CuPy with a CUDA device is not available on this machine")
        backend.set_backend("cupy")
        import cupy

        return cupy
    if request.param == "standin":
        return use_standin()
    backend.set_backend("numpy")
    return np


@pytest.fixture(params=["standin", pytest.param("cupy", marks=pytest.mark.gpu)])
def cupy_path(request):
    """(switch, rtol): a function that makes a CuPy path the backend (the stand-in, or CuPy on
    a CUDA device), and the relative tolerance of its results against NumPy's (the fused step
    runs its CUDA kernels there, on the CPU: their sums run in another order and their exp and
    log are the C library's, a few float32 roundings apart; a GPU's are further)."""
    if request.param == "cupy":
        if not _cupy_ready():
            pytest.skip("CuPy with a CUDA device is not available on this machine")
        return (lambda: backend.set_backend("cupy")), 2e-4
    return use_standin, 1e-5


@pytest.fixture(params=["standin", pytest.param("cupy", marks=pytest.mark.gpu)])
def device(request):
    """A device array module for gpunet's CUDA kernels: the stand-in (the kernels' source
    compiled for the CPU by tests/cuda_host.py), and CuPy on a CUDA device (`-m gpu`)."""
    if request.param == "cupy":
        if not _cupy_ready():
            pytest.skip("CuPy with a CUDA device is not available on this machine")
        backend.set_backend("cupy")
        import cupy

        return cupy
    return use_standin()


@pytest.fixture
def cp():
    """CuPy on its backend, for GPU-only tests (mark them `gpu`); skipped without a device."""
    if not _cupy_ready():
        pytest.skip("CuPy with a CUDA device is not available on this machine")
    backend.set_backend("cupy")
    import cupy

    return cupy


@pytest.fixture(scope="session")
def fashion_mnist_folder():
    """Debian's dataset-fashion-mnist folder. In CI (CI=true) its absence fails the test that
    needs it, since .ci/run installs it; elsewhere the test is skipped, saying why."""
    from gpunet.datasets import fashion_mnist

    folder = fashion_mnist.SOURCE.system_dirs[0]
    if not os.path.isdir(folder):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{folder} is missing in CI: .ci/run must install dataset-fashion-mnist")
        pytest.skip(f"{folder} not installed (apt-get install dataset-fashion-mnist)")
    return folder
