"""gpunet on CuPy against PyTorch and JAX on the same GPU: seconds per epoch, peak memory.

    python bench/gpu.py --output bench/results/2026-12-01-h200.md

Systems: gpunet with CUDA graphs (one replay per execution of --steps-per-execution steps),
gpunet's fused step eager, PyTorch eager, PyTorch torch.compile(mode="reduce-overhead") (CUDA
graphs), JAX jit (where JAX runs), and, for each workload, its GEMMs alone (the step's eight
matrix products through gpunet's cuBLASLt plans, no other work: the floor for large layers).
Workloads (Fashion-MNIST shapes, synthetic values: the timing does not depend on them): W1
784-128-128-10 SGD batch 128, 48,000 samples; W2 W1 + Dropout 0.3, Adam; W3 784-300-100-10 SGD
batch 32, 55,000 samples; big 4096-4096-4096-10 SGD batch 4096, 65,536 samples. Each system runs
in its own process; s/epoch is the median of epochs 2..N (the first pays for warm-up, capture
and compilation); peak memory is the memory pool's high-water mark (CuPy: the default pool's
total bytes; PyTorch: max_memory_allocated), beside the bound the issue sets: data + parameters
+ optimizer slots + two batches of activations. Exact float32 everywhere (TF32 off).

Needs a CUDA GPU, CuPy, nvmath-python (for gpunet's graphs), PyTorch; JAX optional. A dry run
on a CPU: `GPUNET_CUPY_MODULE=tests.standin PYTHONPATH=. python bench/gpu.py --workloads w1
--epochs 2 --samples 2048` (gpunet runs on the test suite's stand-in and its cuBLASLt, the
others fail without a GPU: their cells say why; times mean nothing).
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


def _gpunet_fit(spec, epochs, graphs: bool, per_execution: int):
    import gpunet as gn

    gn.backend.set_backend("cupy")
    xp = gn.backend.xp()  # CuPy (or, for a dry run on a CPU, the test suite's stand-in)
    x, y = _data(spec)
    gn.utils.set_random_seed(0)
    model = build_model(gn, spec)
    model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"],
                  cuda_graphs=graphs, steps_per_execution=per_execution)  # fmt: skip
    times = []

    def begin(epoch, logs):
        xp.cuda.Device().synchronize()
        times.append(-time.perf_counter())

    def end(epoch, logs):
        xp.cuda.Device().synchronize()
        times[-1] += time.perf_counter()

    timer = gn.callbacks.LambdaCallback(on_epoch_begin=begin, on_epoch_end=end)
    model.fit(x, y, batch_size=spec["batch"], epochs=epochs, verbose=0, callbacks=[timer])
    training = type(model._trainer.training).__name__
    pool = getattr(xp, "get_default_memory_pool", None)
    return times, pool().total_bytes() if pool else 0, training


def run_gpunet_graph(spec, epochs, per_execution):
    return _gpunet_fit(spec, epochs, True, per_execution)


def run_gpunet_eager(spec, epochs, per_execution):
    return _gpunet_fit(spec, epochs, False, 1)


def _torch_model(spec, device):
    import torch

    layers, width_in = [], spec["inputs"]
    for width in spec["units"]:
        layers += [torch.nn.Linear(width_in, width), torch.nn.ReLU()]
        if spec["dropout"]:
            layers.append(torch.nn.Dropout(spec["dropout"]))
        width_in = width
    layers.append(torch.nn.Linear(width_in, 10))
    return torch.nn.Sequential(*layers).to(device)


def _run_torch(spec, epochs, compiled: bool):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False  # gpunet computes in exact float32
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device("cuda")
    torch.manual_seed(0)
    x_host, y_host = _data(spec)
    x = torch.from_numpy(x_host).to(device)
    y = torch.from_numpy(y_host).to(device)
    model = _torch_model(spec, device)
    lr = LEARNING_RATE[spec["optimizer"]]
    if spec["optimizer"] == "adam":  # capturable: its step count stays on the device
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, capturable=compiled)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(xb, yb):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        return loss

    if compiled:
        step = torch.compile(step, mode="reduce-overhead")
    n, batch = len(x), spec["batch"]
    full = n - n % batch  # compiled: full batches only (one shape, one graph)
    times = []
    for _ in range(epochs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        order = torch.randperm(n, device=device)
        for first in range(0, full if compiled else n, batch):
            idx = order[first : first + batch]
            step(x[idx], y[idx])
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times, torch.cuda.max_memory_allocated(), "compiled" if compiled else "eager"


def run_torch(spec, epochs, per_execution):
    return _run_torch(spec, epochs, False)


def run_torch_compile(spec, epochs, per_execution):
    return _run_torch(spec, epochs, True)


def run_jax(spec, epochs, per_execution):
    import jax
    import jax.numpy as jnp

    if jax.default_backend() != "gpu":
        raise RuntimeError(f"JAX runs on {jax.default_backend()}, not a GPU")
    x_host, y_host = _data(spec)
    x, y = jnp.asarray(x_host), jnp.asarray(y_host)
    key = jax.random.PRNGKey(0)
    sizes = [spec["inputs"], *spec["units"], 10]
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        key, sub = jax.random.split(key)
        limit = (6.0 / (fan_in + fan_out)) ** 0.5
        params.append((jax.random.uniform(sub, (fan_in, fan_out), jnp.float32, -limit, limit),
                       jnp.zeros(fan_out, jnp.float32)))  # fmt: skip
    rate, lr = spec["dropout"], LEARNING_RATE[spec["optimizer"]]

    def loss_fn(params, xb, yb, key):
        h = xb
        for i, (w, b) in enumerate(params):
            h = jnp.dot(h, w, precision="highest") + b
            if i < len(params) - 1:
                h = jax.nn.relu(h)
                if rate:
                    key, sub = jax.random.split(key)
                    h = jnp.where(jax.random.bernoulli(sub, 1 - rate, h.shape), h / (1 - rate), 0)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(h), yb[:, None], axis=1))

    @jax.jit
    def step(params, xb, yb, key):  # SGD (Adam workloads: SGD's cost is a lower bound)
        grads = jax.grad(loss_fn)(params, xb, yb, key)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)

    n, batch = len(x_host), spec["batch"]
    full = n - n % batch
    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        order = jax.random.permutation(jax.random.PRNGKey(epoch), n)
        for first in range(0, full, batch):
            idx = order[first : first + batch]
            params = step(params, x[idx], y[idx], jax.random.PRNGKey(first))
        jax.block_until_ready(params)
        times.append(time.perf_counter() - start)
    return times, 0, "jit (SGD)"


def run_gemms_alone(spec, epochs, per_execution):
    """The step's matrix products alone through gpunet's cuBLASLt plans, for an epoch's
    steps: the forward GEMMs and the backward's weight and input GEMMs (plain, no
    epilogues)."""
    import gpunet as gn
    from gpunet.cuda import gemm

    gn.backend.set_backend("cupy")
    xp = gn.backend.xp()
    products = gemm.Gemm(xp, gemm.load(xp))
    rows, sizes = spec["batch"], [spec["inputs"], *spec["units"], 10]
    steps = spec["samples"] // rows
    calls = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        x, w = xp.zeros((rows, fan_in), xp.float32), xp.zeros((fan_in, fan_out), xp.float32)
        z, gw = xp.zeros((rows, fan_out), xp.float32), xp.zeros((fan_in, fan_out), xp.float32)
        forward = products.forward(rows, fan_in, fan_out, False, False)
        weights = products.weights(rows, fan_in, fan_out, False)
        calls += [lambda f=forward, x=x, w=w, z=z: f(x, w, z),
                  lambda f=weights, x=x, z=z, gw=gw: f(x, z, gw)]  # fmt: skip
        if i:
            inputs = products.inputs(rows, fan_in, fan_out, False, False)
            calls.append(lambda f=inputs, z=z, w=w, x=x: f(z, w, x))
    times = []
    for _ in range(epochs):
        xp.cuda.Device().synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            for call in calls:
                call()
        xp.cuda.Device().synchronize()
        times.append(time.perf_counter() - start)
    return times, 0, f"{len(calls)} GEMMs/step"


def memory_bound(spec) -> int:
    """Bytes the issue allows: data + parameters + slots + two batches of activations."""
    sizes = [spec["inputs"], *spec["units"], 10]
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    slots = {"sgd": 0, "adam": 2}[spec["optimizer"]] * params
    data = spec["samples"] * (spec["inputs"] + 2)  # float32 features; int64 labels
    activations = 2 * spec["batch"] * sum(sizes) * (3 if spec["dropout"] else 2)
    return 4 * (data + 2 * params + slots + activations)


RUNNERS = {
    "gpunet-graph": run_gpunet_graph,
    "gpunet-eager": run_gpunet_eager,
    "torch-eager": run_torch,
    "torch-compile": run_torch_compile,
    "jax-jit": run_jax,
    "gemms-alone": run_gemms_alone,
}


def _child(system: str, workload: str, epochs: int, per_execution: int, samples) -> None:
    spec = dict(WORKLOADS[workload])
    if samples:
        spec["samples"] = samples
    times, peak, how = RUNNERS[system](spec, epochs, per_execution)
    print(json.dumps({"times": times, "peak_bytes": int(peak), "how": how}))


def _run(system: str, workload: str, epochs: int, per_execution: int, samples) -> dict:
    command = [sys.executable, __file__, "--child", system, "--workload", workload]
    command += ["--epochs", str(epochs), "--steps-per-execution", str(per_execution)]
    if samples:
        command += ["--samples", str(samples)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return {"error": "timed out (300 s)"}
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1][:120]}
    out = json.loads(result.stdout.strip().splitlines()[-1])
    out["s_per_epoch"] = statistics.median(out["times"][1:] or out["times"])
    return out


def _versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in ("numpy", "cupy", "torch", "jax", "nvmath"):
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


def _table(rows, epochs, per_execution, versions) -> str:
    systems = list(RUNNERS)
    lines = [
        f"# GPU benchmark, {datetime.date.today()}, {versions.get('device')}",
        "",
        f"`python bench/gpu.py --epochs {epochs} --steps-per-execution {per_execution}`; "
        "versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "",
        "ms per epoch (median of epochs 2..N); ratio: PyTorch eager / gpunet graph.",
        "",
        "| workload | " + " | ".join(systems) + " | PyTorch eager / gpunet graph | graph peak MiB "
        "| bound MiB |",
        "|---|" + "---|" * (len(systems) + 3),
    ]
    for workload, results in rows:
        cells = []
        for system in systems:
            result = results[system]
            if "error" in result:
                cells.append(f"error: {result['error']}")
            else:
                cells.append(f"{1000 * result['s_per_epoch']:.2f} ({result['how']})")
        graph, torch = results["gpunet-graph"], results["torch-eager"]
        ratio = "-"
        if "error" not in graph and "error" not in torch:
            ratio = f"{torch['s_per_epoch'] / graph['s_per_epoch']:.1f}x"
        peak = "-" if "error" in graph else f"{graph['peak_bytes'] / 2**20:.0f}"
        bound = f"{memory_bound(WORKLOADS[workload]) / 2**20:.0f}"
        lines.append(f"| {workload} | " + " | ".join(cells) + f" | {ratio} | {peak} | {bound} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="w1,w2,w3,big")
    parser.add_argument("--systems", default=",".join(RUNNERS))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-execution", type=int, default=64)
    parser.add_argument("--samples", type=int, help="fewer samples (a dry run)")
    parser.add_argument("--output", help="a Markdown file for the results")
    parser.add_argument("--child", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.workload, args.epochs, args.steps_per_execution, args.samples)
        return
    versions = _versions()
    rows = []
    for workload in args.workloads.split(","):
        results = {}
        for system in RUNNERS:
            if system in args.systems.split(","):
                results[system] = _run(
                    system, workload, args.epochs, args.steps_per_execution, args.samples
                )
            else:
                results[system] = {"error": "not run (--systems)"}
        rows.append((workload, results))
        print(workload, json.dumps(results), flush=True)
    text = _table(rows, args.epochs, args.steps_per_execution, versions)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
