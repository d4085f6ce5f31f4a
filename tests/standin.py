"""A strict CPU stand-in for CuPy: NumPy underneath, CuPy's refusals on top, and a ledger of
what a GPU would pay for.

CI has no GPU, so the CuPy path of gpunet runs on this module instead (`GPUNET_CUPY_MODULE=
tests.standin`, or `pytest --backend standin`). It computes with NumPy, but behaves like CuPy
where the difference breaks code written against NumPy, and counts, per call site:

- launches: every elementwise op, reduction, gather/scatter, fill and cuBLAS call (one each);
- syncs: every device-to-host read: `float()`, `int()`, `bool()`, `.item()`, `.get()`,
  `.tolist()`, printing, `asnumpy`, and the ops CuPy syncs inside (`bincount`, `nonzero`,
  `argwhere`, `unique`, boolean-mask indexing);
- h2d: every host-to-device copy (`asarray`/`array` of host data, host values set in place);
- allocs: every new device array (an op without `out=`, a creation, a copy; not views);
- collectives: every NCCL all-reduce (`cuda.nccl`: across the ranks of an MPI job, through
  MPI on the host memory behind the device pointers).

What it refuses, as CuPy does (the CuPy sources it follows, cupy/cupy):
- `numpy.asarray(device_array)` raises TypeError (cupy/_core/core.pyx, `__array__`);
- a NumPy array as an operand of a device op raises TypeError ("Unsupported type", from
  cupy/_core/_kernel.pyx); Python and NumPy scalars are fine;
- `Generator.random(out=...)` without `size` draws ONE value and broadcasts it into `out`
  (cupy/random/_generator_api.pyx: size None becomes `()`), and `bit_generator.state` is a
  method, not a dict to read or assign;
- during stream capture (`Stream.begin_capture()` .. `end_capture()`), a sync or a new device
  array raises CaptureError (CUDA refuses both while capturing), and a cuBLAS call (matmul,
  dot) raises NotImplementedError (cupy_backends/cuda/libs/cublas.pyx, `setStream`);
  `Graph.launch()` replays the captured ops on the same buffers.
"""

from __future__ import annotations

import builtins
import collections
import os
import sys
import types
import weakref

import numpy as _np

__version__ = "14.2.0 (strict CPU stand-in)"
CUBLASLT_BINDINGS = "tests.standin_cublaslt"  # the cuBLASLt this stand-in's memory pairs with

_FILE = os.path.abspath(__file__)
_NUMPY_DIR = os.path.dirname(_np.__file__)
IMPLICIT = (
    "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a "
    "NumPy array explicitly."
)


class CaptureError(RuntimeError):
    """What CUDA answers for a sync or an allocation while a stream is being captured."""


# ----- the ledger -------------------------------------------------------------------------------


_SHIM = os.sep + os.path.join("gpunet", "backend.py")


def _call_site() -> str:
    """The first frame outside this file, NumPy and gpunet's backend shim (which only passes
    calls on), as 'package/file.py:line'."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name != _FILE and not name.startswith(_NUMPY_DIR) and not name.endswith(_SHIM):
            parts = name.replace(os.sep, "/").split("/")
            for anchor in ("gpunet", "tests", "bench"):
                if anchor in parts:
                    name = "/".join(parts[len(parts) - 1 - parts[::-1].index(anchor) :])
                    break
            return f"{name}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


class Ledger:
    """Events a GPU would pay for: (kind, call site, op), in order."""

    KINDS = ("launches", "syncs", "h2d", "pageable", "allocs", "graph_launches", "collectives")

    def __init__(self):
        self.events: list[tuple[str, str, str]] = []

    def add(self, kind: str, what: str) -> None:
        self.events.append((kind, _call_site(), what))

    def mark(self) -> int:
        """A position in the ledger; `since(mark)` counts what came after it."""
        return len(self.events)

    def since(self, mark: int = 0) -> dict[str, int]:
        counts = dict.fromkeys(self.KINDS, 0)
        for kind, _, _ in self.events[mark:]:
            counts[kind] += 1
        return counts

    def sites(self, kind: str, mark: int = 0) -> collections.Counter:
        """Call site -> number of events of `kind` after `mark`."""
        return collections.Counter(site for k, site, _ in self.events[mark:] if k == kind)

    def reset(self) -> None:
        self.events.clear()


ledger = Ledger()
_capturing: list = []  # the Graph being captured, when a stream is capturing


def _sync(what: str) -> None:
    if _capturing:
        raise CaptureError(f"{what}: a device-to-host sync is not allowed during stream capture")
    ledger.add("syncs", what)


def _alloc(what: str) -> None:
    if _capturing:
        raise CaptureError(f"{what}: allocating device memory is not allowed during capture")
    ledger.add("allocs", what)


def _h2d(what: str) -> None:
    if _capturing:
        raise CaptureError(f"{what}: a host-to-device copy is not allowed during capture")
    ledger.add("h2d", what)


def _launch(what: str, compute, out=None, cublas: bool = False):
    """Run one device op: `compute()` writes into `out` (returned) or returns a new array."""
    if _capturing:
        if not _streams[-1].capturing:
            raise CaptureError(f"{what}: issued on a stream other than the one capturing")
        if cublas:
            raise NotImplementedError(
                f"{what}: cuBLAS cannot be called during stream capture (CuPy's setStream)"
            )
        if out is None:
            _alloc(what)
        # CUDA records the work and runs none of it until the graph is launched.
        _capturing[-1].ops.append(compute)
        return out
    result = compute()
    ledger.add("launches", what)
    if out is not None:
        return out
    _alloc(what)
    return _wrap(result)


# ----- arrays -----------------------------------------------------------------------------------


def _wrap(value):
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, (_np.ndarray, _np.generic)):
        array = object.__new__(ndarray)
        array._a = _np.asarray(value)
        return array
    return value


def _operand(value, what: str):
    """The NumPy data behind a device operand; host arrays are refused as CuPy refuses them."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, (bool, int, float, complex, _np.generic)):
        return value
    raise TypeError(f"{what}: Unsupported type {type(value)}")


def _target(out, what: str):
    if out is None:
        return None
    if not isinstance(out, ndarray):
        raise TypeError(f"{what}: out must be a device array, received {type(out)}")
    return out._a


def _index(key, what: str):
    """A NumPy index for `key`: device index arrays unwrapped (boolean ones sync, as in CuPy),
    host index arrays copied to the device."""
    parts = key if isinstance(key, tuple) else (key,)
    raw, advanced = [], False
    for part in parts:
        if isinstance(part, ndarray):
            advanced = True
            if part.dtype == _np.bool_:
                _sync(f"{what} with a boolean mask")
            raw.append(part._a)
        elif isinstance(part, (_np.ndarray, list)):
            advanced = True
            _h2d(f"{what} with a host index")
            raw.append(_np.asarray(part))
        else:
            raw.append(part)
    return tuple(raw), advanced


class ndarray:  # noqa: N801 (CuPy's name)
    """A device array: its data is a NumPy array no host code may see without a counted sync."""

    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float):
        _alloc("ndarray")
        self._a = _np.empty(shape, dtype)

    # -- what CuPy forbids or counts
    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        own = _UFUNCS.get(ufunc.__name__)
        if method != "__call__" or own is None:
            return NotImplemented
        return own(*inputs, **kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        own = _FUNCTIONS.get(func.__name__)
        return NotImplemented if own is None else own(*args, **kwargs)

    def get(self, stream=None, out=None):
        _sync("get")
        return self._a.copy()

    def item(self):
        _sync("item")
        return self._a.item()

    def tolist(self):
        _sync("tolist")
        return self._a.tolist()

    def __float__(self):
        _sync("float")
        return float(self._a)

    def __int__(self):
        _sync("int")
        return int(self._a)

    def __index__(self):
        _sync("index")
        return self._a.__index__()

    def __bool__(self):
        _sync("bool")
        return bool(self._a)

    def __repr__(self):
        _sync("repr")
        return repr(self._a).replace("array", "standin.array", 1)

    __str__ = __repr__

    def __format__(self, spec):
        _sync("format")
        return format(self._a[()] if self._a.ndim == 0 else self._a, spec)

    # -- metadata and views (free on a GPU)
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: _wrap(self._a.T))
    base = property(lambda self: self._a.base)
    # The device address (a host address here): raw kernels and cuBLASLt take pointers.
    data = property(lambda self: types.SimpleNamespace(ptr=self._a.ctypes.data))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        for i in range(len(self._a)):
            yield _wrap(self._a[i, ...])

    def reshape(self, *shape, order="C"):
        view = self._a.reshape(*shape, order=order)
        if _np.shares_memory(view, self._a):
            return _wrap(view)
        return _launch("reshape (copy)", lambda: self._a.reshape(*shape, order=order))

    def ravel(self):
        return self.reshape(-1)

    def transpose(self, *axes):
        return _wrap(self._a.transpose(*axes))

    def view(self, dtype=None):
        return _wrap(self._a.view(dtype))

    def __getitem__(self, key):
        raw, advanced = _index(key, "getitem")
        if advanced:
            return _launch("gather", lambda: self._a[raw])
        if Ellipsis not in raw:
            raw = raw + (Ellipsis,)  # a 0-d view, never a host scalar
        return _wrap(self._a[raw])

    def __setitem__(self, key, value):
        raw, _ = _index(key, "setitem")
        if isinstance(value, (_np.ndarray, list)):
            _h2d("setitem from host")
            value = _np.asarray(value)
        else:
            value = _operand(value, "setitem")
        _launch("setitem", lambda: self._a.__setitem__(raw, value), out=self)

    def set(self, arr, stream=None):
        """CuPy's host-to-device copy into this array: asynchronous only from pinned memory on
        a stream; from pageable memory the host waits (counted as "pageable")."""
        if not isinstance(arr, _np.ndarray) or arr.shape != self.shape or arr.dtype != self.dtype:
            raise ValueError("set: a host array of the same shape and dtype is required")
        _h2d("set")
        if stream is None or not _is_pinned(arr):
            ledger.add("pageable", "set")
        self._a[...] = arr

    # -- device ops
    def astype(self, dtype, copy=True, **kwargs):
        if not copy and _np.dtype(dtype) == self.dtype:
            return self
        return _launch("astype", lambda: self._a.astype(dtype))

    def copy(self, order="C"):
        return _launch("copy", lambda: self._a.copy(order))

    def fill(self, value):
        value = _operand(value, "fill")
        _launch("fill", lambda: self._a.fill(value), out=self)

    def take(self, indices, axis=None, out=None, mode=None):
        return take(self, indices, axis=axis, out=out)

    def clip(self, a_min=None, a_max=None, out=None):
        return clip(self, a_min, a_max, out=out)

    def dot(self, other, out=None):
        return dot(self, other, out=out)


def _reduction(name: str):
    def method(self, axis=None, out=None, **kwargs):
        raw_out = _target(out, name)
        reduce = getattr(self._a, name)
        if raw_out is None or kwargs.get("dtype") is not None:
            return _launch(name, lambda: reduce(axis=axis, out=raw_out, **kwargs), out)

        # CuPy picks a reduction's routine from its input and `dtype`, never from `out` (NumPy
        # accumulates in out's type): a float32 sum into a float64 `out` adds in float32.
        def into_out():
            _np.copyto(raw_out, reduce(axis=axis, **kwargs), casting="unsafe")

        return _launch(name, into_out, out)

    def function(a, axis=None, out=None, **kwargs):
        if not isinstance(a, ndarray):
            raise TypeError(f"{name}: Unsupported type {type(a)}")
        return method(a, axis=axis, out=out, **kwargs)

    method.__name__ = function.__name__ = name
    setattr(ndarray, name, method)
    return function


# ----- ufuncs -----------------------------------------------------------------------------------


class ufunc:  # noqa: N801 (CuPy's name)
    """An elementwise device op: one launch, into `out` or a new array."""

    def __init__(self, np_ufunc):
        self._f = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.nin, self.nout = np_ufunc.nin, np_ufunc.nout

    def __call__(self, *args, out=None, **kwargs):
        raw = [_operand(a, self.__name__) for a in args]
        raw_out = _target(out, self.__name__)
        return _launch(self.__name__, lambda: self._f(*raw, out=raw_out, **kwargs), out)

    def __repr__(self):
        return f"<standin ufunc {self.__name__}>"


_UFUNC_NAMES = (
    "add subtract multiply divide true_divide floor_divide remainder power negative absolute "
    "sign maximum minimum fmax fmin exp expm1 log log1p logaddexp sqrt square tanh reciprocal "
    "greater greater_equal less less_equal equal not_equal logical_and logical_or logical_not "
    "bitwise_and bitwise_or bitwise_xor invert left_shift right_shift isfinite isnan isinf "
    "floor ceil rint"
).split()
_UFUNCS = {name: ufunc(getattr(_np, name)) for name in _UFUNC_NAMES}
globals().update(_UFUNCS)
abs = _UFUNCS["absolute"]  # noqa: A001 (CuPy's name)
mod = _UFUNCS["remainder"]

_OPERATORS = {
    "add": "add",
    "sub": "subtract",
    "mul": "multiply",
    "truediv": "true_divide",
    "floordiv": "floor_divide",
    "mod": "remainder",
    "pow": "power",
    "and": "bitwise_and",
    "or": "bitwise_or",
    "xor": "bitwise_xor",
    "lshift": "left_shift",
    "rshift": "right_shift",
}


def _operators() -> None:
    for short, name in _OPERATORS.items():
        op = _UFUNCS[name]
        setattr(ndarray, f"__{short}__", lambda self, other, op=op: op(self, other))
        setattr(ndarray, f"__r{short}__", lambda self, other, op=op: op(other, self))
        setattr(ndarray, f"__i{short}__", lambda self, other, op=op: op(self, other, out=self))
    for short, name in (("lt", "less"), ("le", "less_equal"), ("gt", "greater")):
        setattr(ndarray, f"__{short}__", lambda self, other, op=_UFUNCS[name]: op(self, other))
    for short, name in (("ge", "greater_equal"), ("eq", "equal"), ("ne", "not_equal")):
        setattr(ndarray, f"__{short}__", lambda self, other, op=_UFUNCS[name]: op(self, other))
    ndarray.__neg__ = lambda self: _UFUNCS["negative"](self)
    ndarray.__abs__ = lambda self: _UFUNCS["absolute"](self)
    ndarray.__invert__ = lambda self: _UFUNCS["invert"](self)
    ndarray.__pos__ = lambda self: self.copy()
    ndarray.__matmul__ = lambda self, other: matmul(self, other)
    ndarray.__rmatmul__ = lambda self, other: matmul(other, self)


_operators()


# ----- functions --------------------------------------------------------------------------------

_REDUCTIONS = "sum mean max min argmax argmin all any prod cumsum".split()
globals().update({name: _reduction(name) for name in _REDUCTIONS})


def _host_data(obj, dtype, what: str):
    if isinstance(obj, ndarray):
        return None
    _h2d(what)
    return _np.array(obj, dtype=dtype)


def asarray(obj, dtype=None, order=None):
    if isinstance(obj, ndarray):
        return obj if dtype is None or _np.dtype(dtype) == obj.dtype else obj.astype(dtype)
    data = _host_data(obj, dtype, "asarray")
    _alloc("asarray")
    return _wrap(data)


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(obj, ndarray):
        return obj.astype(dtype or obj.dtype) if copy else asarray(obj, dtype)
    return asarray(obj, dtype)


def ascontiguousarray(a, dtype=None):
    a = asarray(a, dtype)
    return a if a.flags.c_contiguous else a.copy()


def asnumpy(a, stream=None, out=None):
    return a.get() if isinstance(a, ndarray) else _np.asarray(a)


def get_array_module(*args):
    return sys.modules[__name__] if builtins.any(isinstance(a, ndarray) for a in args) else _np


def _new(what: str, make, fill: bool):
    _alloc(what)
    array = _wrap(make())
    if fill:
        ledger.add("launches", what)
    return array


def empty(shape, dtype=float, order="C"):
    return _new("empty", lambda: _np.empty(shape, dtype, order), fill=False)


def zeros(shape, dtype=float, order="C"):
    return _new("zeros", lambda: _np.zeros(shape, dtype, order), fill=True)


def ones(shape, dtype=float, order="C"):
    return _new("ones", lambda: _np.ones(shape, dtype, order), fill=True)


def full(shape, fill_value, dtype=None, order="C"):
    return _new("full", lambda: _np.full(shape, fill_value, dtype, order), fill=True)


def arange(start, stop=None, step=1, dtype=None):
    return _new("arange", lambda: _np.arange(start, stop, step, dtype), fill=True)


def _like(name: str, fill: bool):
    def function(a, dtype=None, *args, **kwargs):
        raw = _operand(a, name)
        return _new(name, lambda: getattr(_np, name)(raw, dtype, *args, **kwargs), fill)

    function.__name__ = name
    return function


empty_like = _like("empty_like", fill=False)
zeros_like = _like("zeros_like", fill=True)
ones_like = _like("ones_like", fill=True)
full_like = _like("full_like", fill=True)


def matmul(a, b, out=None):
    raw_a, raw_b, raw_out = _operand(a, "matmul"), _operand(b, "matmul"), _target(out, "matmul")
    return _launch("matmul", lambda: _np.matmul(raw_a, raw_b, out=raw_out), out, cublas=True)


def dot(a, b, out=None):
    raw_a, raw_b, raw_out = _operand(a, "dot"), _operand(b, "dot"), _target(out, "dot")
    return _launch("dot", lambda: _np.dot(raw_a, raw_b, out=raw_out), out, cublas=True)


def where(condition, x=None, y=None):
    if x is None:
        return nonzero(condition)
    raw = [_operand(v, "where") for v in (condition, x, y)]
    return _launch("where", lambda: _np.where(*raw))


def copyto(dst, src, casting="same_kind", where=None):
    raw_dst = _target(dst, "copyto")
    raw_src = _operand(src, "copyto")
    raw_where = True if where is None else _operand(where, "copyto")
    _launch("copyto", lambda: _np.copyto(raw_dst, raw_src, casting, raw_where), out=dst)


def clip(a, a_min=None, a_max=None, out=None):
    raw = [_operand(v, "clip") if v is not None else None for v in (a, a_min, a_max)]
    raw_out = _target(out, "clip")
    return _launch("clip", lambda: _np.clip(*raw, out=raw_out), out)


def take(a, indices, axis=None, out=None):
    raw, raw_out = _operand(a, "take"), _target(out, "take")
    if isinstance(indices, _np.ndarray):
        raise TypeError(f"take: Unsupported type {type(indices)}")
    raw_indices = _operand(indices, "take")
    return _launch("take", lambda: _np.take(raw, raw_indices, axis=axis, out=raw_out), out)


def put(a, ind, v, mode="wrap"):
    raw_a = _target(a, "put")
    raw_ind, raw_v = _operand(ind, "put"), _operand(v, "put")
    _launch("put", lambda: _np.put(raw_a, raw_ind, raw_v, mode=mode), out=a)


def broadcast_to(a, shape):
    return _wrap(_np.broadcast_to(_operand(a, "broadcast_to"), shape))


def searchsorted(a, v, side="left", sorter=None):
    raw_a, raw_v = _operand(a, "searchsorted"), _operand(v, "searchsorted")
    return _launch("searchsorted", lambda: _np.searchsorted(raw_a, raw_v, side))


def sort(a, axis=-1):
    raw = _operand(a, "sort")
    return _launch("sort", lambda: _np.sort(raw, axis))


def argsort(a, axis=-1):
    raw = _operand(a, "argsort")
    return _launch("argsort", lambda: _np.argsort(raw, axis, kind="stable"))


def concatenate(arrays, axis=0, out=None):
    raw = [_operand(a, "concatenate") for a in arrays]
    return _launch("concatenate", lambda: _np.concatenate(raw, axis, out=_target(out, "cat")), out)


def stack(arrays, axis=0, out=None):
    raw = [_operand(a, "stack") for a in arrays]
    return _launch("stack", lambda: _np.stack(raw, axis, out=_target(out, "stack")), out)


def count_nonzero(a, axis=None):
    raw = _operand(a, "count_nonzero")
    return _launch("count_nonzero", lambda: _np.asarray(_np.count_nonzero(raw, axis)))


def bincount(x, weights=None, minlength=None):
    _sync("bincount")  # CuPy reads the largest value to size the output
    raw_x = _operand(x, "bincount")
    raw_w = None if weights is None else _operand(weights, "bincount")
    return _launch("bincount", lambda: _np.bincount(raw_x, raw_w, minlength or 0))


def nonzero(a):
    _sync("nonzero")
    raw = _operand(a, "nonzero")
    return _launch("nonzero", lambda: _np.nonzero(raw))


def argwhere(a):
    _sync("argwhere")
    raw = _operand(a, "argwhere")
    return _launch("argwhere", lambda: _np.argwhere(raw))


def unique(a):
    _sync("unique")
    raw = _operand(a, "unique")
    return _launch("unique", lambda: _np.unique(raw))


_FUNCTIONS = {
    f.__name__: f
    for f in (
        matmul,
        dot,
        where,
        copyto,
        clip,
        take,
        put,
        broadcast_to,
        searchsorted,
        sort,
        argsort,
        concatenate,
        stack,
        count_nonzero,
        bincount,
        nonzero,
        argwhere,
        unique,
        empty_like,
        zeros_like,
        ones_like,
        full_like,
    )
}
_FUNCTIONS.update({name: globals()[name] for name in _REDUCTIONS})

for _name in (
    "float16 float32 float64 int8 int16 int32 int64 uint8 uint16 uint32 uint64 bool_ intp "
    "dtype newaxis inf nan pi e"
).split():
    globals()[_name] = getattr(_np, _name)


def erf(x, out=None):
    """cupyx.scipy.special.erf's counterpart (one elementwise launch)."""
    from scipy import special

    raw, raw_out = _operand(x, "erf"), _target(out, "erf")
    return _launch("erf", lambda: special.erf(raw, out=raw_out), out)


# ----- random -----------------------------------------------------------------------------------


class _BitGenerator:
    def __init__(self, seed):
        self._seed = seed

    def state(self):
        """CuPy's is a method returning the device address of the generator states."""
        return id(self)


class Generator:
    """CuPy's Generator: `random(out=...)` without `size` draws one value (see the module doc)."""

    def __init__(self, seed=None):
        self._rng = _np.random.default_rng(seed)
        self.bit_generator = _BitGenerator(seed)

    def random(self, size=None, dtype=_np.float64, out=None):
        values = self._rng.random(() if size is None else size, dtype=dtype)
        if out is None:
            _alloc("random")
            ledger.add("launches", "random")
            return _wrap(values)
        raw_out = _target(out, "random")
        return _launch("random", lambda: raw_out.__setitem__(Ellipsis, values), out)

    def standard_normal(self, size=None, dtype=_np.float64, out=None):
        values = self._rng.standard_normal(() if size is None else size, dtype=dtype)
        _alloc("standard_normal")
        ledger.add("launches", "standard_normal")
        return _wrap(values)

    def integers(self, low, high=None, size=None, dtype=_np.int64):
        values = self._rng.integers(low, high, () if size is None else size, dtype=dtype)
        _alloc("integers")
        ledger.add("launches", "integers")
        return _wrap(values)


def _seed(seed=None):
    random._global = Generator(seed)


random = types.SimpleNamespace(
    default_rng=Generator, Generator=Generator, seed=_seed, _global=Generator()
)


# ----- raw kernels: CUDA source run on the CPU ----------------------------------------------------


def _root(array: _np.ndarray) -> _np.ndarray:
    """The array that owns the memory behind `array` (views chain through .base)."""
    while isinstance(array.base, _np.ndarray):
        array = array.base
    return array


class _Address:
    """A pointer argument: the address, and a weak reference to the memory's owner, so that a
    graph replaying into memory freed since its capture is refused (CuPy's pool would hand
    that memory to another array)."""

    def __init__(self, array: _np.ndarray):
        self.value = array.ctypes.data
        self._owner = weakref.ref(_root(array))

    def alive(self) -> bool:
        return self._owner() is not None


class RawKernel:
    """One kernel of a RawModule: `kernel(grid, block, args)` runs it over the grid on the CPU
    (tests/cuda_host.py). Stricter than CuPy, which passes whatever it is given: each argument
    must match the kernel's C signature: a C-contiguous device array of the pointee's dtype (or
    numpy.uint64(0), a null pointer) for a pointer; for a scalar, a NumPy scalar of its exact
    width, or a Python int for `long long` and a float for `double` (as CuPy widens them)."""

    def __init__(self, host_kernel):
        self._kernel = host_kernel
        self.name = host_kernel.name

    def _value(self, param, value):
        from tests import cuda_host

        name, ctype, pointer = param
        where = f"kernel {self.name}, argument {name}"
        if pointer:
            if isinstance(value, _np.uint64) and value == 0:
                return None
            if not isinstance(value, ndarray):
                raise TypeError(f"{where}: a device array is required, received {type(value)}")
            dtype = cuda_host.CTYPES[ctype][1]
            if dtype is not None and value.dtype != dtype:
                raise TypeError(f"{where}: points to {ctype}, received a {value.dtype} array")
            if not value._a.flags.c_contiguous:
                raise ValueError(f"{where}: the array is not C-contiguous")
            return _Address(value._a)
        dtype = cuda_host.CTYPES[ctype][1]
        widened = {"long long": int, "double": float}.get(ctype)
        if type(value) is not widened and not (
            isinstance(value, _np.generic) and value.dtype == dtype
        ):
            raise TypeError(
                f"{where}: the kernel takes {ctype}; received {value!r} ({type(value).__name__}), "
                "which CuPy would pass with another width"
            )
        return value

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        grid = (grid,) if isinstance(grid, int) else tuple(grid)
        block = (block,) if isinstance(block, int) else tuple(block)
        if len(grid) != 1 or len(block) != 1:
            raise ValueError(f"kernel {self.name}: the stand-in runs 1-D grids and blocks only")
        params = self._kernel.params
        if len(args) != len(params):
            raise TypeError(f"kernel {self.name}: {len(params)} arguments, received {len(args)}")
        values = [self._value(p, v) for p, v in zip(params, args)]

        def compute():
            if builtins.any(isinstance(v, _Address) and not v.alive() for v in values):
                raise CaptureError(f"kernel {self.name}: replayed into memory freed since capture")
            self._kernel.run(
                grid[0], block[0], [v.value if isinstance(v, _Address) else v for v in values]
            )

        _launch(f"kernel {self.name}", compute, out=self)


class RawModule:
    """CuPy's RawModule over CUDA source: compiled for the host (tests/cuda_host.py), once per
    source text."""

    _compiled: dict = {}

    def __init__(self, code=None, *, options=(), **kwargs):
        from tests import cuda_host

        host = RawModule._compiled.get(code)
        if host is None:
            host = RawModule._compiled[code] = cuda_host.HostModule(code)
        self._host = host

    def get_function(self, name):
        if name not in self._host.kernels:
            raise AttributeError(f"RawModule: no kernel named {name!r}")
        return RawKernel(self._host.kernels[name])


# ----- cuda: device, streams, capture -----------------------------------------------------------


class Graph:
    """A captured sequence of ops; `launch()` replays them on the same buffers."""

    def __init__(self):
        self.ops: list = []

    def launch(self, stream=None):
        ledger.add("graph_launches", "graph")
        for op in self.ops:
            op()


class Stream:
    """A CUDA stream. `with stream:` makes it current; ops run on the current stream. Capture
    (CUDA's rules): not on the null stream, and while a stream captures, an op issued on any
    other stream raises (cudaErrorStreamCaptureImplicit)."""

    def __init__(self, non_blocking=False, null=False):
        self.capturing = False
        self.null = null
        self.ptr = 0 if null else id(self)

    def begin_capture(self, mode=None):
        if self.null:
            raise CaptureError("the null stream cannot be captured")
        if _capturing:
            raise CaptureError("a stream is already capturing")
        self.capturing = True
        _capturing.append(Graph())

    def end_capture(self):
        if not self.capturing:
            raise CaptureError("end_capture without begin_capture")
        self.capturing = False
        return _capturing.pop()

    def is_capturing(self):
        return self.capturing

    def synchronize(self):
        _sync("Stream.synchronize")

    def record(self, event=None):
        """Mark this point of the stream (a new Event unless one is given); allocates nothing
        on the device."""
        event = Event() if event is None else event
        event.record(self)
        return event

    def wait_event(self, event):
        """Later work on this stream waits for `event` (on the device: no host sync)."""
        if not isinstance(event, Event):
            raise TypeError("wait_event: a cupy.cuda.Event is required")

    def use(self):
        _streams.append(self)
        return self

    def __enter__(self):
        return self.use()

    def __exit__(self, *exc):
        _streams.pop()
        return False


class PinnedMemoryPointer(bytearray):
    """Page-locked host memory (`cuda.alloc_pinned_memory`): a buffer NumPy can view."""


def alloc_pinned_memory(nbytes: int) -> PinnedMemoryPointer:
    return PinnedMemoryPointer(int(nbytes))


def _is_pinned(arr: _np.ndarray) -> bool:
    """Whether `arr` views memory from alloc_pinned_memory (through views and np.frombuffer)."""
    base = arr
    while isinstance(base, _np.ndarray):
        base = base.base
    return isinstance(getattr(base, "obj", base), PinnedMemoryPointer)


class Event:
    """A point in a stream. Work here runs at once, so every event has happened; waiting on
    one from the host still counts as a sync."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.recorded = False

    def record(self, stream=None):
        self.recorded = True

    @property
    def done(self) -> bool:
        """Whether the work before the event has run (a query: not a sync)."""
        return self.recorded

    def synchronize(self):
        _sync("Event.synchronize")


class Device:
    def __init__(self, device=0):
        self.id = device

    def use(self):
        if not 0 <= self.id < runtime.getDeviceCount():
            raise ValueError(f"Device {self.id}: the stand-in has devices 0 .. 0")

    def synchronize(self):
        _sync("Device.synchronize")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_null_stream = Stream(null=True)
_streams: list = [_null_stream]  # the current stream is the last
_MEMORY = 139 * 2**30

runtime = types.SimpleNamespace(
    getDeviceCount=lambda: 1,
    getDeviceProperties=lambda device: {"name": b"strict CPU stand-in", "totalGlobalMem": _MEMORY},
    runtimeGetVersion=lambda: 13000,
    driverGetVersion=lambda: 13000,
    memGetInfo=lambda: (_MEMORY, _MEMORY),
)
# ----- NCCL: an all-reduce across MPI ranks, on the memory behind the pointers --------------------

NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = 7, 8, 0  # nccl.h's ncclFloat32, ncclFloat64, ncclSum
_NCCL_TYPES = {NCCL_FLOAT32: _np.float32, NCCL_FLOAT64: _np.float64}


def _host_view(pointer: int, count: int, dtype) -> _np.ndarray:
    import ctypes

    nbytes = count * _np.dtype(dtype).itemsize
    return _np.frombuffer((ctypes.c_char * nbytes).from_address(pointer), dtype=dtype)


class NcclCommunicator:
    """`cupy.cuda.nccl.NcclCommunicator(ndev, unique_id, rank)`: the ranks of an MPI job (the
    unique id must be rank 0's, as NCCL requires)."""

    def __init__(self, ndev, commId, rank):
        from mpi4py import MPI

        self._comm = MPI.COMM_WORLD
        if self._comm.Get_size() != ndev or self._comm.Get_rank() != rank:
            raise ValueError(f"NcclCommunicator({ndev}, ..., {rank}): not this MPI job's rank")
        if self._comm.bcast(commId, root=0) != commId:
            raise ValueError("NcclCommunicator: the ranks were given different unique ids")

    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):
        if op != NCCL_SUM or datatype not in _NCCL_TYPES:
            raise NotImplementedError("the stand-in's NCCL sums float32 and float64")
        if stream != _streams[-1].ptr:
            raise CaptureError("nccl allReduce: issued on a stream other than the current one")
        dtype = _NCCL_TYPES[datatype]
        send, out = _host_view(sendbuf, count, dtype), _host_view(recvbuf, count, dtype)

        def compute():  # run now, or at each replay of a graph that captured it
            from mpi4py import MPI

            ledger.add("collectives", "nccl allReduce")
            source = MPI.IN_PLACE if sendbuf == recvbuf else send
            self._comm.Allreduce(source, out, op=MPI.SUM)

        _launch("nccl allReduce", compute, out=self)


nccl = types.SimpleNamespace(
    NcclCommunicator=NcclCommunicator,
    get_unique_id=lambda: tuple(int(b) for b in os.urandom(128)),
    NCCL_FLOAT32=NCCL_FLOAT32,
    NCCL_FLOAT64=NCCL_FLOAT64,
    NCCL_SUM=NCCL_SUM,
)
cuda = types.SimpleNamespace(
    Device=Device,
    nccl=nccl,
    Stream=Stream,
    Event=Event,
    Graph=Graph,
    alloc_pinned_memory=alloc_pinned_memory,
    runtime=runtime,
    get_current_stream=lambda: _streams[-1],
)
Stream.null = _null_stream
