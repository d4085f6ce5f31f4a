"""The GEMM floor of an MLP's training epoch: its forward and weight-gradient GEMMs, and the
input-gradient GEMMs of every layer but the first, with NumPy `matmul(out=)` into preallocated
buffers. No trainer on the same BLAS can do an epoch faster.

    python bench/floor.py --units 128 128 --batch 128 --samples 48000
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def gemm_floor(
    units, batch: int, samples: int, repeat: int = 3, inputs: int = 784, outputs: int = 10
) -> float:
    """Median seconds of one epoch's GEMMs alone."""
    widths = (inputs,) + tuple(units) + (outputs,)
    rs = np.random.default_rng(0)
    kernels = [rs.standard_normal((a, b), dtype=np.float32) for a, b in zip(widths, widths[1:])]
    acts = [np.ones((batch, w), dtype=np.float32) for w in widths]
    grads = [np.empty_like(k) for k in kernels]
    gacts = [np.empty_like(a) for a in acts]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(samples // batch):
            for i, kernel in enumerate(kernels):
                np.matmul(acts[i], kernel, out=acts[i + 1])
            for i in reversed(range(len(kernels))):
                np.matmul(acts[i].T, acts[i + 1], out=grads[i])
                if i > 0:
                    np.matmul(acts[i + 1], kernels[i].T, out=gacts[i])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[128, 128])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--samples", type=int, default=48000)
    args = parser.parse_args()
    seconds = gemm_floor(args.units, args.batch, args.samples)
    print(
        f"GEMM floor: {seconds:.3f} s/epoch (784-{'-'.join(map(str, args.units))}-10, "
        f"batch {args.batch}, {args.samples} samples)"
    )


if __name__ == "__main__":
    main()
