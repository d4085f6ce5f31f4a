"""The benchmark workloads as one hand-written NumPy loop: the same arithmetic as gpunet's step
(Keras semantics: bias, relu, inverted dropout, softmax cross-entropy with the loss value and
accuracy tracked, one flat parameter vector, Keras's SGD or Adam), with every buffer
preallocated and no framework around it. It shows what gpunet's layers, callbacks and
bookkeeping cost over the NumPy calls themselves.

    python bench/handloop.py --workload w1 --epochs 5
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from workloads import LEARNING_RATE, WORKLOADS, load


def init_params(spec: dict, rs):
    """One flat parameter vector and its gradient, with per-layer (kernel, gradient) and
    (bias, gradient) views: kernels glorot_uniform, biases zero."""
    widths = (784,) + tuple(spec["units"]) + (10,)
    shapes = [s for a, b in zip(widths, widths[1:]) for s in ((a, b), (b,))]
    params = np.zeros(sum(math.prod(s) for s in shapes), np.float32)
    grads, views, start = np.zeros_like(params), [], 0
    for shape in shapes:
        size = math.prod(shape)
        views.append((params[start : start + size].reshape(shape), grads[start : start + size]))
        start += size
    for (w, _), shape in zip(views, shapes):
        if len(shape) == 2:
            w[...] = rs.uniform(-1.0, 1.0, shape) * math.sqrt(6.0 / sum(shape))
    kernels = [(w, g.reshape(w.shape)) for w, g in views[0::2]]
    return params, grads, kernels, views[1::2]


def test_accuracy(kernels, biases, x_test, y_test) -> float:
    h = x_test
    for i, ((w, _), (b, _)) in enumerate(zip(kernels, biases)):
        h = h @ w + b
        if i < len(kernels) - 1:
            h = np.maximum(h, 0.0)
    return float((h.argmax(axis=-1) == y_test).mean())


def train(spec: dict, epochs: int):
    """(seconds of each epoch, test accuracy after the last)."""
    x, y, x_test, y_test = load(spec)
    rs = np.random.default_rng(0)
    widths = (784,) + tuple(spec["units"]) + (10,)
    params, grads, kernels, biases = init_params(spec, rs)
    batch, rate, n = spec["batch"], spec["dropout"], len(x)
    m, v, tmp, tmp2 = (np.zeros_like(params) for _ in range(4))
    xb, yb = np.empty((batch, 784), np.float32), np.empty(batch, np.int64)
    acts = [np.empty((batch, w), np.float32) for w in widths[1:]]
    masks = [np.empty((batch, w), np.float32) for w in widths[1:-1]]
    gacts = [np.empty((batch, w), np.float32) for w in widths[1:]]
    ones, rows = np.ones(batch, np.float32), np.arange(batch)
    times, t = [], 0
    for _ in range(epochs):
        start = time.perf_counter()
        order, total, correct = rs.permutation(n), 0.0, 0
        for first in range(0, n - batch + 1, batch):  # full batches only
            idx = order[first : first + batch]
            np.take(x, idx, axis=0, out=xb, mode="clip")
            np.take(y, idx, axis=0, out=yb, mode="clip")
            inputs = [xb]
            for i, ((w, _), (b, _)) in enumerate(zip(kernels, biases)):
                z = np.matmul(inputs[-1], w, out=acts[i])
                z += b
                if i < len(masks):
                    np.maximum(z, 0.0, out=z)
                    if rate:
                        rs.random(dtype=np.float32, out=masks[i])
                        np.greater_equal(masks[i], rate, out=masks[i])
                        masks[i] *= 1.0 / (1.0 - rate)
                        z *= masks[i]
                inputs.append(z)
            logits, probs = inputs[-1], gacts[-1]
            top = logits.max(axis=-1, keepdims=True)
            np.subtract(logits, top, out=probs)
            np.exp(probs, out=probs)
            sums = probs.sum(axis=-1, keepdims=True)
            probs /= sums
            total += float((np.log(sums[:, 0]) + top[:, 0] - logits[rows, yb]).sum())
            correct += np.count_nonzero(probs.argmax(axis=-1) == yb)
            probs *= 1.0 / batch
            probs[rows, yb] -= 1.0 / batch
            gz = probs
            for i in reversed(range(len(kernels))):
                (w, gw), (_, gb) = kernels[i], biases[i]
                np.matmul(inputs[i].T, gz, out=gw)
                np.matmul(ones, gz, out=gb)
                if i:
                    gx = np.matmul(gz, w.T, out=gacts[i - 1])
                    if rate:
                        gx *= masks[i - 1]
                    np.multiply(gx, inputs[i] > 0.0, out=gx)
                    gz = gx
            if spec["optimizer"] == "sgd":  # w -= lr * g
                grads *= -LEARNING_RATE["sgd"]
                params += grads
            else:  # Keras's Adam, epsilon 1e-7
                t += 1
                alpha = LEARNING_RATE["adam"] * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
                np.subtract(grads, m, out=tmp)
                tmp *= 0.1
                m += tmp
                np.multiply(grads, grads, out=tmp2)
                tmp2 -= v
                tmp2 *= 0.001
                v += tmp2
                np.sqrt(v, out=tmp)
                tmp += 1e-7
                np.multiply(m, alpha, out=tmp2)
                tmp2 /= tmp
                params -= tmp2
        times.append(time.perf_counter() - start)
    return times, test_accuracy(kernels, biases, x_test, y_test)


def run_cli(train_fn, description: str) -> None:
    """`--workload`, `--epochs`; prints each epoch's seconds and the test accuracy."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="w1")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    times, accuracy = train_fn(WORKLOADS[args.workload], args.epochs)
    print(f"{args.workload}: " + " ".join(f"{s:.3f}" for s in times) + f" s/epoch, {accuracy:.2%}")


def main() -> None:
    run_cli(train, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
