"""The optimizer base: learning rate and schedules, clipping, weight decay, the loss scale, slots
and the step scalars in device memory.

The model keeps every parameter in one flat float32 vector (and its gradient in another), so an
update is a handful of in-place `xp` calls for all layers together. Slots (momenta, velocities,
...) are flat vectors of the same length. Scalars that change between steps (the learning rate,
the running products behind Adam's bias correction) live in one-element device arrays: the
host writes one only when its value changes, and running products advance on the device, so a
step reads no host value a captured CUDA graph could not replay.
"""

from __future__ import annotations

import math

from gpunet import schedules, serialization
from gpunet.backend import get_array_module, to_host
from gpunet.buffers import Buffers
from gpunet.schedules import LearningRateSchedule

_BASE_ARGS = ("learning_rate", "weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "name")


def _check_range(owner: str, name: str, value, low: float, high: float, high_open=True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: {name} must be a float, received {value!r}.")
    if not (low <= value < high if high_open else low <= value <= high):
        bracket = ")" if high_open else "]"
        raise ValueError(f"{owner}: {name} must be in [{low}, {high}{bracket}, received {value!r}.")
    return float(value)


class DeviceScalar:
    """A one-element device array holding a host-set value (the learning rate), rewritten only
    when the value changes: no host-to-device copy, and none at all on most steps."""

    def __init__(self, xp, value: float, dtype):
        self.array = xp.full(1, value, dtype=dtype)
        self.value = value

    def set(self, value: float):
        if value != self.value:
            self.array.fill(value)
            self.value = value
        return self.array


def _moving_average(xp, average, value, beta: float, tmp) -> None:
    """average += (1 - beta) * (value - average): Keras's in-place form of an EMA."""
    xp.subtract(value, average, out=tmp)
    tmp *= 1.0 - beta
    average += tmp


class Optimizer:
    """Base optimizer: gradient clipping, decoupled weight decay, learning-rate schedules.

    Args:
        learning_rate: float > 0, or a LearningRateSchedule of the iteration count.
        weight_decay: if set, w -= w * weight_decay * lr before each update (as Keras).
        clipnorm: clip each variable's gradient to this L2 norm.
        clipvalue: clip each gradient element to [-clipvalue, clipvalue].
        global_clipnorm: clip all gradients together to this global L2 norm.
        lr: Keras 2 spelling of learning_rate.
    """

    default_learning_rate = 0.001

    def __init__(
        self,
        learning_rate=None,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        name=None,
        **kwargs,
    ):
        owner = type(self).__name__
        if "lr" in kwargs:
            if learning_rate is not None:
                raise TypeError(f"{owner}: pass learning_rate or its old name lr, not both.")
            learning_rate = kwargs.pop("lr")
        if kwargs:
            raise TypeError(
                f"{owner} got unexpected argument(s) {', '.join(sorted(kwargs))}. "
                f"Allowed: {', '.join(self._arg_names())}."
            )
        if learning_rate is None:
            learning_rate = self.default_learning_rate
        if not isinstance(learning_rate, LearningRateSchedule):
            learning_rate = _check_range(owner, "learning_rate", learning_rate, 0.0, math.inf)
            if learning_rate <= 0.0:
                raise ValueError(f"{owner}: learning_rate must be > 0, received {learning_rate}.")
        self._learning_rate = learning_rate
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                f"{owner}: only one of clipnorm, clipvalue and global_clipnorm can be set."
            )
        for arg, value in (
            ("clipnorm", clipnorm),
            ("clipvalue", clipvalue),
            ("global_clipnorm", global_clipnorm),
            ("weight_decay", weight_decay),
        ):
            if value is not None:
                _check_range(owner, arg, value, 0.0, math.inf)
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.weight_decay = weight_decay
        self.name = name or owner.lower()
        self.iterations = 0
        self.built = False

    @classmethod
    def _arg_names(cls) -> list[str]:
        import inspect

        own = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")]
        return sorted(set(own) | set(_BASE_ARGS) | {"lr"})

    def get_config(self) -> dict:
        """The constructor arguments that rebuild this optimizer (Keras's `get_config`); a
        schedule's rate is its serialized form."""
        config = serialization.constructor_config(self)
        if isinstance(self._learning_rate, LearningRateSchedule):
            config["learning_rate"] = schedules.serialize(self._learning_rate)
        return config

    @classmethod
    def from_config(cls, config: dict):
        from gpunet import optimizers

        return optimizers.deserialize({"class_name": cls.__name__, "config": config})

    @property
    def learning_rate(self) -> float:
        """The rate the next update uses (a schedule is evaluated at `iterations`)."""
        if isinstance(self._learning_rate, LearningRateSchedule):
            return float(self._learning_rate(self.iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if isinstance(self._learning_rate, LearningRateSchedule):
            raise TypeError(
                f"{type(self).__name__} was created with a learning-rate schedule; "
                "its rate cannot be set directly."
            )
        self._learning_rate = _check_range(type(self).__name__, "learning_rate", value, 0, math.inf)

    def build(self, params, segments: list[tuple[int, int]]) -> None:
        """Create slots for the flat parameter vector; `segments` are the variables' ranges."""
        xp = get_array_module(params)
        self._segments = segments
        self._xp, self._dtype = xp, params.dtype
        self._tmp = xp.empty_like(params)
        self.slots: dict = {}
        self.products: dict = {}  # running products (beta^t, ...): float64 device arrays
        self._host_scalars: dict = {}  # name -> DeviceScalar
        self._step_sizes = Buffers()  # one-element temporaries of the step-size arithmetic
        self._build_slots(params)
        self.built = True

    def _slot(self, params, name: str, value: float = 0.0):
        slot = get_array_module(params).full_like(params, value)
        self.slots[name] = slot
        return slot

    def _product(self, name: str):
        """A running product, 1 before the first step; an update multiplies it on the device."""
        self.products[name] = self._xp.ones(1, dtype="float64")
        return self.products[name]

    def _scalar(self, name: str, value: float, dtype=None):
        """The one-element device array holding `value` (written only when it changes)."""
        scalar = self._host_scalars.get(name)
        if scalar is None:
            scalar = DeviceScalar(self._xp, value, dtype or self._dtype)
            self._host_scalars[name] = scalar
        return scalar.set(value)

    def _float64(self, name: str):
        """A one-element float64 device temporary, kept."""
        return self._step_sizes.get(self._xp, name, (1,), "float64")

    def _as_param_dtype(self, name: str, value64):
        """`value64` (one element, float64) rounded into a kept array of the parameters' dtype,
        as a Python float step size would be rounded."""
        out = self._step_sizes.get(self._xp, name, (1,), self._dtype)
        self._xp.copyto(out, value64, casting="same_kind")
        return out

    def _build_slots(self, params) -> None:
        """Subclasses create their slots (and running products) here."""

    def get_state(self) -> tuple[dict, dict]:
        """(scalars, slot arrays on the host): all a checkpoint needs to continue exactly."""
        scalars = {
            "iterations": self.iterations,
            # Exact float64 values (JSON keeps a float's repr), so a resumed run continues
            # bit for bit.
            "products": {k: float(to_host(v)[0]) for k, v in self.products.items()},
        }
        if not isinstance(self._learning_rate, LearningRateSchedule):
            scalars["learning_rate"] = self._learning_rate
        return scalars, {name: to_host(slot) for name, slot in self.slots.items()}

    def set_state(self, scalars: dict, slots: dict) -> None:
        self.iterations = int(scalars["iterations"])
        for name, product in self.products.items():
            product.fill(float(scalars["products"][name]))
        if "learning_rate" in scalars:
            self._learning_rate = float(scalars["learning_rate"])
        for name, slot in self.slots.items():
            if name not in slots or slots[name].shape != slot.shape:
                raise ValueError(
                    f"checkpoint: optimizer slot {name!r} is missing or has the wrong "
                    "shape for this model."
                )
            slot[...] = get_array_module(slot).asarray(slots[name])

    def loss_scale(self) -> float:
        """The factor s the training step multiplies the loss by before backpropagation; `apply`
        then receives the gradient of s * loss. Backpropagation is linear, so s costs nothing
        there, and a rule written for the scaled gradient can save passes over the parameters
        (SGD: with s = -lr its update is one addition). 1.0 unless a subclass says otherwise."""
        return 1.0

    def apply(self, params, grads, loss_scale: float = 1.0) -> None:
        """One update of `params` from `grads`, the gradient of loss_scale * loss (both flat;
        grads are clipped, then consumed). `loss_scale` is 1.0 or this optimizer's
        `loss_scale()`."""
        if loss_scale != 1.0:
            self._apply_weight_decay(params)
            self._update_scaled(params, grads, loss_scale)
        else:
            self._clip(grads)
            self._apply_weight_decay(params)
            self._update(params, grads, self._scalar("learning_rate", self.learning_rate))
        self.iterations += 1

    def _update_scaled(self, params, grads, loss_scale: float) -> None:
        raise ValueError(f"{type(self).__name__} takes gradients of the unscaled loss only.")

    def _apply_weight_decay(self, params) -> None:
        if self.weight_decay:
            # w = w - w * weight_decay * lr
            tmp = self._tmp
            get_array_module(params).multiply(params, self.weight_decay, out=tmp)
            tmp *= self._scalar("learning_rate", self.learning_rate)
            params -= tmp

    def _clip(self, grads) -> None:
        # Scale factors stay on the device, in kept one-element arrays: no sync, no allocation.
        xp = get_array_module(grads)
        if self.clipvalue is not None:
            xp.clip(grads, -self.clipvalue, self.clipvalue, out=grads)
        elif self.clipnorm is not None:
            for start, stop in self._segments:
                part = grads[start:stop]
                part *= self._clip_factor(xp, part, self.clipnorm)
        elif self.global_clipnorm is not None:
            grads *= self._clip_factor(xp, grads, self.global_clipnorm)

    def _clip_factor(self, xp, g, limit: float):
        """limit / max(||g||, limit), on the device."""
        factor = self._step_sizes.get(xp, "clip_factor", (), g.dtype)
        xp.dot(g, g, out=factor)
        xp.sqrt(factor, out=factor)
        xp.maximum(factor, limit, out=factor)
        return xp.divide(limit, factor, out=factor)

    def _update(self, params, grads, lr) -> None:
        """The rule, from the true gradient; `lr` is the learning rate's device array."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} learning_rate={self.learning_rate:g}>"
