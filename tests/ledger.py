"""What a GPU would pay for at each step of a real fit: the stand-in's ledger, cut per step.

`record_fit` runs `model.fit` with a callback first and one last in the list, so each step's
window spans every callback of that step (the progress bar's reads included), and nothing of the
epoch's start or end.
"""

from __future__ import annotations

import gpunet as gn
from tests import standin


class _Begin(gn.callbacks.Callback):
    def __init__(self, records):
        super().__init__()
        self.records = records

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.mark = standin.ledger.mark()


class _End(gn.callbacks.Callback):
    def __init__(self, begin):
        super().__init__()
        self.begin = begin

    def on_train_batch_end(self, batch, logs=None):
        mark = self.begin.mark
        counts = standin.ledger.since(mark)
        counts.update(
            epoch=self.begin.epoch,
            step=batch,
            synced=getattr(logs, "synced", None),
            sites={k: standin.ledger.sites(k, mark) for k in ("syncs", "h2d", "allocs")},
        )
        self.begin.records.append(counts)


def record_fit(model, x, y, callbacks=(), **fit_args):
    """(history, per-step records) of `model.fit(x, y, callbacks=[...], **fit_args)`."""
    records: list[dict] = []
    begin = _Begin(records)
    history = model.fit(x, y, callbacks=[begin, *callbacks, _End(begin)], **fit_args)
    return history, records
