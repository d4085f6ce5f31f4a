"""gpunet against the trainers people would otherwise use, side by side on one machine.

    python bench/compare.py --workload w1 --peers numpy,torch,keras,sklearn --epochs 5 --repeat 3

Each system trains in its own process, one at a time, alternating across repeats; each reports
its seconds per epoch (median of epochs 2..N: the first pays for warm-up), test accuracy after
its run, and peak RSS. The GEMM floor (bench/floor.py) is measured the same way. A peer that is
not installed is reported as missing. Peers: `numpy` (bench/handloop.py: gpunet's arithmetic as
one hand-written loop), `numba` (bench/numba_loop.py: that loop with its non-GEMM ops compiled,
`pip install numba`), and `pip install torch==2.13.0 scikit-learn keras jax` (or the `bench`
extra).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from workloads import LEARNING_RATE, WORKLOADS, build_model, gpunet_model, load  # noqa: E402

PEERS = ("numpy", "numba", "torch", "keras", "sklearn")


def run_gpunet(spec, epochs, threads):
    import gpunet as gn

    gn.backend.set_backend("numpy")
    x, y, x_test, y_test = load(spec)
    gn.utils.set_random_seed(0)
    model = gpunet_model(spec)
    times = []
    timer = gn.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: times.append(-time.perf_counter()),
        on_epoch_end=lambda epoch, logs: times.__setitem__(-1, times[-1] + time.perf_counter()),
    )
    model.fit(x, y, batch_size=spec["batch"], epochs=epochs, verbose=0, callbacks=[timer])
    _, accuracy = model.evaluate(x_test, y_test, batch_size=1000)
    return times, accuracy


def run_torch(spec, epochs, threads):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x, y, x_test, y_test = (torch.from_numpy(a) for a in load(spec))
    layers, width_in = [], 784
    for width in spec["units"]:
        layers += [torch.nn.Linear(width_in, width), torch.nn.ReLU()]
        if spec["dropout"]:
            layers.append(torch.nn.Dropout(spec["dropout"]))
        width_in = width
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width_in, 10))
    # Keras's initialisation (glorot_uniform kernels, zero biases), so that accuracies compare
    # the trainers, not PyTorch's default kaiming_uniform(a=sqrt(5)) init.
    for module in model:
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(module.weight)
            torch.nn.init.zeros_(module.bias)
    if spec["optimizer"] == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE["sgd"])
    else:  # Keras's Adam defaults
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE["adam"], eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    times, batch = [], spec["batch"]
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return times, accuracy


def run_keras(spec, epochs, threads):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    keras.utils.set_random_seed(0)
    x, y, x_test, y_test = load(spec)
    model = build_model(keras, spec)
    times = []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: times.append(-time.perf_counter()),
        on_epoch_end=lambda epoch, logs: times.__setitem__(-1, times[-1] + time.perf_counter()),
    )
    model.fit(x, y, batch_size=spec["batch"], epochs=epochs, verbose=0, callbacks=[timer])
    _, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    return times, accuracy


def run_sklearn(spec, epochs, threads):
    import numpy as np
    from sklearn.neural_network import MLPClassifier

    x, y, x_test, y_test = load(spec)
    # scikit-learn has no dropout; otherwise the same model, plain SGD (no momentum, no L2).
    model = MLPClassifier(
        hidden_layer_sizes=spec["units"],
        solver=spec["optimizer"],
        learning_rate_init=LEARNING_RATE[spec["optimizer"]],
        batch_size=spec["batch"],
        momentum=0.0,
        nesterovs_momentum=False,
        alpha=0.0,
        epsilon=1e-7,
        shuffle=True,
        random_state=0,
    )
    classes = np.arange(10)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.partial_fit(x, y, classes=classes)
        times.append(time.perf_counter() - start)
    return times, float((model.predict(x_test) == y_test).mean())


def run_numpy(spec, epochs, threads):
    from handloop import train

    return train(spec, epochs)


def run_numba(spec, epochs, threads):
    from numba_loop import train

    return train(spec, epochs)


def run_floor(spec, epochs, threads):
    from floor import gemm_floor

    seconds = gemm_floor(spec["units"], spec["batch"], spec["samples"], repeat=epochs)
    return [seconds] * epochs, None


RUNNERS = {
    "gpunet": run_gpunet,
    "floor": run_floor,
    "numpy": run_numpy,
    "numba": run_numba,
    "torch": run_torch,
    "keras": run_keras,
    "sklearn": run_sklearn,
}


def child(system: str, workload: str, epochs: int, threads: int) -> None:
    """Run one system in this process and print its figures as JSON."""
    import resource

    times, accuracy = RUNNERS[system](WORKLOADS[workload], epochs, threads)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"times": times, "accuracy": accuracy, "peak_mb": peak}))


def _run(system, args) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        system,
        "--workload",
        args.workload,
        "--epochs",
        str(args.epochs),
        "--threads",
        str(args.threads),
    ]
    env = dict(os.environ, KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "jax"))
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["failed"])[-1]
        return {"error": last}
    return json.loads(result.stdout.strip().splitlines()[-1])


def _available(peer: str) -> str | None:
    env = dict(os.environ, KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "jax"))
    probe = subprocess.run(
        [sys.executable, "-c", f"import {peer}"], capture_output=True, text=True, env=env
    )
    return None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["?"])[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="w1")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--child", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workload, args.epochs, args.threads)
        return
    peers = [p for p in args.peers.split(",") if p]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    missing = {p: why for p in peers if (why := _available(p))}
    systems = ["gpunet", "floor"] + [p for p in peers if p not in missing]
    runs = {s: [] for s in systems}
    for _ in range(args.repeat):
        for system in systems:  # alternating, never in parallel
            runs[system].append(_run(system, args))
    # Each run's figure: the median of its epochs 2..N. Ratios are medians over the runs of
    # run-i / gpunet-run-i: runs next to each other in time share the machine's current speed.
    seconds = {
        system: [
            statistics.median(r["times"][1:] or r["times"]) if "times" in r else None
            for r in runs[system]
        ]
        for system in systems
    }

    def ratio(system, other):
        pairs = [a / b for a, b in zip(seconds[system], seconds[other]) if a and b]
        return f"{statistics.median(pairs):.2f}x" if pairs else "-"

    print(
        f"{args.workload}: {WORKLOADS[args.workload]}, {args.epochs} epochs x {args.repeat} "
        f"runs, {args.threads} threads\n"
    )
    print(
        "| system | s/epoch (median) | runs (min-max) | vs gpunet | vs GEMM floor | test acc. "
        "| peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for system in systems:
        good = [r for r in runs[system] if "times" in r]
        if not good:
            print(f"| {system} | failed: {runs[system][0]['error']} | | | | | |")
            continue
        values = [v for v in seconds[system] if v]
        accuracy = "-"
        if good[0]["accuracy"] is not None:
            accuracy = f"{100 * statistics.median(r['accuracy'] for r in good):.2f}%"
        peak = statistics.median(r["peak_mb"] for r in good)
        print(
            f"| {system} | {statistics.median(values):.3f} | {min(values):.3f}-{max(values):.3f} "
            f"| {ratio(system, 'gpunet')} | {ratio(system, 'floor')} | {accuracy} | {peak:.0f} |"
        )
    for peer, why in missing.items():
        print(f"| {peer} | missing ({why}) | | | | | |")


if __name__ == "__main__":
    main()
