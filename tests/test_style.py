"""The tree passes ruff (lint and format), as configured in pyproject.toml: what CI enforces."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREE = ["gpunet", "tests", "bench", "scripts"]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_finds_nothing(command):
    out = subprocess.run(
        [sys.executable, "-m", "ruff", *command, *TREE], cwd=ROOT, capture_output=True, text=True
    )
    if "No module named ruff" in out.stderr:
        pytest.fail("ruff is missing: it comes with the test extra")
    assert out.returncode == 0, out.stdout + out.stderr
