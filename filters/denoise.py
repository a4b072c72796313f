"""Denoising with a noise-level-conditioned network: ``vr.denoise``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import vapoursynth as vs

from vsrestore import color, levels
from vsrestore import models as registry
from vsrestore.bridge import frame_to_array
from vsrestore.errors import VSRestoreError, check_clip
from vsrestore.runtime.apply import apply_model, prepare_runner
from vsrestore.runtime.backends import Backend

core = vs.core
NAME = "denoise"
log = logging.getLogger("vsrestore.denoise")
MAX_SIGMA = 75.0  # beyond the training range (0-50) the network extrapolates poorly
SAMPLES = 5  # frames the blind estimate looks at


def denoise(clip: vs.VideoNode, strength: float | None = None, *, scale: int = 1,
            model: str | Path | None = None, tile: int | tuple[int, int] | None = None,
            overlap: int | None = None, backend: Backend | None = None) -> vs.VideoNode:
    """Remove sensor/film-scan noise (and, with ``scale=2``, upscale in the same pass).

    The shipped model (``denoise-drunet``, a DRUNet) takes the noise level as an input, so
    one network covers light to heavy noise. ``strength`` is that level: the standard
    deviation of the noise on the 0-255 scale (of 8-bit video, whatever the clip's depth).
    ``None`` estimates it blindly from the clip: the patch-PCA estimator of
    :mod:`vsrestore.levels` on up to five frames spread over the clip, the median taken
    (logged to stderr). Larger values smooth more. ``strength=0`` returns *clip* unchanged.

    ``scale=2`` runs the joint denoise + x2 super-resolution model (``dnsr-x2``: the
    denoiser and the x2 SR network trained end to end), which beats denoising and then
    upscaling; the level is the noise of the low-resolution input.

    Args:
        clip: any YUV/RGB/GRAY clip, 8-16-bit integer or 16/32-bit float.
        strength: noise sigma (0-255 scale); ``None`` = estimate from the clip.
        scale: 1 (denoise) or 2 (joint denoise + x2 upscale).
        model: a shipped model name or a DRUNet-style model file (RGB + noise-map input).
        tile, overlap, backend: as for :func:`vsrestore.upscale`.

    Example (.vpy)::

        import vapoursynth as vs, vsrestore as vr
        clip = vs.core.bs.VideoSource("noisy.mkv")
        clip = vr.denoise(clip)              # blind; or vr.denoise(clip, 12) for sigma 12
        clip.set_output()
    """
    check_clip(clip, NAME)
    color.check_supported(clip, NAME)
    if strength is not None and (isinstance(strength, bool) or not isinstance(strength, (int, float))
                                 or not 0 <= strength <= MAX_SIGMA):
        raise VSRestoreError(NAME, f"strength must be None or a noise sigma in 0..{MAX_SIGMA:g} "
                             f"(0-255 scale), got {strength!r}", "use strength=None (estimate) or e.g. 10")
    if scale not in (1, 2) or isinstance(scale, bool):
        raise VSRestoreError(NAME, f"scale must be 1 or 2, got {scale!r}",
                             "use scale=1, or 2 for denoise + x2")
    if strength == 0:
        return clip if scale == 1 else _plain_upscale(clip, tile, overlap, backend)
    if model is None:
        name = registry.default_for("denoise", scale)
        if name is None and scale == 1:
            raise VSRestoreError(NAME, "no denoise model is installed",
                                 "reinstall vsrestore, or pass model= a DRUNet-style model file")
        if name is None:
            raise VSRestoreError(NAME, f"no joint denoise + x{scale} model is installed",
                                 f"use vr.upscale(vr.denoise(clip), {scale}), pass model= a joint model "
                                 f"file, or train one: vsrestore train dnsr-x{scale}")
        model = name
    lm = registry.resolve(model, NAME)
    if lm.cond_channels != 1 or lm.in_channels != 3:
        raise VSRestoreError(NAME, f"model {lm.name} does not take a noise level (RGB + noise map)",
                             "use a shipped denoise model or a DRUNet-style file")
    if lm.scale != scale:
        raise VSRestoreError(NAME, f"model {lm.name} scales by {lm.scale}, but scale={scale}",
                             f"pass scale={lm.scale}")
    sigma = float(strength) if strength is not None else estimate_sigma(clip)
    if sigma <= 0:
        return clip if scale == 1 else _plain_upscale(clip, tile, overlap, backend)
    runner, tile_hw, overlap = prepare_runner(lm, NAME, tile=tile, overlap=overlap, backend=backend)
    return apply_model(clip, lm, runner, stage=NAME, tile=tile_hw, overlap=overlap, level=sigma / 255.0)


def estimate_sigma(clip: vs.VideoNode) -> float:
    """Blind noise sigma (0-255 scale) of *clip*: median over frames spread through it."""
    side = 2 * levels.PATCH
    if clip.width < side or clip.height < side:
        raise VSRestoreError(NAME, f"the clip is {clip.width}x{clip.height}, too small to estimate its "
                             f"noise (needs {side} px a side)",
                             "pass strength= (the noise sigma, 0-255 scale), e.g. strength=10")
    info = color.describe(clip)
    rgb = color.to_rgbs(clip, info)
    n = clip.num_frames
    picks = sorted({round(i * (n - 1) / max(1, SAMPLES - 1)) for i in range(min(SAMPLES, n))})
    est = []
    for k in picks:
        arr = frame_to_array(rgb.get_frame(k))
        est.append(levels.noise_sigma(np.clip(arr, 0.0, 1.0)) * 255.0)
    sigma = float(np.median(est))
    log.info("denoise: estimated noise sigma %.2f (0-255 scale) from frames %s", sigma, picks)
    return min(sigma, MAX_SIGMA)


def _plain_upscale(clip: vs.VideoNode, tile: int | tuple[int, int] | None, overlap: int | None,
                   backend: Backend | None) -> vs.VideoNode:
    from vsrestore.filters.upscale import upscale

    return upscale(clip, 2, tile=tile, overlap=overlap, backend=backend)
