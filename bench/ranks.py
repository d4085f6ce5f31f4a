"""Data-parallel training (issue 19): seconds per epoch of a workload on 1, 2, ... ranks.

    python bench/ranks.py --workload w1 --ranks 1,2 --epochs 4 --repeat 3
    python bench/ranks.py --workload big --ranks 1,2,4,8 --backend cupy   # a multi-GPU machine

Each run is `mpirun -n R python bench/ranks.py --worker ...` (the mpirun beside this Python, the
test extra's MPICH, unless --mpirun says another): every rank trains the workload with the same
global batch (bench/workloads.py; "big" is 4096-4096-4096-10, SGD, batch 4096, 65,536
synthetic samples, as bench/gpu.py), and rank 0 reports the median seconds per epoch of epochs
2..N (the first pays for warm-up) and the final training loss. Rank counts alternate across
repeats (these machines drift). Speed-up is against one rank in the same sitting.
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

BIG = dict(units=(4096, 4096), dropout=0.0, optimizer="sgd", batch=4096, samples=65536)


def _data(name: str, spec: dict):
    import numpy as np

    if name == "big":
        rs = np.random.default_rng(0)
        x = rs.random((spec["samples"], 784), dtype=np.float32)
        return x, rs.integers(0, 10, spec["samples"])
    from workloads import load

    x, y, _, _ = load(spec)
    return x, y


def worker(name: str, epochs: int, backend: str) -> None:
    from workloads import WORKLOADS, gpunet_model

    import gpunet as gn
    from gpunet import distributed

    gn.backend.set_backend(backend)
    spec = BIG if name == "big" else WORKLOADS[name]
    x, y = _data(name, spec)
    gn.utils.set_random_seed(0)
    model = gpunet_model(spec)
    times = []
    timer = gn.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: times.append(-time.perf_counter()),
        on_epoch_end=lambda epoch, logs: times.__setitem__(-1, times[-1] + time.perf_counter()),
    )
    history = model.fit(
        x, y, batch_size=spec["batch"], epochs=epochs, verbose=0, callbacks=[timer], shuffle=True
    )
    world = distributed.world()
    if world.writes:
        print(
            json.dumps(
                {
                    "seconds": statistics.median(times[1:] or times),
                    "loss": history.history["loss"][-1],
                    "ranks": world.size,
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="w1", choices=["w1", "w2", "w3", "big"])
    parser.add_argument("--ranks", default="1,2")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    parser.add_argument("--mpirun", default=os.path.join(os.path.dirname(sys.executable), "mpirun"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.workload, args.epochs, args.backend)
        return
    counts = [int(n) for n in args.ranks.split(",")]
    found: dict[int, list] = {n: [] for n in counts}
    for _ in range(args.repeat):
        for n in counts:
            command = [args.mpirun, "-n", str(n), sys.executable, __file__, "--worker",
                       "--workload", args.workload, "--epochs", str(args.epochs),
                       "--backend", args.backend]  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                sys.exit(f"{n} ranks failed:\n{result.stderr}")
            found[n].append(json.loads(result.stdout.strip().splitlines()[-1]))
    one = statistics.median(r["seconds"] for r in found[counts[0]])
    print(f"{args.workload}, {args.backend}, {args.epochs} epochs, median of {args.repeat}")
    print(f"| ranks | s/epoch (runs) | speed-up vs {counts[0]} | final loss |")
    print("|---|---|---|---|")
    for n in counts:
        seconds = [r["seconds"] for r in found[n]]
        median = statistics.median(seconds)
        runs = ", ".join(f"{s:.3f}" for s in seconds)
        print(f"| {n} | {median:.3f} ({runs}) | {one / median:.2f}x | {found[n][-1]['loss']:.5f} |")


if __name__ == "__main__":
    main()
