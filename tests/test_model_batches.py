"""train_on_batch, test_on_batch, predict_on_batch, reset_metrics (gpunet/model_batches.py):
one step each, running means over the calls, as Keras 3."""

import numpy as np
import pytest

import gpunet as gn


def _model(metrics=("accuracy",), dropout=0.0, seed=2):
    gn.utils.clear_session()
    gn.utils.set_random_seed(seed)
    layers = [gn.layers.Input((4,)), gn.layers.Dense(6, activation="relu")]
    layers += [gn.layers.Dropout(dropout)] if dropout else []
    model = gn.Sequential(layers + [gn.layers.Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=list(metrics))
    return model


def _data(n=48):
    rs = np.random.default_rng(1)
    x = rs.random((n, 4), dtype=np.float32)
    return x, gn.utils.to_categorical(x[:, :3].argmax(axis=1), 3)


def test_train_on_batch_is_one_step_of_fit():
    x, y = _data()
    fitted = _model(dropout=0.3)
    fitted.fit(x[:16], y[:16], batch_size=16, epochs=1, shuffle=False, verbose=0)
    stepped = _model(dropout=0.3)
    stepped.train_on_batch(x[:16], y[:16])
    for a, b in zip(fitted.get_weights(), stepped.get_weights()):
        if gn.backend.get_backend() == "numpy":  # the same (reference) step: bit for bit
            np.testing.assert_array_equal(a, b)
        else:  # fit takes the fused CUDA step, train_on_batch the reference one: rounding
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_the_results_are_running_means_until_reset():
    x, y = _data()
    model = _model()
    first = model.test_on_batch(x[:16], y[:16], return_dict=True)
    both = model.test_on_batch(x[16:48], y[16:48], return_dict=True)
    whole = model.evaluate(x, y, verbose=0, return_dict=True)
    assert both["loss"] == pytest.approx(whole["loss"], rel=1e-6)
    assert both["accuracy"] == pytest.approx(whole["accuracy"])
    model.reset_metrics()
    again = model.test_on_batch(x[:16], y[:16], return_dict=True)
    assert again == first
    loss, accuracy = model.test_on_batch(x[:16], y[:16])  # a list, as evaluate returns
    assert loss == pytest.approx(first["loss"]) and accuracy == first["accuracy"]


def test_train_on_batch_returns_the_loss_before_its_update_and_takes_weights():
    x, y = _data()
    model = _model(metrics=())
    before = model.test_on_batch(x[:16], y[:16])
    model.reset_metrics()
    loss = model.train_on_batch(x[:16], y[:16])
    assert isinstance(loss, float) and loss == pytest.approx(before, rel=1e-6)
    weighted = _model(metrics=())
    half = weighted.train_on_batch(x[:16], y[:16], sample_weight=np.full(16, 0.5))
    assert half == pytest.approx(0.5 * loss, rel=1e-6)
    by_class = _model(metrics=())
    same = by_class.train_on_batch(x[:16], y[:16], class_weight={0: 0.5, 1: 0.5, 2: 0.5})
    assert same == pytest.approx(half, rel=1e-6)
    with pytest.raises(ValueError, match="pass class_weight or sample_weight, not both"):
        model.train_on_batch(x, y, sample_weight=np.ones(48), class_weight={0: 1.0})


def test_fit_and_evaluate_start_the_running_means_afresh():
    x, y = _data()
    model = _model()
    model.test_on_batch(x[:16], y[:16])
    model.evaluate(x, y, verbose=0)
    assert model.test_on_batch(x[16:32], y[16:32], return_dict=True) == _model().test_on_batch(
        x[16:32], y[16:32], return_dict=True
    )


def test_predict_on_batch_is_predict():
    x, _ = _data()
    model = _model(dropout=0.5)
    out = model.predict_on_batch(x[:5])
    np.testing.assert_array_equal(out, model.predict(x[:5], verbose=0))
    assert out.dtype == np.float32 and out.shape == (5, 3)
