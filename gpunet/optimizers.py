"""Optimizers with Keras 3 names, defaults and update rules, applied to the whole model at once.

The model keeps every parameter in one flat float32 vector (and its gradient in another), so each
update below is a handful of in-place `xp` ufunc calls for all layers together. Slots (momenta,
velocities, ...) are flat vectors of the same length. Step-size scalars are Python floats, which
keep float32 arrays float32 under NumPy 2.
"""

from __future__ import annotations

import math

from gpunet.backend import get_array_module, to_host
from gpunet.schedules import LearningRateSchedule

_BASE_ARGS = ("learning_rate", "weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "name")


def _check_range(owner: str, name: str, value, low: float, high: float, high_open=True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: {name} must be a float, received {value!r}.")
    if not (low <= value < high if high_open else low <= value <= high):
        bracket = ")" if high_open else "]"
        raise ValueError(f"{owner}: {name} must be in [{low}, {high}{bracket}, received {value!r}.")
    return float(value)


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
        self._segments = segments
        self._tmp = get_array_module(params).empty_like(params)
        self.slots: dict = {}
        self._build_slots(params)
        self.built = True

    def _slot(self, params, name: str, value: float = 0.0):
        slot = get_array_module(params).full_like(params, value)
        self.slots[name] = slot
        return slot

    def _build_slots(self, params) -> None:
        """Subclasses create their slots here."""

    def get_state(self) -> tuple[dict, dict]:
        """(scalars, slot arrays on the host): all a checkpoint needs to continue exactly."""
        scalars = {"iterations": self.iterations, "u_product": getattr(self, "u_product", None)}
        if not isinstance(self._learning_rate, LearningRateSchedule):
            scalars["learning_rate"] = self._learning_rate
        return scalars, {name: to_host(slot) for name, slot in self.slots.items()}

    def set_state(self, scalars: dict, slots: dict) -> None:
        self.iterations = int(scalars["iterations"])
        if scalars.get("u_product") is not None:
            self.u_product = float(scalars["u_product"])
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
            self.iterations += 1
            return
        self._clip(grads)
        self._apply_weight_decay(params)
        self._update(params, grads, self.learning_rate)
        self.iterations += 1

    def _update_scaled(self, params, grads, loss_scale: float) -> None:
        raise ValueError(f"{type(self).__name__} takes gradients of the unscaled loss only.")

    def _apply_weight_decay(self, params) -> None:
        lr = self.learning_rate
        if self.weight_decay:
            # w = w - w * weight_decay * lr
            tmp = self._tmp
            get_array_module(params).multiply(params, self.weight_decay, out=tmp)
            tmp *= lr
            params -= tmp

    def _clip(self, grads) -> None:
        # Scale factors stay on the device: no host sync per step.
        xp = get_array_module(grads)
        if self.clipvalue is not None:
            xp.clip(grads, -self.clipvalue, self.clipvalue, out=grads)
        elif self.clipnorm is not None:
            for start, stop in self._segments:
                part = grads[start:stop]
                part *= self.clipnorm / xp.maximum(xp.sqrt(xp.dot(part, part)), self.clipnorm)
        elif self.global_clipnorm is not None:
            norm = xp.sqrt(xp.dot(grads, grads))
            grads *= self.global_clipnorm / xp.maximum(norm, self.global_clipnorm)

    def _update(self, params, grads, lr: float) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} learning_rate={self.learning_rate:g}>"


class SGD(Optimizer):
    """Stochastic gradient descent, Keras 3 rule.

    Without momentum: w -= lr * g.
    With momentum:    m = momentum * m - lr * g;  w += m,
    or, nesterov:     w += momentum * m - lr * g  (with the updated m).
    Defaults: learning_rate 0.01, momentum 0.0, nesterov False.
    """

    default_learning_rate = 0.01

    def __init__(self, learning_rate=None, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = _check_range("SGD", "momentum", momentum, 0.0, 1.0, high_open=False)
        self.nesterov = bool(nesterov)

    def _build_slots(self, params):
        if self.momentum:
            self._slot(params, "momentum")
            self._tmp2 = get_array_module(params).empty_like(params)

    def loss_scale(self):
        # The step backpropagates -lr * loss, so the gradient arrives as the step -lr * g and
        # w -= lr * g is one pass over the parameters instead of two. Clipping needs the true
        # gradient, so it keeps the unscaled path.
        if self.clipnorm is None and self.clipvalue is None and self.global_clipnorm is None:
            return -self.learning_rate
        return 1.0

    def _update(self, params, grads, lr):
        grads *= -lr  # in place: the gradient is not needed after the update
        self._step(params, grads)

    def _update_scaled(self, params, grads, loss_scale):
        if loss_scale != -self.learning_rate:
            raise ValueError(f"SGD: gradients scaled by {loss_scale}, expected -learning_rate.")
        self._step(params, grads)

    def _step(self, params, step):
        """The update from step = -lr * g (overwritten)."""
        if not self.momentum:
            params += step  # w -= lr * g
            return
        m = self.slots["momentum"]
        m *= self.momentum
        m += step  # m = momentum * m - lr * g
        if self.nesterov:
            step += get_array_module(m).multiply(m, self.momentum, out=self._tmp2)
            params += step  # w += momentum * m - lr * g
        else:
            params += m


class RMSprop(Optimizer):
    """RMSprop, Keras 3 rule (epsilon inside the square root; PyTorch puts it outside).

    v = rho * v + (1 - rho) * g^2
    centered: a = rho * a + (1 - rho) * g;  d = v - a^2 + epsilon;  else d = v + epsilon
    step = lr * g / sqrt(d);  with momentum: s = momentum * s + step; w -= s;  else w -= step.
    Defaults: learning_rate 0.001, rho 0.9, momentum 0.0, epsilon 1e-7, centered False.
    """

    def __init__(
        self, learning_rate=None, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs
    ):
        super().__init__(learning_rate, **kwargs)
        self.rho = _check_range("RMSprop", "rho", rho, 0.0, 1.0)
        self.momentum = _check_range("RMSprop", "momentum", momentum, 0.0, 1.0, high_open=False)
        self.epsilon = _check_range("RMSprop", "epsilon", epsilon, 0.0, math.inf)
        self.centered = bool(centered)

    def _build_slots(self, params):
        self._slot(params, "velocity")
        if self.centered:
            self._slot(params, "average_gradient")
        if self.momentum:
            self._slot(params, "momentum")

    def _update(self, params, grads, lr):
        xp = get_array_module(params)
        rho, tmp = self.rho, self._tmp
        v = self.slots["velocity"]
        xp.multiply(grads, grads, out=tmp)
        tmp *= 1.0 - rho
        v *= rho
        v += tmp
        if self.centered:
            a = self.slots["average_gradient"]
            a *= rho
            a += (1.0 - rho) * grads
            xp.multiply(a, a, out=tmp)
            xp.subtract(v, tmp, out=tmp)
            tmp += self.epsilon
        else:
            xp.add(v, self.epsilon, out=tmp)
        xp.sqrt(tmp, out=tmp)
        xp.divide(xp.multiply(grads, lr), tmp, out=tmp)  # lr * g / sqrt(d)
        if self.momentum:
            s = self.slots["momentum"]
            s *= self.momentum
            s += tmp
            params -= s
        else:
            params -= tmp


class Adam(Optimizer):
    """Adam, Keras 3 rule (bias correction folded into the step size).

    t += 1;  m += (1 - beta_1) * (g - m);  v += (1 - beta_2) * (g^2 - v)
    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    amsgrad: vhat = max(vhat, v), used in place of v.
    w -= alpha * m / (sqrt(v) + epsilon)
    Defaults: learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7, amsgrad False.
    """

    def __init__(
        self, learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs
    ):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.beta_1 = _check_range(owner, "beta_1", beta_1, 0.0, 1.0)
        self.beta_2 = _check_range(owner, "beta_2", beta_2, 0.0, 1.0)
        self.epsilon = _check_range(owner, "epsilon", epsilon, 0.0, math.inf)
        self.amsgrad = bool(amsgrad)

    def _build_slots(self, params):
        self._slot(params, "momentum")
        self._slot(params, "velocity")
        if self.amsgrad:
            self._slot(params, "velocity_hat")
        self._tmp2 = get_array_module(params).empty_like(params)

    def _update(self, params, grads, lr):
        xp = get_array_module(params)
        t = self.iterations + 1
        alpha = lr * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)
        m, v, tmp, tmp2 = self.slots["momentum"], self.slots["velocity"], self._tmp, self._tmp2
        _moving_average(xp, m, grads, self.beta_1, tmp)
        xp.multiply(grads, grads, out=tmp2)
        _moving_average(xp, v, tmp2, self.beta_2, tmp)
        if self.amsgrad:
            v = xp.maximum(self.slots["velocity_hat"], v, out=self.slots["velocity_hat"])
        xp.sqrt(v, out=tmp)
        tmp += self.epsilon
        xp.multiply(m, alpha, out=tmp2)
        tmp2 /= tmp
        params -= tmp2


class AdamW(Adam):
    """Adam with decoupled weight decay (w -= w * weight_decay * lr first); weight_decay 0.004."""

    def __init__(
        self,
        learning_rate=None,
        weight_decay=0.004,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        **kwargs,
    ):
        super().__init__(
            learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kwargs
        )


class Adagrad(Optimizer):
    """Adagrad, Keras 3 rule.

    acc += g^2;  w -= lr * g / sqrt(acc + epsilon)
    Defaults: learning_rate 0.001, initial_accumulator_value 0.1, epsilon 1e-7.
    """

    def __init__(self, learning_rate=None, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = _check_range(
            "Adagrad", "initial_accumulator_value", initial_accumulator_value, 0.0, math.inf
        )
        self.epsilon = _check_range("Adagrad", "epsilon", epsilon, 0.0, math.inf)

    def _build_slots(self, params):
        self._slot(params, "accumulator", self.initial_accumulator_value)

    def _update(self, params, grads, lr):
        xp = get_array_module(params)
        acc, tmp = self.slots["accumulator"], self._tmp
        xp.multiply(grads, grads, out=tmp)
        acc += tmp
        xp.add(acc, self.epsilon, out=tmp)
        xp.sqrt(tmp, out=tmp)
        xp.divide(xp.multiply(grads, lr), tmp, out=tmp)
        params -= tmp


class Adamax(Optimizer):
    """Adamax, Keras 3 rule.

    t += 1;  m += (1 - beta_1) * (g - m);  u = max(beta_2 * u, |g|)
    w -= lr * m / ((1 - beta_1^t) * (u + epsilon))
    Defaults: learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7.
    """

    def __init__(self, learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = _check_range("Adamax", "beta_1", beta_1, 0.0, 1.0)
        self.beta_2 = _check_range("Adamax", "beta_2", beta_2, 0.0, 1.0)
        self.epsilon = _check_range("Adamax", "epsilon", epsilon, 0.0, math.inf)

    def _build_slots(self, params):
        self._slot(params, "momentum")
        self._slot(params, "norm")

    def _update(self, params, grads, lr):
        xp = get_array_module(params)
        t = self.iterations + 1
        m, u, tmp = self.slots["momentum"], self.slots["norm"], self._tmp
        _moving_average(xp, m, grads, self.beta_1, tmp)
        u *= self.beta_2
        xp.maximum(u, xp.abs(grads, out=tmp), out=u)
        xp.add(u, self.epsilon, out=tmp)
        tmp *= 1.0 - self.beta_1**t
        xp.divide(xp.multiply(m, lr), tmp, out=tmp)
        params -= tmp


class Nadam(Optimizer):
    """Nadam, Keras 3 rule (momentum schedule with decay 0.96).

    t += 1;  u_t = beta_1 * (1 - 0.5 * 0.96^t);  u_t1 = beta_1 * (1 - 0.5 * 0.96^(t+1))
    P = P * u_t (P starts at 1);  m += (1 - beta_1) * (g - m);  v += (1 - beta_2) * (g^2 - v)
    m_hat = u_t1 * m / (1 - P * u_t1) + (1 - u_t) * g / (1 - P);  v_hat = v / (1 - beta_2^t)
    w -= lr * m_hat / (sqrt(v_hat) + epsilon)
    Defaults: learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7.
    """

    def __init__(self, learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = _check_range("Nadam", "beta_1", beta_1, 0.0, 1.0)
        self.beta_2 = _check_range("Nadam", "beta_2", beta_2, 0.0, 1.0)
        self.epsilon = _check_range("Nadam", "epsilon", epsilon, 0.0, math.inf)
        self.u_product = 1.0

    def _build_slots(self, params):
        self._slot(params, "momentum")
        self._slot(params, "velocity")
        self._tmp2 = get_array_module(params).empty_like(params)

    def _update(self, params, grads, lr):
        xp = get_array_module(params)
        t = self.iterations + 1
        u_t = self.beta_1 * (1.0 - 0.5 * 0.96**t)
        u_t1 = self.beta_1 * (1.0 - 0.5 * 0.96 ** (t + 1))
        self.u_product *= u_t
        product, product_next = self.u_product, self.u_product * u_t1
        m, v, tmp, tmp2 = self.slots["momentum"], self.slots["velocity"], self._tmp, self._tmp2
        _moving_average(xp, m, grads, self.beta_1, tmp)
        xp.multiply(grads, grads, out=tmp2)
        _moving_average(xp, v, tmp2, self.beta_2, tmp)
        xp.multiply(m, u_t1 / (1.0 - product_next), out=tmp2)  # m_hat into tmp2
        xp.multiply(grads, (1.0 - u_t) / (1.0 - product), out=tmp)
        tmp2 += tmp
        xp.divide(v, 1.0 - self.beta_2**t, out=tmp)  # v_hat into tmp
        xp.sqrt(tmp, out=tmp)
        tmp += self.epsilon
        tmp2 *= lr
        tmp2 /= tmp
        params -= tmp2


_BY_NAME = {
    "sgd": SGD,
    "rmsprop": RMSprop,
    "adam": Adam,
    "adamw": AdamW,
    "adagrad": Adagrad,
    "adamax": Adamax,
    "nadam": Nadam,
}


def get(identifier) -> Optimizer:
    """Resolve an optimizer name (with Keras defaults) or instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Unknown optimizer {identifier!r}. Allowed: {', '.join(sorted(_BY_NAME))}.")
