"""Overhead of the progress bar per training step: a tiny model on NumPy, verbose=0 against
verbose=1 drawing a live bar on a terminal console (written to /dev/null).

    python bench/progress_overhead.py [--steps 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from rich.console import Console

import gpunet as gn


def seconds_per_step(steps: int, verbose: int) -> float:
    gn.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((steps, 4), dtype=np.float32)
    model = gn.Sequential(
        [gn.layers.Input((4,)), gn.layers.Dense(4, activation="relu"), gn.layers.Dense(1)]
    )
    model.compile(loss="mse", optimizer="sgd", metrics=["mae"])
    callbacks = []
    if verbose:
        with open("/dev/null", "w") as sink:
            console = Console(file=sink, force_terminal=True, width=120)
            callbacks = [gn.callbacks.ProgbarLogger(verbose, console=console)]
            start = time.perf_counter()
            model.fit(x, x[:, :1], batch_size=1, epochs=1, verbose=verbose, callbacks=callbacks)
            return (time.perf_counter() - start) / steps
    start = time.perf_counter()
    model.fit(x, x[:, :1], batch_size=1, epochs=1, verbose=0)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    gn.backend.set_backend("numpy")
    quiet, bar = [], []
    for _ in range(args.repeat):  # alternate, never in parallel
        quiet.append(seconds_per_step(args.steps, 0))
        bar.append(seconds_per_step(args.steps, 1))
    q, b = statistics.median(quiet) * 1e6, statistics.median(bar) * 1e6
    print("| verbose | us/step (median) |")
    print("|---|---|")
    print(f"| 0 | {q:.1f} |")
    print(f"| 1 (live bar) | {b:.1f} |")
    print(f"\nbar overhead: {b - q:.1f} us/step ({100 * (b - q) / q:.1f}%)")


if __name__ == "__main__":
    main()
