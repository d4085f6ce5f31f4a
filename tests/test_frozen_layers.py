"""`layer.trainable = False` (Keras): fit leaves the layer's weights as they are while the
layers around it train, summary and the weight lists count them as non-trainable, and a frozen
BatchNormalization runs in inference mode."""

import numpy as np

import gpunet as gn


def _model(freeze_first: bool, bn: bool = False):
    gn.utils.clear_session()
    gn.utils.set_random_seed(0)
    layers = [gn.Input((5,)), gn.layers.Dense(6, activation="relu")]
    layers += [gn.layers.BatchNormalization()] if bn else []
    model = gn.Sequential(layers + [gn.layers.Dense(3, activation="softmax")])
    model.layers[0].trainable = not freeze_first
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    return model


def _data():
    rs = np.random.default_rng(1)
    x = rs.random((64, 5), dtype=np.float32)
    return x, x[:, :3].argmax(axis=1)


def test_fit_leaves_a_frozen_layer_and_trains_the_others():
    x, y = _data()
    model = _model(freeze_first=True)
    before = model.get_weights()
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    after = model.get_weights()
    np.testing.assert_array_equal(after[0], before[0])  # frozen kernel
    np.testing.assert_array_equal(after[1], before[1])  # frozen bias
    assert not np.array_equal(after[2], before[2])  # the next layer trained
    assert history.history["loss"][-1] < history.history["loss"][0]
    model.layers[0].trainable = True
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert not np.array_equal(model.get_weights()[0], before[0])  # thawed, it trains


def test_weight_lists_and_summary_count_frozen_weights_as_keras():
    model = _model(freeze_first=True)
    assert [w.shape for w in model.trainable_weights] == [(6, 3), (3,)]
    assert [w.shape for w in model.non_trainable_weights] == [(5, 6), (6,)]
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert " Total params: 57 (228.00 B)" in text
    assert " Trainable params: 21 (84.00 B)" in text
    assert " Non-trainable params: 36 (144.00 B)" in text
    assert model.layers[0].get_config()["trainable"] is False
    clone = gn.models.clone_model(model)
    assert clone.layers[0].trainable is False


def test_a_frozen_batch_normalization_uses_its_moving_statistics():
    x, y = _data()
    model = _model(freeze_first=False, bn=True)
    bn = model.layers[1]
    bn.trainable = False
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    moving_mean, moving_variance = bn.get_weights()[2:]
    assert moving_mean.tolist() == [0.0] * 6 and moving_variance.tolist() == [1.0] * 6
    assert bn.get_weights()[0].tolist() == [1.0] * 6  # gamma kept


def test_the_fused_step_says_why_it_does_not_take_a_frozen_model():
    from gpunet.step import support

    x, _ = _data()
    model = _model(freeze_first=True)
    assert support.unsupported(model, x) == "layer dense is frozen (trainable = False)"
