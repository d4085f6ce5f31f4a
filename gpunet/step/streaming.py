"""`StreamTraining`: the reference step over batches that arrive one by one from the host (a
generator or PyDataset), each copied to the device one batch ahead (uploads.py)."""

from __future__ import annotations

from gpunet.uploads import Prefetcher, Uploader


class StreamTraining:
    """The interface of `ReferenceTraining` over a BatchStream; `more()` says whether the
    epoch has another batch (its length may be unknown until the data runs out).

    Args:
        step: the ReferenceStep of the model.
        stream: the fit's BatchStream.
        xp: the array module the step runs on.
    """

    name = "stream"

    def __init__(self, step, stream, xp):
        self.step, self.stream = step, stream
        self.uploader = Uploader(xp)
        self.prefetch: Prefetcher | None = None

    def begin_epoch(self, order, first: int = 0) -> None:
        """Start the epoch's batches (from step `first` of a resumed epoch)."""
        self.prefetch = Prefetcher(self.stream.epoch(order, first), self.uploader)

    def more(self) -> bool:
        return self.prefetch.more()

    def run(self, tracker, first: int, count: int) -> int:
        """Up to `count` steps from step `first`; returns how many ran (fewer when the data
        ran out)."""
        done = 0
        while done < count and self.prefetch.more():
            step = first + done
            host, (xb, yb, wb) = self.prefetch.next()
            tracker.reserve(step + 1)
            y_pred = self.step.train(xb, yb, wb, tracker.step_total(step))
            tracker.update(len(host[0]), yb, y_pred, wb)
            done += 1
        return done

    def end_epoch(self) -> None:
        self.prefetch.close()
        self.stream.end_epoch()
