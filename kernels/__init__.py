"""Numba (CPU) and CUDA kernels, one algorithm per module with both variants side by side
(installed as ``vsrestore.kernels``)."""
