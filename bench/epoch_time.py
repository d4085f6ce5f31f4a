"""Seconds per training epoch of gpunet on Fashion-MNIST, against the GEMM floor of the same model.

    python bench/epoch_time.py --workload w1 --epochs 5

W1: 784-128-128-10 relu/softmax, SGD 0.01, batch 128, 48,000 samples (375 steps).
W2: W1 with Dropout 0.3 after each hidden layer, Adam.
W3: 784-300-100-10 relu/softmax, SGD 0.01, batch 32, 55,000 samples.
The floor times the forward and weight-gradient GEMMs (and the input-gradient GEMMs of every
layer but the first) of one epoch with NumPy `matmul(out=)`: what no trainer on this BLAS can beat.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import gpunet as gn

WORKLOADS = {
    "w1": dict(units=(128, 128), dropout=0.0, optimizer="sgd", batch=128, samples=48000),
    "w2": dict(units=(128, 128), dropout=0.3, optimizer="adam", batch=128, samples=48000),
    "w3": dict(units=(300, 100), dropout=0.0, optimizer="sgd", batch=32, samples=55000),
}


def gemm_floor(units, batch: int, samples: int, repeat: int = 3) -> float:
    """Median seconds of one epoch's GEMMs alone."""
    widths = (784,) + tuple(units) + (10,)
    rs = np.random.default_rng(0)
    kernels = [rs.standard_normal((a, b), dtype=np.float32) for a, b in zip(widths, widths[1:])]
    acts = [np.ones((batch, w), dtype=np.float32) for w in widths]
    grads = [np.empty_like(k) for k in kernels]
    gacts = [np.empty_like(a) for a in acts]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(samples // batch):
            for i, k in enumerate(kernels):
                np.matmul(acts[i], k, out=acts[i + 1])
            for i in reversed(range(len(kernels))):
                np.matmul(acts[i].T, acts[i + 1], out=grads[i])
                if i > 0:
                    np.matmul(acts[i + 1], kernels[i].T, out=gacts[i])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gpunet_epochs(spec: dict, epochs: int, x, y, x_test, y_test):
    gn.utils.set_random_seed(0)
    layers = [gn.layers.Input((784,))]
    for width in spec["units"]:
        layers.append(gn.layers.Dense(width, activation="relu"))
        if spec["dropout"]:
            layers.append(gn.layers.Dropout(spec["dropout"]))
    layers.append(gn.layers.Dense(10, activation="softmax"))
    model = gn.Sequential(layers)
    model.compile(
        loss="categorical_crossentropy", optimizer=spec["optimizer"], metrics=["accuracy"]
    )
    times = []

    class Timer(gn.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    n = spec["samples"]
    model.fit(x[:n], y[:n], batch_size=spec["batch"], epochs=epochs, verbose=0, callbacks=[Timer()])
    _, acc = model.evaluate(x_test, y_test, batch_size=1024)
    return times, acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="w1")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    spec = WORKLOADS[args.workload]
    gn.backend.set_backend("numpy")
    (x, y), (x_test, y_test) = gn.datasets.fashion_mnist.load_data()
    x = x.reshape(-1, 784).astype(np.float32) / 255.0
    x_test = x_test.reshape(-1, 784).astype(np.float32) / 255.0
    y, y_test = gn.utils.to_categorical(y, 10), gn.utils.to_categorical(y_test, 10)
    times, acc = gpunet_epochs(spec, args.epochs, x, y, x_test, y_test)
    train = statistics.median(times[1:] if len(times) > 1 else times)
    floor = gemm_floor(spec["units"], spec["batch"], spec["samples"])
    print(
        f"| workload | gpunet s/epoch (median, epochs 2-{args.epochs}) | GEMM floor s/epoch "
        f"| ratio | test acc after {args.epochs} epochs |"
    )
    print("|---|---|---|---|---|")
    print(f"| {args.workload} | {train:.3f} | {floor:.3f} | {train / floor:.2f}x | {acc:.4f} |")


if __name__ == "__main__":
    main()
