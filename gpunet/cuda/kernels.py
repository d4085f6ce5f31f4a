"""gpunet's CUDA kernels: the source (the .cu files beside this module), each kernel's C
signature read from it, and typed launch wrappers.

A launch checks every argument against the kernel's signature before CuPy sees it: a device
array of the declared dtype for each pointer (None for a null pointer), and each scalar
converted to its exact C width. CuPy passes a Python int as 64 bits and a float as a double,
which a kernel taking `int` or `float` would misread; here that cannot happen. Compiled once
per process and array module, with `--fmad=false` so that a * b + c rounds twice, as the xp
oracle's two ufuncs do.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

import numpy as np

ARCHITECTURES = ("compute_80", "compute_90")
OPTIONS = ("--std=c++14", "--fmad=false")
FILES = ("common.cuh", "layers.cu", "losses.cu", "step.cu", "optimizers.cu")
BLOCK = 256

# Activation codes, as common.cuh numbers them (softmax only fuses with a loss).
ACTIVATIONS = (
    "linear", "relu", "sigmoid", "tanh", "softplus", "softsign", "elu", "selu", "leaky_relu",
    "gelu", "silu", "hard_sigmoid", "exponential",
)  # fmt: skip


def activation_code(name: str) -> int:
    return ACTIVATIONS.index(name)


def _read(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text()


SOURCE = 'extern "C" {\n' + "\n".join(_read(name) for name in FILES) + '\n}  // extern "C"\n'

# C type -> NumPy dtype, for pointers (what they point to) and for scalars.
_C_TYPES = {
    "float": np.float32,
    "double": np.float64,
    "int": np.int32,
    "unsigned int": np.uint32,
    "long long": np.int64,
    "unsigned long long": np.uint64,
    "unsigned short": np.uint16,  # bfloat16 words
    "char": None,  # raw bytes: any dtype
}


@dataclass(frozen=True)
class Param:
    name: str
    ctype: str  # without const and *
    pointer: bool

    @property
    def dtype(self):
        return _C_TYPES[self.ctype]


def _parse_params(text: str) -> tuple[Param, ...]:
    params = []
    for part in text.split(","):
        declaration = " ".join(part.replace("*", " * ").split())
        pointer = "*" in declaration
        words = [w for w in declaration.replace("*", " ").split() if w != "const"]
        name, ctype = words[-1], " ".join(words[:-1])
        if ctype not in _C_TYPES:
            raise ValueError(
                f"gpunet/cuda: kernel parameter {part.strip()!r} has a C type the "
                f"launch wrappers do not know ({', '.join(_C_TYPES)})"
            )
        params.append(Param(name, ctype, pointer))
    return tuple(params)


def signatures(source: str = SOURCE) -> dict[str, tuple[Param, ...]]:
    """Kernel name -> its parameters, read from the `__global__ void name(...)` declarations."""
    found = re.findall(r"__global__\s+void\s+(\w+)\s*\(([^)]*)\)", source)
    return {name: _parse_params(params) for name, params in found}


SIGNATURES = signatures()
KERNELS = tuple(SIGNATURES)


@functools.cache
def _module(xp):
    return xp.RawModule(code=SOURCE, options=OPTIONS)


@functools.cache
def function(xp, name: str):
    """The compiled kernel `name` (cached)."""
    return _module(xp).get_function(name)


def _argument(xp, kernel: str, param: Param, value):
    where = f"kernel {kernel}, argument {param.name} ({param.ctype}{'*' if param.pointer else ''})"
    if param.pointer:
        if value is None:
            return np.uint64(0)  # a null pointer: 8 bytes of zero
        if not isinstance(value, xp.ndarray):
            raise TypeError(f"{where}: a device array is required, received {type(value)}")
        if param.dtype is not None and value.dtype != param.dtype:
            raise TypeError(
                f"{where}: dtype {np.dtype(param.dtype)} required, received {value.dtype}"
            )
        if not value.flags.c_contiguous:
            raise ValueError(f"{where}: a C-contiguous array is required")
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{where}: a number is required, received {value!r}")
    try:
        with np.errstate(over="raise"):
            converted = param.dtype(value)
    except (OverflowError, FloatingPointError):  # NumPy's words name no kernel or argument
        raise OverflowError(f"{where}: {value!r} does not fit") from None
    # Compared as Python numbers: NumPy compares in the C type, where 2**24 + 1 == 2.0**24.
    # A Python float may round to float (every learning rate does).
    if converted.item() != value and not (isinstance(value, float) and param.dtype == np.float32):
        raise OverflowError(f"{where}: {value!r} does not fit")
    return converted


def launch(xp, name: str, size: int, *args) -> None:
    """Run kernel `name` over `size` threads (1-D grid of BLOCK-thread blocks), its arguments
    checked and converted against its C signature."""
    params = SIGNATURES[name]
    if len(args) != len(params):
        raise TypeError(f"kernel {name} takes {len(params)} arguments, received {len(args)}")
    converted = tuple(_argument(xp, name, p, v) for p, v in zip(params, args))
    blocks = max((size + BLOCK - 1) // BLOCK, 1)
    function(xp, name)((blocks,), (BLOCK,), converted)
