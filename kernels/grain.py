"""Grain synthesis hot loop: shape white noise with a small 2-D FIR, scale by sigma(luma), add.

``out[y, x] = plane[y, x] + lut(luma[y, x]) * sum_ij kern[i, j] * noise[y + i, x + j]``

* ``noise`` is a white-noise field padded by the kernel: shape ``(H + kh - 1, W + kw - 1)``, so the
  FIR is a "valid" correlation and needs no border rule (the caller draws the padding too).
* ``lut`` holds sigma at ``n`` luma knots at the bin centres ``(i + 0.5) / n`` of [0, 1]; between
  knots sigma is linear, outside the first/last centre it is held constant (``np.interp``).
* All arrays float32; sums run in float64. Integer clamping/rounding is the caller's job.

Variants: ``regrain_plane`` (Numba CPU, serial, ``nogil``, compiled at import), ``regrain_plane_cuda``
(``numba.cuda`` on device arrays; runs under ``NUMBA_ENABLE_CUDASIM=1``; imported on first use) and
``regrain_plane_reference`` (vectorised NumPy, float64). The per-pixel math is written once.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from numba import njit
from numba.extending import register_jitable

__all__ = ["regrain_plane", "regrain_plane_cuda", "regrain_plane_reference"]


@register_jitable
def _sigma(lut, v):
    n = lut.shape[0]
    t = float(v) * n - 0.5
    if not t > 0.0:  # NaN too
        return float(lut[0])
    if t >= n - 1:
        return float(lut[n - 1])
    i = int(math.floor(t))
    f = t - i
    return float(lut[i]) * (1.0 - f) + float(lut[i + 1]) * f


@register_jitable
def _pixel(plane, noise, kern, luma, lut, y, x):
    acc = 0.0
    for i in range(kern.shape[0]):
        for j in range(kern.shape[1]):
            acc += float(kern[i, j]) * float(noise[y + i, x + j])
    return float(plane[y, x]) + _sigma(lut, luma[y, x]) * acc


@njit(nogil=True, cache=True)
def _regrain_cpu(plane, noise, kern, luma, lut, out):  # pragma: no cover
    h, w = plane.shape
    for y in range(h):
        for x in range(w):
            out[y, x] = _pixel(plane, noise, kern, luma, lut, y, x)


cuda: Any = None


@functools.cache
def _cuda_kernel() -> Any:
    global cuda
    from numba import cuda

    @cuda.jit
    def regrain_k(plane, noise, kern, luma, lut, out):  # pragma: no cover
        x, y = cuda.grid(2)
        if y < plane.shape[0] and x < plane.shape[1]:
            out[y, x] = _pixel(plane, noise, kern, luma, lut, y, x)

    return regrain_k


def _check(fn: str, plane: Any, noise: Any, kern: Any, luma: Any, lut: Any) -> tuple[int, int]:
    for name, a in (("plane", plane), ("noise", noise), ("kern", kern), ("luma", luma), ("lut", lut)):
        want = 1 if name == "lut" else 2
        if len(a.shape) != want or np.dtype(a.dtype) != np.float32:
            raise ValueError(f"{fn}: {name} must be a {want}-D float32 array, got {len(a.shape)}-D "
                             f"{a.dtype}; convert with .astype(np.float32)")
    h, w = plane.shape
    kh, kw = kern.shape
    if tuple(luma.shape) != (h, w):
        raise ValueError(f"{fn}: luma has shape {tuple(luma.shape)}, not the plane's {(h, w)}; "
                         "resample luma to the plane's size")
    if tuple(noise.shape) != (h + kh - 1, w + kw - 1):
        raise ValueError(f"{fn}: noise has shape {tuple(noise.shape)}, expected "
                         f"{(h + kh - 1, w + kw - 1)}; pad it by the kernel size minus one")
    if lut.shape[0] < 1 or kh < 1 or kw < 1:
        raise ValueError(f"{fn}: lut and kern must not be empty; pass at least one value")
    return h, w


def regrain_plane(plane: np.ndarray, noise: np.ndarray, kern: np.ndarray, luma: np.ndarray,
                  lut: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """CPU (Numba) grain synthesis of one plane; returns ``out`` (new float32 array if None)."""
    h, w = _check("regrain_plane", plane, noise, kern, luma, lut)
    if out is None:
        out = np.empty((h, w), np.float32)
    elif out.shape != (h, w) or out.dtype != np.float32 or not out.flags.writeable:
        raise ValueError("regrain_plane: out must be a writable float32 array of the plane's shape; "
                         "pass out=None to allocate one")
    _regrain_cpu(plane, noise, np.ascontiguousarray(kern), luma, np.ascontiguousarray(lut), out)
    return out


def regrain_plane_cuda(plane: Any, noise: Any, kern: Any, luma: Any, lut: Any,
                       out: Any | None = None) -> Any:
    """``numba.cuda`` grain synthesis on device arrays (CuPy/torch/Numba); returns ``out``."""
    kernel = _cuda_kernel()
    h, w = _check("regrain_plane_cuda", plane, noise, kern, luma, lut)
    args = [a if hasattr(a, "copy_to_host") else cuda.as_cuda_array(a)
            for a in (plane, noise, kern, luma, lut)]
    if out is None:
        out = cuda.device_array((h, w), np.float32)
    block = (16, 8)
    grid = ((w + block[0] - 1) // block[0], (h + block[1] - 1) // block[1])
    kernel[grid, block](*args, out)
    return out


def regrain_plane_reference(plane: np.ndarray, noise: np.ndarray, kern: np.ndarray, luma: np.ndarray,
                            lut: np.ndarray) -> np.ndarray:
    """:func:`regrain_plane` in vectorised NumPy (float64 math, float32 result)."""
    h, w = _check("regrain_plane_reference", plane, noise, kern, luma, lut)
    nz = noise.astype(np.float64)
    shaped = np.zeros((h, w))
    for i in range(kern.shape[0]):
        for j in range(kern.shape[1]):
            shaped += float(kern[i, j]) * nz[i:i + h, j:j + w]
    n = lut.shape[0]
    knots = (np.arange(n) + 0.5) / n
    sig = np.interp(luma.astype(np.float64), knots, lut.astype(np.float64))
    return (plane.astype(np.float64) + sig * shaped).astype(np.float32)


def _warm_up() -> None:
    z = np.zeros((2, 3), np.float32)
    regrain_plane(z, np.zeros((4, 5), np.float32), np.ones((3, 3), np.float32), z,
                  np.ones(2, np.float32))


_warm_up()
