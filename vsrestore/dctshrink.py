"""Sliding-block DCT shrinkage for spatially correlated, spatially varying noise (a spatial denoiser).

NumPy in, NumPy out: ``shrink(img, var_map, coef_var)`` denoises one float32 plane whose noise has
variance ``var_map[y, x]`` per pixel and, per 8x8 DCT coefficient, the relative variance
``coef_var[u, v]`` (all ones for white noise; :func:`grain_coef_var` for Gaussian-shaped grain).

Method (the two steps of Dabov et al.'s BM3D, without block matching; cf. Yu & Sapiro, "DCT image
denoising", IPOL 2011): 8x8 blocks on a grid of *step* pixels (overlapping 8/step times each way).

1. Hard thresholding: each block's orthonormal 2-D DCT coefficient c_uv is kept where
   ``c_uv^2 > k^2 * s_b^2 * coef_var[u, v]`` (``s_b^2``: the block's mean noise variance; the DC is
   always kept); blocks are put back weighted by ``1 / (s_b^2 * kept)``; this is the pilot.
2. Empirical Wiener: with the pilot's coefficients p_uv, each coefficient of the input is scaled
   by ``p^2 / (p^2 + s_b^2 coef_var)``; blocks are put back weighted by ``1 / (s_b^2 * sum g^2)``.

Blocks are transformed in bands of rows (bounded memory: ~8 MB per band whatever the frame size)
by one matrix product with the 64x64 separable DCT; the overlap-add is the
``vsrestore.kernels.overlap`` kernel. Planes smaller than a block or off the grid are padded by
mirroring and cropped back.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from vsrestore.kernels.overlap import overlap_add

__all__ = ["BLOCK", "dct_matrix", "grain_coef_var", "shrink"]

BLOCK = 8
_BAND = 32  # block rows per band


@functools.cache
def dct_matrix(n: int = BLOCK) -> np.ndarray:
    """Orthonormal DCT-II matrix ``(n, n)``: coefficients = ``M @ x``."""
    k = np.arange(n)
    m = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m


@functools.cache
def _kron() -> np.ndarray:
    d = dct_matrix()
    return np.ascontiguousarray(np.kron(d, d).T, dtype=np.float32)  # row-vector blocks @ this


@functools.cache
def grain_coef_var(size: float) -> np.ndarray:
    """Variance of each 8x8 DCT coefficient (``(8, 8)`` float32, mean ~1) of unit-variance white
    noise blurred by a Gaussian of width *size* px (<= 0.05: white, all ones).

    The grain model of ``vr.analyze_grain`` (``GrainProfile.grain_size``): separable Gaussian
    kernel of radius ``min(4, ceil(3 size))`` with unit energy, so the 1-D autocorrelation is the
    kernel's own and the 2-D covariance its outer product.
    """
    if size <= 0.05:
        return np.ones((BLOCK, BLOCK), np.float32)
    r = min(4, max(1, math.ceil(3.0 * size)))
    g = np.exp(-0.5 * (np.arange(-r, r + 1) / size) ** 2)
    g /= math.sqrt(float((g * g).sum()))
    full = np.correlate(g, g, "full")  # lags -2r..2r
    lag = np.subtract.outer(np.arange(BLOCK), np.arange(BLOCK))
    cov = np.where(np.abs(lag) <= 2 * r, full[np.clip(lag + 2 * r, 0, 4 * r)], 0.0)
    d = dct_matrix()
    v = np.diag(d @ cov @ d.T)
    return np.outer(v, v).astype(np.float32)


def _pad(a: np.ndarray, step: int) -> np.ndarray:
    h, w = a.shape
    ph = BLOCK - h if h < BLOCK else (-(h - BLOCK)) % step
    pw = BLOCK - w if w < BLOCK else (-(w - BLOCK)) % step
    if ph or pw:
        a = np.pad(a, ((0, ph), (0, pw)), mode="symmetric")
    return np.ascontiguousarray(a, dtype=np.float32)


def _band(a: np.ndarray, step: int, r0: int, r1: int) -> np.ndarray:
    """Blocks with origins in block rows r0..r1-1 as ``(n, 64)`` row vectors (a copy)."""
    v = np.lib.stride_tricks.sliding_window_view(a, (BLOCK, BLOCK))
    v = v[r0 * step:(r1 - 1) * step + 1:step, ::step]
    return v.reshape(-1, BLOCK * BLOCK)


def shrink(img: np.ndarray, var_map: np.ndarray, coef_var: np.ndarray, *, step: int = 3,
           k_hard: float = 2.7) -> np.ndarray:
    """Denoise one plane (float32 ``(H, W)``) with noise variance *var_map* (``(H, W)``) shaped by
    *coef_var* (``(8, 8)``); *step*: block grid spacing (1..8, smaller is slower and a little
    better); *k_hard*: the hard threshold in noise sigmas. Returns a new float32 array."""
    if img.ndim != 2 or var_map.shape != img.shape or coef_var.shape != (BLOCK, BLOCK):
        raise ValueError(f"shrink: expected an (H, W) plane, a variance map of its shape and (8, 8) "
                         f"coefficient variances, got {img.shape}, {var_map.shape}, {coef_var.shape}")
    if not 1 <= step <= BLOCK:
        raise ValueError(f"shrink: step={step} must be in 1..{BLOCK}")
    h, w = img.shape
    a, vm = _pad(img, step), _pad(np.maximum(var_map, 0), step)
    ph, pw = a.shape
    nby, nbx = (ph - BLOCK) // step + 1, (pw - BLOCK) // step + 1
    mean_v = cv2.boxFilter(vm, -1, (BLOCK, BLOCK), anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    vb = np.ascontiguousarray(mean_v[:ph - BLOCK + 1:step, :pw - BLOCK + 1:step]) + np.float32(1e-12)
    cv = coef_var.reshape(1, -1).astype(np.float32)
    kf = _kron()
    kt = np.ascontiguousarray(kf.T)
    thr = np.float32(k_hard * k_hard)

    def aggregate(acc: np.ndarray, ws: np.ndarray, coeffs: np.ndarray, wgt: np.ndarray, r0: int) -> None:
        overlap_add(coeffs @ kt, wgt.astype(np.float32), nbx, step, r0, acc, ws)

    pilot_acc, pilot_ws = np.zeros((ph, pw), np.float32), np.zeros((ph, pw), np.float32)
    for r0 in range(0, nby, _BAND):
        r1 = min(nby, r0 + _BAND)
        c = _band(a, step, r0, r1) @ kf
        nv = vb[r0:r1].reshape(-1, 1) * cv
        keep = c * c > thr * nv
        keep[:, 0] = True
        aggregate(pilot_acc, pilot_ws, c * keep, 1.0 / (keep.sum(axis=1) * vb[r0:r1].ravel()), r0)
    pilot = pilot_acc / pilot_ws
    acc, ws = np.zeros((ph, pw), np.float32), np.zeros((ph, pw), np.float32)
    for r0 in range(0, nby, _BAND):
        r1 = min(nby, r0 + _BAND)
        c = _band(a, step, r0, r1) @ kf
        p = _band(pilot, step, r0, r1) @ kf
        p *= p
        g = p / (p + vb[r0:r1].reshape(-1, 1) * cv + np.float32(1e-30))
        aggregate(acc, ws, c * g, 1.0 / ((g * g).sum(axis=1) * vb[r0:r1].ravel() + 1e-30), r0)
    return np.ascontiguousarray((acc / ws)[:h, :w])
