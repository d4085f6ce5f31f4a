"""Shared fixtures: a fresh session per test, and the `xp` fixture over NumPy and CuPy."""

import os

import numpy as np
import pytest

import gpunet as gn
from gpunet import backend


def _cupy_ready() -> bool:
    return backend._load_cupy()[0] is not None


@pytest.fixture(autouse=True)
def numpy_session():
    """Each test starts on NumPy with fresh default names; a test may switch to CuPy itself."""
    backend.set_backend("numpy")
    gn.utils.clear_session()
    yield
    backend.set_backend("numpy")


@pytest.fixture(
    params=[
        "numpy",
        pytest.param("cupy", marks=pytest.mark.gpu),
    ]
)
def xp(request):
    """The array module under test; the CuPy case needs a CUDA device."""
    if request.param == "cupy":
        if not _cupy_ready():
            pytest.skip("CuPy with a CUDA device is not available on this machine")
        backend.set_backend("cupy")
        import cupy

        return cupy
    return np


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
