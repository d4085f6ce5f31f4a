"""Learning-rate schedules with Keras 3 names and formulas: `schedule(step) -> float`, where step
is the optimizer's iteration count before the update (0 for the first batch)."""

from __future__ import annotations

import math

from gpunet import serialization


class LearningRateSchedule:
    """Base class: a callable from the step count to a learning rate."""

    def get_config(self) -> dict:
        """The constructor arguments that rebuild this schedule (Keras's `get_config`)."""
        return serialization.constructor_config(self)

    def __call__(self, step: int) -> float:
        raise NotImplementedError


class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate * decay_rate ** (step / decay_steps); the exponent floored when
    staircase=True."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        if decay_steps <= 0:
            raise ValueError(
                f"ExponentialDecay: decay_steps must be > 0, received {decay_steps!r}."
            )
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps, self.decay_rate, self.staircase = decay_steps, decay_rate, staircase

    def __call__(self, step):
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return self.initial_learning_rate * self.decay_rate**exponent


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[i] for the first i with step <= boundaries[i]; values[-1] past the last boundary."""

    def __init__(self, boundaries, values):
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                "PiecewiseConstantDecay: values must have exactly one more entry than boundaries, "
                f"received {len(boundaries)} boundaries and {len(values)} values."
            )
        if list(boundaries) != sorted(boundaries):
            raise ValueError(f"PiecewiseConstantDecay: boundaries must increase, got {boundaries}.")
        self.boundaries, self.values = list(boundaries), [float(v) for v in values]

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]


class CosineDecay(LearningRateSchedule):
    """Optional linear warmup from initial_learning_rate to warmup_target over warmup_steps,
    then cosine decay over decay_steps down to alpha times the peak rate."""

    def __init__(
        self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0
    ):
        if decay_steps <= 0:
            raise ValueError(f"CosineDecay: decay_steps must be > 0, received {decay_steps!r}.")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps, self.alpha = decay_steps, float(alpha)
        self.warmup_target, self.warmup_steps = warmup_target, warmup_steps

    def __call__(self, step):
        if self.warmup_target is None:
            peak = self.initial_learning_rate
        else:
            peak = float(self.warmup_target)
            if step < self.warmup_steps:
                fraction = step / self.warmup_steps
                return self.initial_learning_rate + (peak - self.initial_learning_rate) * fraction
            step -= self.warmup_steps
        step = min(step, self.decay_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return peak * ((1.0 - self.alpha) * cosine + self.alpha)


def serialize(schedule: LearningRateSchedule) -> dict:
    """Keras 3's serialized form of a schedule."""
    return serialization.serialize(schedule, "keras.optimizers.schedules")


def deserialize(config: dict) -> LearningRateSchedule:
    """The schedule `serialize` (or Keras 3) described."""
    classes = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay, CosineDecay)}
    return serialization.deserialize(config, classes, "schedule")
