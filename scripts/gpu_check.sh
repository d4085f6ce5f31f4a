#!/usr/bin/env bash
# On a machine with a CUDA GPU, in at most six and a half minutes (each part has a cap): the
# GPU tests (`pytest -m gpu`), the fast suite with CuPy as the backend, then bench/gpu.py
# (gpunet on CuPy against PyTorch eager), with the versions and the device.
# Results go to $OUT when it is set (the device tool's folder), else bench/results/.
# Needs CuPy, PyTorch, numpy, pyyaml, rich and pytest; gpunet runs from this checkout.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/results}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 GPUNET_BACKEND=cupy
python=${PYTHON:-python3}
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr ' ' '-' | tr -cd 'A-Za-z0-9_.-')
stamp="$(date +%F)-${gpu:-gpu}"

{
  date -u
  nvidia-smi 2>&1 | head -15
  "$python" -m gpunet info 2>&1
} | tee "$out/$stamp-env.txt"

# The GPU-marked tests (real CuPy against NumPy), then the whole fast suite with real CuPy as
# the backend (the tools that only CI has, ruff and hadolint, are left out).
timeout 90 "$python" -m pytest -m gpu -q -p no:cacheprovider -o addopts="" \
  tests/kernels tests/test_trainer.py tests/test_checkpoint.py tests/test_utils.py \
  2>&1 | tee "$out/$stamp-pytest-gpu.log"
tests=${PIPESTATUS[0]}
GPUNET_TEST_BACKEND=cupy timeout 150 "$python" -m pytest -q -p no:cacheprovider -o addopts="" \
  -m "not slow and not gpu" --ignore=tests/test_style.py --ignore=tests/test_packaging.py \
  --ignore=tests/test_standin.py 2>&1 | tee "$out/$stamp-pytest-cupy-suite.log"
suite=${PIPESTATUS[0]}

timeout 150 "$python" bench/gpu.py --output "$out/$stamp.md" 2>&1 | tee "$out/$stamp-bench.log"
bench=${PIPESTATUS[0]}

echo "gpu_check: pytest -m gpu exit $tests, suite on CuPy exit $suite, bench/gpu.py exit $bench;" \
  "results in $out/$stamp*"
[ "$tests" = 0 ] && [ "$suite" = 0 ] && [ "$bench" = 0 ]
