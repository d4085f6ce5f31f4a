# gpunet on a CUDA 12 GPU machine:
#   docker build -t gpunet .
#   docker run --gpus all -v $PWD/runs:/app/runs gpunet train configs/mnist_adam.yaml
FROM nvidia/cuda:12.6.3-runtime-ubuntu24.04

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gpunet ./gpunet
COPY configs ./configs

# The same install line is checked in a fresh venv by tests/test_packaging.py.
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir ".[cuda12]"
ENV PATH=/opt/venv/bin:$PATH \
    GPUNET_BACKEND=auto

ENTRYPOINT ["gpunet"]
CMD ["--help"]
