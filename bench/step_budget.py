"""The NumPy work a training step needs besides its GEMMs, each op timed alone (warm caches,
except the batch gather, which reads rows a shuffle scatters over the whole data set). Their
sum is a lower bound on what any NumPy trainer with Keras's semantics adds to the GEMM floor:
if it already exceeds 20% of the floor, "within 1.2x of the floor" cannot be met by NumPy calls.

    python bench/step_budget.py --workload w1
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np
from floor import gemm_floor
from workloads import WORKLOADS


def _us(fn, number: int = 2000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def _layer_ops(rs, batch: int, width: int, hidden: bool, rate: float):
    z = rs.standard_normal((batch, width), dtype=np.float32)
    g, zeros, bias = z.copy(), np.zeros_like(z), z[0].copy()
    ones, g_bias = np.ones(batch, np.float32), np.empty(width, np.float32)
    ops = [
        (f"bias add ({batch}, {width})", _us(lambda: np.add(z, bias, out=z))),
        (f"bias gradient GEMV ({width})", _us(lambda: np.matmul(ones, g, out=g_bias))),
    ]
    if hidden:
        ops.append((f"relu forward ({batch}, {width})", _us(lambda: np.maximum(z, zeros, out=z))))
        ops.append(
            (f"relu backward ({batch}, {width})", _us(lambda: np.multiply(g, z > 0.0, out=g)))
        )
    if hidden and rate:
        mask, scale = np.empty_like(z), 1.0 / (1.0 - rate)

        def dropout():
            rs.random(dtype=np.float32, out=mask)
            np.greater_equal(mask, rate, out=mask)
            mask.__imul__(scale)
            np.multiply(z, mask, out=z)
            np.multiply(g, mask, out=g)

        ops.append((f"dropout forward and backward ({batch}, {width})", _us(dropout)))
    return ops


def budget(spec: dict) -> list[tuple[str, float]]:
    """(op, microseconds per step) for the non-GEMM work of one step."""
    rs = np.random.default_rng(0)
    batch, samples = spec["batch"], spec["samples"]
    widths = (784,) + tuple(spec["units"]) + (10,)
    data = rs.random((samples, 784), dtype=np.float32)
    labels = rs.integers(0, 10, samples)
    xb, yb = np.empty((batch, 784), np.float32), np.empty(batch, np.int64)
    order = rs.permutation(samples)
    steps = samples // batch
    step = iter(range(10**9))

    def gather():
        start = next(step) % steps * batch
        idx = order[start : start + batch]
        data.take(idx, axis=0, out=xb, mode="clip")
        labels.take(idx, axis=0, out=yb, mode="clip")

    ops = [("gather x and y (rows of the shuffled data)", _us(gather, steps))]
    for i, width in enumerate(widths[1:]):
        ops += _layer_ops(rs, batch, width, hidden=i < len(widths) - 2, rate=spec["dropout"])
    logits = rs.standard_normal((batch, 10), dtype=np.float32)
    probs, rows = np.empty_like(logits), np.arange(batch)

    def softmax_cross_entropy():
        top = logits.max(axis=-1, keepdims=True)
        np.subtract(logits, top, out=probs)
        np.exp(probs, out=probs)
        total = probs.sum(axis=-1, keepdims=True)
        np.divide(probs, total, out=probs)
        loss = (np.log(total[:, 0]) + top[:, 0] - logits[rows, yb]).sum()
        probs[rows, yb] -= 1.0
        return loss

    ops.append(("softmax, cross-entropy and its gradient", _us(softmax_cross_entropy)))
    ops.append(("accuracy (argmax, count)", _us(lambda: np.count_nonzero(probs.argmax(-1) == yb))))
    size = sum(a * b + b for a, b in zip(widths, widths[1:]))
    params, grads = rs.random(size, dtype=np.float32), rs.random(size, dtype=np.float32) * 1e-9
    if spec["optimizer"] == "sgd":
        ops.append(
            (f"SGD update, one pass over {size:,} floats", _us(lambda: params.__iadd__(grads)))
        )
        return ops
    m, v, tmp, tmp2 = (np.zeros_like(params) for _ in range(4))

    def adam():  # Keras's rule as gpunet computes it: 12 passes
        np.subtract(grads, m, out=tmp)
        tmp.__imul__(0.1)
        m.__iadd__(tmp)
        np.multiply(grads, grads, out=tmp2)
        np.subtract(tmp2, v, out=tmp)
        tmp.__imul__(0.001)
        v.__iadd__(tmp)
        np.sqrt(v, out=tmp)
        tmp.__iadd__(1e-7)
        np.multiply(m, 1e-3, out=tmp2)
        tmp2.__itruediv__(tmp)
        params.__isub__(tmp2)

    ops.append((f"Adam update, 12 passes over {size:,} floats", _us(adam)))
    return ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="w1")
    args = parser.parse_args()
    spec = WORKLOADS[args.workload]
    steps = spec["samples"] // spec["batch"]
    floor = gemm_floor(spec["units"], spec["batch"], spec["samples"]) / steps * 1e6
    ops = budget(spec)
    total = sum(us for _, us in ops)
    print(f"{args.workload}: {spec}\n")
    print("| op | us/step |")
    print("|---|---|")
    for name, us in ops:
        print(f"| {name} | {us:.1f} |")
    print(f"| **sum** | **{total:.1f}** |")
    print(f"| GEMM floor | {floor:.1f} |")
    print(f"\nfloor + the sum: {1 + total / floor:.2f}x the GEMM floor, with no Python at all")


if __name__ == "__main__":
    main()
