"""Compression artefact removal (blocking, ringing, mosquito noise): ``vr.deblock``."""

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
from vsrestore.runtime.loader import LoadedModel
from vsrestore.runtime.runners import Runner
from vsrestore.runtime.tiling import run_tiled

core = vs.core
NAME = "deblock"
log = logging.getLogger("vsrestore.deblock")
MAX_LEVEL = 40.0
SAMPLES = 3  # frames the blind estimate looks at
CROP = 256  # side of the centre crop of each sampled frame


def deblock(clip: vs.VideoNode, strength: float | None = None, *, model: str | Path | None = None,
            tile: int | tuple[int, int] | None = None, overlap: int | None = None,
            backend: Backend | None = None) -> vs.VideoNode:
    """Remove H.264/HEVC/MPEG/JPEG compression artefacts.

    The shipped model (``deblock-drunet``, a DRUNet trained on real libx264/libx265/JPEG
    output) takes the artefact level as an input: the RMS error the compression added, on
    the 0-255 scale (about 2-4 for a good encode, 5-8 for visibly blocky video, 10+ for
    very low bitrates). ``strength`` is that level; ``None`` finds it from the clip: on up
    to three frames, the level L at which the network's own correction has RMS L
    (self-consistency, see :mod:`vsrestore.levels`), median taken, with its part that is
    not white noise multiplied by the model card's ``level_scale`` (a network removes
    only part of the compression error, so L sits below the true level, but all of the
    noise; the factor is calibrated on training pictures, 1 for a model file without a
    card), logged to stderr. Larger values clean more. ``strength=0`` returns *clip*
    unchanged.

    Args:
        clip: any YUV/RGB/GRAY clip, 8-16-bit integer or 16/32-bit float (decoded video).
        strength: artefact level (RMS, 0-255 scale); ``None`` = estimate from the clip.
        model: a shipped model name or a DRUNet-style model file (RGB + level-map input).
        tile, overlap, backend: as for :func:`vsrestore.upscale`.

    Example (.vpy)::

        import vapoursynth as vs, vsrestore as vr
        clip = vs.core.bs.VideoSource("old-stream.mp4")
        clip = vr.deblock(clip)              # blind; or vr.deblock(clip, 6)
        clip.set_output()
    """
    check_clip(clip, NAME)
    color.check_supported(clip, NAME)
    if strength is not None and (isinstance(strength, bool) or not isinstance(strength, (int, float))
                                 or not 0 <= strength <= MAX_LEVEL):
        raise VSRestoreError(NAME, f"strength must be None or an artefact level in 0..{MAX_LEVEL:g} "
                             f"(RMS, 0-255 scale), got {strength!r}",
                             "use strength=None (estimate) or e.g. 6")
    if strength == 0:
        return clip
    lm = registry.resolve(model if model is not None else registry.default_for("deblock", 1) or "", NAME)
    if lm.cond_channels != 1 or lm.in_channels != 3 or lm.scale != 1:
        raise VSRestoreError(NAME, f"model {lm.name} is not a level-conditioned x1 RGB model",
                             "use the shipped deblock model or a DRUNet-style file")
    runner, tile_hw, overlap = prepare_runner(lm, NAME, tile=tile, overlap=overlap, backend=backend)
    level = float(strength) if strength is not None else estimate_level(clip, lm, runner)
    if level <= 0:
        return clip
    return apply_model(clip, lm, runner, stage=NAME, tile=tile_hw, overlap=overlap, level=level / 255.0)


def estimate_level(clip: vs.VideoNode, lm: LoadedModel, runner: Runner) -> float:
    """Blind artefact level (RMS, 0-255 scale) of *clip*: self-consistency, calibrated."""
    scale = level_scale(lm)
    rgb = color.to_rgbs(clip, color.describe(clip))
    n = clip.num_frames
    picks = sorted({round(i * (n - 1) / max(1, SAMPLES - 1)) for i in range(min(SAMPLES, n))})

    def restore(x: np.ndarray, level: float) -> np.ndarray:
        def infer(t: np.ndarray) -> np.ndarray:
            plane = np.full((t.shape[0], 1, *t.shape[2:]), level, np.float32)
            return np.asarray(runner(np.concatenate([t, plane], axis=1)), np.float32)

        return run_tiled(infer, x[None], scale=1, tile=None, overlap=0, multiple=lm.size_multiple,
                         minimum=lm.min_size)[0]

    est, noise = [], []
    for k in picks:
        arr = np.clip(frame_to_array(rgb.get_frame(k)), 0.0, 1.0)
        _, h, w = arr.shape
        y0, x0 = max(0, (h - CROP) // 2), max(0, (w - CROP) // 2)
        crop = np.ascontiguousarray(arr[:, y0: y0 + CROP, x0: x0 + CROP])
        est.append(levels.self_consistent_level(restore, crop, start=MAX_LEVEL / 255.0) * 255.0)
        if scale != 1 and min(crop.shape[1:]) >= 2 * levels.PATCH:
            noise.append(levels.noise_sigma(crop) * 255.0)
    sc, sigma = float(np.median(est)), float(np.median(noise)) if noise else 0.0
    level = min(MAX_LEVEL, levels.scaled_level(sc, sigma, scale))
    log.info("deblock: estimated artefact level %.2f (RMS, 0-255 scale; self-consistent %.2f, white "
             "noise %.2f, level_scale %g) from frames %s", level, sc, sigma, scale, picks)
    return level


def level_scale(lm: LoadedModel) -> float:
    """The card's calibration factor for the blind level (1 without one)."""
    v = lm.card.get("level_scale", 1.0) if lm.card else 1.0
    if isinstance(v, bool) or not isinstance(v, int | float) or not 1 <= v <= 8:
        raise VSRestoreError(NAME, f"model {lm.name}: card level_scale {v!r} is not a number in 1..8",
                             "fix the model card (vsrestore models evaluate NAME --write recalibrates it)")
    return float(v)
