"""What compiled, fused CPU loops would save over gpunet's NumPy calls: a probe for a design
decision (numba is not a gpunet dependency). Each op as NumPy computes it now, against the same
arithmetic as one numba loop.

    pip install numba && python bench/numba_probe.py
"""

from __future__ import annotations

import timeit

import numba
import numpy as np

RS = np.random.default_rng(0)
SIZE = 118_282  # W1/W2's parameter count
BATCH = 128


def _us(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def adam_numpy(p, g, m, v, tmp, tmp2, alpha):
    # gpunet's 12 passes (Keras's rule, beta_1 0.9, beta_2 0.999, epsilon 1e-7)
    np.subtract(g, m, out=tmp)
    np.multiply(tmp, 0.1, out=tmp)
    np.add(m, tmp, out=m)
    np.multiply(g, g, out=tmp2)
    np.subtract(tmp2, v, out=tmp)
    np.multiply(tmp, 0.001, out=tmp)
    np.add(v, tmp, out=v)
    np.sqrt(v, out=tmp)
    np.add(tmp, 1e-7, out=tmp)
    np.multiply(m, alpha, out=tmp2)
    np.divide(tmp2, tmp, out=tmp2)
    np.subtract(p, tmp2, out=p)


def _adam_loop(p, g, m, v, alpha):
    for i in numba.prange(p.shape[0]):
        gi = g[i]
        mi = m[i] + (gi - m[i]) * np.float32(0.1)
        vi = v[i] + (gi * gi - v[i]) * np.float32(0.001)
        m[i] = mi
        v[i] = vi
        p[i] -= (mi * alpha) / (np.sqrt(vi) + np.float32(1e-7))


@numba.njit(parallel=True)
def gather_numba(x, idx, out):
    for r in numba.prange(idx.shape[0]):
        out[r, :] = x[idx[r], :]


@numba.njit
def bias_relu_numba(z, b):
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            t = z[i, j] + b[j]
            z[i, j] = t if t > 0 else np.float32(0.0)


def main() -> None:
    p, g, m, v, tmp, tmp2 = (RS.random(SIZE, dtype=np.float32) for _ in range(6))
    alpha = np.float32(1e-3)
    # error_model="numpy": numba's default checks each division for zero, which blocks SIMD
    adam_1 = numba.njit(parallel=False, error_model="numpy")(_adam_loop)
    adam_2 = numba.njit(parallel=True, error_model="numpy")(_adam_loop)
    x = RS.random((48_000, 784), dtype=np.float32)
    order, xb = RS.permutation(48_000), np.empty((BATCH, 784), np.float32)
    z = RS.standard_normal((BATCH, 128), dtype=np.float32)
    bias, zeros = z[0].copy(), np.zeros_like(z)
    for compiled in (adam_1, adam_2):  # compile before timing
        compiled(p, g, m, v, alpha)
    gather_numba(x, order[:BATCH], xb)
    bias_relu_numba(z, bias)
    batches = iter(range(10**9))

    def next_rows():
        start = next(batches) % (48_000 // BATCH) * BATCH
        return order[start : start + BATCH]

    def bias_relu_numpy():
        np.add(z, bias, out=z)
        np.maximum(z, zeros, out=z)

    rows = [
        ("Adam, NumPy (12 passes)", _us(lambda: adam_numpy(p, g, m, v, tmp, tmp2, alpha), 300)),
        ("Adam, numba (1 pass, 1 thread)", _us(lambda: adam_1(p, g, m, v, alpha), 300)),
        ("Adam, numba (1 pass, parallel)", _us(lambda: adam_2(p, g, m, v, alpha), 300)),
        ("batch gather, NumPy take", _us(lambda: x.take(next_rows(), 0, xb, "clip"), 375)),
        ("batch gather, numba (parallel)", _us(lambda: gather_numba(x, next_rows(), xb), 375)),
        ("bias + relu (128, 128), NumPy", _us(bias_relu_numpy, 3000)),
        ("bias + relu (128, 128), numba", _us(lambda: bias_relu_numba(z, bias), 3000)),
    ]
    print(f"numba {numba.__version__}, numpy {np.__version__}\n")
    print("| op | us |")
    print("|---|---|")
    for name, us in rows:
        print(f"| {name} | {us:.1f} |")


if __name__ == "__main__":
    main()
