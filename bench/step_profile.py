"""Where gpunet's training step spends its time: the real `fit`, with each layer's forward and
backward, the batch gather, the loss, the optimizer update and the metric tracking wrapped in
timers (about 0.3 us each), reported per step.

    python bench/step_profile.py --workload w1 --epochs 3
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections import defaultdict

from workloads import WORKLOADS, gpunet_model, load


def _timed(totals: dict, name: str, method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        start = time.perf_counter_ns()
        try:
            return method(*args, **kwargs)
        finally:
            totals[name].append(time.perf_counter_ns() - start)

    return wrapper


def profile(spec: dict, epochs: int) -> tuple[list[tuple[str, float]], float]:
    """(phase, median us per step) in step order, and the median whole step in us."""
    import gpunet as gn
    import gpunet.tracker  # noqa: F401 (its Tracker.update is timed)

    gn.backend.set_backend("numpy")
    x, y, _, _ = load(spec)
    gn.utils.set_random_seed(0)
    model = gpunet_model(spec)
    model.fit(x[: spec["batch"]], y[: spec["batch"]], batch_size=spec["batch"], verbose=0)
    totals: dict = defaultdict(list)
    phases = ["gather"]
    trainer = model._get_trainer()
    trainer._batch = _timed(totals, "gather", trainer._batch)
    for i, layer in enumerate(model.layers):
        name = f"{i} {type(layer).__name__}"
        layer.forward = _timed(totals, f"{name} forward", layer.forward)
        phases.append(f"{name} forward")
    model.loss.fused = _timed(totals, "loss (fused)", model.loss.fused)
    phases.append("loss (fused)")
    for i, layer in reversed(list(enumerate(model.layers))):
        name = f"{i} {type(layer).__name__}"
        layer.backward = _timed(totals, f"{name} backward", layer.backward)
        phases.append(f"{name} backward")
    model.optimizer.apply = _timed(totals, "optimizer update", model.optimizer.apply)
    tracker_update = gn.tracker.Tracker.update
    gn.tracker.Tracker.update = _timed(totals, "metrics and loss tracking", tracker_update)
    trainer.step.train = _timed(totals, "step", trainer.step.train)
    phases += ["optimizer update", "metrics and loss tracking"]
    try:
        model.fit(x, y, batch_size=spec["batch"], epochs=epochs, verbose=0)
    finally:
        gn.tracker.Tracker.update = tracker_update
    steps = len(totals["step"])
    rows = []
    for phase in phases:
        values = totals[phase]
        per_step = len(values) // steps  # the fused loss also runs in validation: none here
        rows.append((phase, statistics.median(values) * per_step / 1000))
    return rows, statistics.median(totals["step"]) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="w1")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    rows, step = profile(WORKLOADS[args.workload], args.epochs)
    print(f"{args.workload}: {WORKLOADS[args.workload]}, {args.epochs} epochs\n")
    print("| phase | us/step (median) |")
    print("|---|---|")
    for phase, us in rows:
        print(f"| {phase} | {us:.1f} |")
    print(f"| **train step (forward to update)** | **{step:.1f}** |")


if __name__ == "__main__":
    main()
