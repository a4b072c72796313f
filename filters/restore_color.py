"""Faded-dye colour restoration for archival film: ``vr.restore_color``.

The model. A colour print's three dye layers (cyan, magenta, yellow) record the red,
green and blue channels as *densities* ``D = -log10(T)`` of the transmittance ``T``.
Dye fading scales each layer's density by its own factor (cyan and yellow fade most in
Eastmancolor stock, hence the pink/red cast) and stain or base fog adds a density offset,
so a faded channel is an affine map of the original one *in density*::

    D'_c = k_c * D_c + f_c        (k_c: density kept, f_c: fog)

The filter linearises the signal with its transfer curve (``_Transfer``: sRGB piecewise
curve when unspecified, BT.709 for 1/6/14/15, pure powers for 4/5, linear for 8; a
pure-power curve only scales density, but the linear toe of sRGB/BT.709 does not, and in
deep shadows that matters), works in ``D = -log10(max(L, 1e-4))`` and inverts the affine
map per channel. Its two unknowns per channel come from two robust anchors that a print
shares across its layers: the white point (0.1th percentile of density: highlights, clear
base) and the black point (99.9th percentile: D-max, where all three dyes are at their
densest). Each channel's anchors are mapped onto the reference range, taken from the
channel with the widest density range, i.e. the best surviving layer (softly weighted, so
the reference never jumps between two near-equal channels)::

    D_restored_c = (D'_c - beta_c) / alpha_c,  alpha_c = range_c / range_ref,
    beta_c = white_c - alpha_c * white_ref

This restores both each layer's lost contrast (a gain, which gray-world white balance
cannot) and its fog (an offset). The reference layer's own fog is kept: nothing in the
picture tells it from a scene's key. Measured (``benchmarks/bench_restore_color.py``: four
photos x three fade profiles, slow pans with grain), mean CIEDE2000 to the unfaded original
is 0.27x gray-world's (0.39x at worst) and 0.48x a per-channel auto-levels stretch's. A
mid-tone "grey pixels" anchor was tried and dropped: on warm scenes (coffee, a ginger cat)
the pixels that look grey are not, and it cost more than it gave.

Over time: per-frame anchors are measured on a small analysis copy, and each frame uses
the median of the anchors of frames ``n - radius .. n + radius`` that lie in its shot
(scene cuts from :func:`vsrestore.motion.is_scene_cut`), so there is no frame-to-frame
colour flicker and every shot is balanced on its own.
"""

from __future__ import annotations

import cv2
import numpy as np
import vapoursynth as vs

from vsrestore import color, motion
from vsrestore.bridge import frame_to_array, map_frames, new_frame, temporal_neighbours
from vsrestore.errors import VSRestoreError, check_clip

core = vs.core
NAME = "restore_color"

_EPS = 1e-4  # linear floor: density 4, beyond any print's D-max
_LO, _HI = 0.1, 99.9  # white / black point percentiles of density
_CLIPPED = 1.0 / 1024  # a pixel with a channel at or below this (crushed, bars) tells no density
_MIN_RANGE = 0.1  # a frame whose widest channel spans less density than this is not measured
_MIN_ALPHA = 0.25  # a channel's density range is restored by at most 4x
_TAU = 0.05  # softness (density) of the choice of the reference channel
_ANALYSIS_SIDE = 256  # analysis copy: 1/4 size, but not below this long side
_LUT_SIZE = 65536  # nearest entry: input steps of 1/65535, finer than 16-bit output
_P_STATS, _P_OK, _P_CUT = "_vsr_rc_stats", "_vsr_rc_ok", "_vsr_rc_cut"

# _Transfer -> (gamma, offset, threshold, slope): L = V / slope below threshold,
# ((V + offset) / (1 + offset)) ** gamma above. sRGB is assumed where the prop is missing.
_SRGB = (2.4, 0.055, 0.04045, 12.92)
_BT709 = (1 / 0.45, 0.099, 0.081, 4.5)
_CURVES: dict[int, tuple[float, float, float, float]] = {
    2: _SRGB, 13: _SRGB, 4: (2.2, 0.0, 0.0, 1.0), 5: (2.8, 0.0, 0.0, 1.0), 8: (1.0, 0.0, 0.0, 1.0)}


def restore_color(clip: vs.VideoNode, *, strength: float = 1.0, keep_tint: float = 0.0,
                  radius: int = 12) -> vs.VideoNode:
    """Restore faded dyes: rebalance each channel's density range and fog, shot by shot.

    See the module docstring for the model. Works in RGB (YUV is converted there and
    back with its ``_Matrix``/``_Range``); format, size, length and frame props are kept.
    Float RGB outside 0..1 is clipped to it.

    Args:
        clip: YUV or RGB, 8-16-bit integer or 16/32-bit float, SDR.
        strength: 0..1 fraction of the correction (interpolated in density); 0 returns
            *clip* itself.
        keep_tint: 0..1 fraction of the shot's overall colour cast to keep (the chroma of
            its mean density): 1 for deliberately tinted or toned material (sepia, a blue
            night tint) whose dye layers still need their contrast restored.
        radius: the anchors are the median over ``n - radius .. n + radius`` within the
            shot (0: per frame; more: steadier, slower to follow a changing shot).

    Example (.vpy)::

        import vapoursynth as vs, vsrestore as vr
        clip = vs.core.bs.VideoSource("faded_print.mkv")
        clip = vr.restore_color(clip, strength=0.9, keep_tint=0.2)
        clip.set_output()
    """
    check_clip(clip, NAME)
    color.check_supported(clip, NAME)
    assert clip.format is not None
    if clip.format.color_family == vs.GRAY:
        raise VSRestoreError(NAME, "a GRAY clip has no colour to restore", "pass the YUV or RGB clip")
    for key, val in (("strength", strength), ("keep_tint", keep_tint)):
        if isinstance(val, bool) or not isinstance(val, int | float) or not 0 <= val <= 1:
            raise VSRestoreError(NAME, f"{key} must be a number in 0..1, got {val!r}", f"use e.g. {key}=0.5")
    if not isinstance(radius, int) or isinstance(radius, bool) or not 0 <= radius <= 100:
        raise VSRestoreError(NAME, f"radius must be an int in 0..100, got {radius!r}", "use e.g. radius=12")
    if strength == 0:
        return clip
    curve = _curve_of(clip)
    info = color.describe(clip)
    rgb = color.to_rgbs(clip, info)
    stats = _stats(rgb, curve)
    return color.from_rgbs(_apply(rgb, stats, curve, radius, float(strength), float(keep_tint)), info)


def _curve_of(clip: vs.VideoNode) -> tuple[float, float, float, float]:
    tr = clip.get_frame(0).props.get("_Transfer") if clip.num_frames else None
    tr = tr if isinstance(tr, int) else 2
    if tr in (16, 18):
        raise VSRestoreError(NAME, f"HDR transfer (_Transfer={tr}) is not supported",
                             "restore the SDR master, or tonemap to SDR first")
    return _CURVES.get(tr, _BT709)


def to_linear(v: np.ndarray, curve: tuple[float, float, float, float]) -> np.ndarray:
    g, a, thr, slope = curve
    v = np.maximum(v, 0.0)
    return np.where(v < thr, v / slope, ((v + a) / (1 + a)) ** g)


def from_linear(lin: np.ndarray, curve: tuple[float, float, float, float]) -> np.ndarray:
    g, a, thr, slope = curve
    lin = np.clip(lin, 0.0, 1.0)
    return np.where(lin < thr / slope, lin * slope, (1 + a) * lin ** (1 / g) - a)


def density(v: np.ndarray, curve: tuple[float, float, float, float]) -> np.ndarray:
    """Density ``-log10(max(L, eps))`` of code values *v* (any shape)."""
    return -np.log10(np.maximum(to_linear(v, curve), _EPS))


def frame_stats(rgb: np.ndarray, curve: tuple[float, float, float, float]) -> np.ndarray | None:
    """``(3, 3)`` white points, black points and mean densities of a ``(3, H, W)`` frame, or None.

    Pixels with a crushed channel are left out (they only say "denser than the floor").
    None where the frame says nothing about colour balance: (nearly) all crushed black, or
    flat (a fade to white, a title card).
    """
    px = np.stack([cv2.blur(p, (3, 3)) for p in rgb]).reshape(3, -1)  # less grain in the extremes
    px = px[:, px.min(axis=0) > _CLIPPED]
    if px.shape[1] < max(64, rgb[0].size // 100):
        return None
    d = density(px, curve)
    lo, hi = np.percentile(d, [_LO, _HI], axis=1)
    if float((hi - lo).max()) < _MIN_RANGE:
        return None
    return np.stack([lo, hi, d.mean(axis=1)])


def affine_params(stats: np.ndarray, keep_tint: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(scale, offset)`` with ``D_restored = scale * D + offset`` from ``(3, 3)`` stats."""
    white, black, mean = stats
    rng = np.maximum(black - white, 1e-6)
    wts = np.exp((rng - rng.max()) / _TAU)
    wts /= wts.sum()
    w_ref, r_ref = float(wts @ white), float(wts @ rng)
    alpha = np.maximum(rng / r_ref, _MIN_ALPHA)
    beta = white - alpha * w_ref
    restored = (mean - beta) / alpha
    cast = (mean - mean.mean()) - (restored - restored.mean())  # the chroma the correction removes
    return 1.0 / alpha, -beta / alpha + keep_tint * cast


def _stats(rgb: vs.VideoNode, curve: tuple[float, float, float, float]) -> vs.VideoNode:
    """A tiny clip whose frame n carries frame n's anchors and whether a cut precedes it."""
    long_side = max(rgb.width, rgb.height)
    k = min(1.0, max(_ANALYSIS_SIDE / long_side, 0.25))
    ana = rgb
    if k < 1:
        ana = core.resize.Bilinear(rgb, max(16, round(rgb.width * k)), max(16, round(rgb.height * k)))
    prev, cur = temporal_neighbours(ana, 1)[:2]
    template = core.std.BlankClip(rgb, width=8, height=8, format=vs.GRAYS, keep=True)

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        fout = new_frame(template)
        a, b = frame_to_array(f[0]), frame_to_array(f[1])
        st = frame_stats(b, curve)
        fout.props[_P_STATS] = (np.zeros(9) if st is None else st.ravel()).tolist()
        fout.props[_P_OK] = int(st is not None)
        fout.props[_P_CUT] = int(n == 0 or motion.is_scene_cut(a.mean(axis=0), b.mean(axis=0)))
        return fout

    return map_frames(template, [prev, cur], fn)


def _apply(rgb: vs.VideoNode, stats: vs.VideoNode, curve: tuple[float, float, float, float],
           radius: int, strength: float, keep_tint: float) -> vs.VideoNode:
    # Every stats frame is read by 2 * radius + 1 output frames: keep them (tiny).
    core.std.SetVideoCache(stats, mode=1, fixedsize=1, maxsize=4 * radius + 64, maxhistory=4 * radius + 64)
    nb = temporal_neighbours(stats, radius)
    last = rgb.num_frames - 1
    grid = np.linspace(0.0, 1.0, _LUT_SIZE)
    lin = to_linear(grid, curve)
    d_grid = -np.log10(np.maximum(lin, _EPS))
    below = np.minimum(lin / _EPS, 1.0)  # under the floor, scale towards 0 so black stays black

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        src, st = f[0], f[1:]  # st[radius + k] holds the props of frame n + k
        window = [st[radius]]
        for k in range(1, radius + 1):  # right: stop at the end or at a cut before frame n + k
            if n + k > last or st[radius + k].props[_P_CUT]:
                break
            window.append(st[radius + k])
        for k in range(1, radius + 1):  # left: stop at a cut before frame n - k + 1
            if st[radius - k + 1].props[_P_CUT]:
                break
            window.append(st[radius - k])
        found = [np.asarray(s.props[_P_STATS], np.float64).reshape(3, 3) for s in window if s.props[_P_OK]]
        if not found:
            return src
        scale, offset = affine_params(np.median(np.stack(found), axis=0), keep_tint)
        scale = 1.0 + strength * (scale - 1.0)
        offset = strength * offset
        fout = new_frame(rgb, src)
        for p in range(3):
            lut = from_linear(10.0 ** -(scale[p] * d_grid + offset[p]) * below, curve).astype(np.float32)
            idx = np.clip(np.asarray(src[p]), 0.0, 1.0) * np.float32(_LUT_SIZE - 1) + np.float32(0.5)
            np.take(lut, idx.astype(np.intp), out=np.asarray(fout[p]))
        return fout

    return map_frames(rgb, [rgb, *nb], fn)

