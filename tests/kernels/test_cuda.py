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
def test_dropout_keeps_one_minus_rate_and_advances(cp):
    x = cp.ones(100_000, cp.float32)
    y, mask = cp.empty_like(x), cp.empty_like(x)
    seed_offset = cp.asarray([1234, 0], dtype=cp.uint64)
    _cuda.launch("dropout_fwd", x.size, x, y, mask, np.int32(x.size), np.float32(0.3), seed_offset)
    first = y.get()
    assert abs((first != 0).mean() - 0.7) < 0.01
    np.testing.assert_allclose(first[first != 0], 1 / 0.7, rtol=1e-6)
    _cuda.launch("advance_offset", 1, seed_offset, np.uint64(x.size))
    _cuda.launch("dropout_fwd", x.size, x, y, mask, np.int32(x.size), np.float32(0.3), seed_offset)
    assert not np.array_equal(first, y.get())


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
