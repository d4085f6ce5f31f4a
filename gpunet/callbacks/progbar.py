"""`ProgbarLogger`: Keras's training output drawn with rich (formats: gpunet.progress)."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.live import Live
from rich.text import Text

from gpunet.callbacks.base import Callback
from gpunet.progress import epoch_line, progress_line


class ProgbarLogger(Callback):
    """Keras's training output. verbose=1 on a terminal: a live rich line per epoch, redrawn at
    fit's progress refreshes, or at most every `refresh_interval` seconds when the logs do not
    say (metric values are read from the device only then).
    verbose=2, or stdout not a terminal: one plain line per epoch, no \\r, \\b or escape codes.

    Args:
        verbose: 1 (live bar) or 2 (one line per epoch).
        console: the rich Console to draw on (default: stdout; honours NO_COLOR, FORCE_COLOR).
        clock: seconds as a float; tests pass a fake one.
    """

    def __init__(
        self,
        verbose: int = 1,
        console: Console | None = None,
        clock: Callable[[], float] = time.perf_counter,
        refresh_interval: float = 0.05,
    ):
        super().__init__()
        self.verbose = verbose
        self.console = console
        self.clock = clock
        self.refresh_interval = refresh_interval
        self._live = None
        self._learned_steps = None  # steps per epoch, learned from a first epoch of unknown size

    def on_train_begin(self, logs=None):
        if self.console is None:
            self.console = Console()
        self._live_mode = self.verbose == 1 and self.console.is_terminal

    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def on_epoch_begin(self, epoch, logs=None):
        epochs = self.params.get("epochs", 1)
        if epochs > 1:
            self._print(f"Epoch {epoch + 1}/{epochs}")
        self._start = self.clock() - self.resumed_seconds()
        self._after_first = None  # clock after the epoch's first step (a resumed epoch's too)
        self._first = 0  # steps done by then
        self._seen = 0
        self._last_draw = -float("inf")
        if self._live_mode:
            self._live = Live(Text(""), console=self.console, auto_refresh=False)
            self._live.start()

    def _time_per_step(self, now: float) -> float:
        # The first step pays for warm-up; Keras leaves it out of the average.
        if self._after_first is not None and self._seen > self._first:
            return (now - self._after_first) / (self._seen - self._first)
        return now - self._start

    def on_train_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        now = self.clock()
        if self._after_first is None:
            self._after_first, self._first = now, self._seen
        synced = getattr(logs, "synced", None)  # fit's refresh schedule, when it gives one
        due = now - self._last_draw >= self.refresh_interval if synced is None else synced
        if self._live is not None and due:
            total = self.params.get("steps") or self._learned_steps  # None: not known yet
            per_step = self._time_per_step(now)
            if total is None:
                line = progress_line(
                    self._seen, None, per_step, logs or {}, now - self._start, None
                )
            else:
                eta = per_step * max(total - self._seen, 0)
                line = progress_line(self._seen, total, per_step, logs or {}, None, eta)
            self._live.update(line, refresh=True)
            self._last_draw = now

    def on_epoch_end(self, epoch, logs=None):
        if not self.params.get("steps"):
            self._learned_steps = self._seen  # Keras: later epochs of a generator show it
        now = self.clock()
        elapsed, per_step = now - self._start, self._time_per_step(now)
        if self._live is not None:
            line = progress_line(self._seen, self._seen, per_step, logs or {}, elapsed, None)
            self._live.update(line, refresh=True)
            self._live.stop()
            self._live = None
        else:
            self._print(epoch_line(self._seen, elapsed, per_step, logs or {}))

    def on_train_end(self, logs=None):
        if self._live is not None:  # training stopped mid-epoch
            self._live.stop()
            self._live = None

    # evaluate() and predict() outside fit: one bar over their batches (Keras's), the final
    # line with the results; `params` gives their step count, `epochs` 1 (no header).
    def on_test_begin(self, logs=None):
        self.on_train_begin()
        self.on_epoch_begin(0)

    def on_test_batch_end(self, batch, logs=None):
        self.on_train_batch_end(batch, logs)

    def on_test_end(self, logs=None):
        self.on_epoch_end(0, logs)
        self.on_train_end()

    on_predict_begin = on_test_begin
    on_predict_batch_end = on_test_batch_end
    on_predict_end = on_test_end
