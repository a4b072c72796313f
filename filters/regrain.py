"""Film grain synthesis: ``vr.regrain`` (the model: :mod:`vsrestore.grainmodel`)."""

from __future__ import annotations

import math

import numpy as np
import vapoursynth as vs
from vsrestore.kernels.grain import noise_key, regrain_plane_seeded

from vsrestore.bridge import map_frames, new_frame
from vsrestore.errors import VSRestoreError, check_clip
from vsrestore.grainmodel import (
    STOCKS,
    GrainProfile,
    channel_names,
    frame_planes,
    shaping_kernel,
    stock_profile,
)
from vsrestore.props import SYNTH_PROP, synthesized_stages

__all__ = ["regrain"]


def regrain(clip: vs.VideoNode, profile_or_stock: GrainProfile | str, *, seed: int = 0,
            strength: float = 1.0) -> vs.VideoNode:
    """Add synthesized grain following a measured profile or a stock preset.

    Each channel c of the profile goes to plane c (a one-channel profile on RGB gives the same,
    monochrome grain to R, G and B; planes beyond the profile get none). The grain is Gaussian white
    noise drawn per frame by the counter-based generator of ``vsrestore.kernels.grain`` (SplitMix64
    + Box-Muller, keyed by ``noise_key(seed, n, c)``: the same bytes whatever the thread count),
    shaped by the profile's Gaussian (``grain_size``, two 1-D passes) and scaled per pixel by its
    sigma-vs-luma curve times *strength* (luma: Y box-averaged to the chroma size, or
    0.2126 R + 0.7152 G + 0.0722 B). One fused pass per plane: noise, FIR, sigma, add, and for
    integer clips rounding and clamping to the code range; float clips are not clamped. Every output
    frame gets "regrain" appended to its ``vsrestore_synthesized`` prop; ``strength=0`` returns
    *clip* itself.

    Args:
        clip: any YUV/RGB/GRAY clip, integer or float.
        profile_or_stock: a :class:`GrainProfile` or one of :data:`STOCKS`.
        seed: non-negative integer; the same seed gives the same grain.
        strength: sigma multiplier (>= 0).

    Example (.vpy)::

        clip = vr.regrain(clip, "35mm-fine", seed=1)
        clip = vr.regrain(clip, vr.analyze_grain(src), strength=0.8)
    """
    name = "regrain"
    check_clip(clip, name)
    assert clip.format is not None
    if not isinstance(strength, (int, float)) or isinstance(strength, bool) or not 0 <= strength < math.inf:
        raise VSRestoreError(name, f"strength={strength!r} is not a finite number >= 0",
                             "use e.g. strength=1.0")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise VSRestoreError(name, f"seed={seed!r} is not a non-negative integer", "use e.g. seed=0")
    if isinstance(profile_or_stock, str):
        prof = stock_profile(profile_or_stock, channel_names(clip.format))
    elif isinstance(profile_or_stock, GrainProfile):
        prof = profile_or_stock
    else:
        raise VSRestoreError(name, f"expected a GrainProfile or a stock name, got "
                             f"{type(profile_or_stock).__name__}", f"pass one of {sorted(STOCKS)}")
    if strength == 0:
        return clip
    fmt = clip.format
    integer = fmt.sample_type == vs.INTEGER
    peak = float((1 << fmt.bits_per_sample) - 1) if integer else 1.0
    mono = len(prof.channels) == 1 and fmt.color_family == vs.RGB
    rgb = fmt.color_family == vs.RGB
    half = not integer and fmt.bits_per_sample == 16  # float16: the CPU kernel works in float32
    plan: list[tuple[int, np.ndarray, np.ndarray, tuple[int, int]] | None] = []
    for p in range(fmt.num_planes):
        c = 0 if mono else p
        if c >= len(prof.channels):
            plan.append(None)
            continue
        lut = (np.asarray(prof.sigma[c], np.float64) * strength * peak).astype(np.float32)
        sub = (1 << fmt.subsampling_h, 1 << fmt.subsampling_w) if p > 0 and not rgb else (1, 1)
        plan.append((c, shaping_kernel(prof.grain_size[c]), lut, sub))

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        src = f[0]
        fout = new_frame(clip, src)
        if rgb:  # luma from R, G, B as a fraction of full scale
            luma, lscale = frame_planes(src)[1][0], 1.0
        else:  # the Y (GRAY) plane as it is: the kernel scales and box-averages it
            luma, lscale = np.asarray(src[0]), 1.0 / peak
            if half:
                luma = luma.astype(np.float32)
        for p, job in enumerate(plan):
            dst, plane = np.asarray(fout[p]), np.asarray(src[p])
            if job is None:
                np.copyto(dst, plane)
                continue
            c, k, lut, sub = job
            key = noise_key(seed, n, c)
            if half:
                out = regrain_plane_seeded(plane.astype(np.float32), luma, lut, k, key, luma_scale=lscale,
                                           sub=sub)
                np.copyto(dst, out, casting="unsafe")
            else:
                regrain_plane_seeded(plane, luma, lut, k, key, out=dst, peak=peak if integer else 0.0,
                                     luma_scale=lscale, sub=sub)
        fout.props[SYNTH_PROP] = [*synthesized_stages(src.props), name]
        return fout

    return map_frames(clip, [clip], fn)
