"""The cost of the ranks' exchanges per step (issue 19), on the host: the flat-gradient sum of a
workload through gpunet's deadline-polled MPI wait against MPI's blocking Allreduce, and a
step's agreement (4 ints).

    mpirun -n 2 python bench/allreduce.py --size 118282   # W1's parameters (470 KB float32)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from mpi4py import MPI

from gpunet import distributed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=118282)
    parser.add_argument("--repeat", type=int, default=1000)
    args = parser.parse_args()
    world = distributed.world()
    grads = np.ones(args.size, np.float32)
    flags, found = np.zeros(4, np.int64), np.empty(4, np.int64)
    cases = {
        "gradient sum, gpunet (polled, with deadline)": lambda: world.all_sum(grads),
        "gradient sum, MPI Allreduce (blocking)": lambda: world.comm.Allreduce(MPI.IN_PLACE, grads),
        "step agreement, gpunet": lambda: world.agree([0, 0, 0, 0]),
        "step agreement, MPI Allreduce (blocking)": lambda: world.comm.Allreduce(
            flags, found, op=MPI.MAX
        ),
    }
    for name, call in cases.items():
        for _ in range(50):
            call()
        start = time.perf_counter()
        for _ in range(args.repeat):
            call()
        seconds = (time.perf_counter() - start) / args.repeat
        if world.writes:
            print(f"{name}: {seconds * 1e6:.1f} us ({world.size} ranks, {args.size} floats)")


if __name__ == "__main__":
    main()
