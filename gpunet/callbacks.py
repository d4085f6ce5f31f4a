"""Training callbacks: the `Callback` hook points of `fit`, `History`, and the epoch logger."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from rich.console import Console
from rich.live import Live
from rich.text import Text

from gpunet.progress import epoch_line, progress_line


class Callback:
    """Base class: override any hook. `self.model` and `self.params` are set by `fit`."""

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...


class LazyLogs(Mapping):
    """Batch logs that read metric values from the device only when a callback asks for one."""

    def __init__(self, read: Callable[[], dict]):
        self._read = read
        self._values: dict | None = None

    def _resolved(self) -> dict:
        if self._values is None:
            self._values = self._read()
        return self._values

    def __getitem__(self, key):
        return self._resolved()[key]

    def __iter__(self):
        return iter(self._resolved())

    def __len__(self):
        return len(self._resolved())


class CallbackList:
    """Calls a hook on every callback in order."""

    def __init__(self, callbacks, model, params: dict):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params(params)

    def __getattr__(self, hook: str):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args):
            for callback in self.callbacks:
                getattr(callback, hook)(*args)

        return call


class History(Callback):
    """Records every epoch's logs: `history` (name -> list of values) and `epoch` (indices)."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(value)
        if self.model is not None:
            self.model.history = self


class ProgbarLogger(Callback):
    """Keras's training output. verbose=1 on a terminal: a live rich line per epoch, redrawn at
    most every `refresh_interval` seconds (metric values are read from the device only then).
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
        self._start = self.clock()
        self._after_first = None
        self._seen = 0
        self._last_draw = -float("inf")
        if self._live_mode:
            self._live = Live(Text(""), console=self.console, auto_refresh=False)
            self._live.start()

    def _time_per_step(self, now: float) -> float:
        # The first step pays for warm-up; Keras leaves it out of the average.
        if self._after_first is not None and self._seen > 1:
            return (now - self._after_first) / (self._seen - 1)
        return (now - self._start) / max(self._seen, 1)

    def on_train_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        now = self.clock()
        if batch == 0:
            self._after_first = now
        if self._live is not None and now - self._last_draw >= self.refresh_interval:
            total = self.params.get("steps") or self._seen
            per_step = self._time_per_step(now)
            line = progress_line(
                self._seen, total, per_step, logs or {}, None, per_step * (total - self._seen)
            )
            self._live.update(line, refresh=True)
            self._last_draw = now

    def on_epoch_end(self, epoch, logs=None):
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
