import numpy as np
import pytest

import gpunet as gn
from gpunet.layers import Activation, Dense, Dropout, Flatten
from tests.gradcheck import assert_grad_close, numerical_grad


def _bind_float64(layer, input_shape, rs):
    layer.build(input_shape)
    params = [rs.standard_normal(shape) * 0.5 for _, shape, _ in layer.param_specs()]
    grads = [np.zeros_like(p) for p in params]
    layer.bind(params, grads)
    return params, grads


@pytest.mark.parametrize("activation", ["relu", "tanh", "softmax", "gelu", "sigmoid"])
def test_dense_backward_float64(activation):
    rs = np.random.default_rng(0)
    layer = Dense(
        3,
        activation=activation,
        kernel_regularizer=gn.regularizers.L1L2(0.01, 0.02),
        bias_regularizer="l2",
    )
    params, grads = _bind_float64(layer, (4,), rs)
    x = rs.standard_normal((5, 4))
    gy = rs.standard_normal((5, 3))

    def f(x_):
        y = layer.forward(x_, training=True)
        return float((y * gy).sum() + layer.penalty())

    f(x)
    gx = layer.backward(gy.copy())
    layer.add_penalty_gradients()  # the training step adds the regularizers' part after backward
    assert_grad_close(gx, numerical_grad(f, x.copy()), rtol=1e-5, atol=1e-6)
    for param, grad in zip(params, grads):
        assert_grad_close(grad, numerical_grad(lambda _: f(x), param), rtol=1e-5, atol=1e-6)


def test_activation_layer_backward_float64():
    rs = np.random.default_rng(1)
    layer = Activation("softplus")
    layer.build((4,))
    x, gy = rs.standard_normal((3, 4)), rs.standard_normal((3, 4))
    layer.forward(x, training=True)
    gx = layer.backward(gy.copy())
    numeric = numerical_grad(lambda v: float((layer.forward(v, True) * gy).sum()), x.copy())
    assert_grad_close(gx, numeric)


def test_activation_layer_never_overwrites_its_input():
    layer = Activation("relu")
    layer.build((3,))
    x = np.array([[-1.0, 2.0, -3.0]], dtype=np.float32)
    layer.forward(x, training=True)
    np.testing.assert_array_equal(x, [[-1.0, 2.0, -3.0]])


def test_dropout_is_identity_outside_training_and_scales_inside():
    layer = Dropout(0.5, seed=3)
    layer.build((1000,))
    layer.generator = np.random.default_rng(3)
    x = np.ones((4, 1000), dtype=np.float32)
    assert layer.forward(x, training=False) is x
    y = layer.forward(x, training=True)
    assert set(np.unique(y)) == {0.0, 2.0}
    gx = layer.backward(np.ones_like(y))
    np.testing.assert_array_equal(gx, y)  # gradient flows through the same kept units


def test_flatten_round_trips_shapes():
    layer = Flatten()
    assert layer.build((28, 28)) == (784,)
    x = np.arange(2 * 28 * 28, dtype=np.float32).reshape(2, 28, 28)
    y = layer.forward(x, training=True)
    assert y.shape == (2, 784)
    layer.need_input_grad = True
    assert layer.backward(y).shape == (2, 28, 28)


def test_default_names_are_unique_like_keras():
    names = [Dense(2).name, Dense(2).name, Dropout(0.1).name, Activation("relu").name]
    assert names == ["dense", "dense_1", "dropout", "activation"]
    gn.utils.clear_session()
    assert Dense(1).name == "dense"


def test_dense_keras2_arguments():
    assert Dense(12, input_dim=8).declared_input_shape == (8,)
    assert Dense(10, input_shape=(784,)).declared_input_shape == (784,)
    assert isinstance(Dense(3, kernel_initializer="zero").kernel_initializer, gn.initializers.Zeros)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Dense(0), "units must be a positive int, received 0"),
        (lambda: Dense(3, activation="rellu"), "Unknown activation 'rellu'"),
        (lambda: Dense(3, kernel_initializer="glorot"), "Unknown initializer 'glorot'"),
        (lambda: Dropout(-0.1), r"rate must be a float in \[0, 1\), received -0.1"),
        (lambda: Dropout(1.0), r"rate must be a float in \[0, 1\)"),
        (lambda: Dropout(True), r"rate must be a float in \[0, 1\), received True"),
        (
            lambda: Dropout(0.5, seed=-1),
            r"^dropout\S*: seed must be an int >= 0 or None, received -1\.$",
        ),
        (lambda: Dropout(0.5, seed=1.5), "seed must be an int >= 0 or None, received 1.5"),
        (lambda: Dropout(0.5, seed=True), "seed must be an int >= 0 or None, received True"),
        (lambda: Dense(3, input_shape=(0,)), "positive ints"),
        (lambda: Dense(2.5), r"^dense\S*: units must be a positive int, received 2\.5\.$"),
        (lambda: Dense(True), "units must be a positive int, received True"),
        (lambda: Dropout(False), r"rate must be a float in \[0, 1\), received False"),
        (lambda: Dropout("0.5"), r"rate must be a float in \[0, 1\), received '0.5'"),
        (lambda: Dense(2, name=""), r"^Layer name must be a non-empty string, received ''\.$"),
        (lambda: Dense(2, name=3), r"^Layer name must be a non-empty string, received 3\.$"),
    ],
)
def test_bad_arguments_are_refused_with_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_dense_on_images_asks_for_flatten():
    with pytest.raises(ValueError, match="Flatten"):
        Dense(3).build((28, 28))


def test_activation_layer_applies_its_function_and_keeps_its_name():
    layer = Activation("relu", name="rectifier")
    layer.build((3,))
    y = layer.forward(np.array([[-1.0, 2.0, -3.0]], dtype=np.float32), training=False)
    np.testing.assert_array_equal(y, [[0.0, 2.0, 0.0]])
    assert layer.name == "rectifier" and layer.activation.name == "relu"


def test_dense_without_regularizers_has_no_penalty():
    layer = Dense(2)
    _bind_float64(layer, (3,), np.random.default_rng(0))
    assert not layer.regularized and layer.penalty() is None


def test_the_first_layers_skip_the_input_gradient():
    # Nothing before the first Dense has parameters: its input gradient (a GEMM as large as
    # its kernel) and a leading Flatten's are never computed.
    model = gn.Sequential([gn.layers.Input((2, 2)), Flatten(), Dense(3), Dense(2)])
    model.build()
    flatten, first, second = model.layers
    assert not flatten.need_input_grad and not first.need_input_grad and second.need_input_grad
    xp = gn.backend.xp()
    x = xp.ones((5, 2, 2), dtype=np.float32)
    hidden = first.forward(flatten.forward(x, True), True)
    second.forward(hidden, True)
    gx = second.backward(xp.ones((5, 2), np.float32))
    assert gx.shape == hidden.shape
    assert first.backward(gx) is None and flatten.backward(xp.ones((5, 4), np.float32)) is None


def test_dropout_takes_seed_zero():
    assert Dropout(0.5, seed=0).seed == 0


def test_dropout_of_rate_zero_is_the_identity_and_draws_nothing():
    layer = Dropout(0.0, seed=1)
    layer.build((4,))
    x = np.ones((2, 4), dtype=np.float32)
    assert layer.forward(x, training=True) is x and layer.get_stream() == (1, 0)
    layer.need_input_grad = True
    gy = np.full_like(x, 3.0)
    assert layer.backward(gy) is gy  # no mask: the gradient passes as it came
    np.testing.assert_array_equal(gy, 3.0)


def test_dropout_backward_scales_the_gradient_in_place():
    layer = Dropout(0.5, seed=2)
    layer.build((64,))
    y = layer.forward(np.ones((2, 64), dtype=np.float32), training=True)
    gy = np.ones_like(y)
    assert layer.backward(gy) is gy  # the step's gradient buffer, no new array
    np.testing.assert_array_equal(gy, y)
    assert layer.get_stream() == (2, 128)  # the draw advanced the stream by its units


def test_unknown_layer_lists_the_layers():
    with pytest.raises(ValueError) as info:
        gn.layers.get("Dense2")
    assert str(info.value) == (
        "Unknown layer 'Dense2'. Did you mean 'Dense'? Allowed: Activation, BatchNormalization, "
        "Dense, Dropout, Flatten, Normalization."
    )


def test_a_layers_weights_get_and_set_as_keras_layers_do():
    model = gn.Sequential([gn.layers.Input((3,)), gn.layers.Dense(2), gn.layers.Dropout(0.5)])
    dense, dropout = model.layers
    assert dense.get_weights() == [] and dropout.get_weights() == []  # not built yet
    model.build()
    kernel, bias = dense.get_weights()
    assert kernel.shape == (3, 2) and bias.shape == (2,)
    dense.set_weights([np.ones((3, 2)), np.full(2, 0.5)])
    np.testing.assert_array_equal(model.get_weights()[0], np.ones((3, 2), np.float32))
    np.testing.assert_array_equal(model.get_weights()[1], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"^dense: set_weights expects 2 arrays, received 1\.$"):
        dense.set_weights([kernel])
    with pytest.raises(ValueError, match=r"^dense: a weight of shape \(2,\) received \(3,\)\.$"):
        dense.set_weights([kernel, np.zeros(3)])


def test_shapes_are_tuples_of_positive_ints_and_an_int_is_one_axis():
    assert Dense(2, input_shape=4).declared_input_shape == (4,)
    assert Dense(2, input_shape=(1,)).declared_input_shape == (1,)  # one feature is a shape
    assert gn.layers.Input(5).declared_input_shape == (5,)
    with pytest.raises(TypeError) as info:
        Dense(2, input_shape=3.5, name="d")
    assert str(info.value) == "d: input_shape must be a tuple of ints, received 3.5."
    with pytest.raises(TypeError) as info:
        gn.layers.Input(3.5, name="x")
    assert str(info.value) == "x: shape must be a tuple of ints, received 3.5."


def test_input_layers_are_named_as_in_keras():
    gn.utils.clear_session()
    assert gn.layers.Input((3,)).name == "input_layer"
    assert gn.layers.Input((3,)).name == "input_layer_1"
    assert gn.layers.Input((3,), name="pixels").name == "pixels"


def test_a_layer_is_built_only_once_its_input_shape_is_known():
    layer = Dense(2)
    assert layer.built is False
    layer.build((3,))
    assert layer.built is True


def test_a_layers_config_rebuilds_it_with_its_input_shape_and_regularizers():
    layer = Dense(2, input_shape=(3,), kernel_regularizer="l2", bias_regularizer="l1", name="d")
    config = layer.get_config()
    assert config["input_shape"] == [3]
    again = Dense.from_config(config)
    assert again.declared_input_shape == (3,) and again.get_config() == config
    assert isinstance(again.bias_regularizer, gn.regularizers.L1)
    assert Dense.from_config({"units": 2}).trainable is True  # trainable by default


def test_forward_passes_allocate_their_buffers_once():
    # Each layer keeps its outputs across batches: after the first batch, a forward pass
    # allocates nothing; a Dense computes its activation in place (one buffer, not two).
    from tests import standin
    from tests.conftest import use_standin

    use_standin()
    gn.utils.clear_session()
    layers = [
        Dense(3, activation="relu"),
        Activation("tanh"),
        Dense(5, activation="sigmoid"),
        Dropout(0.5, seed=1),
        Dense(2),
    ]
    model = gn.Sequential([gn.layers.Input((4,)), *layers])
    model.build()
    h = standin.asarray(np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32))
    for layer in layers:
        allocs = []
        for _ in range(3):
            mark = standin.ledger.mark()
            out = layer.forward(h, True)
            allocs.append(standin.ledger.since(mark)["allocs"])
        assert allocs[1:] == [0, 0], layer.name
        if isinstance(layer, Dense):
            assert allocs[0] == 1, layer.name
        h = out
    linear = Activation("linear")  # the identity: its output is its input, untouched
    linear.build((2,))
    mark = standin.ledger.mark()
    assert linear.forward(h, True) is h
    assert standin.ledger.since(mark)["launches"] == 0
