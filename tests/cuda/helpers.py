"""Helpers shared by the kernel tests."""

import numpy as np


def put(device, array):
    """A device copy of a host array (C-contiguous)."""
    return device.asarray(np.ascontiguousarray(array))
