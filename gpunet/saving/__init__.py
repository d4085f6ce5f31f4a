"""Model files in Keras 3's formats: `.keras` (the whole model) and `.weights.h5` (its
weights), beside gpunet's own `.npz` checkpoints; `gn.saving.load_model`, as `keras.saving`."""

from __future__ import annotations


def load_model(filepath: str, compile: bool = True):
    """The Sequential model a `.keras` file holds (written by gpunet or Keras 3), with its
    weights, compiled from the file's compile config unless `compile=False`."""
    from gpunet.saving import keras_file

    if not str(filepath).endswith(keras_file.SUFFIX):
        raise ValueError(
            f"load_model: gpunet loads `{keras_file.SUFFIX}` files, received {filepath!r} "
            "(weights alone: model.load_weights(`*.weights.h5`))."
        )
    return keras_file.load(filepath, compile=compile)


__all__ = ["load_model"]
