"""The motion-compensated neighbour samples that ``vr.despot``'s vote and repair read.

:func:`sample` compensates whole neighbour planes onto the frame (NaN beyond :data:`MARGIN`)
and :func:`blend_at` blends them at the repaired pixels only (bicubic, as a Numba kernel);
:func:`trusted` drops the samples where a neighbour's compensation is poor (motion the flow
did not follow). The vote weighs every sample by its :func:`reliability` (how well its
neighbour matches the frame around the pixel, against the best-matching neighbour) and its
:func:`sharpness` (a sample read on whole pixels is sharper than one interpolated half-way).
The vote itself is in :mod:`vsrestore.spots`.
"""

from __future__ import annotations

import cv2
import numpy as np
from numba import njit

from vsrestore.kernels.warp import warp
from vsrestore.spotkernels import FAST

REL_C = 2.0  # reliability: match levels are compared plus this many typical best matches
REL_TRUNC = 16.0  # ... truncated at this many typical best matches (defects count no more)
POOR = 8.0  # local median difference (x the frame's) above which a neighbour is not trusted
POOR_MIN = 0.05  # ... and at least this (0..1 luma)
MARGIN = 1.0  # a sample may lie this far (px) outside its frame (edge replicated)


@njit(**FAST)
def _k_sharpness(fx, fy, out):  # pragma: no cover - compiled
    h, w = fx.shape
    for y in range(h):
        for x in range(w):
            a = fx[y, x] - np.floor(fx[y, x])
            b = fy[y, x] - np.floor(fy[y, x])
            sa = np.float32(0.1) + np.float32(0.9) * (
                np.float32(1.0) - np.float32(2.0) * min(a, np.float32(1.0) - a))
            sb = np.float32(0.1) + np.float32(0.9) * (
                np.float32(1.0) - np.float32(2.0) * min(b, np.float32(1.0) - b))
            out[y, x] = sa * sb


@njit(cache=True, nogil=True)
def _k_blend_at(src, fx, fy, ys, xs, wts, acc, tot, margin):  # pragma: no cover - compiled
    """Add ``wts[q] * src(xs[q] + fx, ys[q] + fy)`` (bicubic, Catmull-Rom, edge replicated; no
    sample beyond *margin* px outside the plane) to ``acc[q]``, and the weight to ``tot[q]``."""
    h, w = src.shape
    for q in range(ys.size):
        wt = wts[q]
        if not wt > 0.0:
            continue
        y, x = ys[q], xs[q]
        gx, gy = x + fx[y, x], y + fy[y, x]
        if not (-margin <= gx <= w - 1 + margin and -margin <= gy <= h - 1 + margin):
            continue
        ix, iy = int(np.floor(gx)), int(np.floor(gy))
        tx, ty = gx - ix, gy - iy
        u = ((2.0 * tx * tx - tx * tx * tx - tx) * 0.5, (3.0 * tx * tx * tx - 5.0 * tx * tx + 2.0) * 0.5,
             (4.0 * tx * tx - 3.0 * tx * tx * tx + tx) * 0.5, (tx * tx * tx - tx * tx) * 0.5)
        v = ((2.0 * ty * ty - ty * ty * ty - ty) * 0.5, (3.0 * ty * ty * ty - 5.0 * ty * ty + 2.0) * 0.5,
             (4.0 * ty * ty - 3.0 * ty * ty * ty + ty) * 0.5, (ty * ty * ty - ty * ty) * 0.5)
        val = 0.0
        for j in range(4):
            r = min(max(iy - 1 + j, 0), h - 1)
            row = 0.0
            for i in range(4):
                c = min(max(ix - 1 + i, 0), w - 1)
                row += u[i] * src[r, c]
            val += v[j] * row
        acc[q] += wt * val
        tot[q] += wt


def blend_at(planes: list[np.ndarray], flows: list[np.ndarray], weights: np.ndarray,
             ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The weighted sum of the compensated neighbour *planes* at the pixels ``(ys, xs)`` and the
    sum of the weights that had a sample (``weights``: ``(K, N)`` at those pixels)."""
    acc = np.zeros(ys.size, np.float64)
    tot = np.zeros(ys.size, np.float64)
    for pl, f, wt in zip(planes, flows, weights, strict=True):
        _k_blend_at(pl, np.ascontiguousarray(f[0], dtype=np.float32),
                    np.ascontiguousarray(f[1], dtype=np.float32),
                    ys, xs, np.ascontiguousarray(wt, dtype=np.float32), acc, tot, MARGIN)
    return acc, tot


def sample(nbs: list[np.ndarray], flows: list[np.ndarray], interp: str = "bicubic") -> np.ndarray:
    """Neighbour planes compensated onto the frame, ``(K, H, W)``, NaN beyond :data:`MARGIN`."""
    out = []
    for nb, f in zip(nbs, flows, strict=True):
        h, w = f.shape[1:]
        gx = np.arange(w, dtype=np.float32)[None, :] + f[0]
        gy = np.arange(h, dtype=np.float32)[:, None] + f[1]
        inside = (gx >= -MARGIN) & (gx <= w - 1 + MARGIN) & (gy >= -MARGIN) & (gy <= h - 1 + MARGIN)
        v = warp(np.ascontiguousarray(nb, dtype=np.float32), f[0], f[1], interp=interp,  # type: ignore[arg-type]
                 border="clamp")
        out.append(np.where(inside, v, np.nan))
    return np.stack(out).astype(np.float32) if out else np.zeros((0, *nbs[0].shape), np.float32)


def trusted(cur: np.ndarray, warped: np.ndarray, window: int = 15) -> np.ndarray:
    """*warped* with the samples of poorly compensated areas set to NaN.

    A neighbour's compensation is judged around every pixel by the *median* of ``|cur - sample|``
    over a *window* (more than half of the window beyond a threshold: one box filter): one-frame
    defects in either frame (up to a third of a window at 10 % coverage) leave it at the noise
    and texture level; an object the flow did not follow, or a region the motion uncovered,
    moves it. Above :data:`POOR` times the frame's typical difference (at least
    :data:`POOR_MIN`) the samples are not used, so such a region does not look like a defect.
    """
    out = warped.copy()
    d = np.abs(cur[None] - warped)
    s = d.ravel()[:: max(1, d.size // 65536)]
    thr = max(POOR_MIN, POOR * float(np.nanmedian(s))) if np.isfinite(s).any() else 1.0
    for k in range(warped.shape[0]):
        above = (np.nan_to_num(d[k], nan=0.0) > thr).astype(np.float32)
        out[k][cv2.blur(above, (window, window), borderType=cv2.BORDER_REPLICATE) > 0.5] = np.nan
    return out


def reliability(cur: np.ndarray, warped: np.ndarray, window: int = 7) -> np.ndarray:
    """``(K, H, W)`` weight of each neighbour around each pixel: how well it matches the frame
    there (mean ``|cur - sample|`` over a *window*, truncated at :data:`REL_TRUNC` typical
    matches so that defects count no more than that) against the best-matching neighbour,
    ``(best + c) / (own + c)`` with ``c`` :data:`REL_C` typical matches: 1 where a neighbour
    matches as well as any, small where it alone disagrees (fine texture read half-way
    between pixels aliases differently in every frame)."""
    k = warped.shape[0]
    d = np.abs(cur[None] - warped)
    best = np.fmin.reduce(d[:, ::4, ::4], axis=0)  # NaN only where no neighbour has a sample
    best = best[np.isfinite(best)]
    typ = max(float(np.median(best)) if best.size else 0.0, 1e-3)
    top = REL_TRUNC * typ
    e = np.empty_like(d)
    for i in range(k):
        e[i] = cv2.blur(np.fmin(d[i], np.float32(top)), (window, window), borderType=cv2.BORDER_REPLICATE)
    c = REL_C * typ
    return ((e.min(0) + c)[None] / (e + c)).astype(np.float32)


def sharpness(flow: np.ndarray) -> np.ndarray:
    """Weight of a sample by how far its position is from whole pixels: 1 on them, 0.01 half-way."""
    out = np.empty(flow.shape[1:], np.float32)
    _k_sharpness(np.ascontiguousarray(flow[0], dtype=np.float32),
                 np.ascontiguousarray(flow[1], dtype=np.float32), out)
    return out
