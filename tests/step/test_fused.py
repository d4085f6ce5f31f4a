"""The fused CuPy step (gpunet/step/fused.py) against the reference step on NumPy: the same
training, within float32 rounding, for every layer, activation, loss, optimizer and data form
it takes; and the models it does not take fall back to the reference step, saying why."""

import logging

import numpy as np
import pytest

import gpunet as gn
from gpunet import backend
from gpunet.cuda import gemm
from tests.conftest import use_standin


def _data(n=300, classes=10, features=784, seed=0):
    rs = np.random.default_rng(seed)
    x = rs.random((n, features), dtype=np.float32)
    labels = ((x - 0.5) @ rs.standard_normal((features, classes))).argmax(axis=1)
    return x, labels


def _model(hidden, optimizer, loss="sparse_categorical_crossentropy", output="softmax",
           inputs=(784,), flatten=False, graphs=True, per_execution=1, units=10,
           metrics=("accuracy",), targets=None):  # fmt: skip
    gn.utils.clear_session()
    gn.utils.set_random_seed(3)
    layers = [gn.layers.Input(inputs)] + ([gn.layers.Flatten()] if flatten else [])
    for spec in hidden:
        layers.append(gn.layers.Dense(spec["units"], activation=spec.get("act", "relu"),
                                      use_bias=spec.get("bias", True),
                                      kernel_regularizer=spec.get("kernel_regularizer"),
                                      bias_regularizer=spec.get("bias_regularizer")))  # fmt: skip
        if spec.get("dropout"):
            layers.append(gn.layers.Dropout(spec["dropout"]))
    layers.append(gn.layers.Dense(units, activation=output))
    model = gn.Sequential(layers)
    model.compile(optimizer=optimizer(), loss=loss, metrics=list(metrics),
                  cuda_graphs=graphs, steps_per_execution=per_execution)  # fmt: skip
    return model


CASES = {
    "w1": dict(hidden=[dict(units=32), dict(units=32)], optimizer=gn.optimizers.SGD),
    "w2-dropout-adam": dict(
        hidden=[dict(units=32, dropout=0.3), dict(units=24, dropout=0.3)],
        optimizer=gn.optimizers.Adam,
    ),
    "nesterov": dict(
        hidden=[dict(units=20, act="tanh")],
        optimizer=lambda: gn.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    ),
    "adamw-amsgrad-activations": dict(
        hidden=[
            dict(units=16, act="gelu", dropout=0.2),
            dict(units=12, act="sigmoid"),
            dict(units=12, act="elu", bias=False),
            dict(units=8, act="linear"),
        ],  # fmt: skip
        optimizer=lambda: gn.optimizers.AdamW(0.003, amsgrad=True),
    ),
    "one-hot-targets": dict(
        hidden=[dict(units=16)], optimizer=gn.optimizers.SGD, loss="categorical_crossentropy"
    ),
    "from-logits": dict(
        hidden=[dict(units=16, act="softplus")],
        optimizer=gn.optimizers.Adam,
        output="linear",
        loss=gn.losses.SparseCategoricalCrossentropy(from_logits=True),
    ),
    "flatten-images": dict(
        hidden=[dict(units=16, bias=False)],
        optimizer=gn.optimizers.SGD,
        inputs=(28, 28),
        flatten=True,
    ),  # fmt: skip
    "rmsprop-centered": dict(
        hidden=[dict(units=16)],
        optimizer=lambda: gn.optimizers.RMSprop(momentum=0.5, centered=True),
    ),
    "sgd-clipnorm-decay": dict(
        hidden=[dict(units=16, dropout=0.1)],
        optimizer=lambda: gn.optimizers.SGD(0.05, clipnorm=0.5, weight_decay=0.01),
    ),
    "nadam-global-clipnorm": dict(
        hidden=[dict(units=16)], optimizer=lambda: gn.optimizers.Nadam(global_clipnorm=0.5)
    ),
    "adagrad-clipvalue": dict(
        hidden=[dict(units=16)], optimizer=lambda: gn.optimizers.Adagrad(0.05, clipvalue=0.01)
    ),
    "adamax": dict(hidden=[dict(units=16)], optimizer=gn.optimizers.Adamax),
    "regularizers-sgd": dict(
        hidden=[
            dict(units=16, kernel_regularizer="l1_l2", bias_regularizer="l2"),
            dict(units=8, kernel_regularizer=gn.regularizers.L1(0.001)),
        ],  # fmt: skip
        optimizer=gn.optimizers.SGD,
    ),
    "regularizers-adam-dropout": dict(
        hidden=[dict(units=16, dropout=0.2, kernel_regularizer="l2")], optimizer=gn.optimizers.Adam
    ),
    "binary-one-unit": dict(
        hidden=[dict(units=16)],
        optimizer=gn.optimizers.Adam,
        loss="binary_crossentropy",
        output="sigmoid",
        units=1,
        targets="binary",
    ),  # fmt: skip
    "binary-multilabel-from-logits": dict(
        hidden=[dict(units=16)],
        optimizer=gn.optimizers.SGD,
        loss=gn.losses.BinaryCrossentropy(from_logits=True),
        output="linear",
        units=4,
        metrics=("binary_accuracy",),
        targets="multilabel",
    ),  # fmt: skip
    "mse-regression": dict(
        hidden=[dict(units=16, act="tanh")],
        optimizer=gn.optimizers.RMSprop,
        loss="mse",
        output="linear",
        units=2,
        metrics=(),
        targets="regression",
    ),  # fmt: skip
    "subclassed-optimizer-xp-update": dict(hidden=[dict(units=16)], optimizer=lambda: _MySGD()),
    # Penalties of a Dense after a Dropout (the variables' scan walks past non-Dense layers).
    "regularized-after-dropout": dict(
        hidden=[
            dict(units=16, dropout=0.2, kernel_regularizer="l2"),
            dict(units=12, kernel_regularizer="l1"),
        ],
        optimizer=gn.optimizers.SGD,
    ),
}


class _MySGD(gn.optimizers.SGD):
    """A user's optimizer: no fused kernel knows its rule, so its own xp update runs."""


def _fit(case, switch, weighted=False, shuffle=True, batch_size=64, graphs=True, epochs=2):
    switch()
    spec = dict(case)
    x, labels = _data()
    if spec.get("inputs") == (28, 28):
        x = x.reshape(-1, 28, 28)
    y = labels
    if spec.get("loss") == "categorical_crossentropy":
        y = gn.utils.to_categorical(labels, 10)
    targets = spec.get("targets")
    if targets == "binary":
        y = (labels % 2).astype(np.float32).reshape(-1, 1)
    elif targets == "multilabel":
        y = gn.utils.to_categorical(labels % 4, 4)
        y[:, 0] = labels > 4
    elif targets == "regression":
        y = np.stack([labels / 10.0, x[:, :50].mean(axis=1)], axis=1).astype(np.float32)
    model = _model(graphs=graphs, **spec)  # targets: read above
    weights = np.random.default_rng(5).random(len(x)).astype(np.float32) if weighted else None
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=shuffle,
                        sample_weight=weights)  # fmt: skip
    return model, history.history, model.get_weights()


def _assert_alike(reference, fused, rtol=1e-5):
    (_, history_a, weights_a), (_, history_b, weights_b) = reference, fused
    for name, values in history_a.items():
        np.testing.assert_allclose(history_b[name], values, rtol=rtol, err_msg=name)
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=1e-6)


def _numpy():
    backend.set_backend("numpy")


@pytest.mark.parametrize("name", list(CASES))
def test_the_fused_step_trains_as_the_reference_step(name, cupy_path):
    """On the stand-in (the kernels' source run on the CPU) and, with -m gpu, on CuPy."""
    switch, rtol = cupy_path
    reference = _fit(CASES[name], _numpy)
    fused = _fit(CASES[name], switch)
    expected = "FusedTraining" if name == "subclassed-optimizer-xp-update" else "GraphTraining"
    training = fused[0]._trainer.training
    assert type(training).__name__ == expected
    # Every buffer a capture needs was made before it (clipping's too): else it ran eagerly.
    assert expected == "FusedTraining" or (training.captures >= 1 and not training.eager)
    _assert_alike(reference, fused, rtol=max(rtol, 1e-5))


@pytest.mark.parametrize(
    "name, weighted, shuffle, batch_size",
    [
        ("w2-dropout-adam", True, True, 64),
        ("w2-dropout-adam", False, False, 70),
        # Each loss kernel reads the weights: the other three.
        ("one-hot-targets", True, True, 64),
        ("binary-multilabel-from-logits", True, True, 64),
        ("mse-regression", True, True, 64),
    ],
    ids=["sample-weights", "in-order-partial-batch", "weighted-dense", "weighted-sigmoid",
         "weighted-mse"],
)  # fmt: skip
def test_sample_weights_order_and_a_partial_last_batch(
    name, weighted, shuffle, batch_size, cupy_path
):
    switch, rtol = cupy_path
    case = CASES[name]
    reference = _fit(case, _numpy, weighted, shuffle, batch_size)
    fused = _fit(case, switch, weighted, shuffle, batch_size)
    _assert_alike(reference, fused, rtol=max(rtol, 1e-5))


class _MyAdam(gn.optimizers.Adam):
    """Adam under another name: its own xp update, so no graph (the fused step runs eagerly)."""


@pytest.mark.parametrize("route", ["eager", "graph-refused", "reference"])
def test_sample_weights_reach_every_route_the_cupy_step_takes(route, cupy_path):
    # The fused step without graphs (asked for none, or refused one: a subclassed optimizer),
    # and the reference step where the fused one cannot take the model (a frozen layer): each
    # trains with the weights as NumPy does.
    switch, rtol = cupy_path

    def weighted_fit(backend_switch):
        backend_switch()
        x, labels = _data()
        case = dict(CASES["w2-dropout-adam"])
        if route == "graph-refused":
            case["optimizer"] = _MyAdam
        model = _model(graphs=route != "eager", **case)
        if route == "reference":
            model.layers[0].trainable = False
            model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"])
        weights = np.random.default_rng(5).random(len(x)).astype(np.float32)
        history = model.fit(x, labels, batch_size=64, epochs=2, verbose=0, sample_weight=weights)
        return model, history.history, model.get_weights()

    reference = weighted_fit(_numpy)
    cupy = weighted_fit(switch)
    expected = {"reference": "ReferenceTraining"}.get(route, "FusedTraining")
    assert type(cupy[0]._trainer.training).__name__ == expected
    _assert_alike(reference, cupy, rtol=max(rtol, 1e-5))


def test_without_cublaslt_the_step_uses_cupys_gemms_eagerly_and_says_so(monkeypatch, caplog):
    monkeypatch.setenv("GPUNET_CUBLASLT_MODULE", "no_such_module_for_cublaslt")
    with caplog.at_level(logging.WARNING, logger="gpunet"):
        fused = _fit(CASES["w2-dropout-adam"], use_standin)
    assert type(fused[0]._trainer.training).__name__ == "FusedTraining"
    assert [r.getMessage() for r in caplog.records] == [
        "gpunet: no CUDA graph, the fused step runs eagerly: nvmath-python is not installed: "
        "CuPy's cuBLAS GEMMs cannot be captured."
    ]
    _assert_alike(_fit(CASES["w2-dropout-adam"], _numpy), fused)


def test_without_an_epilogue_algorithm_a_layer_takes_the_kernel_path(monkeypatch):
    from tests import standin_cublaslt

    original = standin_cublaslt.matmul_algo_get_heuristic

    def no_relu_epilogues(handle, desc, *args):
        original(handle, desc, *args)
        epilogue = standin_cublaslt._objects[desc][standin_cublaslt.MatmulDescAttribute.EPILOGUE]
        if epilogue in (standin_cublaslt.Epilogue.RELU_AUX_BIAS, standin_cublaslt.Epilogue.BGRADA):
            found = args[-1]
            import ctypes

            ctypes.c_int32.from_address(found).value = 0

    monkeypatch.setattr(standin_cublaslt, "matmul_algo_get_heuristic", no_relu_epilogues)
    fused = _fit(CASES["w1"], use_standin)
    training = fused[0]._trainer.training
    assert [run.mode for run in training.dense] == ["kernel", "kernel", "logits"]
    _assert_alike(_fit(CASES["w1"], _numpy), fused)


def test_a_layer_moved_to_kernels_by_one_batch_shape_moves_for_every_shape(monkeypatch):
    """cuBLASLt may find an epilogue algorithm for the full batch and none for the last,
    partial one: the layer must then run one way for both (the full batch's plans would
    otherwise write a ReLU mask through a stale pointer)."""
    import ctypes

    from tests import standin_cublaslt

    original = standin_cublaslt.matmul_algo_get_heuristic

    def none_for_the_partial_batch(handle, desc, adesc, bdesc, cdesc, ddesc, *args):
        original(handle, desc, adesc, bdesc, cdesc, ddesc, *args)
        attrs = standin_cublaslt._objects[desc]
        epilogue = attrs[standin_cublaslt.MatmulDescAttribute.EPILOGUE]
        relu = epilogue in (standin_cublaslt.Epilogue.RELU_AUX_BIAS,
                            standin_cublaslt.Epilogue.DRELU_BGRAD)  # fmt: skip
        if relu and standin_cublaslt._objects[ddesc]["cols"] == 300 % 64:  # 44 rows
            ctypes.c_int32.from_address(args[-1]).value = 0

    monkeypatch.setattr(standin_cublaslt, "matmul_algo_get_heuristic", none_for_the_partial_batch)
    fused = _fit(CASES["w1"], use_standin)
    training = fused[0]._trainer.training
    assert [run.mode for run in training.dense] == ["kernel", "kernel", "logits"]
    _assert_alike(_fit(CASES["w1"], _numpy), fused)


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda: [gn.layers.Dense(8), gn.layers.Activation("relu")], "has no fused kernel"),
        (lambda: [gn.layers.Dense(8, activation="softmax")], "activation softmax has no fused"),
        (lambda: [gn.layers.Dropout(0.2)], "comes before any Dense"),
    ],
    ids=["activation-layer", "hidden-softmax", "input-dropout"],
)
def test_a_model_the_fused_step_cannot_take_trains_on_the_reference_step(change, reason, caplog):
    use_standin()
    x, y = _data(100)
    gn.utils.clear_session()
    model = gn.Sequential([gn.layers.Input((784,)), *change(), gn.layers.Dense(10, "softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with caplog.at_level(logging.WARNING, logger="gpunet"):
        model.fit(x, y, batch_size=50, epochs=1, verbose=0)
    assert type(model._trainer.training).__name__ == "ReferenceTraining"
    assert "the reference CuPy step trains this model" in caplog.text and reason in caplog.text


@pytest.mark.parametrize(
    "metrics, loss",
    [(["mae"], "sparse_categorical_crossentropy"), (["accuracy"], "mse")],
    ids=["other-metric", "other-loss"],
)
def test_other_losses_and_metrics_fall_back_with_a_notice(metrics, loss, caplog):
    use_standin()
    x, labels = _data(100)
    y = labels if loss != "mse" else gn.utils.to_categorical(labels, 10)
    gn.utils.clear_session()
    model = gn.Sequential([gn.layers.Input((784,)), gn.layers.Dense(10, "softmax")])
    model.compile(optimizer="sgd", loss=loss, metrics=metrics)
    with caplog.at_level(logging.WARNING, logger="gpunet"):
        model.fit(x, y, batch_size=50, epochs=1, verbose=0)
    assert type(model._trainer.training).__name__ == "ReferenceTraining"
    assert caplog.text.count("the reference CuPy step") == 1


def test_numpy_never_takes_the_fused_step(caplog):
    with caplog.at_level(logging.WARNING, logger="gpunet"):
        model, _, _ = _fit(CASES["w1"], _numpy)
    assert type(model._trainer.training).__name__ == "ReferenceTraining" and not caplog.text


def test_tf32_rounds_the_gemm_inputs_and_stays_within_its_tolerance(caplog):
    """precision="tf32": cuBLASLt's TF32 compute type (emulated by the stand-in: inputs
    rounded to 10-bit mantissas). Stated tolerance: 2e-2 relative on the loss after two
    epochs, 5e-2 absolute on the weights, against exact float32."""
    case = CASES["w2-dropout-adam"]
    exact = _fit(case, use_standin)

    def tf32_fit():
        use_standin()
        x, y = _data()
        model = _model(**case)
        model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"],
                      precision="tf32")  # fmt: skip
        history = model.fit(x, y, batch_size=64, epochs=2, verbose=0)
        return model, history.history, model.get_weights()

    with caplog.at_level(logging.WARNING, logger="gpunet"):
        tf32 = tf32_fit()
    assert "needs cuBLASLt" not in caplog.text  # the stand-in's cuBLASLt was found
    assert tf32[0]._trainer.training.gemm.compute_type == gemm.CUBLAS_COMPUTE_32F_FAST_TF32
    np.testing.assert_allclose(tf32[1]["loss"], exact[1]["loss"], rtol=2e-2)
    for a, b in zip(exact[2], tf32[2]):
        np.testing.assert_allclose(b, a, atol=5e-2)
    assert any(not np.array_equal(a, b) for a, b in zip(exact[2], tf32[2]))  # it did round
    with pytest.raises(ValueError, match="precision must be 'float32', 'tf32' or 'bf16'"):
        tf32[0].compile(loss="mse", precision="fp8")


@pytest.mark.parametrize("name", ["w2-dropout-adam", "regularizers-sgd"])
def test_bf16_gemm_inputs_train_within_their_tolerance(name):
    """precision="bf16": each GEMM reads bfloat16 copies of its inputs (to_bf16: weights once a
    step, activations and gradients per layer), accumulating in float32; the master weights and
    updates stay float32. Stated tolerance: 3e-2 relative on the loss after two epochs, 5e-2
    absolute on the weights, against exact float32."""
    case = CASES[name]
    exact = _fit(case, use_standin)

    def bf16_fit():
        use_standin()
        x, y = _data()
        model = _model(**case)
        model.compile(optimizer=model.optimizer, loss=model.loss, metrics=list(model._metric_ids),
                      precision="bf16")  # fmt: skip
        history = model.fit(x, y, batch_size=64, epochs=2, verbose=0)
        return model, history.history, model.get_weights()

    bf16 = bf16_fit()
    training = bf16[0]._trainer.training
    assert training.bf16 and type(training).__name__ == "GraphTraining"
    # Its bfloat16 buffers were made before the capture (else it fails and runs eagerly).
    assert training.captures >= 1 and not training.eager
    np.testing.assert_allclose(bf16[1]["loss"], exact[1]["loss"], rtol=3e-2)
    for a, b in zip(exact[2], bf16[2]):
        assert b.dtype == np.float32
        np.testing.assert_allclose(b, a, atol=5e-2)
    assert any(not np.array_equal(a, b) for a, b in zip(exact[2], bf16[2]))


def test_to_bf16_rounds_to_nearest_even_and_keeps_nan(device):
    from gpunet.cuda import kernels

    x = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -2.5, np.inf, np.nan],
                 np.float32)  # fmt: skip
    out = device.empty(x.size, np.uint16)
    kernels.launch(device, "to_bf16", x.size, device.asarray(x), out, x.size)
    values = (out.get().astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(
        values[:6], [1.0, 1.0, 1 + 4 * 2**-8, 1 + 2 * 2**-8, -2.5, np.inf]
    )
    assert np.isnan(values[6])


def test_the_notices_say_exactly_why_and_precision_is_named_only_when_asked(caplog, monkeypatch):
    use_standin()
    x, y = _data(100)
    gn.utils.clear_session()
    model = gn.Sequential(
        [gn.layers.Input((784,)), gn.layers.Dense(10, "softmax"), gn.layers.Dropout(0.1)]
    )
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with caplog.at_level(logging.WARNING, logger="gpunet"):
        model.fit(x, y, batch_size=50, epochs=1, verbose=0)
    assert [r.getMessage() for r in caplog.records] == [
        "gpunet: the reference CuPy step trains this model: the last layer is not Dense."
    ]
    monkeypatch.setattr(gemm, "load", lambda xp: None)  # no cuBLASLt on this machine
    for precision, expected in (("float32", []), ("bf16", ["'bf16'"])):
        caplog.clear()
        gn.utils.clear_session()
        model = gn.Sequential([gn.layers.Input((784,)), gn.layers.Dense(10, "softmax")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                      precision=precision)  # fmt: skip
        with caplog.at_level(logging.WARNING, logger="gpunet"):
            model.fit(x, y, batch_size=50, epochs=1, verbose=0)
        notices = [r.getMessage() for r in caplog.records if "cuBLASLt" in r.getMessage()]
        assert notices == [
            f"gpunet: precision {p} needs cuBLASLt (nvmath-python); computing in float32."
            for p in expected
        ]


def test_sync_writes_only_the_device_counters_whose_host_value_changed():
    from gpunet.step.fused import FusedTraining
    from tests import standin

    use_standin()
    x, y = _data(64)
    hidden = [dict(units=32, dropout=0.3, kernel_regularizer="l2"), dict(units=24, dropout=0.3)]
    model = _model(hidden, gn.optimizers.Adam, graphs=False)
    model.build()
    x, y = backend.to_device(x), backend.to_device(y.astype(np.int64))
    training = FusedTraining(model, x, y, None, 32)
    assert training.penalties.variables  # its coefficients are device scalars too
    first, second = (run.dropout for run in training.dropped)
    first.offset, second.offset = 10, 20
    training.sync(3, 32)
    assert training.offsets.get().tolist() == [10, 20] and training.position.get()[0] == 3
    mark = standin.ledger.mark()
    training.sync(3, 32)  # nothing changed: nothing written
    assert standin.ledger.since(mark)["launches"] == 0
    first.offset = 30  # one stream moved (a resumed layer): that counter alone is written
    training.sync(3, 32)
    assert training.offsets.get().tolist() == [30, 20]
