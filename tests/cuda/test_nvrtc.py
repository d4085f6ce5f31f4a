"""The CUDA source compiles with NVRTC for every target architecture, on any machine."""

import os

import pytest

from gpunet.cuda import kernels


def _nvrtc():
    try:
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
        return nvrtc
    except Exception as exc:  # CuPy or libnvrtc missing
        if os.environ.get("CI") == "true":
            pytest.fail(f"NVRTC is missing in CI ({exc}): setup.sh installs the nvrtc extra")
        pytest.skip(f"CuPy's NVRTC is not available here ({type(exc).__name__}: {exc})")


@pytest.mark.parametrize("arch", kernels.ARCHITECTURES)
def test_every_kernel_compiles_with_nvrtc(arch):
    nvrtc = _nvrtc()
    program = nvrtc.createProgram(kernels.SOURCE, "gpunet.cu", [], [])
    try:
        try:
            nvrtc.compileProgram(program, [f"--gpu-architecture={arch}", *kernels.OPTIONS])
        except nvrtc.NVRTCError:
            pytest.fail(nvrtc.getProgramLog(program))
        ptx = nvrtc.getPTX(program)
    finally:
        nvrtc.destroyProgram(program)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    assert [k for k in kernels.KERNELS if f".entry {k}(" in ptx] == list(kernels.KERNELS)
