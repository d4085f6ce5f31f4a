"""Weight penalties added to the training loss (and to the loss reported), as Keras does."""

from __future__ import annotations

from gpunet.backend import get_array_module


class Regularizer:
    """Penalty `l1 * sum(|w|) + l2 * sum(w^2)`; `add_grad` adds its gradient into g in place."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        for name, value in (("l1", l1), ("l2", l2)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"Regularizer {name} must be a float >= 0, received {value!r}.")
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w):
        xp = get_array_module(w)
        penalty = xp.zeros((), dtype=w.dtype)
        if self.l1:
            penalty += self.l1 * xp.abs(w).sum()
        if self.l2:
            penalty += self.l2 * xp.square(w).sum()
        return penalty

    def add_grad(self, w, g, scale: float = 1.0) -> None:
        """g += scale * d penalty / dw (scale: the training step's loss scale)."""
        xp = get_array_module(w)
        if self.l1:
            g += (scale * self.l1) * xp.sign(w)
        if self.l2:
            g += (2.0 * self.l2 * scale) * w


class L1(Regularizer):
    """`l1 * sum(|w|)`, l1 = 0.01 by default."""

    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)


class L2(Regularizer):
    """`l2 * sum(w^2)`, l2 = 0.01 by default."""

    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)


class L1L2(Regularizer):
    """Both penalties; each 0.0 by default, as in Keras 3."""


_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": L1L2}


def get(identifier) -> Regularizer | None:
    """Resolve a regularizer name, instance, or None."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(
        f"Unknown regularizer {identifier!r}. Allowed: {', '.join(sorted(_BY_NAME))}, or None."
    )
