"""The Keras books' float32 pipeline: uint8 images to float32 in [0, 1], flattened."""

from __future__ import annotations

import numpy as np


def images_to_float32(images, flatten: bool = True, divisor: float = 255.0) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 784) (or (N, 28, 28)) divided by `divisor`, in one
    allocation: the only float32 copy of the images ever held. Equal, bit for bit, to
    `images.astype("float32") / 255` of the books."""
    images = np.asarray(images)
    source = images.reshape(len(images), -1) if flatten else images
    out = np.empty(source.shape, dtype=np.float32)
    np.divide(source, np.float32(divisor), out=out, casting="unsafe")
    return out
