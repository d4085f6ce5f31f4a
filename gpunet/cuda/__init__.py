"""The CUDA route of the training step: fused kernels (compiled by NVRTC on first use) and
cuBLASLt GEMMs with epilogues, for CuPy. Imported only when the backend is CuPy (or the test
stand-in, which runs the same kernel source on the CPU)."""
