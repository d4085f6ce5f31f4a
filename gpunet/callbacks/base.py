"""The `Callback` hook points of `fit`, the list that calls them, lazy batch logs, `History`."""

from __future__ import annotations

from collections.abc import Callable, Mapping


class Callback:
    """Base class: override any hook. `self.model` and `self.params` are set by `fit`."""

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def resumed_seconds(self) -> float:
        """In on_epoch_begin: seconds the epoch ran before it was resumed from a checkpoint (0.0
        for a fresh epoch), so that an epoch's time counts both parts."""
        progress = getattr(self.model, "_fit_progress", None)
        return 0.0 if progress is None else progress.seconds_before

    def check(self, log_names: list[str]) -> None:
        """Refuse, before the first step, what would fail later (a path, a logged name):
        `fit` calls it with the names its logs will hold. Raise ValueError with the reason."""

    def get_state(self) -> dict:
        """JSON-able state that a checkpoint keeps, so a resumed run decides as this one would."""
        return {}

    def set_state(self, state: dict) -> None:
        """Restore what `get_state` returned."""

    def get_arrays(self) -> dict:
        """Arrays a checkpoint keeps besides the JSON state (e.g. the best weights so far)."""
        return {}

    def set_arrays(self, arrays: dict) -> None:
        """Restore what `get_arrays` returned."""

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
    """Batch logs that read each value from the device only when a callback asks for it.

    Args:
        readers: log name -> a function returning its current value (inside fit, all of them
            come from one copy of the device accumulators, made on the first read).
        synced: True on a progress refresh step (reading is expected and costs one device
            read), False between refreshes (reading would stall the device), None when the
            caller does not say (a callback then decides by its own clock).
        first_nonfinite: a function giving the epoch's first step with a NaN or infinite loss.
    """

    def __init__(
        self,
        readers: Mapping[str, Callable[[], float]],
        synced: bool | None = None,
        first_nonfinite: Callable[[], int | None] | None = None,
    ):
        self._readers = readers
        self._values: dict = {}
        self.synced = synced
        self.first_nonfinite = first_nonfinite

    def __getitem__(self, key):
        if key not in self._values:
            self._values[key] = self._readers[key]()
        return self._values[key]

    def __iter__(self):
        return iter(self._readers)

    def __len__(self):
        return len(self._readers)


class CallbackList:
    """Calls a hook on every callback in order, skipping the ones that leave it as the base
    class's no-op: a step with no batch-level callbacks pays for no calls."""

    def __init__(self, callbacks, model, params: dict):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params(params)

    def _overrides(self, callback, hook: str) -> bool:
        return hook in vars(callback) or getattr(type(callback), hook) is not getattr(
            Callback, hook
        )

    def has(self, hook: str) -> bool:
        """Whether any callback does something at `hook`."""
        return any(self._overrides(c, hook) for c in self.callbacks)

    def __getattr__(self, hook: str):
        if not hook.startswith("on_") or not hasattr(Callback, hook):
            raise AttributeError(hook)
        methods = [getattr(c, hook) for c in self.callbacks if self._overrides(c, hook)]

        def call(*args):
            for method in methods:
                method(*args)

        setattr(self, hook, call)  # built once per hook
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
