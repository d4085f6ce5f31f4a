"""The typed launch wrappers (gpunet/cuda/kernels.py) and the stand-in's own checks."""

import numpy as np
import pytest

from gpunet.cuda import kernels


def test_launch_checks_each_argument_against_the_signature(device):
    g = device.zeros((4, 3), np.float32)
    out = device.zeros(3, np.float32)
    with pytest.raises(TypeError, match="bias_grad takes 4 arguments"):
        kernels.launch(device, "bias_grad", 3, g, out, 4)
    with pytest.raises(TypeError) as info:
        kernels.launch(device, "bias_grad", 3, g, device.zeros(3, np.float64), 4, 3)
    assert str(info.value) == (
        "kernel bias_grad, argument gb (float*): dtype float32 required, received float64"
    )
    with pytest.raises(TypeError) as info:
        kernels.launch(device, "bias_grad", 3, np.zeros((4, 3), np.float32), out, 4, 3)
    assert str(info.value) == (
        "kernel bias_grad, argument g (float*): a device array is required, received "
        "<class 'numpy.ndarray'>"
    )
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


def test_signatures_read_pointers_const_and_multi_word_types():
    source = """
    __global__ void scale(const float* __restrict_x, double *out , unsigned long long n,
                          const unsigned short *words, long long count, char* raw)
    { }
    __device__ void helper(int x) { }
    __global__  void  empty_name ( unsigned int seed ) { }
    __global__ void tight(int*flags,const float*w) { }
    """
    found = kernels.signatures(source)
    assert list(found) == ["scale", "empty_name", "tight"]  # __device__ ones are not kernels
    P = kernels.Param
    assert found["scale"] == (
        P("__restrict_x", "float", True),
        P("out", "double", True),
        P("n", "unsigned long long", False),
        P("words", "unsigned short", True),
        P("count", "long long", False),
        P("raw", "char", True),
    )
    assert found["empty_name"] == (P("seed", "unsigned int", False),)
    assert found["tight"] == (P("flags", "int", True), P("w", "float", True))  # no spaces
    assert [p.dtype for p in found["scale"]] == [
        np.float32,
        np.float64,
        np.uint64,
        np.uint16,
        np.int64,
        None,
    ]


def test_a_parameter_of_an_unknown_c_type_is_refused_with_the_types_known():
    with pytest.raises(ValueError) as info:
        kernels.signatures("__global__ void k(const half* x, int n) { }")
    assert str(info.value) == (
        "gpunet/cuda: kernel parameter 'const half* x' has a C type the launch wrappers do not "
        "know (float, double, int, unsigned int, long long, unsigned long long, unsigned short, "
        "char)"
    )


def test_the_source_holds_every_file_inside_one_extern_c_block():
    source = kernels.SOURCE
    assert source.startswith('extern "C" {\n') and source.endswith('\n}  // extern "C"\n')
    for name in kernels.FILES:
        assert kernels._read(name) in source
    assert kernels.activation_code("linear") == 0 and kernels.activation_code("exponential") == 12


def test_a_scalar_argument_takes_its_c_type_or_is_refused_where_it_would_change():
    P = kernels.Param
    rate, rows = P("rate", "float", False), P("rows", "int", False)
    # A Python float rounds to float (as every learning rate does); nothing else may change.
    assert kernels._argument(np, "k", rate, 0.1) == np.float32(0.1)
    assert kernels._argument(np, "k", rows, 7) == 7
    for param, value in [(rows, 1.5), (rows, 2**31), (rate, 2**24 + 1), (rate, 1e39)]:
        with pytest.raises(OverflowError) as info:
            kernels._argument(np, "k", param, value)
        assert str(info.value) == (
            f"kernel k, argument {param.name} ({param.ctype}): {value!r} does not fit"
        )


def test_a_launch_covers_every_thread_of_a_partial_last_block(device):
    # One thread per column; the last block holds one: it still runs.
    rows, units = 2, kernels.BLOCK + 1
    g = device.asarray(np.arange(rows * units, dtype=np.float32).reshape(rows, units))
    out = device.full(units, -1.0, np.float32)
    kernels.launch(device, "bias_grad", units, g, out, np.int32(rows), np.int32(units))
    np.testing.assert_array_equal(device.asnumpy(out), device.asnumpy(g).sum(axis=0))
