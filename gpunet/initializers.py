"""Weight initializers with Keras 3 names and defaults; values are drawn on the host in float64
and cast once, so a seeded model starts from the same weights on NumPy and CuPy."""

from __future__ import annotations

import math

import numpy as np

from gpunet import rng, serialization
from gpunet.messages import unknown_name


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a kernel (in, out), or of a vector (n,) as Keras counts them."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: `init(shape, dtype)` returns a host array."""

    def __init__(self, seed: int | None = None):
        self.seed = seed

    def _generator(self) -> np.random.Generator:
        return rng.host_generator(self.seed)

    def __call__(self, shape, dtype="float32") -> np.ndarray:
        return np.asarray(self.sample(tuple(shape)), dtype=dtype)

    def sample(self, shape: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        """The constructor arguments that rebuild this initializer (Keras's `get_config`)."""
        return serialization.constructor_config(self)

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


class _Fixed(Initializer):
    """An initializer that draws nothing: no seed (Keras's config is `{}`; an old gpunet config
    with `"seed"` still loads)."""

    def __init__(self):
        super().__init__()

    @classmethod
    def from_config(cls, config: dict):
        return cls(**{k: v for k, v in config.items() if k != "seed"})


class Zeros(_Fixed):
    """All zeros."""

    def sample(self, shape):
        return np.zeros(shape)


class Ones(_Fixed):
    """All ones."""

    def sample(self, shape):
        return np.ones(shape)


class Constant(Initializer):
    """Every value equal to `value` (default 0.0)."""

    def __init__(self, value: float = 0.0):
        super().__init__()
        self.value = float(value)

    def sample(self, shape):
        return np.full(shape, self.value)


class RandomUniform(Initializer):
    """Uniform on [minval, maxval), default +-0.05."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def sample(self, shape):
        return self._generator().uniform(self.minval, self.maxval, shape)


class RandomNormal(Initializer):
    """Normal with mean 0.0 and stddev 0.05 by default."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def sample(self, shape):
        return self._generator().normal(self.mean, self.stddev, shape)


def _truncated_normal(generator: np.random.Generator, shape, stddev: float) -> np.ndarray:
    """Standard normal scaled by stddev, redrawing values beyond two standard deviations."""
    values = generator.standard_normal(shape)
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = generator.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2.0
    return values * stddev


class TruncatedNormal(Initializer):
    """Normal (mean 0.0, stddev 0.05) truncated to two standard deviations."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def sample(self, shape):
        return self.mean + _truncated_normal(self._generator(), shape, self.stddev)


class VarianceScaling(Initializer):
    """Variance `scale / n`, n the fan_in, fan_out or their mean; uniform or truncated normal."""

    MODES = ("fan_in", "fan_out", "fan_avg")
    DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        if scale <= 0.0:
            raise ValueError(f"VarianceScaling: scale must be positive, received {scale!r}.")
        if mode not in self.MODES:
            raise ValueError(f"VarianceScaling: mode {mode!r} is not one of {self.MODES}.")
        if distribution not in self.DISTRIBUTIONS:
            raise ValueError(
                f"VarianceScaling: distribution {distribution!r} is not one of "
                f"{self.DISTRIBUTIONS}."
            )
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def sample(self, shape):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, n)
        generator = self._generator()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return generator.uniform(-limit, limit, shape)
        if self.distribution == "untruncated_normal":
            return generator.normal(0.0, math.sqrt(variance), shape)
        # 0.8796... is the stddev of a standard normal truncated to [-2, 2].
        return _truncated_normal(generator, shape, math.sqrt(variance) / 0.87962566103423978)


class GlorotUniform(VarianceScaling):
    """Uniform on +-sqrt(6 / (fan_in + fan_out)); the Dense kernel default."""

    def __init__(self, seed=None):
        super().__init__(1.0, "fan_avg", "uniform", seed)


class GlorotNormal(VarianceScaling):
    """Truncated normal with variance 2 / (fan_in + fan_out)."""

    def __init__(self, seed=None):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed)


class HeUniform(VarianceScaling):
    """Uniform on +-sqrt(6 / fan_in)."""

    def __init__(self, seed=None):
        super().__init__(2.0, "fan_in", "uniform", seed)


class HeNormal(VarianceScaling):
    """Truncated normal with variance 2 / fan_in."""

    def __init__(self, seed=None):
        super().__init__(2.0, "fan_in", "truncated_normal", seed)


class LecunUniform(VarianceScaling):
    """Uniform on +-sqrt(3 / fan_in)."""

    def __init__(self, seed=None):
        super().__init__(1.0, "fan_in", "uniform", seed)


class LecunNormal(VarianceScaling):
    """Truncated normal with variance 1 / fan_in."""

    def __init__(self, seed=None):
        super().__init__(1.0, "fan_in", "truncated_normal", seed)


_BY_NAME = {
    "zeros": Zeros,
    "zero": Zeros,
    "ones": Ones,
    "one": Ones,
    "constant": Constant,
    "random_uniform": RandomUniform,
    "random_normal": RandomNormal,
    "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform,
    "he_normal": HeNormal,
    "lecun_uniform": LecunUniform,
    "lecun_normal": LecunNormal,
}


_CLASSES = {cls.__name__: cls for cls in set(_BY_NAME.values())}


def serialize(initializer: Initializer) -> dict:
    """Keras 3's serialized form of an initializer."""
    return serialization.serialize(initializer, "keras.initializers")


def deserialize(config: dict) -> Initializer:
    """The initializer `serialize` (or Keras 3) described."""
    return serialization.deserialize(
        config, _CLASSES, "initializer", lambda cls, arguments: cls.from_config(arguments)
    )


def get(identifier) -> Initializer:
    """Resolve an initializer name, class name, serialized dict or instance."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier in _CLASSES:
        return _CLASSES[identifier]()
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise unknown_name("initializer", identifier, sorted(_BY_NAME))
