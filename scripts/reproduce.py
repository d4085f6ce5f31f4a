"""Train a chosen set of configs and write a Markdown table of achieved against reference accuracy.

    python scripts/reproduce.py configs/fashion_mnist.yaml configs/mnist_adam.yaml \
        --output bench/results/reproduce.md [--set fit.epochs=2]

The reference is the number in each config's header comment (the Keras books' results).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from gpunet import config, run, runs

REFERENCE = re.compile(r"Reference[^:]*:\s*(?:about\s*)?([0-9.]+)%")


def reference_of(path: str) -> str:
    with open(path) as f:
        match = REFERENCE.search(f.read())
    return f"{match.group(1)}%" if match else "?"


def achieved(run_dir: str) -> tuple[str, str]:
    """(test accuracy, last validation accuracy) of a finished run, as percentages."""
    metrics = runs.read_json(os.path.join(run_dir, "metrics.json"))
    history = runs.read_json(os.path.join(run_dir, "history.json"))
    test = metrics["test"].get("accuracy")
    val = history[-1].get("val_accuracy") if history else None
    as_percent = lambda v: "-" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    return as_percent(test), as_percent(val)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--output", help="Markdown file to write (atomically)")
    parser.add_argument("--runs", default="runs", help="parent folder of the run directories")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    rows = [
        "| config | epochs | reference | test acc. | last val acc. | seconds | run |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in args.configs:
        cfg = config.load(path, args.set)
        start = time.perf_counter()
        run_dir = run.train(cfg, path, output=args.runs, quiet=True).run_dir
        seconds = time.perf_counter() - start
        test, val = achieved(run_dir)
        rows.append(
            f"| {os.path.basename(path)} | {cfg.fit.epochs} | {reference_of(path)} | "
            f"{test} | {val} | {seconds:.0f} | {run_dir} |"
        )
        print(rows[-1], flush=True)
    table = "\n".join(rows) + "\n"
    if args.output:
        runs.atomic_write(args.output, table.encode())
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
