"""Host memory over a long run of the quick config: RSS after every epoch must stay flat.

    python bench/memory_growth.py [--epochs 50]

Prints current RSS (from /proc/self/statm) and peak RSS (ru_maxrss) after epochs 1, 2, 10, 25
and the last, with every callback of `gpunet train` active (checkpoint each epoch included).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile

import gpunet as gn
from gpunet import config, trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class Probe(gn.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rows = []

    def on_epoch_end(self, epoch, logs=None):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.rows.append((epoch + 1, rss_mb(), peak))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    args = parser.parse_args()
    path = os.path.join(ROOT, "configs", "quickstart.yaml")
    cfg = config.load(path, [f"fit.epochs={args.epochs}", "fit.verbose=0"])
    probe = Probe()
    with tempfile.TemporaryDirectory() as out:
        trainer.train(cfg, path, output=out, quiet=True, extra_callbacks=[probe])
    print("| epoch | RSS MB | peak RSS MB |")
    print("|---|---|---|")
    for epoch, rss, peak in probe.rows:
        if epoch in (1, 2, 10, 25) or epoch == args.epochs:
            print(f"| {epoch} | {rss:.1f} | {peak:.1f} |")
    first, last = probe.rows[0], probe.rows[-1]
    print(
        f"\nRSS growth from epoch 1 to {last[0]}: {last[1] - first[1]:+.1f} MB; "
        f"peak growth: {last[2] - first[2]:+.1f} MB"
    )


if __name__ == "__main__":
    main()
