"""A CPU stand-in for nvmath-python's cuBLASLt bindings (`nvmath.bindings.cublasLt`), over the
strict CuPy stand-in's memory: the same functions, taking the same raw pointers, computing
each product with NumPy from the descriptors it was given.

It follows cuBLASLt's documented semantics (column-major matrices, D = alpha op(A) op(B) +
beta C, then the epilogue) and refuses what cuBLASLt refuses or what would corrupt memory on
a GPU: a workspace smaller than the algorithm asked for, a ReLU mask whose leading dimension
is not a multiple of 128 bits or is shorter than D's rows, an epilogue pointer left unset, a
launch on another stream than the current one, a null pointer for a value it reads, a handle,
descriptor or layout it did not create (or of another kind), an algorithm count that is not a
positive int or exceeds the results' room. Its heuristic, like cuBLASLt's, may pick an
algorithm that uses all the workspace the preference allows (this one's takes up to 32 MiB), so
a preference read wrongly shows in the plan. A `matmul` is one launch in the stand-in's ledger,
and, unlike CuPy's cuBLAS calls, it may be captured into a graph.

Attribute values are cuBLASLt's own (cublasLt.h), so code written against this module uses
the real enum values.
"""

from __future__ import annotations

import ctypes
import enum
import itertools

import numpy as np

from tests import standin


class Epilogue(enum.IntEnum):
    DEFAULT = 1
    RELU = 2
    RELU_AUX = 130
    BIAS = 4
    RELU_BIAS = 6
    RELU_AUX_BIAS = 134
    DRELU = 136
    DRELU_BGRAD = 152
    BGRADA = 256
    BGRADB = 512


class MatmulDescAttribute(enum.IntEnum):
    COMPUTE_TYPE = 0
    SCALE_TYPE = 1
    POINTER_MODE = 2
    TRANSA = 3
    TRANSB = 4
    TRANSC = 5
    EPILOGUE = 7
    BIAS_POINTER = 8
    EPILOGUE_AUX_POINTER = 11
    EPILOGUE_AUX_LD = 12


class MatmulPreferenceAttribute(enum.IntEnum):
    MAX_WORKSPACE_BYTES = 1


_DESC_DTYPES = {
    MatmulDescAttribute.COMPUTE_TYPE: np.int32,
    MatmulDescAttribute.SCALE_TYPE: np.int32,
    MatmulDescAttribute.POINTER_MODE: np.int32,
    MatmulDescAttribute.TRANSA: np.int32,
    MatmulDescAttribute.TRANSB: np.int32,
    MatmulDescAttribute.TRANSC: np.int32,
    MatmulDescAttribute.EPILOGUE: np.uint32,
    MatmulDescAttribute.BIAS_POINTER: np.intp,
    MatmulDescAttribute.EPILOGUE_AUX_POINTER: np.intp,
    MatmulDescAttribute.EPILOGUE_AUX_LD: np.int64,
}
CUDA_R_32F, CUDA_R_16BF, COMPUTE_32F, COMPUTE_32F_FAST_TF32 = 0, 14, 68, 77
_RELU_AUX_BIAS = Epilogue.RELU_AUX_BIAS
REQUIRED_WORKSPACE = 1 << 20  # the least workspace this stand-in's algorithms run with
PREFERRED_WORKSPACE = 32 << 20  # what its fastest algorithm would use

_objects: dict = {}
_kinds: dict = {}  # handle -> what it is: "handle", "descriptor", "layout", "preference", ...
_ids = itertools.count(1)


def _new(value, kind: str) -> int:
    handle = next(_ids)
    _objects[handle], _kinds[handle] = value, kind
    return handle


def _live(handle, kind: str, where: str):
    """The object behind `handle`, which must be a live one of this kind (cuBLASLt would read
    whatever lies there)."""
    if not isinstance(handle, int) or _kinds.get(handle) != kind:
        raise ValueError(f"{where}: {handle!r} is not a {kind} this cuBLASLt created")
    return _objects[handle]


def _read(ptr: int, size: int, dtype):
    if not isinstance(ptr, int) or ptr == 0:
        raise ValueError(f"a value is read from address {ptr!r}: a null or non-integer pointer")
    return np.frombuffer(ctypes.string_at(ptr, size), dtype=dtype)[0]


def _matrix(ptr: int, layout: dict):
    """The column-major (rows x cols, leading dimension ld) matrix at ptr: a writable view of
    float32 memory, or the float32 values of bfloat16 words (a copy: inputs only)."""
    rows, cols, ld = layout["rows"], layout["cols"], layout["ld"]
    count = ld * (cols - 1) + rows
    if layout["type"] == CUDA_R_16BF:
        words = np.ctypeslib.as_array((ctypes.c_uint16 * count).from_address(ptr))
        flat = (words.astype(np.uint32) << np.uint32(16)).view(np.float32)
        return np.lib.stride_tricks.as_strided(flat, (rows, cols), (4, 4 * ld)).copy()
    flat = np.ctypeslib.as_array((ctypes.c_float * count).from_address(ptr))
    return np.lib.stride_tricks.as_strided(flat, (rows, cols), (4, 4 * ld))


def create() -> int:
    return _new(None, "handle")


def get_matmul_desc_attribute_dtype(attr):
    return _DESC_DTYPES[attr]


def get_matmul_preference_attribute_dtype(attr):
    return {MatmulPreferenceAttribute.MAX_WORKSPACE_BYTES: np.uint64}[
        MatmulPreferenceAttribute(attr)
    ]


def matmul_desc_create(compute_type: int, scale_type: int) -> int:
    if compute_type not in (COMPUTE_32F, COMPUTE_32F_FAST_TF32) or scale_type != CUDA_R_32F:
        raise ValueError("the stand-in computes CUBLAS_COMPUTE_32F(_FAST_TF32), float32 scales")
    return _new({MatmulDescAttribute.TRANSA: 0, MatmulDescAttribute.TRANSB: 0,
                 MatmulDescAttribute.EPILOGUE: int(Epilogue.DEFAULT),
                 MatmulDescAttribute.POINTER_MODE: 0,
                 "tf32": compute_type != COMPUTE_32F}, "descriptor")  # fmt: skip


def matmul_desc_set_attribute(desc: int, attr: int, buf: int, size: int) -> None:
    attr = MatmulDescAttribute(attr)  # (the stand-in's "tf32" flag is set at creation)
    dtype = np.dtype(_DESC_DTYPES[attr])
    if size != dtype.itemsize:
        raise ValueError(f"attribute {attr.name}: {size} bytes given, {dtype.itemsize} expected")
    _live(desc, "descriptor", "matmul_desc_set_attribute")[attr] = int(_read(buf, size, dtype))


def matrix_layout_create(dtype: int, rows: int, cols: int, ld: int) -> int:
    if dtype not in (CUDA_R_32F, CUDA_R_16BF):
        raise ValueError("the stand-in takes float32 and bfloat16 matrices only")
    if ld < rows:
        raise ValueError(f"leading dimension {ld} < rows {rows}")
    layout = {"rows": int(rows), "cols": int(cols), "ld": int(ld), "type": int(dtype)}
    return _new(layout, "layout")


def matmul_preference_create() -> int:
    return _new({}, "preference")


def matmul_preference_set_attribute(pref: int, attr: int, buf: int, size: int) -> None:
    attr = MatmulPreferenceAttribute(attr)
    dtype = np.dtype(get_matmul_preference_attribute_dtype(attr))
    if size != dtype.itemsize:
        raise ValueError(f"attribute {attr.name}: {size} bytes given, {dtype.itemsize} expected")
    _live(pref, "preference", "matmul_preference_set_attribute")[attr] = int(
        _read(buf, size, dtype)
    )


class MatmulHeuristicResult:
    """One heuristic result: `algo` (here, what the heuristic checked) and `workspace_size`."""

    def __init__(self, size=1):
        self.size = size  # room for this many results
        self._data = np.zeros(8, np.uint64)
        self.workspace_size = 0
        _objects[self.ptr], _kinds[self.ptr] = self, "heuristic result"

    @property
    def ptr(self) -> int:
        return self._data.ctypes.data


def _op_shape(layout: dict, trans: int) -> tuple[int, int]:
    return (layout["rows"], layout["cols"]) if trans == 0 else (layout["cols"], layout["rows"])


def matmul_algo_get_heuristic(handle, desc, adesc, bdesc, cdesc, ddesc, pref, requested,
                              results, count) -> None:  # fmt: skip
    where = "matmul_algo_get_heuristic"
    _live(handle, "handle", where)
    d = _live(desc, "descriptor", where)
    layout_a, layout_b, _, layout_d = (
        _live(x, "layout", where) for x in (adesc, bdesc, cdesc, ddesc)
    )
    if not isinstance(requested, int) or isinstance(requested, bool) or requested < 1:
        raise ValueError(f"{where}: requested {requested!r} algorithms; a positive int is needed")
    result = _live(results, "heuristic result", where)
    if requested > result.size:  # cuBLASLt would write past the results' memory
        raise ValueError(f"{where}: {requested} algorithms requested, room for {result.size}")
    if not isinstance(count, int) or count == 0:
        raise ValueError(f"{where}: the count is written to address {count!r}")
    (m, k), (k2, n) = (_op_shape(layout_a, d[MatmulDescAttribute.TRANSA]),
                       _op_shape(layout_b, d[MatmulDescAttribute.TRANSB]))  # fmt: skip
    found = np.frombuffer((ctypes.c_int32 * 1).from_address(count), np.int32)
    allowed = _live(pref, "preference", where).get(MatmulPreferenceAttribute.MAX_WORKSPACE_BYTES, 0)
    ok = k == k2 and (layout_d["rows"], layout_d["cols"]) == (m, n)
    ok = ok and allowed >= REQUIRED_WORKSPACE
    found[0] = 1 if ok else 0
    if ok:
        result.workspace_size = min(allowed, PREFERRED_WORKSPACE)
        result.checked = (desc, adesc, bdesc, ddesc)


def _aux(d: dict, rows: int, cols: int, epilogue: str):
    ld = d.get(MatmulDescAttribute.EPILOGUE_AUX_LD, 0)
    ptr = d.get(MatmulDescAttribute.EPILOGUE_AUX_POINTER, 0)
    if not ptr:
        raise ValueError(f"{epilogue}: EPILOGUE_AUX_POINTER is not set")
    if ld % 128 or ld < rows:
        raise ValueError(
            f"{epilogue}: EPILOGUE_AUX_LD {ld} must be a multiple of 128 and >= {rows}"
        )
    nbytes = ld * cols // 8
    return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr)).reshape(cols, ld // 8)


def _bias(d: dict, length: int, epilogue: str):
    ptr = d.get(MatmulDescAttribute.BIAS_POINTER, 0)
    if not ptr:
        raise ValueError(f"{epilogue}: BIAS_POINTER is not set")
    return np.ctypeslib.as_array((ctypes.c_float * length).from_address(ptr))


def matmul(handle, desc, alpha, a, adesc, b, bdesc, beta, c, cdesc, d, ddesc, algo, workspace,
           workspace_size, stream) -> None:  # fmt: skip
    _live(handle, "handle", "matmul")
    attrs = dict(_live(desc, "descriptor", "matmul"))
    if attrs[MatmulDescAttribute.POINTER_MODE] != 0:
        raise ValueError("the stand-in reads alpha and beta from host memory only")
    result = _objects.get(algo)
    if result is None or getattr(result, "checked", None) != (desc, adesc, bdesc, ddesc):
        raise ValueError(
            "matmul: the algorithm was not found by the heuristic for these descriptors"
        )
    if workspace_size < result.workspace_size or not workspace:
        raise ValueError(f"matmul: a workspace of {result.workspace_size} bytes is required")
    if stream != standin.cuda.get_current_stream().ptr:
        raise standin.CaptureError("matmul: issued on a stream other than the current one")
    layouts = [_live(x, "layout", "matmul") for x in (adesc, bdesc, cdesc, ddesc)]
    if layouts[0]["type"] != layouts[1]["type"] or {layouts[2]["type"], layouts[3]["type"]} != {
        CUDA_R_32F
    }:
        raise ValueError("matmul: A and B of one type, C and D float32 (what gpunet plans)")
    scale = float(_read(alpha, 4, np.float32)), float(_read(beta, 4, np.float32))
    epilogue = Epilogue(attrs[MatmulDescAttribute.EPILOGUE])
    transa, transb = attrs[MatmulDescAttribute.TRANSA], attrs[MatmulDescAttribute.TRANSB]

    tf32 = attrs["tf32"]

    def compute():
        A, B = _matrix(a, layouts[0]), _matrix(b, layouts[1])
        A, B = (A if transa == 0 else A.T), (B if transb == 0 else B.T)
        if tf32:  # the tensor cores' inputs: 10-bit mantissas (for BGRADA, A itself is summed)
            A_in, B_in = _tf32(A), _tf32(B)
        else:
            A_in, B_in = A, B
        C, D = _matrix(c, layouts[2]), _matrix(d, layouts[3])
        out = np.matmul(A_in, B_in, dtype=np.float32)
        if scale[0] != 1.0:
            out *= np.float32(scale[0])
        if scale[1] != 0.0:
            out += np.float32(scale[1]) * C
        m, n = out.shape
        name = epilogue.name
        if epilogue in (Epilogue.BIAS, Epilogue.RELU_BIAS, Epilogue.RELU_AUX_BIAS):
            out += _bias(attrs, m, name)[:, None]
        if epilogue in (Epilogue.RELU_AUX, Epilogue.RELU_AUX_BIAS):
            aux = _aux(attrs, m, n, name)
            aux[...] = _pack(out > 0, aux.shape[1])
        if epilogue in (
            Epilogue.RELU,
            Epilogue.RELU_BIAS,
            Epilogue.RELU_AUX,
            Epilogue.RELU_AUX_BIAS,
        ):
            np.maximum(out, 0.0, out=out)
        if epilogue in (Epilogue.DRELU, Epilogue.DRELU_BGRAD):
            mask = np.unpackbits(_aux(attrs, m, n, name), axis=1, bitorder="little")[:, :m].T
            out *= mask.astype(np.float32)
        if epilogue == Epilogue.DRELU_BGRAD:
            _bias(attrs, m, name)[...] = out.sum(axis=1, dtype=np.float32)
        if epilogue == Epilogue.BGRADA:
            _bias(attrs, m, name)[...] = A.sum(axis=1, dtype=np.float32)
        if epilogue == Epilogue.BGRADB:
            _bias(attrs, n, name)[...] = B.sum(axis=0, dtype=np.float32)
        D[...] = out

    standin._launch(f"cublasLt matmul ({epilogue.name})", compute, out=True)


def _tf32(matrix: np.ndarray) -> np.ndarray:
    """float32 rounded to TF32 (to nearest, ties to even: 13 low mantissa bits cleared)."""
    bits = np.ascontiguousarray(matrix, np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0xFFF) + ((bits >> np.uint32(13)) & np.uint32(1))) & np.uint32(
        0xFFFFE000
    )
    return rounded.view(np.float32)


def _pack(bits: np.ndarray, row_bytes: int) -> np.ndarray:
    """(m, n) booleans -> (n, row_bytes) bytes: column j's m bits, little-endian in each byte."""
    packed = np.packbits(bits, axis=0, bitorder="little").T  # (n, ceil(m / 8))
    out = np.zeros((bits.shape[1], row_bytes), np.uint8)
    out[:, : packed.shape[1]] = packed
    return out
