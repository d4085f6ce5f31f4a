"""Each optimizer against an independent, per-variable float64 transcription of Keras's rule."""

import math

import numpy as np
import pytest

from gpunet import optimizers, schedules

SHAPES = [(3, 4), (4,)]
STEPS = 6


def _problem(seed=0):
    rs = np.random.default_rng(seed)
    weights = [rs.standard_normal(s) for s in SHAPES]
    grads = [[rs.standard_normal(s) for s in SHAPES] for _ in range(STEPS)]
    return weights, grads


def _run_gpunet(opt, weights, grads):
    flat = np.concatenate([w.reshape(-1) for w in weights]).astype(np.float32)
    sizes = np.cumsum([0] + [w.size for w in weights])
    opt.build(flat, [(int(a), int(b)) for a, b in zip(sizes[:-1], sizes[1:])])
    for step_grads in grads:
        g = np.concatenate([x.reshape(-1) for x in step_grads]).astype(np.float32)
        opt.apply(flat, g)
    assert flat.dtype == np.float32
    assert all(slot.dtype == np.float32 for slot in opt.slots.values())
    return flat


def _flatten(weights):
    return np.concatenate([w.reshape(-1) for w in weights])


def ref_sgd(w, grads, lr=0.01, momentum=0.0, nesterov=False):
    m = [np.zeros_like(v) for v in w]
    for gs in grads:
        for i, g in enumerate(gs):
            if momentum:
                m[i] = momentum * m[i] - lr * g
                w[i] = w[i] + (momentum * m[i] - lr * g if nesterov else m[i])
            else:
                w[i] = w[i] - lr * g
    return w


def ref_rmsprop(w, grads, lr=0.001, rho=0.9, momentum=0.0, eps=1e-7, centered=False):
    v = [np.zeros_like(x) for x in w]
    a = [np.zeros_like(x) for x in w]
    s = [np.zeros_like(x) for x in w]
    for gs in grads:
        for i, g in enumerate(gs):
            v[i] = rho * v[i] + (1 - rho) * g**2
            if centered:
                a[i] = rho * a[i] + (1 - rho) * g
                denom = v[i] - a[i] ** 2 + eps
            else:
                denom = v[i] + eps
            step = lr * g / np.sqrt(denom)  # epsilon inside the root
            if momentum:
                s[i] = momentum * s[i] + step
                w[i] = w[i] - s[i]
            else:
                w[i] = w[i] - step
    return w


def ref_adam(w, grads, lr=0.001, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False, wd=None):
    m = [np.zeros_like(x) for x in w]
    v = [np.zeros_like(x) for x in w]
    vhat = [np.zeros_like(x) for x in w]
    for t, gs in enumerate(grads, start=1):
        for i, g in enumerate(gs):
            if wd:
                w[i] = w[i] - w[i] * wd * lr
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g**2
            vv = v[i]
            if amsgrad:
                vhat[i] = np.maximum(vhat[i], v[i])
                vv = vhat[i]
            alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
            w[i] = w[i] - alpha * m[i] / (np.sqrt(vv) + eps)
    return w


def ref_adagrad(w, grads, lr=0.001, init=0.1, eps=1e-7):
    acc = [np.full_like(x, init) for x in w]
    for gs in grads:
        for i, g in enumerate(gs):
            acc[i] = acc[i] + g**2
            w[i] = w[i] - lr * g / np.sqrt(acc[i] + eps)
    return w


def ref_adamax(w, grads, lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
    m = [np.zeros_like(x) for x in w]
    u = [np.zeros_like(x) for x in w]
    for t, gs in enumerate(grads, start=1):
        for i, g in enumerate(gs):
            m[i] = b1 * m[i] + (1 - b1) * g
            u[i] = np.maximum(b2 * u[i], np.abs(g))
            w[i] = w[i] - lr * m[i] / ((1 - b1**t) * (u[i] + eps))
    return w


def ref_nadam(w, grads, lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
    m = [np.zeros_like(x) for x in w]
    v = [np.zeros_like(x) for x in w]
    product = 1.0
    for t, gs in enumerate(grads, start=1):
        mu_t = b1 * (1 - 0.5 * 0.96**t)
        mu_next = b1 * (1 - 0.5 * 0.96 ** (t + 1))
        product *= mu_t
        for i, g in enumerate(gs):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g**2
            m_hat = mu_next * m[i] / (1 - product * mu_next) + (1 - mu_t) * g / (1 - product)
            v_hat = v[i] / (1 - b2**t)
            w[i] = w[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return w


CASES = [
    (lambda: optimizers.SGD(), lambda w, g: ref_sgd(w, g)),
    (lambda: optimizers.SGD(0.05, momentum=0.9), lambda w, g: ref_sgd(w, g, 0.05, 0.9)),
    (
        lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        lambda w, g: ref_sgd(w, g, 0.05, 0.9, True),
    ),
    (lambda: optimizers.RMSprop(), lambda w, g: ref_rmsprop(w, g)),
    (
        lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
        lambda w, g: ref_rmsprop(w, g, 0.01, momentum=0.5, centered=True),
    ),
    (lambda: optimizers.Adam(), lambda w, g: ref_adam(w, g)),
    (lambda: optimizers.Adam(0.01, amsgrad=True), lambda w, g: ref_adam(w, g, 0.01, amsgrad=True)),
    (lambda: optimizers.AdamW(0.01), lambda w, g: ref_adam(w, g, 0.01, wd=0.004)),
    (lambda: optimizers.Adagrad(0.05), lambda w, g: ref_adagrad(w, g, 0.05)),
    (lambda: optimizers.Adamax(0.01), lambda w, g: ref_adamax(w, g, 0.01)),
    (lambda: optimizers.Nadam(0.01), lambda w, g: ref_nadam(w, g, 0.01)),
]


@pytest.mark.parametrize("make, reference", CASES, ids=lambda v: "")
def test_matches_keras_rule_for_several_steps(make, reference):
    weights, grads = _problem()
    ours = _run_gpunet(make(), [w.copy() for w in weights], grads)
    expected = _flatten(reference([w.copy() for w in weights], grads))
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)
    assert not np.allclose(ours, _flatten(weights))  # it did move


SGD_CASES = CASES[:3] + [
    (
        lambda: optimizers.SGD(schedules.ExponentialDecay(0.1, 2, 0.5), weight_decay=0.1),
        lambda w, g: ref_sgd_schedule_decay(w, g),
    )
]


def ref_sgd_schedule_decay(w, grads):
    for t, gs in enumerate(grads):
        lr = 0.1 * 0.5 ** (t / 2)
        w = [x - x * 0.1 * lr - lr * g for x, g in zip(w, gs)]
    return w


def test_adam_step_size_is_the_float64_value_rounded_once():
    # alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) in float64 (the powers as running
    # products), rounded to float32 once: a float32 learning rate inside would round twice.
    for lr in (1 / 3, 0.0007, 0.1234567):
        adam = optimizers.Adam(lr)
        adam.build(np.zeros(2, np.float32), [(0, 2)])
        p1 = p2 = 1.0
        for _ in range(40):
            p1, p2 = p1 * 0.9, p2 * 0.999
            expected = np.float32(math.sqrt(1.0 - p2) * lr / (1.0 - p1))
            alpha = adam._step_size()
            assert alpha.dtype == np.float32 and alpha[0] == expected


def test_a_checkpoint_slot_missing_or_misshapen_is_refused():
    adam = optimizers.Adam()
    adam.build(np.zeros(4, np.float32), [(0, 4)])
    scalars, slots = adam.get_state()
    message = (
        "checkpoint: optimizer slot 'velocity' is missing or has the wrong shape for this model."
    )
    for bad in (
        {k: v for k, v in slots.items() if k != "velocity"},
        {**slots, "velocity": np.zeros(3)},
    ):
        with pytest.raises(ValueError) as info:
            adam.set_state(scalars, bad)
        assert str(info.value) == message


def _clip_run(**kwargs):
    opt = optimizers.SGD(1.0, **kwargs)
    w = np.zeros(4, dtype=np.float32)
    opt.build(w, [(0, 2), (2, 4)])
    opt.apply(w, np.array([3.0, 4.0, 0.3, 0.4], dtype=np.float32))
    return -w  # the applied (clipped) gradient


def test_clipnorm_clips_each_variable():
    np.testing.assert_allclose(_clip_run(clipnorm=1.0), [0.6, 0.8, 0.3, 0.4], rtol=1e-6)


def test_global_clipnorm_clips_all_together():
    norm = math.sqrt(25 + 0.25)
    expected = np.array([3.0, 4.0, 0.3, 0.4]) * (1.0 / norm)
    np.testing.assert_allclose(_clip_run(global_clipnorm=1.0), expected, rtol=1e-6)


def test_clipvalue_clips_elements():
    np.testing.assert_allclose(_clip_run(clipvalue=0.35), [0.35, 0.35, 0.3, 0.35], rtol=1e-6)


def test_schedule_drives_the_learning_rate():
    opt = optimizers.SGD(schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5))
    w = np.zeros(1, dtype=np.float32)
    opt.build(w, [(0, 1)])
    for _ in range(3):
        opt.apply(w, np.ones(1, dtype=np.float32))
    np.testing.assert_allclose(w, [-(0.1 + 0.05 + 0.025)], rtol=1e-6)
    assert opt.learning_rate == pytest.approx(0.0125)
    with pytest.raises(TypeError, match="schedule"):
        opt.learning_rate = 0.1


def test_schedules_match_keras_formulas():
    assert schedules.ExponentialDecay(1.0, 10, 0.5, staircase=True)(15) == 0.5
    assert schedules.ExponentialDecay(1.0, 10, 0.5)(15) == pytest.approx(0.5**1.5)
    piecewise = schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [piecewise(s) for s in (0, 10, 11, 20, 21)] == [1.0, 1.0, 0.5, 0.5, 0.1]
    cosine = schedules.CosineDecay(1.0, 100, alpha=0.1)
    assert cosine(0) == 1.0 and cosine(100) == pytest.approx(0.1) and cosine(500) == cosine(100)
    assert cosine(50) == pytest.approx(0.55)
    warm = schedules.CosineDecay(0.0, 100, warmup_target=1.0, warmup_steps=10)
    assert warm(5) == pytest.approx(0.5) and warm(10) == 1.0 and warm(110) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: optimizers.SGD(0.1, momentum=0.9, clipnorm=1.0),
        lambda: optimizers.SGD(0.1, momentum=0.5, nesterov=True, global_clipnorm=1.0),
        lambda: optimizers.RMSprop(centered=True, momentum=0.5),
        lambda: optimizers.Adam(amsgrad=True),
        lambda: optimizers.AdamW(schedules.ExponentialDecay(0.01, 10, 0.5)),
        optimizers.Adagrad,
        optimizers.Adamax,
        optimizers.Nadam,
    ],
    ids=["sgd", "sgd-nesterov", "rmsprop", "adam", "adamw-schedule", "adagrad", "adamax", "nadam"],
)
def test_an_update_reads_its_step_scalars_from_device_memory(make):
    # Learning rate and bias corrections live in one-element device arrays: after the first
    # update an update copies nothing to the device, syncs nothing and allocates nothing (a
    # changed learning rate is one fill).
    from tests.conftest import use_standin

    cp = use_standin()
    weights, grads = _problem()
    params = cp.asarray(np.concatenate([w.reshape(-1) for w in weights]).astype(np.float32))
    steps = [
        cp.asarray(np.concatenate([g.reshape(-1) for g in gs]).astype(np.float32)) for gs in grads
    ]
    opt = make()
    opt.build(params, [(0, 12), (12, 16)])
    opt.apply(params, steps[0])
    mark = cp.ledger.mark()
    for g in steps[1:]:
        opt.apply(params, g)
    counts = cp.ledger.since(mark)
    assert counts["syncs"] == counts["h2d"] == counts["allocs"] == 0, cp.ledger.sites(
        "allocs", mark
    )


def test_only_sgd_takes_scaled_gradients():
    params = np.ones(4, np.float32)
    adam = optimizers.Adam()
    adam.build(params, [(0, 4)])
    assert adam.loss_scale() == 1.0
    with pytest.raises(ValueError, match="Adam takes gradients of the unscaled loss only"):
        adam.apply(params, np.ones(4, np.float32), loss_scale=-0.001)
    sgd = optimizers.SGD(0.5)
    sgd.build(params, [(0, 4)])
    with pytest.raises(ValueError, match="scaled by 0.25, expected -learning_rate"):
        sgd.apply(params, np.ones(4, np.float32), loss_scale=0.25)
    sgd.apply(params, np.full(4, -0.5, np.float32), loss_scale=-0.5)  # the step -lr * g
    np.testing.assert_array_equal(params, [0.5] * 4)


def test_a_device_scalar_is_written_only_when_its_value_changes():
    from gpunet.optimizers.base import DeviceScalar
    from tests import standin
    from tests.conftest import use_standin

    use_standin()
    scalar = DeviceScalar(standin, 0.5, "float32")
    for value, writes in ((0.5, 0), (0.25, 1), (0.25, 0), (0.25, 0), (0.5, 1)):
        mark = standin.ledger.mark()
        array = scalar.set(value)
        assert standin.ledger.since(mark)["launches"] == writes
        assert array.get().tolist() == [value]
