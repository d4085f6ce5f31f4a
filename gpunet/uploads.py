"""Host batches onto the device one ahead of the step that uses them.

On CuPy each batch is written into page-locked (pinned) host memory and copied on a stream of
its own, so the copy of batch k+1 runs while the device computes batch k. Two slots alternate:
a slot's copy waits (on the device) for the step that last read it, and the host waits for a
slot's previous copy to finish before overwriting its pinned memory. That wait, one per batch,
is on a copy issued two batches earlier; it keeps the host at most two batches ahead. On
NumPy a batch is used where it lies.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from gpunet.buffers import Buffers

SLOTS = 2
NAMES = ("x", "y", "w")


class Uploader:
    """Copies (x, y, w) host batches into kept device buffers, alternating two slots.

    Args:
        xp: the array module the step runs on.
    """

    def __init__(self, xp):
        self.xp = xp
        self.device = xp is not np
        self.slot = SLOTS - 1
        if self.device:
            self.stream = xp.cuda.Stream(non_blocking=True)
            self.copied = [xp.cuda.Event() for _ in range(SLOTS)]
            self.consumed = [xp.cuda.Event() for _ in range(SLOTS)]
            self.buffers = Buffers()
            self.pinned: dict = {}  # (slot, name) -> (pinned memory, its size in bytes)

    def _staging(self, slot: int, name: str, array: np.ndarray) -> np.ndarray:
        """A view of this slot's pinned memory shaped like `array` (grown when too small)."""
        memory, size = self.pinned.get((slot, name), (None, 0))
        if size < array.nbytes:
            size = max(array.nbytes, 2 * size)
            memory = self.xp.cuda.alloc_pinned_memory(size)
            self.pinned[slot, name] = (memory, size)
        return np.frombuffer(memory, array.dtype, array.size).reshape(array.shape)

    def put(self, batch: tuple) -> tuple:
        """Start the copy of `batch` (host arrays, None for a missing weight); returns
        (slot, device arrays). The arrays may be read only after `ready(slot)`."""
        if not self.device:
            return 0, batch
        slot = self.slot = (self.slot + 1) % SLOTS
        self.copied[slot].synchronize()  # its pinned memory is free: the copy from it is done
        self.stream.wait_event(self.consumed[slot])  # the step that read it has run
        out = []
        for name, array in zip(NAMES, batch):
            if array is None:
                out.append(None)
                continue
            staging = self._staging(slot, name, array)
            staging[...] = array
            target = self.buffers.get(self.xp, f"{slot}/{name}", array.shape, array.dtype)
            target.set(staging, stream=self.stream)
            out.append(target)
        self.stream.record(self.copied[slot])
        return slot, tuple(out)

    def ready(self, slot: int) -> None:
        """Work issued from now on (on the current stream) sees slot `slot`'s copy."""
        if self.device:
            self.xp.cuda.get_current_stream().wait_event(self.copied[slot])

    def release(self, slot: int) -> None:
        """Everything that reads slot `slot` has been issued: its next copy may follow it."""
        if self.device:
            self.xp.cuda.get_current_stream().record(self.consumed[slot])


class Prefetcher:
    """The batches of an iterator of host batches, each on the device, the next one always
    on its way while the current one is used.

    Args:
        batches: host (x, y, w) batches.
        uploader: the Uploader (kept for the fit: its buffers are reused).
    """

    def __init__(self, batches: Iterator[tuple], uploader: Uploader):
        self.batches, self.uploader = batches, uploader
        self._in_use: int | None = None
        self._ahead = self._fetch()

    def _fetch(self):
        batch = next(self.batches, None)
        return None if batch is None else (batch, *self.uploader.put(batch))

    def more(self) -> bool:
        """Whether another batch follows."""
        return self._ahead is not None

    def next(self) -> tuple[tuple, tuple]:
        """(host batch, device batch) of the next batch; the previous one's reads must all be
        issued (it is released here)."""
        if self._in_use is not None:
            self.uploader.release(self._in_use)
        host, slot, device = self._ahead
        self._in_use = slot
        self._ahead = self._fetch()
        self.uploader.ready(slot)
        return host, device

    def close(self) -> None:
        if self._in_use is not None:
            self.uploader.release(self._in_use)
            self._in_use = None
