"""What one training step costs a GPU, counted on the strict CuPy stand-in (tests/standin.py):
kernel launches, host syncs, host-to-device copies and new device arrays per step.

    python bench/step_ledger.py --workload w1 --step graph   # w1 w2 w3; reference fused graph

Runs the workload's model (bench/workloads.py) on synthetic data of its shapes, three epochs of
five full batches and a partial one, under the callbacks `gpunet train` adds and a live progress
bar, and prints the per-step counts of the second and third epochs, and the call sites of
anything a step allocates, copies or syncs. --step chooses the training step: the xp reference
step, the fused step run eagerly, or the fused step captured into a CUDA graph (then the
launches per step are the captured graph's, and each execution is one graph launch).
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from workloads import WORKLOADS, gpunet_model  # noqa: E402

import gpunet as gn  # noqa: E402
from gpunet import backend, run  # noqa: E402
from tests import standin  # noqa: E402
from tests.ledger import record_fit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="w1")
    parser.add_argument("--step", choices=("reference", "fused", "graph"), default="graph")
    args = parser.parse_args()
    if args.step == "reference":  # what the fused step would not take
        from gpunet.step import support

        support.unsupported = lambda *a: "bench/step_ledger.py --step reference"
    spec = WORKLOADS[args.workload]
    backend._use_device(standin)
    rs = np.random.default_rng(0)
    n = spec["batch"] * 5 + spec["batch"] // 3
    x, y = rs.random((n, 784), dtype=np.float32), rs.integers(0, 10, n)
    gn.utils.set_random_seed(0)
    model = gpunet_model(spec)
    model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"],
                  cuda_graphs=args.step == "graph")  # fmt: skip
    bar = gn.callbacks.ProgbarLogger(1, console=Console(file=io.StringIO(), force_terminal=True))
    with tempfile.TemporaryDirectory() as folder:
        callbacks = [*run.standard_callbacks(os.path.join(folder, "checkpoint.npz")), bar]
        _, records = record_fit(
            model, x, y, callbacks, batch_size=spec["batch"], epochs=3, verbose=1
        )
    later = [r for r in records if r["epoch"] >= 1]
    training = model._trainer.training
    print(f"{args.workload} ({type(training).__name__}): {spec}")
    for (count, rows), graph in getattr(training, "_graphs", {}).items():
        print(f"  captured graph of {count} step(s) of {rows} rows: "
              f"{len(graph.ops) / count:g} launches per step")  # fmt: skip
    for kind in ("launches", "graph_launches", "syncs", "h2d", "allocs"):
        values = [r[kind] for r in later]
        print(
            f"  {kind:9s} per step: median {statistics.median(values):g}, "
            f"min {min(values)}, max {max(values)}"
        )
    refreshes = [r for r in later if r["synced"]]
    print(
        f"  progress refreshes: {len(refreshes)} of {len(later)} steps; syncs there: "
        f"{[r['syncs'] for r in refreshes]}; elsewhere: "
        f"{sum(r['syncs'] for r in later if not r['synced'])}"
    )
    sites = collections.Counter()
    for r in later:
        for kind in ("syncs", "h2d", "allocs"):
            sites.update({f"{kind} {site}": count for site, count in r["sites"][kind].items()})
    for site, count in sites.most_common(10):
        print(f"  {count:4d}  {site}")


if __name__ == "__main__":
    main()
