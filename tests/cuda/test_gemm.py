"""The cuBLASLt route of the Dense products, every epilogue against NumPy: through the stand-in
cuBLASLt here, through nvmath-python on a GPU (`-m gpu`, where it is installed)."""

import numpy as np
import pytest

from gpunet.cuda import gemm


@pytest.fixture
def lt(device):
    module = gemm.load(device)
    if module is None:
        pytest.skip("nvmath-python is not installed (pip install nvmath-python[cu13])")
    return device, gemm.Gemm(device, module)


def _arrays(seed, rows, inputs, units):
    rs = np.random.default_rng(seed)
    x = rs.standard_normal((rows, inputs)).astype(np.float32)
    kernel = rs.standard_normal((inputs, units)).astype(np.float32)
    bias = rs.standard_normal(units).astype(np.float32)
    return x, kernel, bias


SHAPES = [(128, 784, 128), (37, 100, 10), (5, 3, 300)]


@pytest.mark.parametrize("rows, inputs, units", SHAPES)
@pytest.mark.parametrize("bias, relu", [(False, False), (True, False), (True, True), (False, True)])
def test_forward_with_bias_and_relu_epilogues(lt, rows, inputs, units, bias, relu):
    device, products = lt
    x, kernel, b = _arrays(0, rows, inputs, units)
    out = device.empty((rows, units), np.float32)
    aux = device.zeros(gemm.aux_shape(units, rows), np.uint8) if relu else None
    plan = products.forward(rows, inputs, units, bias, relu)
    plan(device.asarray(x), device.asarray(kernel), out, device.asarray(b) if bias else None, aux)
    expected = x.astype(np.float64) @ kernel + (b if bias else 0.0)
    if relu:
        expected = np.maximum(expected, 0.0)
    np.testing.assert_allclose(out.get(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rows, inputs, units", SHAPES)
@pytest.mark.parametrize("bias", [False, True])
def test_weight_gradient_with_the_bias_gradient_epilogue(lt, rows, inputs, units, bias):
    device, products = lt
    x, _, _ = _arrays(1, rows, inputs, units)
    gz = np.random.default_rng(2).standard_normal((rows, units)).astype(np.float32)
    g_kernel = device.empty((inputs, units), np.float32)
    g_bias = device.empty(units, np.float32) if bias else None
    products.weights(rows, inputs, units, bias)(
        device.asarray(x), device.asarray(gz), g_kernel, g_bias
    )
    np.testing.assert_allclose(g_kernel.get(), x.T.astype(np.float64) @ gz, rtol=1e-4, atol=1e-4)
    if bias:
        np.testing.assert_allclose(
            g_bias.get(), gz.sum(axis=0, dtype=np.float64), rtol=1e-4, atol=1e-5
        )


@pytest.mark.parametrize("rows, inputs, units", SHAPES)
@pytest.mark.parametrize("relu, bias", [(False, False), (True, False), (True, True)])
def test_input_gradient_through_the_previous_relu(lt, rows, inputs, units, relu, bias):
    """gx = gz @ W^T, times relu' of the layer before (from its forward's mask), and that
    layer's bias gradient: what DRELU_BGRAD fuses."""
    device, products = lt
    previous = np.random.default_rng(3).standard_normal((rows, inputs)).astype(np.float32)
    aux = None
    if relu:  # the mask, made by the layer before's forward (an identity product here)
        aux = device.zeros(gemm.aux_shape(inputs, rows), np.uint8)
        eye = device.asarray(np.eye(inputs, dtype=np.float32))
        products.forward(rows, inputs, inputs, False, True)(
            device.asarray(previous), eye, device.empty((rows, inputs), np.float32), None, aux
        )
    _, kernel, _ = _arrays(4, rows, inputs, units)
    gz = np.random.default_rng(5).standard_normal((rows, units)).astype(np.float32)
    gx = device.empty((rows, inputs), np.float32)
    g_bias = device.empty(inputs, np.float32) if bias else None
    plan = products.inputs(rows, inputs, units, relu, bias)
    plan(device.asarray(gz), device.asarray(kernel), gx, aux, g_bias)
    expected = gz.astype(np.float64) @ kernel.T
    if relu:
        expected *= previous > 0
    np.testing.assert_allclose(gx.get(), expected, rtol=1e-4, atol=1e-4)
    if bias:
        np.testing.assert_allclose(g_bias.get(), expected.sum(axis=0), rtol=1e-4, atol=1e-4)


def test_a_plan_is_made_once_per_shape_and_a_product_is_one_capturable_launch():
    from tests import standin
    from tests.conftest import use_standin

    use_standin()
    products = gemm.Gemm(standin, gemm.load(standin))
    x = standin.asarray(np.ones((4, 3), np.float32))
    kernel = standin.asarray(np.full((3, 2), 0.5, np.float32))
    out = standin.zeros((4, 2), np.float32)
    plan = products.forward(4, 3, 2, False, False)
    mark = standin.ledger.mark()
    assert products.forward(4, 3, 2, False, False).__closure__ is not None  # cached plan
    assert len(products._plans) == 1
    stream = standin.cuda.Stream()
    with stream:
        stream.begin_capture()
        plan(x, kernel, out, None, None)
        graph = stream.end_capture()
    assert standin.ledger.since(mark)["launches"] == 0 and out.get().sum() == 0  # recorded only
    graph.launch()
    np.testing.assert_array_equal(out.get(), np.full((4, 2), 1.5, np.float32))
    with pytest.raises(NotImplementedError, match="cuBLAS"):  # CuPy's own GEMM would not do
        with stream:
            stream.begin_capture()
            try:
                standin.matmul(x, kernel, out=out)
            finally:
                stream.end_capture()


def test_the_standin_cublaslt_refuses_what_would_corrupt_memory(monkeypatch):
    from tests import standin, standin_cublaslt
    from tests.conftest import use_standin

    use_standin()
    products = gemm.Gemm(standin, standin_cublaslt)
    plan = products.forward(4, 3, 130, False, True)
    x = standin.zeros((4, 3), np.float32)
    kernel = standin.zeros((3, 130), np.float32)
    out = standin.zeros((4, 130), np.float32)
    with pytest.raises(ValueError, match="EPILOGUE_AUX_POINTER is not set"):
        plan(x, kernel, out, None, None)
    short_ld = gemm._Plan(products, 130, 4, 3, gemm.OP_N, gemm.OP_N, 130, 3,
                          standin_cublaslt.Epilogue.RELU_AUX, 130)  # fmt: skip
    with pytest.raises(ValueError, match="multiple of 128"):
        short_ld(kernel, x, out, None, standin.zeros(260, np.uint8))
    # No algorithm within the workspace gpunet offers: planning says so (the caller falls back).
    monkeypatch.setattr(standin_cublaslt, "REQUIRED_WORKSPACE", 2 * gemm.WORKSPACE_BYTES)
    with pytest.raises(gemm.Unsupported, match="no cuBLASLt algorithm"):
        products.forward(8, 3, 2, True, False)


def test_the_standin_rounds_tf32_inputs_to_nearest_even():
    from tests.standin_cublaslt import _tf32

    lsb = 2.0**-10  # TF32 keeps 10 mantissa bits
    values = np.array([1 + lsb / 2, 1 + 1.5 * lsb, 1 + lsb / 2 + 2**-20, -3.0], np.float32)
    np.testing.assert_array_equal(_tf32(values), [1.0, 1 + 2 * lsb, 1 + lsb, -3.0])


def test_the_standin_cublaslt_refuses_handles_it_did_not_make_and_null_pointers():
    from tests import standin
    from tests import standin_cublaslt as lt
    from tests.conftest import use_standin

    use_standin()
    products = gemm.Gemm(standin, lt)
    plan = products._plan(2, 4, 3, gemm.OP_N, gemm.OP_N, 2, 3, lt.Epilogue.DEFAULT, 0)
    found = np.zeros(1, np.int32)

    def heuristic(handle=products.handle, desc=plan.desc, d=plan.d, requested=1):
        lt.matmul_algo_get_heuristic(handle, desc, plan.a, plan.b, d, d, products.preference,
                                     requested, plan.heuristic.ptr, found.ctypes.data)  # fmt: skip

    heuristic()
    assert found[0] == 1
    with pytest.raises(ValueError, match="None is not a handle this cuBLASLt created"):
        heuristic(handle=None)
    with pytest.raises(ValueError, match="is not a descriptor this cuBLASLt created"):
        heuristic(desc=plan.a)
    with pytest.raises(ValueError, match="None is not a layout this cuBLASLt created"):
        heuristic(d=None)
    with pytest.raises(ValueError, match="requested None algorithms; a positive int"):
        heuristic(requested=None)
    with pytest.raises(ValueError, match="2 algorithms requested, room for 1"):
        heuristic(requested=2)
    bytes_attr = lt.MatmulPreferenceAttribute.MAX_WORKSPACE_BYTES
    with pytest.raises(ValueError, match="a null or non-integer pointer"):
        lt.matmul_preference_set_attribute(products.preference, bytes_attr, None, 8)
    with pytest.raises(ValueError):
        lt.get_matmul_preference_attribute_dtype(None)


def test_the_plans_use_the_workspace_gpunet_offers_and_nothing_more():
    # cuBLASLt picks an algorithm within the preference's limit; a limit read wrongly (another
    # dtype) would let it pick one whose workspace gpunet does not have.
    from tests import standin
    from tests import standin_cublaslt as lt
    from tests.conftest import use_standin

    use_standin()
    products = gemm.Gemm(standin, lt)
    bytes_attr = lt.MatmulPreferenceAttribute.MAX_WORKSPACE_BYTES
    assert lt._objects[products.preference][bytes_attr] == gemm.WORKSPACE_BYTES
    assert products.workspace.nbytes == gemm.WORKSPACE_BYTES
    products.forward(4, 3, 2, True, False)
    (plan,) = products._plans.values()
    assert plan.heuristic.workspace_size == gemm.WORKSPACE_BYTES


def test_the_bindings_are_nvmath_pythons_unless_the_array_module_or_environment_names_others(
    monkeypatch,
):
    tried = []
    monkeypatch.setattr(gemm, "_import", tried.append)
    monkeypatch.delenv("GPUNET_CUBLASLT_MODULE", raising=False)
    gemm.load(object())  # CuPy names none
    gemm.load(type("Module", (), {"CUBLASLT_BINDINGS": "tests.standin_cublaslt"}))
    monkeypatch.setenv("GPUNET_CUBLASLT_MODULE", "site.cublaslt")
    gemm.load(object())
    assert tried == ["nvmath.bindings.cublasLt", "tests.standin_cublaslt", "site.cublaslt"]


def test_a_shape_is_planned_once(monkeypatch):
    from tests import standin
    from tests import standin_cublaslt as lt
    from tests.conftest import use_standin

    use_standin()
    products = gemm.Gemm(standin, lt)
    made = []
    create = lt.matmul_desc_create
    monkeypatch.setattr(lt, "matmul_desc_create", lambda *a: made.append(a) or create(*a))
    for _ in range(2):
        products.forward(4, 3, 2, True, False)
        products.weights(4, 3, 2, True)
    assert len(made) == 2 and len(products._plans) == 2
