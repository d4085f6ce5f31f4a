"""Keras-style unique default names: dense, dense_1, dense_2, ... per session."""

from __future__ import annotations

import re
from collections import defaultdict

_counts: defaultdict[str, int] = defaultdict(int)


def snake_case(class_name: str) -> str:
    """`Dense` -> `dense`, `ReLU` -> `re_lu` (as Keras turns class names into layer names)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


def unique_name(base: str) -> str:
    """The next free name for `base`: the first is `base`, then `base_1`, `base_2`, ..."""
    count = _counts[base]
    _counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


def reset() -> None:
    """Forget all names handed out (what `clear_session` does)."""
    _counts.clear()
