"""Buffers kept across steps: a training step writes into arrays it made on its first batch of
each shape, so after the first epoch it allocates nothing (a CUDA graph can hold it)."""

from __future__ import annotations


class Buffers:
    """Named arrays, one per (name, shape, dtype, array module), made on first use and kept.

    Each batch shape gets its own: the last, partial batch of an epoch does not reallocate the
    full batches' buffers.
    """

    def __init__(self):
        self._arrays: dict = {}

    def get(self, xp, name: str, shape: tuple, dtype):
        """The kept buffer for this name and shape, uninitialised on first use."""
        # The dtype and module objects themselves are the key: str(dtype) costs microseconds,
        # and a step asks for dozens of buffers.
        key = (name, shape, dtype, xp)
        array = self._arrays.get(key)
        if array is None:
            array = self._arrays[key] = xp.empty(shape, dtype=dtype)
        return array

    def constant(self, xp, name: str, shape: tuple, dtype, make):
        """A kept array filled once by `make(xp, shape, dtype)` (ones, class indices, ...)."""
        key = ("constant", name, shape, dtype, xp)
        array = self._arrays.get(key)
        if array is None:
            array = self._arrays[key] = make(xp, shape, dtype)
        return array

    def arrays(self) -> list:
        """Every kept array."""
        return list(self._arrays.values())

    def clear(self) -> None:
        self._arrays.clear()
