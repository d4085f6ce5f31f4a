"""The step's matrix products through cuBLASLt (nvmath-python's low-level bindings), with the
bias, ReLU, ReLU-backward and bias-gradient epilogues fused in, callable during CUDA stream
capture (CuPy's own cuBLAS calls are not: its setStream raises while a stream captures).

Each product is planned once per shape (descriptors, layouts, the algorithm from cuBLASLt's
heuristic, a preallocated workspace); a call only sets the pointers and launches. Row-major
arrays are column-major matrices transposed, so for a Dense layer (x: N x I, kernel W: I x U):

    forward   y^T  (U x N) = W^T x^T   A = W, B = x        epilogue BIAS or RELU_AUX_BIAS
    weights   gW^T (U x I) = gz^T x    A = gz, B = x (T)   epilogue BGRADA: gb = sum of gz
    inputs    gx^T (I x N) = W gz^T    A = W (T), B = gz   epilogue DRELU_BGRAD with the layer
                                                           before's ReLU mask: its gz and gb

Exact float32 by default (CUBLAS_COMPUTE_32F: no TF32); precision="tf32" lets the tensor cores
round each product's inputs to TF32 (10-bit mantissas), and precision="bf16" takes A and B as
bfloat16 words the caller rounded (`to_bf16`); accumulation, outputs, bias and the weights'
master copy stay float32. Both for large layers. `load(xp)` finds the bindings: the module
`GPUNET_CUBLASLT_MODULE` names, else the one a CuPy-like array module names as its
`CUBLASLT_BINDINGS` (the test stand-in pairs with its own), else nvmath-python's.
"""

from __future__ import annotations

import functools
import importlib
import os

import numpy as np

# C enum values of the CUDA and cuBLAS headers (library_types.h, cublas_api.h): stable ABI.
CUDA_R_32F = 0
CUDA_R_16BF = 14
CUBLAS_COMPUTE_32F = 68
CUBLAS_COMPUTE_32F_FAST_TF32 = 77
# precision -> (compute type, the type of A and B); C, D, bias and scales are float32 always.
PRECISIONS = {
    "float32": (CUBLAS_COMPUTE_32F, CUDA_R_32F),
    "tf32": (CUBLAS_COMPUTE_32F_FAST_TF32, CUDA_R_32F),
    "bf16": (CUBLAS_COMPUTE_32F, CUDA_R_16BF),
}
OP_N, OP_T = 0, 1
WORKSPACE_BYTES = 4 << 20  # cuBLASLt's recommendation for Hopper is 32 MiB for large GEMMs
AUX_ROW_BITS = 128  # a ReLU mask's leading dimension, in bits: a multiple of 128


class Unsupported(RuntimeError):
    """cuBLASLt has no algorithm for this product and epilogue (the caller uses kernels)."""


def load(xp):
    """The cuBLASLt bindings module for array module `xp`, or None when it is missing."""
    name = os.environ.get("GPUNET_CUBLASLT_MODULE") or getattr(
        xp, "CUBLASLT_BINDINGS", "nvmath.bindings.cublasLt"
    )
    return _import(name)


@functools.cache
def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def aux_shape(units: int, rows: int) -> tuple[int]:
    """The uint8 buffer of a ReLU mask for a (rows, units) output: one bit per element."""
    ld = -(-units // AUX_ROW_BITS) * AUX_ROW_BITS
    return (ld * rows // 8,)


class _Plan:
    """One planned product: D (m x n, column-major) = op(A) op(B), with an epilogue."""

    def __init__(self, gemm, m, n, k, transa, transb, lda, ldb, epilogue, aux_ld):
        lt = self.lt = gemm.lt
        self.gemm = gemm
        attr = lt.MatmulDescAttribute
        self.desc = lt.matmul_desc_create(gemm.compute_type, CUDA_R_32F)
        self._set(attr.TRANSA, transa)
        self._set(attr.TRANSB, transb)
        self._set(attr.EPILOGUE, epilogue)
        if aux_ld:
            self._set(attr.EPILOGUE_AUX_LD, aux_ld)
        inputs = gemm.input_type
        self.a = lt.matrix_layout_create(inputs, *((m, k) if transa == OP_N else (k, m)), lda)
        self.b = lt.matrix_layout_create(inputs, *((k, n) if transb == OP_N else (n, k)), ldb)
        self.d = lt.matrix_layout_create(CUDA_R_32F, m, n, m)
        heuristic = lt.MatmulHeuristicResult()
        found = np.zeros(1, np.int32)
        lt.matmul_algo_get_heuristic(
            gemm.handle, self.desc, self.a, self.b, self.d, self.d, gemm.preference, 1,
            heuristic.ptr, found.ctypes.data,
        )  # fmt: skip
        if found[0] == 0 or heuristic.workspace_size > WORKSPACE_BYTES:
            raise Unsupported(f"no cuBLASLt algorithm for {m}x{n}x{k} with epilogue {epilogue}")
        self.heuristic = heuristic  # its algo is read by every launch

    def _set(self, attribute, value) -> None:
        dtype = self.lt.get_matmul_desc_attribute_dtype(attribute)
        holder = np.array(value, dtype=dtype)
        self.lt.matmul_desc_set_attribute(self.desc, attribute, holder.ctypes.data, holder.nbytes)

    def __call__(self, a, b, d, bias, aux) -> None:
        attr = self.lt.MatmulDescAttribute
        if bias is not None:
            self._set(attr.BIAS_POINTER, bias.data.ptr)
        if aux is not None:
            self._set(attr.EPILOGUE_AUX_POINTER, aux.data.ptr)
        gemm = self.gemm
        self.lt.matmul(
            gemm.handle, self.desc, gemm.one.ctypes.data, a.data.ptr, self.a, b.data.ptr, self.b,
            gemm.zero.ctypes.data, d.data.ptr, self.d, d.data.ptr, self.d, self.heuristic.ptr,
            gemm.workspace.data.ptr, WORKSPACE_BYTES, gemm.xp.cuda.get_current_stream().ptr,
        )  # fmt: skip


class Gemm:
    """The Dense products of one model on one device: plans made once per shape and role.

    Args:
        xp: CuPy (or the stand-in).
        lt: the cuBLASLt bindings module (`load(xp)`).
        precision: "float32" (exact), "tf32" or "bf16" (A and B given as bfloat16 words).
    """

    def __init__(self, xp, lt, precision: str = "float32"):
        self.xp, self.lt = xp, lt
        self.compute_type, self.input_type = PRECISIONS[precision]
        self.handle = lt.create()
        self.preference = lt.matmul_preference_create()
        bytes_attr = lt.MatmulPreferenceAttribute.MAX_WORKSPACE_BYTES
        holder = np.array(WORKSPACE_BYTES, lt.get_matmul_preference_attribute_dtype(bytes_attr))
        lt.matmul_preference_set_attribute(
            self.preference, bytes_attr, holder.ctypes.data, holder.nbytes
        )
        self.workspace = xp.empty(WORKSPACE_BYTES, dtype=xp.uint8)
        # alpha and beta in host memory (the default pointer mode): constants, so a captured
        # graph holding their values at capture is right.
        self.one, self.zero = np.ones(1, np.float32), np.zeros(1, np.float32)
        self._plans: dict = {}

    def _plan(self, *key):
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _Plan(self, *key)
        return plan

    def forward(self, rows: int, inputs: int, units: int, bias: bool, relu: bool):
        """The plan of out = x @ kernel (+ bias) (then ReLU, its mask into aux), called as
        plan(x, kernel, out, bias, aux)."""
        epilogue = self.lt.Epilogue
        if relu:
            mode = epilogue.RELU_AUX_BIAS if bias else epilogue.RELU_AUX
        else:
            mode = epilogue.BIAS if bias else epilogue.DEFAULT
        aux_ld = aux_shape(units, 1)[0] * 8 if relu else 0
        plan = self._plan(units, rows, inputs, OP_N, OP_N, units, inputs, mode, aux_ld)
        return lambda x, kernel, out, bias=None, aux=None: plan(kernel, x, out, bias, aux)

    def weights(self, rows: int, inputs: int, units: int, bias: bool):
        """The plan of g_kernel = x^T @ gz (and g_bias = the column sums of gz), called as
        plan(x, gz, g_kernel, g_bias)."""
        mode = self.lt.Epilogue.BGRADA if bias else self.lt.Epilogue.DEFAULT
        plan = self._plan(units, inputs, rows, OP_N, OP_T, units, inputs, mode, 0)
        return lambda x, gz, g_kernel, g_bias=None: plan(gz, x, g_kernel, g_bias, None)

    def inputs(self, rows: int, inputs: int, units: int, relu: bool, bias: bool):
        """The plan of gx = gz @ kernel^T; with relu, times ReLU's derivative from the mask
        of the layer before (aux) and, with bias, that layer's bias gradient into g_bias.
        Called as plan(gz, kernel, gx, aux, g_bias)."""
        epilogue = self.lt.Epilogue
        if relu:
            mode = epilogue.DRELU_BGRAD if bias else epilogue.DRELU
            aux_ld = aux_shape(inputs, 1)[0] * 8
        else:
            mode, aux_ld = epilogue.DEFAULT, 0
        plan = self._plan(inputs, rows, units, OP_T, OP_N, units, units, mode, aux_ld)
        return lambda gz, kernel, gx, aux=None, g_bias=None: plan(kernel, gz, gx, g_bias, aux)
