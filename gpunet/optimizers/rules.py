"""The update rules, Keras 3's, over the flat parameter vector: SGD, RMSprop, Adam, AdamW,
Adagrad, Adamax, Nadam. Each `_update` receives the learning rate as a one-element device
array; the running products of the bias corrections advance on the device."""

from __future__ import annotations

import math

from gpunet.backend import get_array_module
from gpunet.optimizers.base import Optimizer, _check_range, _moving_average


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
        # In place: the gradient is not needed after the update.
        grads *= self._scalar("negative_learning_rate", -self.learning_rate)
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
            a += xp.multiply(grads, 1.0 - rho, out=tmp)
            xp.multiply(a, a, out=tmp)
            xp.subtract(v, tmp, out=tmp)
            tmp += self.epsilon
        else:
            xp.add(v, self.epsilon, out=tmp)
        xp.sqrt(tmp, out=tmp)
        grads *= lr  # the gradient is consumed
        xp.divide(grads, tmp, out=tmp)  # lr * g / sqrt(d)
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
        self._product("beta_1_power")
        self._product("beta_2_power")

    def _step_size(self):
        """alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t), t = iterations + 1, computed on
        the device in float64 and rounded to the parameters' dtype."""
        xp = self._xp
        beta_1_power, beta_2_power = self.products["beta_1_power"], self.products["beta_2_power"]
        beta_1_power *= self.beta_1
        beta_2_power *= self.beta_2
        alpha, denominator = self._float64("alpha"), self._float64("denominator")
        xp.subtract(1.0, beta_2_power, out=alpha)
        xp.sqrt(alpha, out=alpha)
        alpha *= self._scalar("learning_rate_64", self.learning_rate, "float64")
        xp.subtract(1.0, beta_1_power, out=denominator)
        alpha /= denominator
        return self._as_param_dtype("alpha", alpha)

    def _update(self, params, grads, lr):
        xp = get_array_module(params)
        alpha = self._step_size()
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
        grads *= lr  # the gradient is consumed
        xp.divide(grads, tmp, out=tmp)
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
        self._product("beta_1_power")

    def _update(self, params, grads, lr):
        xp = get_array_module(params)
        m, u, tmp = self.slots["momentum"], self.slots["norm"], self._tmp
        beta_1_power = self.products["beta_1_power"]
        beta_1_power *= self.beta_1  # beta_1^t
        correction = xp.subtract(1.0, beta_1_power, out=self._float64("correction"))
        _moving_average(xp, m, grads, self.beta_1, tmp)
        u *= self.beta_2
        xp.maximum(u, xp.abs(grads, out=tmp), out=u)
        xp.add(u, self.epsilon, out=tmp)
        tmp *= self._as_param_dtype("correction", correction)
        xp.multiply(m, lr, out=grads)  # the gradient is consumed
        xp.divide(grads, tmp, out=tmp)
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

    def _build_slots(self, params):
        self._slot(params, "momentum")
        self._slot(params, "velocity")
        self._tmp2 = get_array_module(params).empty_like(params)
        self._product("decay_power")  # 0.96^t
        self._product("u_product")  # P
        self._product("beta_2_power")

    def _coefficients(self):
        """The step's three factors, on the device in float64, rounded to the parameters'
        dtype: u_t1 / (1 - P * u_t1), (1 - u_t) / (1 - P), 1 - beta_2^t."""
        xp = self._xp
        decay_power, product = self.products["decay_power"], self.products["u_product"]
        beta_2_power = self.products["beta_2_power"]
        decay_power *= 0.96
        beta_2_power *= self.beta_2
        u_t, u_t1 = self._float64("u_t"), self._float64("u_t1")
        xp.multiply(decay_power, -0.5, out=u_t)  # u_t = beta_1 * (1 - 0.5 * 0.96^t)
        u_t += 1.0
        u_t *= self.beta_1
        xp.multiply(decay_power, -0.5 * 0.96, out=u_t1)  # 0.96^(t + 1)
        u_t1 += 1.0
        u_t1 *= self.beta_1
        product *= u_t
        a, b = self._float64("a"), self._float64("b")
        xp.multiply(product, u_t1, out=a)
        xp.subtract(1.0, a, out=a)
        xp.divide(u_t1, a, out=a)
        xp.subtract(1.0, u_t, out=b)
        denominator = xp.subtract(1.0, product, out=self._float64("denominator"))
        b /= denominator
        c = xp.subtract(1.0, beta_2_power, out=self._float64("c"))
        return (
            self._as_param_dtype("a", a),
            self._as_param_dtype("b", b),
            self._as_param_dtype("c", c),
        )

    def _update(self, params, grads, lr):
        xp = get_array_module(params)
        momentum_factor, gradient_factor, velocity_correction = self._coefficients()
        m, v, tmp, tmp2 = self.slots["momentum"], self.slots["velocity"], self._tmp, self._tmp2
        _moving_average(xp, m, grads, self.beta_1, tmp)
        xp.multiply(grads, grads, out=tmp2)
        _moving_average(xp, v, tmp2, self.beta_2, tmp)
        xp.multiply(m, momentum_factor, out=tmp2)  # m_hat into tmp2
        xp.multiply(grads, gradient_factor, out=tmp)
        tmp2 += tmp
        xp.divide(v, velocity_correction, out=tmp)  # v_hat into tmp
        xp.sqrt(tmp, out=tmp)
        tmp += self.epsilon
        tmp2 *= lr
        tmp2 /= tmp
        params -= tmp2
