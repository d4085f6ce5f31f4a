"""Data that is not an array: a Python generator, an iterator, an iterable or a `PyDataset`,
read one batch at a time on the host, as Keras 3 reads it.

How many batches an epoch takes: `steps` (fit's `steps_per_epoch`, `validation_steps`,
`evaluate`/`predict`'s `steps`) when given, else one pass over the data. With `steps`, an
iterator is kept from one epoch to the next (Keras's rule), so a generator that yields forever
feeds every epoch. A source that cannot start over (a generator, an iterator: `iter(x) is x`)
and runs out ends the fit after that epoch, with Keras's warning; one that can (an iterable, a
PyDataset) starts a new pass at the next epoch.
"""

from __future__ import annotations

import collections
import itertools
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from gpunet import backend
from gpunet.pydataset import PyDataset

RAN_OUT = (
    "Your input ran out of data; interrupting training. Make sure that your dataset or "
    "generator can generate at least `steps_per_epoch * epochs` batches."
)


def is_stream(data) -> bool:
    """Whether `data` is read batch by batch (a generator, iterator, iterable or PyDataset)
    rather than as one array (arrays, lists, tuples, anything with `__array__`)."""
    if isinstance(data, PyDataset):
        return True
    if data is None or isinstance(data, (np.ndarray, list, tuple, dict, str, bytes)):
        return False
    if backend.is_device_array(data) or hasattr(data, "__array__"):
        return False
    return hasattr(data, "__next__") or hasattr(data, "__iter__")


def check_steps(steps, name: str) -> int | None:
    """`steps_per_epoch`-like arguments: None or an int >= 1."""
    if steps is None:
        return None
    if isinstance(steps, (bool, float)) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"{name} must be None or an int >= 1, received {steps!r}.")
    return int(steps)


def unpack(batch, where: str, index: int) -> tuple:
    """(x, y, sample_weight) of one batch as the source gave it; y and w may be None."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        batch = (batch,)  # an array alone: inputs only (predict)
    if not 1 <= len(batch) <= 3:
        raise ValueError(
            f"{where}: batch {index} is a tuple of {len(batch)} items; a batch must be (x,), "
            "(x, y) or (x, y, sample_weight)."
        )
    return batch + (None,) * (3 - len(batch))


class BatchStream:
    """The batches of one data source, epoch by epoch, each checked and converted on the host.

    Args:
        data: a generator, iterator, iterable or PyDataset.
        steps: batches per epoch, or None for one pass.
        where: the argument's name in messages ("fit: x", "fit: validation_data", ...).
        prepare: (x, y, w, index) -> the batch as host arrays of the training dtypes
            (the model's checks: shapes, targets, finite values).
    """

    def __init__(self, data, steps: int | None, where: str, prepare: Callable):
        self.data, self.steps, self.where, self.prepare = data, steps, where, prepare
        self.dataset = data if isinstance(data, PyDataset) else None
        # An iterator (it has __next__) is its own single pass; an iterable makes a new one.
        self.restartable = self.dataset is not None or not hasattr(data, "__next__")
        self._iterator: Iterator | None = None  # kept across epochs when `steps` is given
        self._fresh = False  # the kept iterator is a pass no epoch has read yet (peek's)
        self.ran_out = False  # a source that cannot start over has no batches left
        self.rng: np.random.Generator | None = None  # shuffles a PyDataset's passes with steps

    @property
    def exact_order(self) -> bool:
        """Whether an epoch is a pass in an order the trainer gives (and a checkpoint holds):
        a finite PyDataset without `steps`."""
        return self.dataset is not None and self.steps is None and self._length() is not None

    def known_steps(self) -> int | None:
        """Steps per epoch when known before the epoch runs."""
        if self.steps is not None:
            return self.steps
        return self._length() if self.dataset is not None else None

    def _length(self) -> int | None:
        what = f"{self.where}: {type(self.dataset).__name__}'s length must be an int >= 0 or None"
        try:
            length = self.dataset.num_batches
        except (TypeError, ValueError) as exc:  # len() refuses a negative or non-int __len__
            raise ValueError(f"{what} ({exc}).") from None
        if length is not None and (not isinstance(length, (int, np.integer)) or length < 0):
            raise ValueError(f"{what}, received {length!r}.")
        return length

    def _pass(self, order=None) -> Iterator:
        """A new pass over the source: raw batches."""
        if self.dataset is None:
            return iter(self.data)
        length = self._length()
        if order is None and length is not None and self.rng is not None:
            order = self.rng.permutation(length)
        indices = itertools.count() if length is None else range(length)
        indices = indices if order is None else order
        if self.dataset.workers > 1:
            return _made_ahead(self.dataset, indices)
        return (self.dataset[int(i)] for i in indices)

    def peek(self) -> tuple:
        """The first batch's (x, y, w) as the source gives it, before any epoch: the model is
        built from it. An iterator's first batch is kept for the first epoch."""
        if self.dataset is not None:
            if self._length() == 0:
                raise ValueError(f"{self.where}: the {type(self.data).__name__} has no batches.")
            return unpack(self.dataset[0], self.where, 0)
        source = iter(self.data)
        try:
            raw = next(source)
        except StopIteration:
            raise ValueError(f"{self.where}: the data yielded no batches.") from None
        self._iterator, self._fresh = itertools.chain([raw], source), True
        return unpack(raw, self.where, 0)

    def epoch(self, order=None, first: int = 0) -> Iterator[tuple]:
        """The host batches of one epoch, from step `first` on (exact only for `exact_order`
        sources: the trainer refuses other mid-epoch resumes)."""
        if self.dataset is not None:
            self.dataset.on_epoch_begin()
        keep = self._iterator is not None and (
            self.steps is not None or self._fresh or not self.restartable
        )
        source = self._iterator if keep else self._pass(order)
        self._iterator, self._fresh = source, False
        if self.exact_order and first:
            source = itertools.islice(source, first, None)
        budget = None if self.steps is None else self.steps - first
        taken, restarted = 0, False
        while budget is None or taken < budget:
            try:
                raw = next(source)
            except StopIteration:
                if keep and self.restartable and taken == 0 and not restarted:
                    # A kept pass that ended with the last epoch: this epoch starts a new one.
                    source = self._iterator = self._pass(order)
                    restarted = True
                    continue
                if self.restartable:
                    self._iterator = None  # the next epoch starts a new pass
                if taken == 0 and first == 0:
                    self.ran_out = True  # nothing at all: no pass will give more
                    warnings.warn(RAN_OUT, stacklevel=2)
                elif self.steps is not None:
                    self.ran_out = not self.restartable
                    warnings.warn(RAN_OUT, stacklevel=2)
                return
            x, y, w = unpack(raw, self.where, first + taken)
            yield self.prepare(x, y, w, first + taken)
            taken += 1

    def end_epoch(self) -> None:
        if self.dataset is not None:
            self.dataset.on_epoch_end()


def _made_ahead(dataset: PyDataset, indices) -> Iterator:
    """dataset[i] for each index, in order, made by `dataset.workers` threads up to
    `dataset.max_queue_size` batches ahead (an error in one is raised when its turn comes)."""
    with ThreadPoolExecutor(dataset.workers) as pool:
        pending: collections.deque = collections.deque()
        for index in indices:
            pending.append(pool.submit(dataset.__getitem__, int(index)))
            if len(pending) >= dataset.max_queue_size:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
