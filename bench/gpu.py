"""gpunet on CuPy against PyTorch eager on the same GPU: seconds per epoch and peak device memory.

    python bench/gpu.py --output bench/results/2026-12-01-h200.md

Workloads (Fashion-MNIST shapes, synthetic values: the timing does not depend on them):
W1 784-128-128-10 SGD batch 128, 48,000 samples; W2 W1 + Dropout 0.3, Adam; W3 784-300-100-10
SGD batch 32, 55,000 samples; big 4096-4096-4096-10 SGD batch 4096, 65,536 samples. Each system
runs in its own process; s/epoch is the median of epochs 2..N (the first pays for warm-up and
compilation), peak memory is the memory pool's high-water mark (CuPy: the default pool's total
bytes; PyTorch: max_memory_allocated). Needs a CUDA GPU, CuPy and PyTorch. A dry run of the
script on a CPU: `GPUNET_CUPY_MODULE=tests.standin PYTHONPATH=. python bench/gpu.py --workloads
w1 --epochs 2` (gpunet runs on the test suite's stand-in; its times mean nothing).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT]

from workloads import LEARNING_RATE, build_model  # noqa: E402
from workloads import WORKLOADS as BENCH_WORKLOADS  # noqa: E402

# bench/workloads.py's W1-W3 at their sizes, and the large case.
WORKLOADS = {
    **{name: dict(spec, inputs=784) for name, spec in BENCH_WORKLOADS.items()},
    "big": dict(
        inputs=4096, units=(4096, 4096), dropout=0.0, optimizer="sgd", batch=4096, samples=65536
    ),
}


def _data(spec, seed=0):
    import numpy as np

    rs = np.random.default_rng(seed)
    x = rs.random((spec["samples"], spec["inputs"]), dtype=np.float32)
    y = rs.integers(0, 10, spec["samples"])
    return x, y


def run_gpunet(spec, epochs):
    import gpunet as gn

    gn.backend.set_backend("cupy")
    xp = gn.backend.xp()  # CuPy (or, for a dry run on a CPU, the test suite's stand-in)
    x, y = _data(spec)
    gn.utils.set_random_seed(0)
    model = build_model(gn, spec)
    times = []

    def begin(epoch, logs):
        xp.cuda.Device().synchronize()
        times.append(-time.perf_counter())

    def end(epoch, logs):
        xp.cuda.Device().synchronize()
        times[-1] += time.perf_counter()

    timer = gn.callbacks.LambdaCallback(on_epoch_begin=begin, on_epoch_end=end)
    model.fit(x, y, batch_size=spec["batch"], epochs=epochs, verbose=0, callbacks=[timer])
    pool = getattr(xp, "get_default_memory_pool", None)
    return times, pool().total_bytes() if pool else 0


def run_torch(spec, epochs):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False  # gpunet computes in exact float32
    device = torch.device("cuda")
    torch.manual_seed(0)
    x_host, y_host = _data(spec)
    x = torch.from_numpy(x_host).to(device)
    y = torch.from_numpy(y_host).to(device)
    layers, width_in = [], spec["inputs"]
    for width in spec["units"]:
        layers += [torch.nn.Linear(width_in, width), torch.nn.ReLU()]
        if spec["dropout"]:
            layers.append(torch.nn.Dropout(spec["dropout"]))
        width_in = width
    layers.append(torch.nn.Linear(width_in, 10))
    model = torch.nn.Sequential(*layers).to(device)
    optimizer = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[spec["optimizer"]](
        model.parameters(), lr=LEARNING_RATE[spec["optimizer"]]
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    n, batch = len(x), spec["batch"]
    times = []
    for _ in range(epochs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        order = torch.randperm(n, device=device)
        for first in range(0, n, batch):
            idx = order[first : first + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times, torch.cuda.max_memory_allocated()


RUNNERS = {"gpunet": run_gpunet, "torch": run_torch}


def _child(system: str, workload: str, epochs: int) -> None:
    times, peak = RUNNERS[system](WORKLOADS[workload], epochs)
    print(json.dumps({"times": times, "peak_bytes": int(peak)}))


def _run(system: str, workload: str, epochs: int) -> dict:
    command = [sys.executable, __file__, "--child", system, "--workload", workload]
    command += ["--epochs", str(epochs)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1]}
    out = json.loads(result.stdout.strip().splitlines()[-1])
    out["s_per_epoch"] = statistics.median(out["times"][1:])
    return out


def _versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in ("numpy", "cupy", "torch"):
        try:
            versions[name] = __import__(name).__version__
        except Exception as exc:  # reported, not fatal
            versions[name] = f"missing ({type(exc).__name__})"
    try:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        versions["device"] = props["name"].decode()
        versions["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        versions["driver"] = cupy.cuda.runtime.driverGetVersion()
    except Exception as exc:
        versions["device"] = f"unknown ({type(exc).__name__}: {exc})"
    return versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="w1,w2,w3,big")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--output", help="a Markdown file for the results")
    parser.add_argument("--child", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.workload, args.epochs)
        return
    versions = _versions()
    rows = []
    for workload in args.workloads.split(","):
        results = {system: _run(system, workload, args.epochs) for system in RUNNERS}
        rows.append((workload, results))
        print(workload, json.dumps(results), flush=True)
    lines = [
        f"# GPU benchmark, {datetime.date.today()}, {versions.get('device')}",
        "",
        f"`python bench/gpu.py --epochs {args.epochs}`; versions: "
        + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "",
        "| workload | gpunet s/epoch | PyTorch eager s/epoch | PyTorch / gpunet | gpunet peak MiB "
        "| PyTorch peak MiB |",
        "|---|---|---|---|---|---|",
    ]
    for workload, results in rows:
        ours, theirs = results["gpunet"], results["torch"]

        def cell(result, key, scale=1.0, digits=4):
            return result.get("error") or f"{result[key] / scale:.{digits}f}"

        ratio = (
            f"{theirs['s_per_epoch'] / ours['s_per_epoch']:.2f}x"
            if "error" not in ours and "error" not in theirs
            else "-"
        )
        lines.append(
            f"| {workload} | {cell(ours, 's_per_epoch')} | {cell(theirs, 's_per_epoch')} | "
            f"{ratio} | {cell(ours, 'peak_bytes', 2**20, 0)} | "
            f"{cell(theirs, 'peak_bytes', 2**20, 0)} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
