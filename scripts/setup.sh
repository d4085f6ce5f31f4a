#!/usr/bin/env bash
# Set up a fresh machine: the real Fashion-MNIST (Debian package, when missing and installable)
# and a virtual environment at .venv with gpunet, its test extras and NVRTC (to compile the CUDA
# sources without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*" >&2; }

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  say "installing Debian's dataset-fashion-mnist (the real Fashion-MNIST) ..."
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -q
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist
  else
    echo "setup: cannot install dataset-fashion-mnist (not root, no sudo); put the IDX files in" \
         "\$GPUNET_DATA/fashion_mnist/ instead." >&2
  fi
fi

say "creating .venv and installing gpunet with its test and nvrtc extras (a minute or two) ..."
python3 -m venv .venv
.venv/bin/python -m pip install -q -e '.[test,nvrtc]'
say "done: run .venv/bin/gpunet, or 'source .venv/bin/activate' first to type just gpunet"
