"""Time and peak RSS of loading Fashion-MNIST into float32 784-vectors: gpunet's loader against
plain `np.frombuffer` on the decompressed files (what Keras's loader and the books do).

    python bench/load_data.py [--repeat 3]

Each method runs in a fresh process, so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import gzip, json, os, resource, sys, time
import numpy as np
method = sys.argv[1]
folder = "/usr/share/datasets/fashion-mnist"
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if method == "gpunet":
    import gpunet as gn
    (x, y), (xt, yt) = gn.datasets.fashion_mnist.load_data(folder)
    x, xt = gn.datasets.images_to_float32(x), gn.datasets.images_to_float32(xt)
else:
    def read(name, offset):
        with gzip.open(os.path.join(folder, name), "rb") as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)
    y = read("train-labels-idx1-ubyte.gz", 8)
    x = read("train-images-idx3-ubyte.gz", 16).reshape(len(y), 784).astype("float32") / 255
    yt = read("t10k-labels-idx1-ubyte.gz", 8)
    xt = read("t10k-images-idx3-ubyte.gz", 16).reshape(len(yt), 784).astype("float32") / 255
elapsed = time.perf_counter() - start
assert x.shape == (60000, 784) and x.dtype == np.float32
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": elapsed, "peak_mb": peak / 1024, "import_mb": base / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = {"gpunet": [], "frombuffer": []}
    for _ in range(args.repeat):
        for method in results:  # alternate, never in parallel
            out = subprocess.run(
                [sys.executable, "-c", CHILD, method], capture_output=True, text=True, check=True
            )
            results[method].append(json.loads(out.stdout))
    print("| method | median seconds | peak RSS MB | float32 data MB |")
    print("|---|---|---|---|")
    for method, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = statistics.median(r["peak_mb"] for r in runs)
        print(f"| {method} | {seconds:.3f} | {peak:.0f} | {70000 * 784 * 4 / 2**20:.0f} |")


if __name__ == "__main__":
    main()
