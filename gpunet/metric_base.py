"""The metric base classes: `Metric` (state in a float64 device vector, read in one copy),
`Mean` (a weighted running mean) and `MeanMetricWrapper` (the mean of a per-sample function)."""

from __future__ import annotations

import numpy as np

from gpunet.backend import get_array_module, to_host
from gpunet.buffers import Buffers


class Metric:
    """Base metric: `update_state(y_true, y_pred, sample_weight)`, `result()`, `reset_state()`.

    Subclasses give `state_size`, `_update(state, ...)` (adds into the float64 device vector
    `state` in place) and `result_from(state)` (the value, from a host copy of the state).
    """

    state_size = 0
    # Options Keras 3's config of this metric carries that gpunet does not offer, with the
    # value meaning "off": a Keras config giving exactly these loads; any other is refused.
    keras_only: dict = {}

    def __init__(self, name: str):
        self.name = name
        self._state = None
        self._buffers = Buffers()

    def _accumulators(self, like):
        xp = get_array_module(like)
        if self._state is None or get_array_module(self._state) is not xp:
            self._state = xp.zeros(self.state_size, dtype="float64")
        return self._state

    def reset_state(self) -> None:
        if self._state is not None:
            self._state.fill(0.0)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        self._update(self._accumulators(y_pred), y_true, y_pred, sample_weight)

    def read_state(self) -> np.ndarray:
        """A host float64 copy of the accumulators (one device read)."""
        if self._state is None:
            return np.zeros(self.state_size)
        return np.asarray(to_host(self._state), dtype="float64")

    def result(self) -> float:
        return self.result_from(self.read_state())

    def _update(self, state, y_true, y_pred, sample_weight) -> None:
        raise NotImplementedError

    def result_from(self, state: np.ndarray) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        """Keras 3's config: the name, the dtype (always float32 here) and the options."""
        return {"name": self.name, "dtype": "float32", **self._options()}

    def _options(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        """The metric `get_config` (gpunet's or Keras 3's) describes."""
        config = dict(config)
        dtype = config.pop("dtype", None)
        if dtype not in (None, "float32"):
            raise ValueError(
                f"metric {cls.__name__}: dtype {dtype!r}: gpunet's metrics compute in "
                "float32 (float64 accumulators); use 'float32' or leave it out."
            )
        for option, off in cls.keras_only.items():
            if option in config and config.pop(option) != off:
                raise ValueError(
                    f"metric {cls.__name__}: option {option!r} is not supported by gpunet "
                    f"(only {off!r})."
                )
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


def _row_weights(sample_weight, values):
    """The (N,) sample weights shaped to broadcast against per-sample values (N, ...)."""
    return sample_weight.reshape(sample_weight.shape + (1,) * (values.ndim - 1))


class Mean(Metric):
    """Weighted mean of the values it is given: sum(v * w) / sum(w). State: [total, count]."""

    state_size = 2

    def _add(self, state, values, sample_weight):
        xp = get_array_module(values)
        total, count = state[0:1], state[1:2]
        partial = self._buffers.get(xp, "partial", (), "float64")
        if sample_weight is None:
            values.sum(dtype="float64", out=partial)
            total += partial
            count += values.size
            return
        weighted = self._buffers.get(xp, "weighted", values.shape, values.dtype)
        xp.multiply(values, _row_weights(sample_weight, values), out=weighted)
        weighted.sum(dtype="float64", out=partial)
        total += partial
        sample_weight.sum(dtype="float64", out=partial)
        partial *= values.size // max(values.shape[0], 1)  # each weight counts once per value
        count += partial

    def result_from(self, state):
        total, count = state
        return float(total / count) if count else 0.0


class MeanMetricWrapper(Mean):
    """The weighted mean of a per-sample function `fn(y_true, y_pred) -> (N,)`; a function that
    takes `buffers=` writes its values into kept buffers instead of new arrays."""

    def __init__(self, fn, name: str):
        self.fn = fn
        super().__init__(name)

    def _update(self, state, y_true, y_pred, sample_weight):
        if getattr(self.fn, "buffered", False):
            values = self.fn(y_true, y_pred, buffers=self._buffers)
        else:
            values = self.fn(y_true, y_pred)
        self._add(state, values, sample_weight)


def _same_rank(y_true, y_pred):
    """Targets with one axis fewer than the outputs (class labels) get a trailing axis, as
    Keras's squeeze_or_expand_to_same_rank gives them, so they broadcast against the outputs."""
    if y_true.ndim == y_pred.ndim - 1:
        return y_true.reshape(y_true.shape + (1,))
    return y_true
