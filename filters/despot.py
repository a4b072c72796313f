"""Dust, dirt and blotch repair for scanned film: ``vr.despot``."""

from __future__ import annotations

import cv2
import numpy as np
import vapoursynth as vs
from vsrestore.kernels.warp import warp

from vsrestore import color, motion, props
from vsrestore.bridge import frame_to_array, map_frames, new_frame, temporal_neighbours
from vsrestore.errors import VSRestoreError, check_clip

core = vs.core
NAME = "despot"
_K_HIGH = 6.0  # seed threshold, in robust noise sigmas of a frame difference (at strength 1)
_K_LOW = 3.5  # hysteresis: a seeded defect grows into pixels above this
_CONF = 0.5  # flow confidence below which a neighbour is not trusted
_CONF_KEEP = 0.2  # components whose mean flow confidence is below this are dropped
_MIN_AREA = 2  # components smaller than this (pixels) are noise
_TEXTURE = 1.5  # a spot must peak this many local (15x15) standard deviations above its neighbours
_HOLE = 21  # flow is refilled this far (box side, pixels) around each spot


def despot(clip: vs.VideoNode, *, strength: float = 1.0, radius: int = 2, output_mask: bool = False,
           dilate: int = 1, preset: str = "medium") -> vs.VideoNode:
    """Remove one-frame defects (dust, dirt, blotches, short hairs) of scanned film.

    A pixel is a defect when frame ``n`` differs from BOTH motion-compensated neighbours
    (the nearest frame on each side) in the same direction by far more than the noise
    while those neighbours agree with each other (spike detection index, SDI). The mask is
    grown by hysteresis, cleaned of specks, dilated by *dilate* pixels, and components where
    the optical flow is unreliable (occlusions, fast motion) are dropped. Masked pixels are
    replaced by the median of the motion-compensated neighbours ``n-radius .. n+radius``
    (without ``n``; real pixels, grain kept), sampled (bicubic) along the flow refilled from
    around the defect; neighbours whose flow is unreliable there are left out unless fewer than
    two remain. Where no neighbour exists, the pixels are inpainted spatially (OpenCV Telea) and
    the frame gets ``vsrestore_synthesized`` ``"despot"``. Pixels outside the mask stay
    bit-identical to the input.

    Args:
        clip: any YUV/RGB/GRAY clip, 8-16-bit integer or 16/32-bit float.
        strength: detection sensitivity (> 0 scales the threshold down; 2 = twice as
            sensitive); 0 returns *clip* unchanged.
        radius: 1 or 2 neighbours on each side used for the repair.
        output_mask: return the defect mask (GRAY8, 255 = repaired) instead of the repair.
        dilate: pixels added around every detected defect (0..4).
        preset: optical-flow preset (``vsrestore.motion.PRESETS``).

    Example (.vpy)::

        import vapoursynth as vs, vsrestore as vr
        src = vs.core.bs.VideoSource("scan.mkv")
        clip = vr.despot(src, strength=1.0)
        clip.set_output()
    """
    check_clip(clip, NAME)
    color.check_supported(clip, NAME)
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 10:
        raise VSRestoreError(NAME, f"strength must be a number in 0..10, got {strength!r}",
                             "use e.g. strength=1.0 (higher finds fainter spots)")
    if not isinstance(radius, int) or isinstance(radius, bool) or radius not in (1, 2):
        raise VSRestoreError(NAME, f"radius must be 1 or 2, got {radius!r}", "use radius=2 (or 1 for speed)")
    if not isinstance(dilate, int) or isinstance(dilate, bool) or not 0 <= dilate <= 4:
        raise VSRestoreError(NAME, f"dilate must be an int in 0..4, got {dilate!r}", "use dilate=1")
    if preset not in motion.PRESETS:
        raise VSRestoreError(NAME, f"unknown preset {preset!r}", f"use one of {', '.join(motion.PRESETS)}")
    if clip.num_frames < 3:
        raise VSRestoreError(NAME, f"the clip has {clip.num_frames} frames; spike detection needs 3",
                             "pass a clip with at least 3 frames")
    if strength == 0 and not output_mask:
        return clip
    assert clip.format is not None
    fmt = clip.format
    nb = 2 * radius + 1
    clips = [*temporal_neighbours(clip, radius), *temporal_neighbours(color.to_luma(clip), radius)]
    peak = float((1 << fmt.bits_per_sample) - 1) if fmt.sample_type == vs.INTEGER else None
    total = clip.num_frames
    k_scale = 1.0 / float(strength) if strength > 0 else float("inf")
    mask_tpl = core.std.BlankClip(clip, format=vs.GRAY8, keep=True) if output_mask else clip

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        frames, lumas = f[:nb], f[nb:]
        ys = [frame_to_array(x)[0] for x in lumas]
        comp = _compensate(n, ys, radius, total, preset)
        nbs = {d: ys[radius + d] for d in comp}
        mask = _detect(ys[radius], dict(comp), nbs, k_scale, dilate)
        if mask.any():
            _refill(comp, nbs, mask)  # the repair samples the neighbours along the refilled flow
        if output_mask:
            fout = new_frame(mask_tpl, frames[radius])
            np.asarray(fout[0])[:] = mask.astype(np.uint8) * 255
            return fout
        return _repair(clip, frames, comp, mask, radius, peak)

    return map_frames(mask_tpl, clips, fn)


_Comp = dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]  # offset -> (flow, conf, warped luma)


def _compensate(n: int, ys: list[np.ndarray], radius: int, total: int, preset: str) -> _Comp:
    """Flow, confidence and warped luma for every usable neighbour (in the clip, same shot)."""
    cur = ys[radius]
    cur_m = cv2.medianBlur(cur, 5)  # flow on a median-filtered copy: spots do not attract it
    out: _Comp = {}
    for side in (-1, 1):
        for k in range(1, radius + 1):
            d = side * k
            if not 0 <= n + d < total:
                break
            nb = ys[radius + d]
            nb_m = cv2.medianBlur(nb, 5)
            fwd = motion.dense_flow(nb_m, cur_m, preset=preset)  # cur(x) ~ nb(x + fwd)
            rev = motion.dense_flow(cur_m, nb_m, preset=preset)
            if motion.is_scene_cut(*((nb, cur) if side < 0 else (cur, nb)), flow=fwd if side < 0 else rev):
                break
            conf = motion.flow_confidence(fwd, rev)
            out[d] = (fwd, conf, warp(nb, fwd[0], fwd[1], interp="bilinear", border="clamp"))
    return out


def _detect(cur: np.ndarray, comp: _Comp, nbs: dict[int, np.ndarray], k_scale: float,
            dilate: int) -> np.ndarray:
    """Boolean defect mask of the centre frame (SDI spike test on the nearest neighbour pair)."""
    h, w = cur.shape
    pair = _pair(comp)
    if pair is None or not np.isfinite(k_scale):
        return np.zeros((h, w), bool)
    # Pass 1: generous candidates; the spots themselves disturb the flow, so flow and confidence
    # inside them are refilled from their surroundings, then the test runs again.
    da, db = cur - comp[pair[0]][2], cur - comp[pair[1]][2]
    sigma = max(_mad(da), _mad(db), 1e-4)
    cand = (np.sign(da) == np.sign(db)) & (np.minimum(np.abs(da), np.abs(db)) > _K_LOW * k_scale * sigma)
    if cand.any():
        _refill(comp, nbs, cand)
    a, b = comp[pair[0]], comp[pair[1]]
    sigma = max(_mad(cur - a[2]), _mad(cur - b[2]), 1e-4)
    warped = np.stack([c[2] for c in comp.values()])
    gy, gx = np.mgrid[0:h, 0:w]
    outside = np.zeros((h, w), bool)
    for flow, _, _ in comp.values():  # no detection where a neighbour is sampled outside its frame
        sx, sy = gx + flow[0], gy + flow[1]
        outside |= (sx < 0) | (sx > w - 1) | (sy < 0) | (sy > h - 1)
    high = (_score(cur, warped) > _K_HIGH * k_scale * sigma) & ~outside  # seeds: all neighbours agree
    if len(warped) >= 3:  # growth: a neighbour with its own defect there is left out of the vote
        odd = np.abs(warped - np.median(warped, axis=0)).argmax(axis=0)
        warped = np.where(np.arange(len(warped))[:, None, None] == odd, np.nan, warped)
    low = ((_score(cur, warped) > _K_LOW * k_scale * sigma) & ~outside).astype(np.uint8)
    spread = cv2.blur(np.nanmax(warped, axis=0) - np.nanmin(warped, axis=0), (5, 5))
    if not high.any():
        return np.zeros((h, w), bool)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(low, connectivity=8)
    lab = labels.ravel().astype(np.intp)
    conf = np.minimum(a[1], b[1])
    idx = np.arange(count)
    seeded = np.bincount(lab, weights=high.ravel(), minlength=count) > 0
    mean_conf = np.bincount(lab, weights=conf.ravel(), minlength=count) / np.maximum(
        stats[:, cv2.CC_STAT_AREA], 1)
    mean_spread = np.bincount(lab, weights=spread.ravel(), minlength=count) / np.maximum(
        stats[:, cv2.CC_STAT_AREA], 1)
    # low confidence is harmless in flat areas, where every compensated neighbour still agrees
    trusted = (mean_conf >= _CONF_KEEP) | (mean_spread < 3.0 * sigma)
    # a real spot stands out of the local texture; texture the flow failed on merely ripples it
    dev = np.abs(cur - np.median(np.stack([c[2] for c in comp.values()]), axis=0))
    peak_dev = np.zeros(count)
    np.maximum.at(peak_dev, lab, dev.ravel())
    mu = cv2.blur(cur, (15, 15))
    texture = np.sqrt(np.maximum(cv2.blur(cur * cur, (15, 15)) - mu * mu, 0.0))
    mean_tex = np.bincount(lab, weights=texture.ravel(), minlength=count) / np.maximum(
        stats[:, cv2.CC_STAT_AREA], 1)
    keep = seeded & (stats[:, cv2.CC_STAT_AREA] >= _MIN_AREA) & trusted & (idx > 0)
    keep &= peak_dev >= _TEXTURE * mean_tex
    mask = keep[labels].astype(np.uint8)
    if dilate:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1,) * 2))
    return mask.astype(bool)


def _score(cur: np.ndarray, warped: np.ndarray) -> np.ndarray:
    """Spike strength: the smallest same-signed difference to the (non-NaN) compensated neighbours."""
    diffs = cur - warped
    disagree = np.nanmax(warped, axis=0) - np.nanmin(warped, axis=0)
    spread = cv2.blur(disagree, (5, 5))  # misaligned texture: raise the bar locally
    pos, neg = (np.isnan(diffs) | (diffs > 0)).all(axis=0), (np.isnan(diffs) | (diffs < 0)).all(axis=0)
    spike = np.where(pos | neg, np.nanmin(np.abs(diffs), axis=0), 0.0)
    return np.where(disagree < 0.5 * spike, spike - 2.0 * spread, 0.0)


def _refill(comp: _Comp, nbs: dict[int, np.ndarray], spots: np.ndarray) -> None:
    """Flow around *spots* (which disturb it) replaced, in place, by the surrounding reliable flow."""
    hole = cv2.dilate(spots.astype(np.uint8), np.ones((_HOLE, _HOLE), np.uint8)).astype(bool)
    for d, (flow, conf, _) in list(comp.items()):
        cert = np.square(conf).astype(np.float32)
        flow = np.stack([_fill(flow[0], hole, cert), _fill(flow[1], hole, cert)])
        comp[d] = (flow, _fill(conf, hole), warp(nbs[d], flow[0], flow[1], interp="bilinear", border="clamp"))


def _fill(field: np.ndarray, hole: np.ndarray, cert: np.ndarray | None = None,
          sigma: float = 8.0) -> np.ndarray:
    """*field* inside *hole* <- Gaussian-weighted (normalised convolution) mean of the outside."""
    w = (~hole).astype(np.float32) * (1.0 if cert is None else cert)
    num = cv2.GaussianBlur(field * w, (0, 0), sigma)
    den = cv2.GaussianBlur(w, (0, 0), sigma)
    filled = np.where(den > 1e-3, num / np.maximum(den, 1e-3), field)
    return np.where(hole, filled, field).astype(np.float32)


def _pair(comp: _Comp) -> tuple[int, int] | None:
    """Nearest neighbour on each side; at clip ends or cuts, the two nearest on one side."""
    before = sorted((d for d in comp if d < 0), reverse=True)
    after = sorted(d for d in comp if d > 0)
    if before and after:
        return before[0], after[0]
    one = before or after
    return (one[0], one[1]) if len(one) >= 2 else None


def _mad(d: np.ndarray) -> float:
    """Robust standard deviation (1.4826 x median absolute deviation) of a difference image."""
    step = max(1, d.size // 65536)
    s = d.ravel()[::step]
    return float(1.4826 * np.median(np.abs(s - np.median(s))))


def _repair(clip: vs.VideoNode, frames: list[vs.VideoFrame], comp: _Comp, mask: np.ndarray,
            radius: int, peak: float | None) -> vs.VideoFrame:
    """Masked pixels <- median of reliable compensated neighbours, else spatial inpainting."""
    centre = frames[radius]
    fout = centre.copy()
    if not mask.any():
        return fout
    synthesized = False
    for p in range(centre.format.num_planes):
        src = np.asarray(centre[p])
        shape = src.shape
        m = mask if shape == mask.shape else cv2.resize(
            mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_AREA) > 0
        if not m.any():
            continue
        vals, trust = [], []
        for d, (flow, conf, _) in comp.items():
            fl, cf = (flow, conf) if shape == mask.shape else _scale(flow, conf, shape)
            nb = np.asarray(frames[radius + d][p], dtype=np.float32)
            wp = warp(nb, fl[0], fl[1], interp="bicubic", border="clamp")
            vals.append(wp[m])
            trust.append(cf[m] >= _CONF)
        plane = src.astype(np.float32)
        holes = np.ones(int(m.sum()), bool)
        if vals:
            ok = np.stack(trust)
            ok |= ok.sum(axis=0) < 2  # fewer than two trusted neighbours: a vote of all (flat areas)
            stack = np.where(ok, np.stack(vals), np.nan)
            holes = np.isnan(stack).all(axis=0)
            hi, lo = np.where(ok, stack, -np.inf).max(axis=0), np.where(ok, stack, np.inf).min(axis=0)
            far = hi - lo > 0.2 * (peak or 1.0)  # two neighbours far apart: one has its own defect there
            far &= (~np.isnan(stack)).sum(axis=0) == 2  # (a median settles it for more)
            if far.any():  # keep the one closest to a spatial guess
                ref = cv2.inpaint(plane, m.astype(np.uint8), 3, cv2.INPAINT_TELEA)[m]
                dist = np.where(np.isnan(stack), np.inf, np.abs(stack - ref))
                best = np.take_along_axis(stack, dist.argmin(axis=0)[None], axis=0)
                near = np.abs(stack - best) <= 0.1 * (peak or 1.0)
                stack = np.where(far & ~near, np.nan, stack)
            with np.errstate(all="ignore"):
                med = np.nanmedian(np.where(holes[None], 0.0, stack), axis=0)
            plane[m] = np.where(holes, plane[m], med)
        if holes.any():
            hole_mask = np.zeros(shape, np.uint8)
            hole_mask.ravel()[np.flatnonzero(m.ravel())[holes]] = 1
            plane = np.asarray(cv2.inpaint(plane, hole_mask, 3, cv2.INPAINT_TELEA), np.float32)
            synthesized = True
        out = np.asarray(fout[p])
        res = plane[m]
        if peak is not None:
            res = np.clip(np.rint(res), 0, peak)
        out[m] = res
    if synthesized:
        props.mark_synthesized(fout, NAME)
    return fout


def _scale(flow: np.ndarray, conf: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Flow and confidence resampled to a subsampled plane (vectors scaled to match)."""
    h, w = flow.shape[1:]
    sx, sy = shape[1] / w, shape[0] / h
    size = (shape[1], shape[0])
    fx = cv2.resize(flow[0], size, interpolation=cv2.INTER_LINEAR) * sx
    fy = cv2.resize(flow[1], size, interpolation=cv2.INTER_LINEAR) * sy
    return np.stack([fx, fy]), cv2.resize(conf, size, interpolation=cv2.INTER_LINEAR)
