#!/usr/bin/env bash
# On a machine with a CUDA GPU, in a few minutes: the GPU tests (`pytest -m gpu`), then
# bench/gpu.py (gpunet on CuPy against PyTorch eager), with the versions and the device.
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

# The GPU-marked tests only; the CPU suite runs in CI.
timeout 180 "$python" -m pytest -m gpu -q -p no:cacheprovider -o addopts="" \
  tests/kernels tests/test_trainer.py tests/test_checkpoint.py 2>&1 | tee "$out/$stamp-pytest-gpu.log"
tests=${PIPESTATUS[0]}

timeout 300 "$python" bench/gpu.py --output "$out/$stamp.md" 2>&1 | tee "$out/$stamp-bench.log"
bench=${PIPESTATUS[0]}

echo "gpu_check: pytest -m gpu exit $tests, bench/gpu.py exit $bench; results in $out/$stamp*"
[ "$tests" = 0 ] && [ "$bench" = 0 ]
