"""The global seed source: every generator in gpunet (initializers, shuffling, dropout's
counter-based streams) derives from it.

`gn.utils.set_random_seed(s)` reseeds it, which makes a run bit-for-bit repeatable on the same
backend and machine.
"""

from __future__ import annotations

import numpy as np

_global = np.random.default_rng()


def set_seed(seed: int) -> None:
    """Reseed the global source."""
    global _global
    _global = np.random.default_rng(seed)


def draw_seed() -> int:
    """A fresh 63-bit seed from the global source."""
    return int(_global.integers(0, 2**63 - 1))


def host_generator(seed: int | None = None) -> np.random.Generator:
    """A NumPy generator: from `seed` when given, else from the global source."""
    return np.random.default_rng(draw_seed() if seed is None else seed)
