"""The benchmark workloads as bench/handloop.py's loop with every non-GEMM op fused into one
compiled numba kernel: what a compiled CPU path could reach at best on this machine, for the
team's decision on issue 6 (numba is not a gpunet dependency). Same arithmetic and dropout
stream as handloop.py; the GEMMs are the same NumPy `matmul(out=)` calls.

    pip install numba && python bench/numba_loop.py --workload w1 --epochs 5
"""

from __future__ import annotations

import math
import time

import numba
import numpy as np
from handloop import init_params, run_cli, test_accuracy
from workloads import LEARNING_RATE, load

F32 = np.float32
# Serial kernels: parallel=True ran 15-25x slower here, its worker threads fighting OpenBLAS's
# (2 cores). error_model="numpy" drops Python's division-by-zero check, which blocks SIMD.
jit = numba.njit(cache=True, error_model="numpy")


@jit
def gather(x, y, idx, xb, yb):
    for r in range(idx.shape[0]):
        xb[r, :] = x[idx[r], :]
        yb[r] = y[idx[r]]


@jit
def bias_relu(z, b):
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            t = z[i, j] + b[j]
            z[i, j] = t if t > F32(0) else F32(0)


@jit
def bias_relu_dropout(z, b, mask, rate, scale):
    # mask holds uniforms on entry, the scaled keep mask on exit
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            t = z[i, j] + b[j]
            keep = scale if mask[i, j] >= rate else F32(0)
            mask[i, j] = keep
            z[i, j] = (t if t > F32(0) else F32(0)) * keep


@jit
def bias_add(z, b):
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            z[i, j] += b[j]


@jit
def softmax_cross_entropy(logits, y, gz, gb, scale):
    # gz = scale * (softmax(logits) - onehot(y)), gb = its column sum; returns (loss sum, hits)
    total, hits = 0.0, 0
    gb[:] = 0
    for i in range(logits.shape[0]):
        top, best = logits[i, 0], 0
        for j in range(1, logits.shape[1]):
            if logits[i, j] > top:
                top, best = logits[i, j], j
        total_exp = F32(0)
        for j in range(logits.shape[1]):
            gz[i, j] = math.exp(logits[i, j] - top)
            total_exp += gz[i, j]
        total += math.log(total_exp) + top - logits[i, y[i]]
        hits += best == y[i]
        for j in range(logits.shape[1]):
            g = (gz[i, j] / total_exp - (F32(1) if j == y[i] else F32(0))) * scale
            gz[i, j] = g
            gb[j] += g
    return total, hits


@jit
def relu_dropout_bwd(g, z, mask, gb):
    # g *= mask * (z > 0) in place, gb = its column sum
    gb[:] = 0
    for i in range(g.shape[0]):
        for j in range(g.shape[1]):
            t = g[i, j] * mask[i, j] if z[i, j] > F32(0) else F32(0)
            g[i, j] = t
            gb[j] += t


@jit
def adam(p, g, m, v, alpha):
    # Keras's Adam: m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2);
    # p -= alpha m / (sqrt(v) + epsilon)
    for i in range(p.shape[0]):
        m[i] += (g[i] - m[i]) * F32(0.1)
        v[i] += (g[i] * g[i] - v[i]) * F32(0.001)
        p[i] -= (m[i] * alpha) / (np.sqrt(v[i]) + F32(1e-7))


def train(spec: dict, epochs: int):
    """(seconds of each epoch, test accuracy after the last)."""
    x, y, x_test, y_test = load(spec)
    rs = np.random.default_rng(0)
    widths = (784,) + tuple(spec["units"]) + (10,)
    params, grads, kernels, biases = init_params(spec, rs)
    batch, rate, n, sgd = spec["batch"], spec["dropout"], len(x), spec["optimizer"] == "sgd"
    m, v = np.zeros_like(params), np.zeros_like(params)
    xb, yb = np.empty((batch, 784), np.float32), np.empty(batch, np.int64)
    acts = [np.empty((batch, w), np.float32) for w in widths[1:]]
    masks = [np.ones((batch, w), np.float32) for w in widths[1:-1]]
    gacts = [np.empty((batch, w), np.float32) for w in widths[1:]]
    keep_scale = F32(1.0 / (1.0 - rate))
    # SGD folds -lr into the loss gradient, so its update is one add (as gpunet does)
    loss_scale = F32((-LEARNING_RATE["sgd"] if sgd else 1.0) / batch)
    times, t, last = [], 0, len(kernels) - 1
    for _ in range(epochs):
        start = time.perf_counter()
        order = rs.permutation(n)
        for first in range(0, n - batch + 1, batch):  # full batches only
            gather(x, y, order[first : first + batch], xb, yb)
            h = xb
            for i, ((w, _), (b, _)) in enumerate(zip(kernels, biases)):
                h = np.matmul(h, w, out=acts[i])
                if i == last:
                    bias_add(h, b)
                elif rate:
                    rs.random(dtype=np.float32, out=masks[i])
                    bias_relu_dropout(h, b, masks[i], F32(rate), keep_scale)
                else:
                    bias_relu(h, b)
            gz = gacts[-1]
            softmax_cross_entropy(acts[-1], yb, gz, biases[-1][1], loss_scale)
            for i in reversed(range(len(kernels))):
                w, gw = kernels[i]
                np.matmul(acts[i - 1].T if i else xb.T, gz, out=gw)
                if i:  # no input gradient for the first layer
                    gz = np.matmul(gz, w.T, out=gacts[i - 1])
                    relu_dropout_bwd(gz, acts[i - 1], masks[i - 1], biases[i - 1][1])
            if sgd:
                params += grads
            else:
                t += 1
                alpha = LEARNING_RATE["adam"] * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
                adam(params, grads, m, v, F32(alpha))
        times.append(time.perf_counter() - start)
    return times, test_accuracy(kernels, biases, x_test, y_test)


def main() -> None:
    run_cli(train, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
