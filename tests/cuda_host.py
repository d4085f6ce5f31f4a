"""gpunet's CUDA kernels on the CPU: the same source, compiled by the host's C++ compiler under
a small shim, each kernel run over its whole grid by plain loops.

The shim maps what the kernels use to host C++: `__global__`/`__device__` vanish, `threadIdx`,
`blockIdx`, `blockDim` and `gridDim` become globals the launcher sets before each thread,
atomics become plain adds (threads run one after another), and CUDA's intrinsics their libm
counterparts. `__syncthreads` and shared memory are deliberately missing: a kernel that needs
block cooperation fails to compile here, and gets a GPU-only test instead. Compiled with
`-ffp-contract=off`, as the device build uses `--fmad=false`.

Signatures are read from the source by this module's own parser (not gpunet's), so the
stand-in's check of each launch's arguments is independent of the wrappers it checks.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import subprocess
import tempfile

import numpy as np

SHIM = r"""
#include <cmath>
#include <cstdint>
#include <cstring>
struct gpunet_dim3 { unsigned int x, y, z; };
static gpunet_dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline unsigned int __float_as_uint(float f) {
    unsigned int u; std::memcpy(&u, &f, 4); return u;
}
template <class T> static inline T atomicAdd(T* p, T v) { T old = *p; *p += v; return old; }
"""
FLAGS = ("-O1", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math", "-x", "c++")

CTYPES = {
    "float": (ctypes.c_float, np.float32),
    "double": (ctypes.c_double, np.float64),
    "int": (ctypes.c_int32, np.int32),
    "unsigned int": (ctypes.c_uint32, np.uint32),
    "long long": (ctypes.c_int64, np.int64),
    "unsigned long long": (ctypes.c_uint64, np.uint64),
    "unsigned short": (ctypes.c_uint16, np.uint16),
    "char": (ctypes.c_char, None),
}


class HostCompileError(RuntimeError):
    """The kernel source does not compile for the host (e.g. it needs block cooperation)."""


def parse(source: str) -> dict[str, list[tuple[str, str, bool]]]:
    """Kernel name -> [(parameter name, C type without const and *, is pointer)]."""
    kernels = {}
    for name, text in re.findall(r"__global__\s+void\s+(\w+)\s*\(([^)]*)\)", source):
        params = []
        for part in text.split(","):
            pointer = "*" in part
            words = [w for w in part.replace("*", " ").split() if w != "const"]
            params.append((words[-1], " ".join(words[:-1]), pointer))
        kernels[name] = params
    return kernels


def _launcher(name: str, params) -> str:
    formals = ", ".join(
        f"void* a{i}" if pointer else f"{ctype} a{i}"
        for i, (_, ctype, pointer) in enumerate(params)
    )
    actuals = ", ".join(
        f"({ctype}*)a{i}" if pointer else f"a{i}" for i, (_, ctype, pointer) in enumerate(params)
    )
    return (
        f'extern "C" void gpunet_launch_{name}(unsigned int grid, unsigned int block, '
        f"{formals}) {{\n"
        "  gridDim = {grid, 1, 1}; blockDim = {block, 1, 1};\n"
        "  for (unsigned int b = 0; b < grid; ++b)\n"
        "    for (unsigned int t = 0; t < block; ++t) {\n"
        "      blockIdx = {b, 0, 0}; threadIdx = {t, 0, 0};\n"
        f"      {name}({actuals});\n"
        "    }\n"
        "}\n"
    )


class HostKernel:
    """One kernel, callable as CuPy's RawKernel is: `kernel(grid, block, args)`, args already
    converted to (ctypes value, ...) by the caller's `arguments()`."""

    def __init__(self, library, name: str, params):
        self.name, self.params = name, params
        self._function = getattr(library, f"gpunet_launch_{name}")
        self._function.restype = None
        self._function.argtypes = [ctypes.c_uint, ctypes.c_uint] + [
            ctypes.c_void_p if pointer else CTYPES[ctype][0] for _, ctype, pointer in params
        ]

    def run(self, grid: int, block: int, values) -> None:
        self._function(grid, block, *values)


class HostModule:
    """The kernels of `source`, compiled for the host."""

    def __init__(self, source: str):
        self.source = source
        self.signatures = parse(source)
        library = ctypes.CDLL(
            _compile(
                SHIM
                + source
                + "".join(_launcher(name, params) for name, params in self.signatures.items())
            )
        )
        self.kernels = {
            name: HostKernel(library, name, params) for name, params in self.signatures.items()
        }


def _compile(code: str) -> str:
    """The path of the shared library built from `code` (cached by content across runs)."""
    digest = hashlib.sha256((code + " ".join(FLAGS)).encode()).hexdigest()[:16]
    folder = os.path.join(tempfile.gettempdir(), f"gpunet-cuda-host-{os.getuid()}")
    os.makedirs(folder, exist_ok=True)
    library = os.path.join(folder, f"{digest}.so")
    if os.path.exists(library):
        return library
    source_path = os.path.join(folder, f"{digest}.{os.getpid()}.cu")
    partial = f"{library}.{os.getpid()}.part"
    with open(source_path, "w") as f:
        f.write(code)
    compiler = os.environ.get("CXX", "g++")
    try:
        result = subprocess.run(
            [compiler, *FLAGS, source_path, "-o", partial, "-lm"], capture_output=True, text=True
        )
    except FileNotFoundError as exc:
        raise HostCompileError(f"no host C++ compiler ({compiler}): {exc}") from None
    finally:
        os.unlink(source_path)
    if result.returncode != 0:
        raise HostCompileError(f"the CUDA source does not compile for the host:\n{result.stderr}")
    os.replace(partial, library)  # atomic: parallel test runs never load a half-written file
    return library
