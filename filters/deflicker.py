"""Global and local luminance flicker removal: ``vr.deflicker``."""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import vapoursynth as vs

from vsrestore import color, motion
from vsrestore.bridge import frame_to_array, map_frames, new_frame, temporal_neighbours
from vsrestore.errors import VSRestoreError, check_clip

core = vs.core
NAME = "deflicker"

_ANALYSIS_SIDE = 640  # analysis luma is at most about this many pixels on its long side
_DARK, _BRIGHT = 0.03, 0.97  # pixels outside this luma range carry no usable gain
_MIN_FILL = 0.1  # a block needs this fraction of usable pixels to get its own gain
_EDGE = 0.02  # luma gradient (per pixel) at which a pixel's weight halves
# local gradient RMS per pixel at which DIS's flow weighs half in _flow; 0.01 fixed skies as
# well but changed a clip without flicker (bikes.mp4) more than before
_TEXTURE = 0.003
_JUMP = 0.4  # a global step larger than this (log gain, ~50 %) is a light change: the window stops
_LR_SIGMA = 1.5  # px: smoothing of both frames before their log-ratio (see _measure)
_MAX_LOG = math.log(2.0)  # corrections are clamped to 0.5x .. 2x
_P_GAIN, _P_CUT, _P_GRID = "_vsr_dfl_gain", "_vsr_dfl_cut", "_vsr_dfl_grid"
_HOPS = 2  # each frame is measured against the _HOPS frames before it (see _levels)


def deflicker(clip: vs.VideoNode, *, radius: int = 16, strength: float = 1.0, block: int = 32,
              local: bool = True, preset: str = "medium") -> vs.VideoNode:
    """Remove frame-to-frame brightness flicker, globally and per region, keeping fades and lights.

    Each frame is compared with the previous one through dense optical flow (DIS): the
    previous frame is motion-compensated onto it (on textureless areas, e.g. a sky, with the
    median motion of the textured ones: DIS would take flicker there for motion) and only
    well-compensated pixels are kept:
    those passing the flow's forward-backward check, neither crushed nor clipped, and whose
    log-ratio lies within 4 robust sigmas of their block's median log-ratio (moving edges,
    occlusions and misregistration drop out). From them, with edges weighted down, come a
    global gain (ratio of sums of the two frames) and one gain per *block* x *block* cell (the
    centre value of a brightness-weighted plane fitted to the cell's log-ratios, so where its
    usable pixels lie does not bias it); a cell with too few usable pixels borrows from its
    neighbours. Each frame is measured so against the frame before it and the one before
    that; a least-squares fit of all these links gives, for frame ``n``, the level of every
    cell in a window of ``2 * radius + 1`` frames (centred,
    or slid inside the shot at its ends). The correction is frame ``n``'s deviation from a
    *trend* fitted to that trajectory, not from its mean: a Huber-weighted straight line in
    light-level terms (its slope kept only where it is significant), or a line with one bend
    where that fits much better. A fade or slow light change is followed exactly, including
    where it starts or ends; flicker is the scatter around it. Corrections never exceed 3x
    the window's measured flicker (a clean fade gets none) and are interpolated bilinearly
    from cell centres to full resolution, so no block edges show.

    The window never crosses a scene cut (``vsrestore.motion.is_scene_cut``) nor a global
    step of more than ~50 % (a light switched on): each shot is handled on its own, and a
    shot of fewer than 3 frames is left as it is.

    The gain scales the signal around black: RGB and GRAY channels around 0 (or 16 for
    limited range), YUV luma around black and chroma around neutral by the same factor, which
    is what scaling R, G and B equally does. Nothing else changes: format, size, props.

    Args:
        clip: YUV/RGB/GRAY, 8-16-bit integer or 16/32-bit float.
        radius: the window has ``2 * radius + 1`` frames (16: 33 frames, ~1.4 s at 24 fps).
            Larger leaves less flicker but follows fast, curved brightness changes less
            closely; a shot shorter than the window uses what it has.
        strength: 0..1 fraction of the correction applied; 0 returns *clip* itself.
        block: size in pixels of the local gain cells (>= 8); smaller follows finer
            flicker patterns but each cell's estimate is noisier.
        local: False corrects one gain per frame only (global flicker).
        preset: optical-flow preset (``vsrestore.motion.PRESETS``).

    Example (.vpy)::

        import vapoursynth as vs, vsrestore as vr
        clip = vs.core.bs.VideoSource("old_film.mkv")
        clip = vr.deflicker(clip, block=48)
        clip.set_output()
    """
    check_clip(clip, NAME)
    color.check_supported(clip, NAME)
    if not isinstance(radius, int) or isinstance(radius, bool) or not 1 <= radius <= 32:
        raise VSRestoreError(NAME, f"radius must be an int in 1..32, got {radius!r}", "use e.g. radius=16")
    if isinstance(strength, bool) or not isinstance(strength, int | float) or not 0 <= strength <= 1:
        raise VSRestoreError(NAME, f"strength must be a number in 0..1, got {strength!r}",
                             "use e.g. strength=1.0")
    if not isinstance(block, int) or isinstance(block, bool) or block < 8:
        raise VSRestoreError(NAME, f"block must be an int >= 8, got {block!r}", "use e.g. block=32")
    if preset not in motion.PRESETS:
        raise VSRestoreError(NAME, f"unknown preset {preset!r}", f"use one of {', '.join(motion.PRESETS)}")
    if strength == 0:
        return clip
    stats = _pair_stats(clip, block, local, preset)
    return _apply(clip, stats, radius, float(strength), block)


def _grid_shape(w: int, h: int, block: int) -> tuple[int, int, int]:
    """(rows, cols, analysis block size): the analysis luma is (rows * ab) x (cols * ab)."""
    gh, gw = -(-h // block), -(-w // block)
    ab = max(8, min(block, -(-_ANALYSIS_SIDE // max(gh, gw))))
    return gh, gw, ab


def _pair_stats(clip: vs.VideoNode, block: int, local: bool, preset: str) -> vs.VideoNode:
    """A tiny clip whose frame n carries, as props, the gain of frame n over n-1 .. n-_HOPS."""
    gh, gw, ab = _grid_shape(clip.width, clip.height, block)
    luma = color.to_luma(clip)
    if (luma.width, luma.height) != (gw * ab, gh * ab):
        luma = core.resize.Bilinear(luma, gw * ab, gh * ab)
    shifted = temporal_neighbours(luma, _HOPS)[: _HOPS + 1]  # frames n-_HOPS .. n
    template = core.std.BlankClip(clip, width=8, height=8, format=vs.GRAYS, keep=True)

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        fout = new_frame(template)
        b = frame_to_array(f[_HOPS])[0] if n > 0 else None
        for hop in range(1, _HOPS + 1):
            gain, cut, grid = 0.0, True, np.zeros((gh, gw), np.float32)
            if b is not None and n >= hop:
                # beyond one hop the one-hop links have already checked for cuts in between
                gain, cut, grid = _measure(frame_to_array(f[_HOPS - hop])[0], b, gh, gw, ab, preset,
                                           check_cut=hop == 1)
            fout.props[_P_GAIN + str(hop)] = gain
            fout.props[_P_CUT + str(hop)] = int(cut)
            fout.props[_P_GRID + str(hop)] = (grid if local else np.zeros_like(grid)).ravel().tolist()
        return fout

    return map_frames(template, shifted, fn)


def _block_median(x: np.ndarray, ok: np.ndarray, gh: int, gw: int, ab: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-block median of *x* over *ok* pixels and the fraction of ok pixels per block."""
    xb = np.where(ok, x, np.nan).reshape(gh, ab, gw, ab).transpose(0, 2, 1, 3).reshape(gh, gw, -1)
    fill = ok.reshape(gh, ab, gw, ab).mean(axis=(1, 3))
    med = np.zeros((gh, gw), np.float32)
    has = fill > 0
    med[has] = np.nanmedian(xb[has], axis=1)
    return med, fill


def _measure(a: np.ndarray, b: np.ndarray, gh: int, gw: int, ab: int, preset: str,
             check_cut: bool = True) -> tuple[float, bool, np.ndarray]:
    """Gain of *b* over *a*: (global log gain, unusable (a cut)?, (gh, gw) local log-gain deviations)."""
    fwd = _flow(a, b, preset)
    if check_cut and motion.is_scene_cut(a, b, flow=fwd):
        return 0.0, True, np.zeros((gh, gw), np.float32)
    rev = _flow(b, a, preset)
    aw = motion.warp(a, fwd)
    ok = motion.flow_confidence(fwd, rev) > 0.5
    ok &= (np.minimum(aw, b) > _DARK) & (np.maximum(aw, b) < _BRIGHT)
    if ok.mean() < 0.01:
        return 0.0, True, np.zeros((gh, gw), np.float32)  # nothing to compare: start afresh
    # On flat areas, log-ratios of lightly smoothed frames: the log of a noisy pixel is biased
    # low by about noise^2 / (2 level^2), more in b than in the bilinearly interpolated aw, so
    # on dark, noisy blocks raw log-ratios read a gain ~1.4 % too low per pair, which chaining
    # adds up (benchmarks/bench_content.py, static/pan, one-hop chaining at the time:
    # hubble_deep_field 0.22/0.22 of the flicker left -> 0.09/0.13, retina 0.36/0.33 ->
    # 0.27/0.23; textured pans +0.00..0.04; the two-hop fit of _levels took retina to 0.14/0.14).
    sm = cv2.GaussianBlur(b, (0, 0), 1.0)
    grad2 = (cv2.Sobel(sm, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(sm, cv2.CV_32F, 0, 1) ** 2) / 64.0
    flat = 1.0 / (1.0 + grad2 / _EDGE**2)
    lr_raw = np.log(np.maximum(b, _DARK)) - np.log(np.maximum(aw, _DARK))
    lr_s = np.log(np.maximum(cv2.GaussianBlur(b, (0, 0), _LR_SIGMA), _DARK)) - np.log(
        np.maximum(cv2.GaussianBlur(aw, (0, 0), _LR_SIGMA), _DARK))
    lr = flat * lr_s + (1.0 - flat) * lr_raw
    # Drop what is badly compensated: far from its block's gain (moving edges, occlusions).
    med, fill = _block_median(lr, ok, gh, gw, ab)
    field = cv2.resize(np.where(fill > 0, med, np.median(lr[ok])).astype(np.float32),
                       (gw * ab, gh * ab), interpolation=cv2.INTER_LINEAR)
    res = np.abs(lr - field)
    ok &= res <= max(4.0 * 1.4826 * float(np.median(res[ok])), 0.05)
    if ok.mean() < 0.01:
        return 0.0, True, np.zeros((gh, gw), np.float32)
    # What is left, with edges weighted down (registration errors live there) and weights
    # following brightness (as a block's mean does): the global gain is a ratio of sums; a
    # block's gain is the centre value of a plane fitted to its log-ratios, so that where its
    # usable pixels lie (one corner, say) does not shift the estimate.
    w = np.where(ok, flat, 0.0).astype(np.float32)
    gain = float(math.log(float((w * b).sum()) / float((w * aw).sum())))
    w *= aw
    fill = _block_sum(ok, gh, gw, ab) / ab**2
    have = fill >= _MIN_FILL
    dev = np.where(have, _block_plane(lr, w, gh, gw, ab) - gain, 0.0).astype(np.float32)
    # Blocks with too few pixels borrow from their neighbours (normalised convolution), or get 0.
    wgt = have.astype(np.float32)
    num = cv2.GaussianBlur(dev, (3, 3), 0.8, borderType=cv2.BORDER_REPLICATE)
    den = cv2.GaussianBlur(wgt, (3, 3), 0.8, borderType=cv2.BORDER_REPLICATE)
    grid = np.where(have, dev, num / (den + 0.05))
    return gain, abs(gain) > _JUMP, grid.astype(np.float32)


def _flow(a: np.ndarray, b: np.ndarray, preset: str) -> np.ndarray:
    """Backward flow of *b* (to *a*), with the shot's motion standing in where *b* has no texture.

    On a flat area with a shallow gradient (sky, walls) a change of brightness looks like
    motion along the gradient, and DIS takes part of the flicker for motion (measured: 1-2 px of
    made-up flow in a sky, and block gains up to 0.027 off per pair where textured blocks are
    0.002 off). There the flow blends, by local texture energy, into the median flow of the
    textured pixels (``motion.fill_textureless``): a flat area moves with the shot. (Two
    alternatives measured worse on a pan with a second moving object: an affine RANSAC fit,
    which can lock onto the object, and a texture-weighted local mean, into which the made-up
    flow of faint texture leaks.)
    """
    return motion.fill_textureless(motion.dense_flow(a, b, preset=preset),
                                   motion.texture_weight(b, floor=_TEXTURE), textured_median=True)


def _block_sum(x: np.ndarray, gh: int, gw: int, ab: int) -> np.ndarray:
    return x.reshape(gh, ab, gw, ab).sum(axis=(1, 3), dtype=np.float64)


def _block_plane(v: np.ndarray, w: np.ndarray, gh: int, gw: int, ab: int) -> np.ndarray:
    """Per block, the centre value of the plane ``a + b x + c y`` fitted to *v* with weights *w*."""
    c = (np.arange(ab, dtype=np.float32) - (ab - 1) / 2) / ab
    x, y = np.tile(c, gw)[None, :], np.tile(c, gh)[:, None]
    terms = [np.ones_like(x), x, y]
    a = np.empty((gh, gw, 3, 3))
    rhs = np.empty((gh, gw, 3))
    for i, ti in enumerate(terms):
        rhs[..., i] = _block_sum(w * ti * v, gh, gw, ab)
        for j in range(i, 3):
            a[..., i, j] = a[..., j, i] = _block_sum(w * ti * terms[j], gh, gw, ab)
    a += 1e-6 * (a[..., :1, :1] + 1e-9) * np.eye(3)  # well-posed where pixels lie on a line
    return np.linalg.solve(a, rhs[..., None])[..., 0, 0]


def _lsq(x: np.ndarray, y: np.ndarray, x0: float, kink: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line (with a bend at *kink*) through each column of *y*: (value at x0, RSS)."""
    cols = [np.ones_like(x), x] + ([] if kink is None else [np.maximum(x - kink, 0.0)])
    design = np.stack(cols, axis=1)
    beta = np.linalg.lstsq(design, y, rcond=None)[0]
    at = np.array([1.0, x0] + ([] if kink is None else [max(x0 - kink, 0.0)]))
    return at @ beta, ((y - design @ beta) ** 2).sum(0)


def _trend_at(x: np.ndarray, y: np.ndarray, x0: float, iters: int = 3) -> np.ndarray:
    """Value at *x0* of the brightness trend of each column of *y* (K, M) over times *x* (K,).

    A Huber-weighted straight line; its slope counts only where it stands out of the scatter
    (|t| > 2, fully from |t| = 4), so a flat shot is averaged over the whole window even at
    its ends, while a fade is followed exactly. Where one bend (the start or end of a fade)
    explains the trajectory much better (F > 10), the bent line is used.
    """
    w = np.ones_like(y)
    xc = x[:, None]
    for _ in range(iters if len(x) > 3 else 1):
        sw, sx, sy = w.sum(0), (w * xc).sum(0), (w * y).sum(0)
        sxx, sxy = (w * xc * xc).sum(0), (w * xc * y).sum(0)
        det = np.maximum(sw * sxx - sx * sx, 1e-12)
        slope = (sw * sxy - sx * sy) / det
        icpt = (sy - slope * sx) / sw
        res = np.abs(y - (icpt + slope * xc))
        scale = 1.4826 * np.median(res, axis=0) + 1e-6
        w = np.minimum(1.0, 2.5 * scale / np.maximum(res, 1e-12))
    if len(x) <= 2:
        return icpt + slope * x0
    t = np.abs(slope) * np.sqrt(det / sw) / (scale * np.sqrt(len(x) / (len(x) - 2)))
    keep = np.clip((t - 2.0) / 2.0, 0.0, 1.0)
    xm = sx / sw
    out = icpt + slope * xm + keep * slope * (x0 - xm)
    if len(x) < 7:
        return out
    rss_line = _lsq(x, y, x0)[1]
    bends = [_lsq(x, y, x0, c) for c in x[2:-2]]
    rss = np.stack([r for _, r in bends])
    best = rss.argmin(0)
    rss_best = np.take_along_axis(rss, best[None], 0)[0]
    bent = np.take_along_axis(np.stack([v for v, _ in bends]), best[None], 0)[0]
    f_stat = (rss_line - rss_best) / (rss_best / (len(x) - 4) + 1e-12)
    return np.where(f_stat > 10.0, bent, out)


def _levels(link: Callable[[int, int], np.ndarray | None], lo: int, hi: int) -> np.ndarray:
    """Log brightness of frames n+lo .. n+hi relative to frame n, per block: (hi-lo+1, gh * gw).

    From every usable link ``L[k] - L[k-hop] = link(k, hop)`` (hop 1 .. _HOPS, both frames
    in the window) by least squares with ``L[0] = 0``. Chaining the one-hop links alone lets
    their independent errors add up like a random walk across the window; the two-hop links
    tie every other frame directly, which on dark, noisy pictures (where each link's error is
    largest) leaves less of that drift (benchmarks/bench_content.py --stages deflicker).
    """
    ks = list(range(lo, hi + 1))
    col = {k: i for i, k in enumerate(k for k in ks if k != 0)}
    rows, obs = [], []
    for hop in range(1, _HOPS + 1):
        for k in ks:
            if k - hop < lo:
                continue
            g = link(k, hop)
            if g is None:
                continue
            r = np.zeros(len(col))
            if k != 0:
                r[col[k]] = 1.0
            if k - hop != 0:
                r[col[k - hop]] = -1.0
            rows.append(r)
            obs.append(g.ravel())
    sol = np.linalg.lstsq(np.stack(rows), np.stack(obs).astype(np.float64), rcond=None)[0]
    shape = obs[0].shape
    out = [np.zeros(shape) if k == 0 else sol[col[k]] for k in ks]
    return np.stack(out).astype(np.float32)


def _apply(clip: vs.VideoNode, stats: vs.VideoNode, radius: int, strength: float, block: int) -> vs.VideoNode:
    assert clip.format is not None
    fmt = clip.format
    gh, gw, _ = _grid_shape(clip.width, clip.height, block)
    span = 2 * radius  # the window has span + 1 frames; it slides inside a shot at the shot's ends
    # Every stats frame is read by 2 * span + 1 output frames: keep them (tiny) rather than
    # recompute their optical flow when the adaptive cache would have dropped them.
    core.std.SetVideoCache(stats, mode=1, fixedsize=1, maxsize=4 * span + 64, maxhistory=4 * span + 64)
    nb = temporal_neighbours(stats, span)
    last = clip.num_frames - 1
    info = color.describe(clip)
    integer = fmt.sample_type == vs.INTEGER
    peak = float((1 << fmt.bits_per_sample) - 1) if integer else math.inf
    black = float(16 << (fmt.bits_per_sample - 8)) if integer and info.range == 0 else 0.0
    neutral = float(1 << (fmt.bits_per_sample - 1)) if integer else 0.0

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        src, st = f[0], f[1:]  # st[span + k] holds the props of frame n + k

        def link(j: int, hop: int = 1) -> np.ndarray | None:
            """Log gain of frame n+j over n+j-hop per block, None across a cut."""
            p = st[span + j].props
            if p[_P_CUT + str(hop)]:
                return None
            grid = np.asarray(p[_P_GRID + str(hop)], np.float32).reshape(gh, gw)  # type: ignore[arg-type]
            return float(p[_P_GAIN + str(hop)]) + grid  # type: ignore[arg-type]

        reach = {0}  # frames n+k in the shot, found through the one-hop links
        for side in (1, -1):
            for k in range(1, span + 1):
                if not 0 <= n + side * k <= last or st[span + (k if side > 0 else 1 - k)].props[_P_CUT + "1"]:
                    break
                reach.add(side * k)
        lo, hi = min(reach), max(reach)
        lo = max(lo, min(-radius, hi - span))
        hi = min(hi, lo + span)
        if hi - lo < 2:
            return src  # too short a shot to tell flicker from a trend
        ks = np.arange(lo, hi + 1)
        levels = np.exp(_levels(link, lo, hi).reshape(len(ks), -1))
        trend = _trend_at(ks.astype(np.float64), levels.astype(np.float64), 0.0)
        # Never correct by more than 3x the flicker seen in the window (its scatter about a
        # piecewise-straight line): the kinks of a clean fade are not taken for flicker.
        flick = 1.4826 * np.median(np.abs(np.diff(levels, 2, axis=0)), axis=0) / math.sqrt(6.0)
        corr = np.clip(trend - 1.0, -3.0 * flick, 3.0 * flick)
        log_c = np.log(np.maximum(1.0 + corr, 1e-3)).reshape(gh, gw)
        log_c = np.clip(log_c * strength, -_MAX_LOG, _MAX_LOG).astype(np.float32)
        fout = new_frame(clip, src)
        for p in range(fmt.num_planes):
            plane = np.asarray(src[p], dtype=np.float32)
            h, w = plane.shape
            gain = np.exp(cv2.resize(log_c, (w, h), interpolation=cv2.INTER_LINEAR))
            base = neutral if fmt.color_family == vs.YUV and p > 0 else black
            res = base + (plane - base) * gain
            if integer:
                res = np.clip(np.rint(res), 0, peak)
            np.copyto(np.asarray(fout[p]), res, casting="unsafe")
        return fout

    return map_frames(clip, [clip, *nb], fn)
