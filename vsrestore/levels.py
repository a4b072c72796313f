"""Degradation levels estimated from the pictures themselves (blind mode of denoise/deblock).

- :func:`noise_sigma`: the standard deviation of white Gaussian noise in an image, by the
  patch-PCA method of Chen, Zhu and Heng (ICCV 2015): the eigenvalues of the covariance of
  an image's patches that only noise explains are the smallest ones; the noise variance is
  the mean of the largest such set whose mean equals its median. Texture raises only the
  large eigenvalues, so the estimate holds on detailed pictures where local-variance
  methods overestimate.
- :func:`self_consistent_level`: for a level-conditioned restorer ``f(x, level)`` (trained
  so that ``level`` is the RMS of the degradation it removes), the level ``L`` at which
  ``rms(x - f(x, L)) == L``, found by fixed-point iteration from above. Used where no
  closed-form estimator exists (compression artefacts); a restorer that removes only part
  of the degradation lands below the truth, so ``vr.deblock`` scales the part that is not
  white noise by the model card's calibrated ``level_scale`` (:func:`scaled_level`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

PATCH = 7


def _patches(plane: np.ndarray, size: int, step: int) -> np.ndarray:
    h, w = plane.shape
    v = np.lib.stride_tricks.sliding_window_view(plane, (size, size))[::step, ::step]
    return v.reshape(-1, size * size).astype(np.float64)


def noise_sigma(img: np.ndarray, *, patch: int = PATCH, max_patches: int = 60000) -> float:
    """Noise standard deviation (same units as *img*) of a ``(C, H, W)`` or ``(H, W)`` array.

    Channels are measured separately and averaged (the noise is assumed equal in all).
    """
    planes = img[None] if img.ndim == 2 else img
    _, h, w = planes.shape
    if min(h, w) < 2 * patch:
        raise ValueError(f"noise_sigma: image {w}x{h} is too small (needs {2 * patch} px a side)")
    n = (h - patch + 1) * (w - patch + 1)
    step = max(1, int(np.ceil(np.sqrt(n / max_patches))))
    sig = []
    for plane in planes:
        x = _patches(np.asarray(plane, np.float64), patch, step)
        x -= x.mean(axis=0)
        lam = np.clip(np.linalg.eigvalsh(x.T @ x / len(x)), 0.0, None)  # ascending
        var = lam[0]
        for i in range(len(lam), 0, -1):
            tau = lam[:i].mean()
            if (lam[:i] > tau).sum() >= (lam[:i] < tau).sum():  # mean <= median: noise-only set
                var = tau
                break
        sig.append(np.sqrt(var))
    return float(np.mean(sig))


def self_consistent_level(restore: Callable[[np.ndarray, float], np.ndarray], x: np.ndarray, *,
                          start: float, iterations: int = 6, tol: float = 2e-3) -> float:
    """Fixed point ``L = rms(x - restore(x, L))`` reached from ``start`` (an upper bound).

    Above the true level the restorer also removes detail, but less than ``L`` worth, so
    the residual shrinks towards the true level; below it the residual stays near ``L``.
    """
    level = float(start)
    for _ in range(iterations):
        new = float(np.sqrt(np.mean((x - restore(x, level)) ** 2)))
        done = abs(new - level) < tol
        level = min(new, level)
        if done:
            break
    return level


def scaled_level(consistent: float, noise: float, scale: float) -> float:
    """The level of a degradation that is part white noise, part structured error.

    A restorer removes white noise fully, so self-consistency finds that part at its true
    level, but it removes structured error (compression) only partly, so that part is found
    below its level and is multiplied by *scale* (a model's calibrated ``level_scale``)::

        n = min(noise, consistent)
        level = sqrt(n^2 + scale^2 * (consistent^2 - n^2))

    *noise*: the white-noise sigma (:func:`noise_sigma`). ``scale=1`` or all-noise input
    gives *consistent* back; noise-free input gives ``scale * consistent``.
    """
    if scale < 1:
        raise ValueError(f"scaled_level: scale must be >= 1, got {scale}")
    n = min(max(noise, 0.0), consistent)
    return float(np.sqrt(n * n + scale * scale * (consistent * consistent - n * n)))
