"""`gn.models`, as `keras.models`: Sequential, clone_model and load_model."""

from __future__ import annotations

from gpunet.model import Sequential
from gpunet.saving import load_model


def clone_model(model: Sequential) -> Sequential:
    """A new model with `model`'s layers and configs and freshly initialized weights (not
    compiled), as `keras.models.clone_model`."""
    if not isinstance(model, Sequential):
        raise ValueError(
            f"clone_model expects a Sequential model, received {type(model).__name__}."
        )
    return Sequential.from_config(model.get_config())


__all__ = ["Sequential", "clone_model", "load_model"]
