#!/usr/bin/env bash
# The test suite, twice: on NumPy, then with CuPy as the backend through the strict CPU
# stand-in (tests/standin.py), so the CuPy path runs without a GPU. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== pytest on NumPy"
.venv/bin/python -m pytest "$@"
echo "== pytest on the CuPy path (GPUNET_TEST_BACKEND=standin)"
GPUNET_TEST_BACKEND=standin .venv/bin/python -m pytest "$@"
