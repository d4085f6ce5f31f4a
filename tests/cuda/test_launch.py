"""The typed launch wrappers (gpunet/cuda/kernels.py) and the stand-in's own checks."""

import numpy as np
import pytest

from gpunet.cuda import kernels


def test_launch_checks_each_argument_against_the_signature(device):
    g = device.zeros((4, 3), np.float32)
    out = device.zeros(3, np.float32)
    with pytest.raises(TypeError, match="bias_grad takes 4 arguments"):
        kernels.launch(device, "bias_grad", 3, g, out, 4)
    with pytest.raises(TypeError, match="argument gb .*dtype float32 required"):
        kernels.launch(device, "bias_grad", 3, g, device.zeros(3, np.float64), 4, 3)
    with pytest.raises(TypeError, match="a device array is required"):
        kernels.launch(device, "bias_grad", 3, np.zeros((4, 3), np.float32), out, 4, 3)
    with pytest.raises(ValueError, match="C-contiguous"):
        kernels.launch(device, "bias_grad", 3, device.zeros((3, 4), np.float32).T, out, 4, 3)
    with pytest.raises(OverflowError):
        kernels.launch(device, "bias_grad", 3, g, out, 2**31, 3)
    with pytest.raises(TypeError, match="a number is required"):
        kernels.launch(device, "bias_grad", 3, g, out, True, 3)


def test_the_standin_refuses_python_scalars_cupy_would_pass_at_another_width():
    from tests import standin

    function = standin.RawModule(code=kernels.SOURCE).get_function("bias_grad")
    g, out = standin.zeros((4, 3), np.float32), standin.zeros(3, np.float32)
    with pytest.raises(TypeError, match="takes int; received 4"):
        function((1,), (32,), (g, out, 4, 3))
    function((1,), (32,), (g, out, np.int32(4), np.int32(3)))  # exact widths: accepted


def test_every_kernel_is_declared_once_with_known_c_types():
    assert len(kernels.KERNELS) == len(set(kernels.KERNELS)) == kernels.SOURCE.count("__global__")
    for name, params in kernels.SIGNATURES.items():
        assert params, name
        assert all(p.ctype in kernels._C_TYPES for p in params)
