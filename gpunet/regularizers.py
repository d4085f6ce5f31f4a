"""Weight penalties added to the training loss (and to the loss reported), as Keras does."""

from __future__ import annotations

from gpunet.backend import get_array_module
from gpunet.messages import excerpt, unknown_name


class Regularizer:
    """Penalty `l1 * sum(|w|) + l2 * sum(w^2)`; `add_grad` adds its gradient into g in place."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        for name, value in (("l1", l1), ("l2", l2)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"Regularizer {name} must be a float >= 0, received {value!r}.")
        self.l1, self.l2 = float(l1), float(l2)

    def get_config(self) -> dict:
        """The arguments that rebuild this regularizer (Keras's `get_config`)."""
        return {"l1": self.l1, "l2": self.l2}

    @classmethod
    def from_config(cls, config: dict) -> Regularizer:
        return cls(**config)

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

    def get_config(self) -> dict:
        return {"l1": self.l1}


class L2(Regularizer):
    """`l2 * sum(w^2)`, l2 = 0.01 by default."""

    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)

    def get_config(self) -> dict:
        return {"l2": self.l2}


class L1L2(Regularizer):
    """Both penalties; each 0.0 by default, as in Keras 3."""


# Keras 3 exports the classes under these names too: `regularizers.l2(0.001)`.
l1, l2, l1_l2 = L1, L2, L1L2

# Names `get` takes: the class names and their snake_case forms, as Keras 3's ALL_OBJECTS_DICT.
_BY_NAME = {"L1": L1, "L2": L2, "L1L2": L1L2, "l1": L1, "l2": L2, "l1_l2": L1L2}


def serialize(regularizer: Regularizer) -> dict:
    """Keras 3's serialized form: {"module", "class_name", "config", "registered_name"}."""
    return {
        "module": "keras.regularizers",
        "class_name": type(regularizer).__name__,
        "config": regularizer.get_config(),
        "registered_name": None,
    }


def deserialize(config: dict) -> Regularizer:
    """A regularizer from `serialize`'s form (or Keras 3's)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            f"A serialized regularizer is a dict with 'class_name' and 'config', "
            f"received {excerpt(config)}."
        )
    name = config["class_name"]
    cls = _BY_NAME.get(name) if isinstance(name, str) else None
    if cls is None:
        raise unknown_name("regularizer", name, ["L1", "L2", "L1L2"])
    try:
        return cls(**(config.get("config") or {}))
    except TypeError as exc:
        raise ValueError(f"Regularizer {name}: bad config ({exc}).") from None


def get(identifier) -> Regularizer | None:
    """Resolve a regularizer name, serialized dict, instance, or None."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    raise unknown_name("regularizer", identifier, list(_BY_NAME) + ["None"])
