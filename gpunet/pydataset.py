"""`PyDataset`: Keras 3's base class for data made batch by batch in Python (`keras.utils.
PyDataset`, formerly `Sequence`): `__getitem__(index)` returns one whole batch, `__len__` (or
the `num_batches` property) the number of batches, None for an endless dataset.
"""

from __future__ import annotations

import warnings


class PyDataset:
    """Base class of a dataset that returns whole batches by index.

    Subclass it, call `super().__init__(**kwargs)`, and define `__getitem__(index)` returning
    `(x,)`, `(x, y)` or `(x, y, sample_weight)` for batch `index`, and `__len__` (or the
    `num_batches` property). `on_epoch_begin`/`on_epoch_end` are called around each epoch of
    `fit`. `fit(shuffle=True)` visits the batches in a seeded random order.

    Args:
        workers: threads that call `__getitem__` ahead of the training step (1: the batches
            are made one ahead, in the training thread's pauses).
        use_multiprocessing: accepted for Keras code; gpunet's workers are threads (a warning
            says so when it is True).
        max_queue_size: batches made ahead at most, with several workers.
    """

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size=10):
        for name, value, low in (("workers", workers, 1), ("max_queue_size", max_queue_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"PyDataset: {name} must be an int >= {low}, received {value!r}.")
        if use_multiprocessing:
            warnings.warn(
                "PyDataset: use_multiprocessing=True: gpunet's workers are threads, not "
                "processes (they release the GIL in NumPy; a pure-Python __getitem__ gains "
                "less).",
                stacklevel=2,
            )
        self._workers = workers
        self._use_multiprocessing = bool(use_multiprocessing)
        self._max_queue_size = max_queue_size

    @property
    def workers(self) -> int:
        return getattr(self, "_workers", 1)

    @property
    def use_multiprocessing(self) -> bool:
        return getattr(self, "_use_multiprocessing", False)

    @property
    def max_queue_size(self) -> int:
        return getattr(self, "_max_queue_size", 10)

    def __getitem__(self, index):
        """Batch `index`: `(x,)`, `(x, y)` or `(x, y, sample_weight)`."""
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index).")

    @property
    def num_batches(self) -> int | None:
        """The number of batches (`len(self)`), or None for an endless dataset."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(
            f"{type(self).__name__} must define __len__ or the num_batches property."
        )

    def __iter__(self):
        index = 0
        while self.num_batches is None or index < self.num_batches:
            yield self[index]
            index += 1

    def on_epoch_begin(self) -> None:
        """Called at the start of every epoch of fit."""

    def on_epoch_end(self) -> None:
        """Called at the end of every epoch of fit (e.g. to reshuffle)."""
