"""What the optimizers' constructors take and refuse: Keras 3's defaults and bounds, the common
arguments (learning_rate, clipping, weight decay, name), and the messages that name a bad one."""

import numpy as np
import pytest

from gpunet import optimizers


def test_keras_defaults():
    assert optimizers.SGD().learning_rate == 0.01
    rms = optimizers.get("rmsprop")
    assert (rms.learning_rate, rms.rho, rms.epsilon) == (0.001, 0.9, 1e-7)
    adam = optimizers.get("adam")
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    assert optimizers.get("adamw").weight_decay == 0.004
    assert optimizers.get("adagrad").initial_accumulator_value == 0.1


def test_lr_is_an_alias_of_learning_rate():
    assert optimizers.SGD(lr=0.5).learning_rate == 0.5
    with pytest.raises(TypeError, match="not both"):
        optimizers.SGD(0.1, lr=0.5)


def test_unknown_argument_lists_the_allowed_ones():
    # Its own arguments, the common ones and lr: every name the constructor takes, no other.
    allowed = (
        "clipnorm, clipvalue, global_clipnorm, learning_rate, lr, momentum, name, nesterov, "
        "weight_decay"
    )
    with pytest.raises(TypeError) as info:
        optimizers.SGD(decay=0.1)
    assert str(info.value) == f"SGD got unexpected argument(s) decay. Allowed: {allowed}."
    with pytest.raises(TypeError) as info:
        optimizers.SGD(rho=0.9, decay=0.1)
    assert str(info.value).startswith("SGD got unexpected argument(s) decay, rho. Allowed: ")


def test_keras_bounds_are_inclusive_where_keras_accepts_the_edge():
    # Keras accepts momentum in [0, 1] (1 included); betas must stay below 1.
    assert optimizers.SGD(momentum=1.0).momentum == 1.0
    assert optimizers.RMSprop(momentum=1.0).momentum == 1.0
    with pytest.raises(
        ValueError, match=r"^RMSprop: momentum must be in \[0.0, 1.0\], received 1.5"
    ):
        optimizers.RMSprop(momentum=1.5)
    with pytest.raises(ValueError, match=r"^Adam: beta_2 must be in \[0.0, 1.0\), received 1.5"):
        optimizers.Adam(beta_2=1.5)


def test_amsgrad_is_off_by_default_and_adamw_passes_it_on():
    assert optimizers.Adam().amsgrad is False and optimizers.AdamW().amsgrad is False
    assert optimizers.AdamW(amsgrad=True).amsgrad is True


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        optimizers.Adam(learning_rate=0.0)
    with pytest.raises(ValueError, match="only one of clipnorm"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="momentum must be in"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="Unknown optimizer 'adamm'.*adam"):
        optimizers.get("adamm")


@pytest.mark.parametrize(
    "cls, arg, bad",
    [
        (cls, arg, bad)
        for cls, args in (
            (optimizers.SGD, {"momentum": 1.5}),
            (optimizers.RMSprop, {"rho": 1.0, "momentum": -0.1, "epsilon": -1.0}),
            (optimizers.Adam, {"beta_1": 1.0, "beta_2": -0.5, "epsilon": -1.0}),
            (optimizers.Adagrad, {"initial_accumulator_value": -1.0, "epsilon": -1.0}),
            (optimizers.Adamax, {"beta_1": 1.0, "beta_2": 1.0, "epsilon": -1.0}),
            (optimizers.Nadam, {"beta_1": 1.0, "beta_2": 1.0, "epsilon": -1.0}),
        )
        for arg, bad in args.items()
    ],
)
def test_a_bad_argument_is_named_with_its_class(cls, arg, bad):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}: {arg} must be in \["):
        cls(**{arg: bad})


@pytest.mark.parametrize(
    "cls",
    [
        getattr(optimizers, n)
        for n in ("SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Adamax", "Nadam")
    ],
)
def test_every_optimizer_passes_the_common_arguments_on(cls):
    opt = cls(learning_rate=0.5, clipnorm=2.0, name="mine")
    assert (opt.learning_rate, opt.clipnorm, opt.name) == (0.5, 2.0, "mine")
    assert cls(global_clipnorm=3.0).global_clipnorm == 3.0
    assert cls(clipvalue=0.1).clipvalue == 0.1


@pytest.mark.parametrize(
    "arg", ["learning_rate", "clipnorm", "clipvalue", "global_clipnorm", "weight_decay"]
)
def test_a_bad_common_argument_is_refused_with_its_name_and_class(arg):
    with pytest.raises(ValueError) as info:
        optimizers.Adam(**{arg: -1.0})
    assert str(info.value) == f"Adam: {arg} must be in [0.0, inf), received -1.0."
    for bad in (True, "fast"):  # a bool is not a float here, though Python calls it an int
        with pytest.raises(TypeError) as info:
            optimizers.SGD(**{arg: bad})
        assert str(info.value) == f"SGD: {arg} must be a float, received {bad!r}."


def test_an_optimizer_is_built_once_it_has_seen_its_parameters():
    sgd = optimizers.SGD()
    assert sgd.built is False
    sgd.build(np.zeros(2, np.float32), [(0, 2)])
    assert sgd.built is True
