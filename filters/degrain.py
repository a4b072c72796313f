"""Film grain and noise removal: ``vr.degrain``.

Two stages, both driven by the grain's measured sigma-vs-luma curve (a :class:`GrainProfile`):

1. Motion-compensated temporal averaging. Each neighbour ``n-radius .. n+radius`` is warped onto
   frame ``n`` along dense optical flow (DIS, ``vsrestore.motion``; bicubic,
   ``vsrestore.kernels.warp``). Its per-pixel weight is a temporal non-local-means weight: with
   ``d2`` the Gaussian-windowed (sigma 2.5 px) squared difference of the warped neighbour's luma
   and the frame's, divided by what two independent grain samples give (``2 sigma(luma)^2``),
   ``w = exp(-max(d2 - 1, 0))``. Where the flow is right, the difference is grain alone and
   ``w ~ 1``; at occlusions, moving edges, flow errors or new detail it grows and ``w`` falls to 0,
   so nothing smears. Pixels whose match falls outside the neighbour get 0, and neighbours across a
   scene cut (``motion.is_scene_cut``) are not used. (A forward-backward flow check was tried as
   well: it cost a second flow per neighbour and gained nothing over these weights.) Each pair of
   frames is searched once: the later frame's backward flow brings the earlier one onto it, and
   its inverse (the fixed point of ``g(x) = -b(x + g(x))``, three bilinear steps) brings the later
   one onto the earlier; both frames' requests share it. On ``benchmarks/bench_degrain.py``'s
   material that gave the same PSNR as a second search, for half the searches. (Chaining
   one-frame flows to reach ``n +- 2`` instead was tried too: it lost PSNR on diagonal pans.)
2. Spatial shrinkage of the average: 8x8 sliding-block DCT, hard threshold then empirical Wiener
   (``vsrestore.dctshrink``), with the noise left after stage 1, per pixel
   ``sigma(luma)^2 * ((1 - rho) sum w^2 / (sum w)^2 + rho)`` (``rho``: the grain's frame-to-frame
   correlation, clipped to 0..0.9), spread over the DCT coefficients as the profile's grain size
   dictates (coarse grain is mostly low-frequency).

Every plane is filtered with its own sigma curve (profile channel c for plane c; planes beyond the
profile's channels use channel 0's curve), looked up at the (smoothed) luma under each pixel, as
``vr.analyze_grain`` measures it: Y of YUV, BT.709-weighted R, G, B of RGB, in fractions of full
scale. Weights come from luma (for RGB, from the luma of R, G, B with the curves combined the same
way) and serve all planes, resized for subsampled chroma; the flow is scaled to match.

Nothing is synthesized: the output only mixes real pixels of the clip and removes part of them.
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np
import vapoursynth as vs
from vsrestore.filters.analyze_grain import analyze_grain
from vsrestore.kernels.warp import warp

from vsrestore import color, dctshrink, motion
from vsrestore.bridge import Shared, map_frames, new_frame, temporal_neighbours
from vsrestore.errors import VSRestoreError, check_clip
from vsrestore.grainmodel import GrainProfile

core = vs.core
log = logging.getLogger("vsrestore.degrain")
NAME = "degrain"
_PATCH = 2.5  # Gaussian window (px) of the patch distance
_FALLOFF = 1.0  # weight exp(-_FALLOFF * excess distance)
_LUMA_BLUR = 2.0  # luma is smoothed by this Gaussian before the sigma lookup (grain off the lookup)
_STEP = 3  # DCT block grid spacing: step 2 is +0.09 dB, 2x slower; step 4 -0.3 dB (bench material)
_RGB_Y = (0.2126, 0.7152, 0.0722)
_CHANNELS = {vs.YUV: ("Y", "U", "V"), vs.RGB: ("R", "G", "B"), vs.GRAY: ("Y",)}


def degrain(clip: vs.VideoNode, profile: GrainProfile | None = None, *, strength: float = 1.0,
            radius: int = 2, spatial: float = 1.0, preset: str = "medium") -> vs.VideoNode:
    """Remove film grain / noise, temporally where motion allows, without smearing detail.

    Frame ``n`` is averaged with its motion-compensated neighbours, each pixel weighted by how
    well the neighbour matches it beyond what the grain explains, then what grain is left is
    removed by a DCT Wiener filter (module notes give the method). The denoising strength follows
    the grain's sigma at each luma level: from *profile* when given, else measured on *clip* by
    :func:`measure` when the filter is created (``vr.analyze_grain`` on motion-compensated frame
    triples; 8 triples are read). Deterministic: the same input gives the same bytes.

    Args:
        clip: YUV/RGB/GRAY, 8-16-bit integer or 16/32-bit float. Output: same format and props.
        profile: a :class:`vsrestore.grainmodel.GrainProfile` (``vr.analyze_grain``) measured
            on this clip's format family (one-channel profiles fit every clip).
        strength: multiplies the profile's sigma (0..4); 0 returns *clip* itself, < 1 keeps some
            grain, > 1 also removes finer detail.
        radius: neighbours on each side (0..3; 0 = spatial only). 2 is the tested default.
        spatial: multiplier of the sigma the spatial stage removes (0..4; 0 = temporal only).
        preset: optical-flow preset (``vsrestore.motion.PRESETS``); "fast" is ~4x quicker to
            compute flow at some loss on fine motion.

    Example (.vpy)::

        import vapoursynth as vs, vsrestore as vr
        src = vs.core.bs.VideoSource("scan.mkv")
        clip = vr.degrain(src)                        # grain measured on src itself
        # or: one profile for the whole film, measured on a still, flat stretch
        prof = vr.analyze_grain(src[1000:1100])
        clip = vr.degrain(src, prof, strength=0.9)
        clip = vr.regrain(clip, prof, strength=0.3)  # optional: a fresh, lighter grain
        clip.set_output()
    """
    check_clip(clip, NAME)
    color.check_supported(clip, NAME)
    assert clip.format is not None
    fmt = clip.format
    for label, v, hi in (("strength", strength, 4.0), ("spatial", spatial, 4.0)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= hi:
            raise VSRestoreError(NAME, f"{label} must be a number in 0..{hi:g}, got {v!r}",
                                 f"use e.g. {label}=1.0")
    if not isinstance(radius, int) or isinstance(radius, bool) or not 0 <= radius <= 3:
        raise VSRestoreError(NAME, f"radius must be an int in 0..3, got {radius!r}", "use radius=2")
    if preset not in motion.PRESETS:
        raise VSRestoreError(NAME, f"unknown preset {preset!r}", f"use one of {', '.join(motion.PRESETS)}")
    if profile is not None and not isinstance(profile, GrainProfile):
        raise VSRestoreError(NAME, f"profile must be a GrainProfile or None, got {type(profile).__name__}",
                             "pass vr.analyze_grain(clip), or None to measure the clip")
    if profile is not None:
        _check_channels(profile, fmt)
    if strength == 0:
        return clip
    if profile is None:
        if clip.width < 16 or clip.height < 16:
            raise VSRestoreError(NAME, f"the clip is {clip.width}x{clip.height}, too small to measure "
                                 "its grain", "pass a profile measured on a larger clip")
        log.info("degrain: measuring the grain on up to 8 motion-compensated frame triples (once, "
                 "before the first frame; upstream filters render those frames)")
        try:
            profile = measure(clip)
        except VSRestoreError as e:  # analyze_grain's complaint, under this filter's name
            raise VSRestoreError(NAME, f"cannot measure the clip's grain: {e.problem}",
                                 f"pass profile= measured on a larger clip (vr.analyze_grain); {e.fix}"
                                 if e.fix else "pass profile= measured on a larger clip") from e
        log.info("degrain: measured grain sigma %s (median over luma, 0-255 scale)",
                 ", ".join(f"{c} {_median_sigma(profile, i):.2f}" for i, c in enumerate(profile.channels)))
    plans = [_plan(profile, p, float(strength)) for p in range(fmt.num_planes)]
    if fmt.color_family == vs.RGB:  # the weight luma's sigma: the channel curves combined like luma
        sig_w = sum((k * plans[p][0] for p, k in enumerate(_RGB_Y)), np.zeros_like(plans[0][0]))
    else:
        sig_w = plans[0][0]
    integer = fmt.sample_type == vs.INTEGER
    peak = float((1 << fmt.bits_per_sample) - 1) if integer else 1.0
    total = clip.num_frames
    spatial2 = float(spatial) ** 2

    # one flow search per pair of frames, shared by both (motion.flow_between)
    pairs: Shared[tuple[int, int], np.ndarray] = Shared(max(1, radius * (radius + core.num_threads + 1)))

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        stack = [_planes(x, peak) for x in f]
        lumas = [_luma(x, fmt) for x in stack]
        cur = stack[radius]
        luma = lumas[radius]

        look = [_lookup_luma(luma, p.shape) for p in cur]
        s2w = np.square(_sigma(sig_w, look[0]))  # plane 0 has the luma's size
        acc = [p.copy() for p in cur]
        wsum = [np.ones_like(p) for p in cur]
        w2 = [np.ones_like(p) for p in cur]
        for side in (-1, 1):
            for k in range(1, radius + 1):
                j = n + side * k
                if not 0 <= j < total:
                    break
                nb_planes = stack[radius + side * k]
                nb_luma = lumas[radius + side * k]
                # luma(x) ~ nb_luma(x + flow)
                flow = motion.flow_between(pairs, j, nb_luma, n, luma, preset=preset)
                if motion.is_scene_cut(nb_luma, luma, flow=flow):
                    break  # nothing from beyond a cut
                warped = [warp(p, *_scale_flow(flow, p.shape), interp="bicubic") for p in nb_planes]
                wl = _luma(warped, fmt)
                d2 = cv2.GaussianBlur(np.square(wl - luma), (0, 0), _PATCH) / (2.0 * s2w + 1e-10)
                wgt = np.exp(-_FALLOFF * np.maximum(d2 - 1.0, 0.0)) * _inside(flow)
                for p, wp in enumerate(warped):
                    w_p = _resize(wgt, wp.shape)
                    acc[p] += w_p * wp
                    wsum[p] += w_p
                    w2[p] += w_p * w_p
        fout = new_frame(clip, f[radius])
        for p, (lut, cvar, rho) in enumerate(plans):
            est = acc[p] / wsum[p]
            if spatial2 > 0:
                left = (1.0 - rho) * w2[p] / np.square(wsum[p]) + rho  # noise variance left, relative
                est = dctshrink.shrink(est, np.square(_sigma(lut, look[p])) * left * spatial2, cvar,
                                       step=_STEP)
            out = est * np.float32(peak) if integer else est
            dst = np.asarray(fout[p])
            if integer:
                np.copyto(dst, np.clip(np.rint(out), 0, peak), casting="unsafe")
            else:
                np.copyto(dst, out, casting="unsafe")
        return fout

    return map_frames(clip, temporal_neighbours(clip, radius) if radius else [clip], fn)


def measure(clip: vs.VideoNode, *, samples: int = 8, preset: str = "fast") -> GrainProfile:
    """``vr.analyze_grain`` on motion-compensated frame triples of *clip* (what ``degrain`` uses
    when no profile is given).

    ``analyze_grain``'s temporal estimate (frame minus the mean of its neighbours) cancels
    texture only where nothing moves; on a pan it counts moving texture as grain (2x too much
    sigma on slow pans of photos). Here, for up to *samples* frames spread over the clip, both
    neighbours are first warped onto the frame (dense flow, bicubic), so texture cancels wherever
    the flow is right; blocks where it is not fail ``analyze_grain``'s flatness test. Triples across
    a scene cut are skipped. Bicubic resampling smooths the neighbours' grain a little (sigma
    reads up to ~4 % low on half-pixel motion); texture the flow misses reads high. On the test
    pans the median sigma over luma bins is within 3 % of the truth (plain ``analyze_grain``: 1.9x),
    textured end bins up to 1.5x. Clips of fewer than 3 frames: ``analyze_grain``
    as is (spatial).
    """
    assert clip.format is not None
    fmt, nf = clip.format, clip.num_frames
    if nf < 3:
        return analyze_grain(clip)
    peak = float((1 << fmt.bits_per_sample) - 1) if fmt.sample_type == vs.INTEGER else 1.0
    triples: list[list[np.ndarray]] = []
    for n in sorted({int(v) for v in np.linspace(1, nf - 2, min(samples, nf - 2))}):
        planes = [_planes(clip.get_frame(i), peak) for i in (n - 1, n, n + 1)]
        luma = _luma(planes[1], fmt)
        out = []
        for nb in (planes[0], planes[2]):
            nb_luma = _luma(nb, fmt)
            flow = motion.dense_flow(nb_luma, luma, preset=preset)
            if motion.is_scene_cut(nb_luma, luma, flow=flow):
                break
            out.append([warp(p, *_scale_flow(flow, p.shape), interp="bicubic") for p in nb])
        if len(out) == 2:
            triples += [out[0], planes[1], out[1]]
    if not triples:
        return analyze_grain(clip)
    float_fmt = core.query_video_format(fmt.color_family, vs.FLOAT, 32, fmt.subsampling_w, fmt.subsampling_h)
    blank = core.std.BlankClip(clip, format=float_fmt.id, length=len(triples), keep=True)

    def put(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        fout = new_frame(blank)
        for p, a in enumerate(triples[n]):
            np.copyto(np.asarray(fout[p]), a)
        return fout

    aligned = map_frames(blank, [blank], put)
    return analyze_grain(aligned, frames=list(range(1, len(triples), 3)))


def _median_sigma(profile: GrainProfile, c: int) -> float:
    """Channel *c*'s sigma, median over the luma bins that had pixels, on the 0-255 scale."""
    vals = [s for s, k in zip(profile.sigma[c], profile.counts[c], strict=True) if k > 0 and math.isfinite(s)]
    return 255.0 * float(np.median(vals)) if vals else float("nan")


def _check_channels(profile: GrainProfile, fmt: vs.VideoFormat) -> None:
    want = _CHANNELS[fmt.color_family]
    have = tuple(profile.channels)
    ok = len(have) == 1 or have == want or (fmt.color_family == vs.GRAY and have[0] == "Y")
    if not ok:
        raise VSRestoreError(NAME, f"the profile was measured on channels {have}, the clip has {want}",
                             "measure the profile on this clip's format (vr.analyze_grain), or convert")


def _plan(profile: GrainProfile, plane: int, strength: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(sigma LUT over luma bins, 8x8 DCT noise shape, temporal correlation) for one plane."""
    c = plane if plane < len(profile.channels) else 0
    lut = np.asarray(profile.sigma[c], np.float32) * np.float32(strength)
    rho = min(max(float(profile.temporal_corr[c]), 0.0), 0.9) if math.isfinite(profile.temporal_corr[c]) \
        else 0.0
    return lut, dctshrink.grain_coef_var(float(profile.grain_size[c])), rho


def _planes(frame: vs.VideoFrame, peak: float) -> list[np.ndarray]:
    """Every plane as float32 in fractions of full scale (integer: code / peak)."""
    k = np.float32(1.0 / peak)
    return [np.asarray(frame[p], dtype=np.float32) * k for p in range(frame.format.num_planes)]


def _luma(planes: list[np.ndarray], fmt: vs.VideoFormat) -> np.ndarray:
    if fmt.color_family == vs.RGB:
        return _RGB_Y[0] * planes[0] + _RGB_Y[1] * planes[1] + _RGB_Y[2] * planes[2]
    return planes[0]


def _blur(a: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(a, (0, 0), _LUMA_BLUR)


def _lookup_luma(luma: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Smoothed luma at a plane's size: where its sigma is read."""
    return _blur(_resize(luma, shape))


def _sigma(lut: np.ndarray, luma: np.ndarray) -> np.ndarray:
    """Sigma at each pixel: the LUT's bin centres, linear between, held beyond the ends."""
    n = len(lut)
    return np.interp(luma, (np.arange(n) + 0.5) / n, lut).astype(np.float32)


def _resize(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if a.shape == shape:
        return a
    return cv2.resize(a, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _scale_flow(flow: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The (dx, dy) flow resampled to a plane's *shape*, vectors scaled to its pixels."""
    h, w = flow.shape[1:]
    if (h, w) == tuple(shape):
        return flow[0], flow[1]
    sx, sy = np.float32(shape[1] / w), np.float32(shape[0] / h)
    return _resize(flow[0], shape) * sx, _resize(flow[1], shape) * sy


def _inside(flow: np.ndarray) -> np.ndarray:
    """1 where the flow samples inside the neighbour, else 0."""
    h, w = flow.shape[1:]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    sx, sy = gx + flow[0], gy + flow[1]
    return ((sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)).astype(np.float32)
