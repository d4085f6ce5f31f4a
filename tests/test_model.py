import numpy as np
import pytest

import gpunet as gn
import gpunet.model
from gpunet.step import ReferenceStep
from tests.gradcheck import assert_grad_close, numerical_grad


def _data(n=600, features=20, classes=3, seed=0):
    rs = np.random.default_rng(seed)
    x = rs.random((n, features), dtype=np.float32)
    labels = ((x - 0.5) @ rs.standard_normal((features, classes))).argmax(axis=1)
    return x, gn.utils.to_categorical(labels, classes), labels


def _readme_model():
    return gn.Sequential(
        [
            gn.layers.Input((20,)),
            gn.layers.Dense(32, activation="relu"),
            gn.layers.Dropout(0.3),
            gn.layers.Dense(3, activation="softmax"),
        ]
    )


def _compiled():
    model = _readme_model()
    model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    return model


def test_readme_example_runs_and_learns():
    x, y, _ = _data(n=2000)
    gn.utils.set_random_seed(42)
    model = _readme_model()
    model.compile(
        loss="categorical_crossentropy", optimizer=gn.optimizers.Adam(), metrics=["accuracy"]
    )
    history = model.fit(x, y, batch_size=32, epochs=10, validation_split=0.2, verbose=0)
    loss, acc = model.evaluate(x, y, verbose=0)
    probs = model.predict(x)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 10 and history.epoch == list(range(10))
    assert history.params == {"verbose": 0, "epochs": 10, "steps": 50}
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert acc > 0.8
    assert probs.shape == (2000, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert model.history is history and history.model is model


def test_keras2_style_from_the_books():
    x, _, labels = _data(features=8)
    model = gn.Sequential()
    model.add(gn.layers.Dense(12, input_dim=8, activation="relu"))
    model.add(gn.layers.Dense(8, activation="relu"))
    model.add(gn.layers.Dense(3))
    model.add(gn.layers.Activation("softmax"))
    model.compile(
        loss="sparse_categorical_crossentropy", optimizer=gn.optimizers.SGD(lr=0.1), metrics=["acc"]
    )
    history = model.fit(x, labels, epochs=3, verbose=0)
    assert "acc" in history.history
    assert model.optimizer.learning_rate == 0.1


def test_everything_stays_float32_after_training():
    x, y, _ = _data()
    model = _readme_model()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x.astype(np.float64), y.astype(np.float64), epochs=2, verbose=0)
    arrays = [model._params, model._grads] + list(model.optimizer.slots.values())
    arrays += [w for w in model.weights]
    for layer in model.layers:
        # Floating buffers; Dropout's hash lanes and key are uint32 by design.
        arrays += [b for b in layer._buffers.arrays() if b.dtype.kind != "u"]
        arrays += [
            g
            for g in (getattr(layer, "g_kernel", None), getattr(layer, "g_bias", None))
            if g is not None
        ]
    assert arrays and all(a.dtype == np.float32 for a in arrays)


def test_seeded_runs_are_bit_for_bit_identical():
    x, y, _ = _data()

    def run():
        gn.utils.clear_session()
        gn.utils.set_random_seed(7)
        model = _readme_model()
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        history = model.fit(x, y, epochs=3, validation_split=0.2, verbose=0)
        return model.get_weights(), history.history

    (w1, h1), (w2, h2) = run(), run()
    assert h1 == h2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)


def test_different_seeds_differ():
    x, y, _ = _data()
    weights = []
    for seed in (1, 2):
        gn.utils.set_random_seed(seed)
        model = _readme_model()
        weights.append(model.get_weights()[0])
    assert not np.array_equal(*weights)


def test_epoch_loss_is_batch_size_weighted_mean():
    x, y, _ = _data(n=50)
    model = gn.Sequential([gn.layers.Input((20,)), gn.layers.Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer=gn.optimizers.SGD(1e-12))
    history = model.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    # With a negligible learning rate the epoch mean equals the loss over all 50 samples.
    assert history.history["loss"][0] == pytest.approx(model.evaluate(x, y), rel=1e-5)


def test_regularization_is_added_to_the_reported_loss():
    x, y, _ = _data(n=40)
    model = gn.Sequential(
        [
            gn.layers.Input((20,)),
            gn.layers.Dense(
                3,
                activation="softmax",
                kernel_initializer="ones",
                kernel_regularizer=gn.regularizers.L2(0.5),
            ),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    plain = gn.losses.CategoricalCrossentropy()(y, model.predict(x))
    assert model.evaluate(x, y) == pytest.approx(plain + 0.5 * 60, rel=1e-5)


def test_sample_and_class_weights_scale_the_loss():
    x, y, labels = _data(n=64)
    model = gn.Sequential([gn.layers.Input((20,)), gn.layers.Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer=gn.optimizers.SGD(1e-12))
    base = model.evaluate(x, y)
    assert model.evaluate(x, y, sample_weight=np.full(64, 2.0)) == pytest.approx(2 * base, rel=1e-5)
    # Per class: the loss of class 1's samples counts 3 times, class 0's not at all (Keras:
    # sum(loss * weight) / N); classes not listed weigh 1.
    per_sample = gn.losses.CategoricalCrossentropy().per_sample(y, model.predict(x))
    weights = np.select([labels == 0, labels == 1], [0.0, 3.0], 1.0)
    h = model.fit(x, y, class_weight={0: 0.0, 1: 3.0}, epochs=1, verbose=0, batch_size=64)
    assert h.history["loss"][0] == pytest.approx((per_sample * weights).mean(), rel=1e-5)
    assert 0 < (labels == 0).sum() < 64 and (labels == 2).any()  # every class is present
    with pytest.raises(ValueError, match="not both"):
        model.fit(x, y, class_weight={0: 1.0}, sample_weight=np.ones(64), verbose=0)


def test_get_and_set_weights_in_keras_order():
    model = _readme_model()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(20, 32), (32,), (32, 3), (3,)]
    new = [np.full_like(w, i) for i, w in enumerate(weights)]
    model.set_weights(new)
    for a, b in zip(model.get_weights(), new):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"weight 1 must have shape \(32,\)"):
        model.set_weights([new[0], np.zeros(5)] + new[2:])


@pytest.mark.parametrize(
    "last, loss, fused",
    [
        (gn.layers.Activation("softmax"), "categorical_crossentropy", True),
        (gn.layers.Activation("tanh"), "mse", False),
        (
            gn.layers.Activation("linear"),
            gn.losses.CategoricalCrossentropy(from_logits=True),
            False,
        ),
    ],
    ids=["softmax-ce-fused", "tanh-mse", "logits-ce"],
)
def test_whole_model_gradient_float64(monkeypatch, last, loss, fused):
    # Build the same model in float64 and check the chain: Dense(tanh) -> Dense(linear) ->
    # the output activation and loss (fused or not), with a regularizer and sample weights.
    # Central differences on the host: this check runs on NumPy whatever the session's backend.
    gn.backend.set_backend("numpy")
    monkeypatch.setattr(gpunet.model, "FLOATX", "float64")
    rs = np.random.default_rng(0)
    x = rs.standard_normal((6, 4))
    y = np.eye(3)[rs.integers(0, 3, 6)]
    w = rs.uniform(0.5, 2.0, 6)
    model = gn.Sequential(
        [
            gn.layers.Input((4,)),
            gn.layers.Dense(5, activation="tanh", kernel_regularizer=gn.regularizers.L2(0.01)),
            gn.layers.Dense(3),
            last,
        ]
    )
    model.compile(loss=loss, optimizer="sgd")
    x_dev, y_dev = model._prepare(x, y, "test")
    step = ReferenceStep(model)
    assert step.fused == fused and model._params.dtype == np.float64
    total = np.zeros(())
    step.gradients(x_dev, y_dev, w, total)
    analytic = model._grads.copy()

    def loss_value(_):
        step.evaluate(x_dev, y_dev, w, total)
        return float(total) / len(x)  # the batch's mean loss, penalty included

    assert_grad_close(analytic, numerical_grad(loss_value, model._params), rtol=1e-5, atol=1e-7)


def test_regression_with_mse_learns():
    # A non-fused loss through fit: y = x @ a + b is recovered.
    rs = np.random.default_rng(0)
    x = rs.standard_normal((512, 3)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32) + 0.3
    gn.utils.set_random_seed(0)
    model = gn.Sequential([gn.layers.Input((3,)), gn.layers.Dense(1)])
    model.compile(loss="mse", optimizer=gn.optimizers.SGD(0.1), metrics=["mae"])
    history = model.fit(x, y, batch_size=32, epochs=30, verbose=0)
    assert history.history["loss"][-1] < 1e-4
    kernel, bias = model.get_weights()
    np.testing.assert_allclose(kernel[:, 0], [1.0, -2.0, 0.5], atol=1e-2)
    np.testing.assert_allclose(bias, [0.3], atol=1e-2)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda m, x, y: m.fit(x[:, :10], y, verbose=0),
            r"expected shape \(None, 20\), received \(600, 10\)",
        ),
        (
            lambda m, x, y: m.fit(x, y[:10], verbose=0),
            "same number of samples, received 600 and 10",
        ),
        (lambda m, x, y: m.fit(x, y, batch_size=0, verbose=0), "batch_size must be a positive int"),
        (lambda m, x, y: m.fit(x, y, batch_size=-4, verbose=0), "received -4"),
        (lambda m, x, y: m.fit(np.where(x > 0.99, np.nan, x), y, verbose=0), "NaN or inf"),
        (lambda m, x, y: m.fit(np.where(x > 0.99, np.inf, x), y, verbose=0), "NaN or inf"),
        (lambda m, x, y: m.fit(x, y.argmax(1), verbose=0), "to_categorical"),
        (lambda m, x, y: m.fit(x, y, validation_split=1.5, verbose=0), "validation_split"),
        (lambda m, x, y: m.fit(x, y, epochs=-1, verbose=0), "epochs must be an int >= 0"),
        (lambda m, x, y: m.predict(x[:, :3]), "incompatible"),
        (
            lambda m, x, y: m.fit(x, y, callbacks=5, verbose=0),
            "^fit: callbacks must be a list of Callback objects, received 5.$",
        ),
        (
            lambda m, x, y: m.fit(x, y, callbacks=[print], verbose=0),
            "callbacks must be a list of Callback objects, received \\[<built-in",
        ),
        (lambda m, x, y: m.fit(x, y, epochs=True, verbose=0), "epochs must be an int >= 0"),
        (
            lambda m, x, y: m.fit(x, y, class_weight={0: float("nan")}, verbose=0),
            "^class_weight: 0: a weight must be finite and >= 0, got nan.$",
        ),
        (
            lambda m, x, y: m.fit(x, y, class_weight={1: "x"}, verbose=0),
            "^class_weight: 1: a weight must be a number, got 'x'.$",
        ),
    ],
)
def test_bad_input_is_refused_before_training(call, message):
    x, y, _ = _data()
    model = _compiled()
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        call(model, x, y)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # nothing trained


def test_sparse_labels_out_of_range_are_refused():
    x, _, labels = _data()
    model = _readme_model()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    with pytest.raises(ValueError, match=r"labels in \[0, 3\).*to 7"):
        model.fit(x, np.where(labels == 2, 7, labels), verbose=0)


def test_fit_before_compile_says_so():
    x, y, _ = _data()
    with pytest.raises(RuntimeError, match="compile"):
        _readme_model().fit(x, y)


def test_unknown_names_at_compile_time():
    model = _readme_model()
    with pytest.raises(ValueError, match="Unknown optimizer 'sgdd'"):
        model.compile(optimizer="sgdd", loss="mse")
    with pytest.raises(ValueError, match="Unknown loss"):
        model.compile(optimizer="sgd", loss="mse2")
    with pytest.raises(ValueError, match="Unknown metric"):
        model.compile(optimizer="sgd", loss="mse", metrics=["acuracy"])


def test_input_only_first_and_names_unique():
    with pytest.raises(ValueError, match="Input can only be the first"):
        gn.Sequential([gn.layers.Dense(2, input_dim=3), gn.layers.Input((3,))])
    with pytest.raises(ValueError, match="already in the model"):
        gn.Sequential([gn.layers.Dense(2, input_dim=3, name="a"), gn.layers.Dense(2, name="a")])


def test_model_builds_from_data_when_no_input_is_declared():
    x, y, _ = _data(n=40)
    model = gn.Sequential([gn.layers.Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    model.fit(x, y, verbose=0)
    assert model.input_shape == (None, 20) and model.output_shape == (None, 3)


def test_flatten_on_images():
    rs = np.random.default_rng(0)
    x = rs.random((64, 28, 28), dtype=np.float32)
    y = rs.integers(0, 10, 64)
    model = gn.Sequential(
        [gn.layers.Input((28, 28)), gn.layers.Flatten(), gn.layers.Dense(10, activation="softmax")]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    assert model.predict(x).shape == (64, 10)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_loss_scale_trains_like_the_unscaled_update(momentum):
    # SGD backpropagates -lr * loss (its update is then one addition); with a regularizer in
    # the model, the result must be the unscaled rule's, up to float32 rounding.
    x, y, _ = _data(n=256)
    results = []
    for clip in (None, 1e30):  # a clip that never bites keeps SGD on the unscaled path
        gn.utils.set_random_seed(3)
        model = gn.Sequential(
            [
                gn.layers.Input((x.shape[1],)),
                gn.layers.Dense(16, activation="relu", kernel_regularizer="l2"),
                gn.layers.Dense(y.shape[1], activation="softmax"),
            ]
        )
        optimizer = gn.optimizers.SGD(0.1, momentum, clipvalue=clip)
        model.compile(loss="categorical_crossentropy", optimizer=optimizer)
        assert optimizer.loss_scale() == (-0.1 if clip is None else 1.0)
        model.fit(x, y, batch_size=32, epochs=3, verbose=0)
        results.append(gn.backend.to_host(model._params).copy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4, atol=1e-6)
    assert not np.array_equal(results[0], results[1])  # the two paths really differ


def test_sample_weight_shapes_and_binary_class_weights():
    from gpunet import inputs

    assert inputs.check_sample_weight([[1.0], [2.0]], 2, "fit").tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(2,\)"):
        inputs.check_sample_weight([[1.0, 2.0], [3.0, 4.0]], 2, "fit")
    # Labels of one column (binary) are the labels themselves, not an argmax over one value.
    weights = inputs.class_weights(np.array([[0.0], [1.0], [1.0]]), {1: 4.0})
    assert weights.tolist() == [1.0, 4.0, 4.0]
    assert inputs.class_weights(np.eye(3)[[2, 0]], {2: 0.5}).tolist() == [0.5, 1.0]


def test_numpy_integers_are_ints_as_keras_takes_them():
    x, y, _ = _data()
    model = _compiled()
    history = model.fit(x, y, epochs=np.int64(2), batch_size=np.int32(100), verbose=0)
    assert history.epoch == [0, 1] and history.params["steps"] == 6
    assert type(history.params["epochs"]) is int


@pytest.mark.parametrize("loss", ["mse", "mae", "binary_crossentropy"])
def test_one_column_targets_may_be_given_flat_as_keras_takes_them(loss):
    rs = np.random.default_rng(0)
    x = rs.random((40, 3), dtype=np.float32)
    y = (x[:, 0] > 0.5).astype(np.float32)

    def trained(targets):
        gn.utils.clear_session()
        gn.utils.set_random_seed(4)
        model = gn.Sequential([gn.layers.Input((3,)), gn.layers.Dense(1, activation="sigmoid")])
        model.compile(loss=loss, optimizer="sgd", metrics=["accuracy"])
        history = model.fit(x, targets, epochs=2, batch_size=8, verbose=0, validation_split=0.25)
        return model, history.history

    flat, flat_history = trained(y)
    column, column_history = trained(y[:, None])
    assert flat_history == column_history
    for a, b in zip(flat.get_weights(), column.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert flat.evaluate(x, y, verbose=0) == column.evaluate(x, y[:, None], verbose=0)


def test_flat_targets_for_several_outputs_keep_the_one_hot_hint_for_crossentropy_only():
    x = np.zeros((4, 3), np.float32)
    for loss, hinted in (("categorical_crossentropy", True), ("mse", False)):
        gn.utils.clear_session()
        model = gn.Sequential([gn.layers.Input((3,)), gn.layers.Dense(2)])
        model.compile(loss=loss, optimizer="sgd")
        with pytest.raises(ValueError) as info:
            model.fit(x, np.zeros(4), verbose=0)
        assert ("to_categorical" in str(info.value)) is hinted
