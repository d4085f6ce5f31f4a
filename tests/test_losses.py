import numpy as np
import pytest

from gpunet import losses
from gpunet.backend import to_host
from gpunet.kernels import activations
from tests.gradcheck import assert_grad_close, numerical_grad

RS = np.random.default_rng(0)
PROBS = activations.get("softmax")(RS.standard_normal((4, 3)))
ONE_HOT = np.eye(3)[[0, 2, 1, 2]]
LABELS = np.array([0, 2, 1, 2])


def _check(loss, y_true, y_pred):
    grad = loss.grad(y_true, y_pred)
    numeric = numerical_grad(lambda v: float(loss.per_sample(y_true, v).sum()), y_pred.copy())
    assert_grad_close(grad, numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "loss, y_true, y_pred",
    [
        (losses.MeanSquaredError(), RS.standard_normal((4, 3)), RS.standard_normal((4, 3))),
        (losses.MeanAbsoluteError(), RS.standard_normal((4, 3)), RS.standard_normal((4, 3))),
        (losses.Huber(), RS.standard_normal((4, 3)) * 2, RS.standard_normal((4, 3))),
        (
            losses.BinaryCrossentropy(),
            RS.integers(0, 2, (4, 3)).astype(float),
            RS.uniform(0.05, 0.95, (4, 3)),
        ),
        (
            losses.BinaryCrossentropy(from_logits=True),
            RS.integers(0, 2, (4, 3)).astype(float),
            RS.standard_normal((4, 3)) * 3,
        ),
        (losses.CategoricalCrossentropy(), ONE_HOT, PROBS),
        (losses.CategoricalCrossentropy(), ONE_HOT, PROBS * 3.0),  # unnormalised rows
        (losses.CategoricalCrossentropy(from_logits=True), ONE_HOT, RS.standard_normal((4, 3))),
        (losses.SparseCategoricalCrossentropy(), LABELS, PROBS),
        (
            losses.SparseCategoricalCrossentropy(from_logits=True),
            LABELS,
            RS.standard_normal((4, 3)),
        ),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, losses.Loss) else "",
)
def test_gradient_matches_central_differences_float64(loss, y_true, y_pred):
    _check(loss, y_true, y_pred)


def _softmax64(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _reference(kind: str, targets, z, scale: float):
    """(activation, per-sample loss, scale * d loss_i / d z) in float64, written from the
    formulas, not from gpunet: softmax + cross-entropy (dense or sparse), sigmoid + BCE."""
    z = z.astype(np.float64)
    if kind == "sigmoid":
        p = 1.0 / (1.0 + np.exp(-z))
        t = targets.astype(np.float64)
        per_sample = -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(axis=-1)
        return p, per_sample, (p - t) / z.shape[-1] * scale
    p = _softmax64(z)
    t = np.eye(z.shape[-1])[targets] if targets.ndim == 1 else targets.astype(np.float64)
    per_sample = -(t * np.log(p)).sum(axis=-1)
    return p, per_sample, (p * t.sum(axis=-1, keepdims=True) - t) * scale


@pytest.mark.parametrize(
    "loss, kind, y_true",
    [
        (losses.CategoricalCrossentropy(), "softmax", ONE_HOT * 0.5),  # rows need not sum to 1
        (losses.SparseCategoricalCrossentropy(), "softmax", LABELS),
        (losses.BinaryCrossentropy(), "sigmoid", RS.integers(0, 2, (4, 3)).astype(float)),
    ],
    ids=["categorical", "sparse", "binary"],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_loss_against_a_float64_reference(xp, loss, kind, y_true, dtype):
    # The training step's one-pass fused loss, with a gradient scale that is not 1 (the step
    # passes loss_scale / N), against the formulas in float64.
    logits = RS.standard_normal((4, 3)) * 3
    targets = y_true.astype(dtype) if y_true.dtype.kind == "f" else y_true
    z = xp.asarray(logits.astype(dtype))
    probs, grad = xp.empty_like(z), xp.empty_like(z)
    per_sample = loss.fused(xp.asarray(targets), z, probs, grad, -0.37)
    assert per_sample.dtype == probs.dtype == grad.dtype == dtype
    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (2e-6, 1e-6)
    expected = _reference(kind, y_true, logits.astype(dtype), -0.37)
    for got, want, name in zip((probs, per_sample, grad), expected, ("probs", "loss", "grad")):
        np.testing.assert_allclose(to_host(got), want, rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize(
    "make, kind, y_true",
    [
        (losses.CategoricalCrossentropy, "softmax", ONE_HOT),
        (losses.SparseCategoricalCrossentropy, "softmax", LABELS),
        (losses.BinaryCrossentropy, "sigmoid", RS.integers(0, 2, (4, 3)).astype(float)),
    ],
    ids=["categorical", "sparse", "binary"],
)
def test_from_logits_takes_logits_as_keras(make, kind, y_true):
    # A loss built with from_logits=True reads its inputs as logits (softmax or sigmoid
    # inside); the same loss without it reads them as probabilities.
    logits = RS.standard_normal((4, 3)) * 3
    probs, per_sample, _ = _reference(kind, y_true, logits, 1.0)
    loss = make(from_logits=True)
    assert loss.from_logits is True and make().from_logits is False
    assert loss(y_true, logits) == pytest.approx(per_sample.mean(), rel=1e-12)
    assert make()(y_true, probs) == pytest.approx(per_sample.mean(), rel=1e-6)  # eps clip


def test_known_values():
    y_true, y_pred = np.array([[0.0, 1.0]]), np.array([[0.5, 0.5]])
    assert losses.MeanSquaredError()(y_true, y_pred) == pytest.approx(0.25)
    assert losses.MeanAbsoluteError()(y_true, y_pred) == pytest.approx(0.5)
    assert losses.CategoricalCrossentropy()(y_true, y_pred) == pytest.approx(np.log(2))
    assert losses.Huber(delta=0.1)(np.array([[0.0]]), np.array([[1.0]])) == pytest.approx(0.095)
    weighted = losses.MeanSquaredError()(np.zeros((2, 1)), np.ones((2, 1)), np.array([1.0, 0.0]))
    assert weighted == pytest.approx(0.5)  # sum(loss * w) / N, Keras's sum_over_batch_size


def test_probability_path_clips_like_keras():
    # A confidently wrong probability output saturates at -log(1e-7), as Keras's clip does.
    value = losses.CategoricalCrossentropy()(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert value == pytest.approx(-np.log(1e-7), rel=1e-6)


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_fused_softmax_cross_entropy_is_finite_for_huge_logits(scale):
    logits = np.array([[1.0, -1.0, 0.5], [-1.0, 1.0, 0.0]], dtype=np.float32) * scale
    loss = losses.CategoricalCrossentropy()
    probs = activations.get("softmax")(logits)
    values = loss.per_sample_from_logits(ONE_HOT[:2].astype(np.float32), logits)
    grad = loss.grad_from_logits(ONE_HOT[:2].astype(np.float32), logits, probs)
    assert np.isfinite(values).all() and np.isfinite(grad).all()
    assert values.dtype == grad.dtype == np.float32
    if scale > 1:  # exact log-softmax, not a clipped probability
        np.testing.assert_allclose(values, [0.0, 1e4], rtol=1e-6)


def test_fused_sigmoid_binary_cross_entropy_is_finite_for_huge_logits():
    logits = np.array([[1e4], [-1e4]], dtype=np.float32)
    loss = losses.BinaryCrossentropy()
    y = np.array([[0.0], [0.0]], dtype=np.float32)
    values = loss.per_sample_from_logits(y, logits)
    np.testing.assert_allclose(values, [1e4, 0.0])
    assert np.isfinite(loss.grad_from_logits(y, logits, None)).all()


def test_sparse_targets_out_of_range_are_refused():
    with pytest.raises(ValueError, match=r"integer labels in \[0, 3\).*from 0 to 3"):
        losses.SparseCategoricalCrossentropy().check_targets(np.array([0, 3]), (3,), "fit")


def test_one_hot_loss_with_label_vector_gives_a_hint():
    with pytest.raises(ValueError, match="to_categorical"):
        losses.CategoricalCrossentropy().check_targets(np.array([0, 1]), (3,), "fit")


def test_targets_of_the_wrong_shape_are_refused_in_words():
    with pytest.raises(ValueError) as caught:
        losses.MeanSquaredError().check_targets(np.zeros((4, 2)), (3,), "fit")
    assert str(caught.value) == (
        "fit: mean_squared_error expects targets shaped like the model output (None, 3), "
        "received (4, 2)."
    )
    with pytest.raises(ValueError) as caught:
        losses.CategoricalCrossentropy().check_targets(np.zeros(4), (3,), "evaluate")
    assert str(caught.value) == (
        "evaluate: categorical_crossentropy expects targets shaped like the model output "
        "(None, 3), received (4,).\nHint: one-hot encode labels with gn.utils.to_categorical, "
        "or use sparse_categorical_crossentropy."
    )


def test_an_unknown_serialized_loss_is_refused_in_words():
    with pytest.raises(ValueError, match=r"^Unknown loss 'Hinge'\. Allowed: BinaryCrossentropy, "):
        losses.deserialize({"class_name": "Hinge", "config": {}})


def test_unknown_loss_lists_the_choices():
    with pytest.raises(ValueError, match="Unknown loss 'crossentropy'.*categorical_crossentropy"):
        losses.get("crossentropy")


def test_probability_losses_clip_at_both_ends_like_keras():
    # Keras clips probabilities to [1e-7, 1 - 1e-7] before the log; a probability of 0 or 1
    # costs -log(1e-7) when it is wrong, and -log(1 - 1e-7) when it is right.
    eps = 1e-7
    bce = losses.BinaryCrossentropy()
    values = bce.per_sample(
        np.array([[1.0], [0.0], [1.0], [0.0]]), np.array([[0.0], [1.0], [1.0], [0.0]])
    )
    np.testing.assert_allclose(
        values, [-np.log(eps), -np.log(eps), -np.log(1 - eps), -np.log(1 - eps)], rtol=1e-9
    )
    cce = losses.CategoricalCrossentropy()
    values = cce.per_sample(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 1.0], [0.0, 1.0]]))
    np.testing.assert_allclose(values, [-np.log(eps), -np.log(1 - eps)], rtol=1e-9)
    # Where the clip bites, no gradient passes (Keras's clip has a zero gradient there).
    grad = bce.grad(np.array([[1.0], [0.0]]), np.array([[1.0], [0.0]]))
    np.testing.assert_array_equal(grad, [[0.0], [0.0]])


def test_sparse_targets_may_be_a_column_but_not_wider():
    loss = losses.SparseCategoricalCrossentropy()
    loss.check_targets(np.array([[0], [2]]), (3,), "fit")  # (N, 1) is fine
    loss.check_targets(np.array([0, 2]), (3,), "fit")
    with pytest.raises(ValueError, match=r"integer class indices shaped \(N,\) or \(N, 1\)"):
        loss.check_targets(np.array([[0, 1], [2, 0]]), (3,), "fit")
    with pytest.raises(ValueError, match=r"integer class indices"):
        loss.check_targets(np.zeros((2, 1, 1)), (3,), "fit")
    with pytest.raises(ValueError, match=r"integer labels in \[0, 3\)"):
        loss.check_targets(np.array([0.5, 1.0]), (3,), "fit")


def test_categorical_crossentropy_passes_no_gradient_where_its_clip_bites():
    # Probabilities 0 and 1 sit outside [eps, 1 - eps]: the clipped entries get no gradient,
    # the others the float64 gradient of -sum(t log(q)), q = y / sum(y).
    y_pred = np.array([[0.0, 0.3, 0.7], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]], np.float32)
    t = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], np.float32)
    grad = losses.CategoricalCrossentropy().grad(t, y_pred)
    assert np.isfinite(grad).all()
    q = y_pred.astype(np.float64) / y_pred.sum(axis=1, keepdims=True)
    eps = losses.EPSILON
    passes = (q >= eps) & (q <= 1 - eps)
    a = np.where(passes, -t / np.clip(q, eps, 1 - eps), 0.0)
    expected = (a - (a * q).sum(axis=1, keepdims=True)) / y_pred.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)
    assert grad[1].tolist() == [0.0, 0.0, 0.0]  # the whole row is clipped at 1 and at 0


def test_the_fused_losses_default_scale_and_dense_buffers(xp):
    from gpunet.buffers import Buffers

    rs = np.random.default_rng(3)
    z = xp.asarray(rs.standard_normal((6, 4)).astype(np.float32))
    t = xp.asarray(np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1]])
    loss, buffers = losses.CategoricalCrossentropy(), Buffers()
    probs, grad = xp.empty_like(z), xp.empty_like(z)
    loss.fused(t, z, probs, grad, buffers=buffers)  # default scale 1.0
    np.testing.assert_allclose(to_host(grad), to_host(probs) - to_host(t), rtol=1e-6, atol=1e-7)
    scaled = xp.empty_like(z)
    loss.fused(t, z, probs, scaled, 2.0, buffers)
    np.testing.assert_allclose(to_host(scaled), 2.0 * to_host(grad), rtol=1e-6)
    if xp is not np:  # the stand-in counts: the second call writes only into kept buffers
        from tests import standin

        mark = standin.ledger.mark()
        loss.fused(t, z, probs, scaled, 2.0, buffers)
        assert standin.ledger.since(mark)["allocs"] == 0
    sparse = losses.SparseCategoricalCrossentropy()
    values = sparse.per_sample(xp.asarray(np.array([0, 1, 2, 3, 0, 1])), probs)
    assert values.dtype == np.float32


def test_loss_options_and_their_checks():
    assert losses.BinaryCrossentropy(from_logits=True).from_logits
    assert losses.Huber().delta == 1.0
    with pytest.raises(ValueError, match=r"^Huber delta must be positive, received 0\.$"):
        losses.Huber(delta=0)


def test_the_base_fused_loss_takes_a_scale_of_one_by_default():
    z = np.array([[0.5, -1.0], [2.0, 0.0]], np.float32)
    t = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    probs, grad = np.empty_like(z), np.empty_like(z)
    losses.BinaryCrossentropy().fused(t, z, probs, grad)
    np.testing.assert_allclose(grad, (probs - t) / 2, rtol=1e-6)


def test_sparse_labels_as_a_column_give_the_same_fused_loss(xp):
    # (N, 1) labels, which Keras takes, index the same rows as (N,) labels.
    from gpunet.buffers import Buffers

    loss = losses.SparseCategoricalCrossentropy()
    z = xp.asarray(RS.standard_normal((4, 3)).astype(np.float32))
    results = []
    for labels in (LABELS, LABELS.reshape(-1, 1)):
        probs, grad = xp.empty_like(z), xp.empty_like(z)
        per_sample = loss.fused(xp.asarray(labels), z, probs, grad, 0.5, Buffers())
        results.append([to_host(a).copy() for a in (per_sample, grad)])
    for flat, column in zip(*results):
        np.testing.assert_array_equal(flat, column)
    probabilities = xp.asarray(np.full((4, 3), 1 / 3, np.float32))
    np.testing.assert_allclose(
        to_host(loss.per_sample(xp.asarray(LABELS.reshape(-1, 1)), probabilities)), np.log(3.0)
    )
