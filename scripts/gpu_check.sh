#!/usr/bin/env bash
# On a machine with a CUDA GPU, in at most six minutes (each part has a cap): the GPU tests
# (`pytest -m gpu`: every CUDA kernel, the cuBLASLt epilogues and the fused and graph steps on
# real CuPy against NumPy), the fast suite with CuPy as the backend, then bench/gpu.py (gpunet
# graph and eager against PyTorch eager and compiled, JAX jit, and the GEMMs alone), with the
# versions and the device. Results go to $OUT when it is set (the device tool's folder), else
# bench/results/. Needs CuPy, PyTorch, numpy, pyyaml, rich and pytest; nvmath-python for the
# graphs (wheels in .whl/ are installed first: the device tool's way to carry them); gpunet
# runs from this checkout.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/results}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 GPUNET_BACKEND=cupy
python=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr ' ' '-' | tr -cd 'A-Za-z0-9_.-')
stamp="$(date +%F)-${gpu:-gpu}"

{
  date -u
  nvidia-smi 2>&1 | head -15
  "$python" -m gpunet info 2>&1
} | tee "$out/$stamp-env.txt"

# The GPU-marked tests (real CuPy against NumPy), then the whole fast suite with real CuPy as
# the backend (the tools that only CI has, ruff and hadolint, are left out).
timeout 75 "$python" -m pytest -m gpu -q -p no:cacheprovider -o addopts="" \
  tests/cuda tests/step tests/kernels tests/test_trainer.py tests/test_checkpoint.py \
  tests/test_utils.py \
  2>&1 | tee "$out/$stamp-pytest-gpu.log"
tests=${PIPESTATUS[0]}
GPUNET_TEST_BACKEND=cupy timeout 110 "$python" -m pytest -q -p no:cacheprovider -o addopts="" \
  -m "not slow and not gpu" --ignore=tests/test_style.py --ignore=tests/test_packaging.py \
  --ignore=tests/test_standin.py 2>&1 | tee "$out/$stamp-pytest-cupy-suite.log"
suite=${PIPESTATUS[0]}

timeout 170 "$python" bench/gpu.py --epochs 4 --output "$out/$stamp.md" 2>&1 \
  | tee "$out/$stamp-bench.log"
bench=${PIPESTATUS[0]}

echo "gpu_check: pytest -m gpu exit $tests, suite on CuPy exit $suite, bench/gpu.py exit $bench;" \
  "results in $out/$stamp*"
[ "$tests" = 0 ] && [ "$suite" = 0 ] && [ "$bench" = 0 ]
