"""The fused CUDA kernels: NVRTC compilation on any machine, correctness on a GPU."""

import os

import numpy as np
import pytest

from gpunet.kernels import _cuda


def _nvrtc():
    try:
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
        return nvrtc
    except Exception as exc:  # CuPy or libnvrtc missing
        if os.environ.get("CI") == "true":
            pytest.fail(f"NVRTC is missing in CI ({exc}): setup.sh installs the nvrtc extra")
        pytest.skip(f"CuPy's NVRTC is not available here ({type(exc).__name__}: {exc})")


@pytest.mark.parametrize("arch", _cuda.ARCHITECTURES)
def test_every_kernel_compiles_with_nvrtc(arch):
    nvrtc = _nvrtc()
    program = nvrtc.createProgram(_cuda.SOURCE, "gpunet.cu", [], [])
    try:
        try:
            nvrtc.compileProgram(program, [f"--gpu-architecture={arch}", "--std=c++14"])
        except nvrtc.NVRTCError:
            pytest.fail(nvrtc.getProgramLog(program))
        ptx = nvrtc.getPTX(program)
    finally:
        nvrtc.destroyProgram(program)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    assert [k for k in _cuda.KERNELS if f".entry {k}(" in ptx] == list(_cuda.KERNELS)


# ----- on a GPU (pytest -m gpu): each kernel against its NumPy counterpart ----------------------


@pytest.mark.gpu
@pytest.mark.parametrize("act", ["linear", "relu", "sigmoid", "tanh"])
def test_bias_act_fwd_and_bwd(cp, act):
    from gpunet.kernels import activations

    rs = np.random.default_rng(0)
    z, bias, gy = (rs.standard_normal(s).astype(np.float32) for s in ((64, 30), (30,), (64, 30)))
    y = cp.asarray(z)
    _cuda.launch(
        "bias_act_fwd",
        y.size,
        y,
        cp.asarray(bias),
        np.int32(64),
        np.int32(30),
        np.int32(_cuda.ACTIVATIONS[act]),
    )
    expected = activations.get(act)(z + bias)
    np.testing.assert_allclose(y.get(), expected, rtol=1e-5, atol=1e-6)
    g = cp.asarray(gy)
    _cuda.launch("act_bwd", g.size, g, y, np.int32(g.size), np.int32(_cuda.ACTIVATIONS[act]))
    reference = activations.get(act).bwd(gy.copy(), z + bias, expected, None)
    np.testing.assert_allclose(g.get(), reference, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
def test_softmax_cross_entropy_matches_the_numpy_loss(cp):
    from gpunet import losses

    rs = np.random.default_rng(1)
    z = (rs.standard_normal((50, 10)) * 5).astype(np.float32)
    labels = rs.integers(0, 10, 50)
    probs, grad = cp.empty((50, 10), cp.float32), cp.empty((50, 10), cp.float32)
    total = cp.zeros(1, cp.float32)
    _cuda.launch(
        "softmax_xent_sparse",
        50,
        cp.asarray(z),
        cp.asarray(labels),
        probs,
        grad,
        total,
        np.int32(50),
        np.int32(10),
        np.float32(1 / 50),
    )
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    np.testing.assert_allclose(total.get()[0], loss.per_sample(labels, z).sum(), rtol=1e-5)
    np.testing.assert_allclose(grad.get(), loss.grad(labels, z) / 50, rtol=1e-5, atol=1e-7)


@pytest.mark.gpu
def test_dropout_is_bit_for_bit_the_xp_path_and_advances(cp):
    from gpunet.kernels import dropout

    seed, rate, n = 2**63 + 5, 0.3, 100_000
    x = cp.asarray(np.random.default_rng(0).standard_normal(n).astype(np.float32))
    y, mask = cp.empty_like(x), cp.empty_like(x)
    offset = cp.zeros(1, dtype=cp.uint64)
    lanes = dropout.lanes(cp, (n,))
    for draw in range(2):
        _cuda.launch(
            "dropout_fwd",
            n,
            x,
            y,
            mask,
            np.int32(n),
            np.uint64(seed),
            np.uint32(dropout.threshold(rate)),
            np.float32(1 / (1 - rate)),
            offset,
        )
        key = cp.zeros(1, dtype=cp.uint32)
        key.fill(dropout.draw_key(seed, draw * n))
        bits = dropout.counter_bits(lanes, key, cp.empty_like(lanes), cp.empty_like(lanes))
        expected = dropout.dropout_fwd(x, rate, bits, cp.empty_like(x))
        np.testing.assert_array_equal(y.get(), expected.get())
        _cuda.launch("advance_offset", 1, offset, np.uint64(n))


@pytest.mark.gpu
def test_adam_update_matches_the_numpy_optimizer(cp):
    from gpunet import optimizers

    rs = np.random.default_rng(2)
    w, g = rs.standard_normal(1000).astype(np.float32), rs.standard_normal(1000).astype(np.float32)
    reference = optimizers.Adam(0.01)
    w_ref = w.copy()
    reference.build(w_ref, [(0, 1000)])
    w_dev, m, v = cp.asarray(w), cp.zeros(1000, cp.float32), cp.zeros(1000, cp.float32)
    lr, step = cp.asarray([0.01], cp.float32), cp.zeros(1, cp.int32)
    for _ in range(3):
        reference.apply(w_ref, g.copy())
        _cuda.launch(
            "adam_update",
            1000,
            w_dev,
            cp.asarray(g),
            m,
            v,
            np.int32(1000),
            lr,
            step,
            np.float32(0.9),
            np.float32(0.999),
            np.float32(1e-7),
        )
        _cuda.launch("increment_step", 1, step)
    np.testing.assert_allclose(w_dev.get(), w_ref, rtol=1e-5, atol=1e-6)
