"""Non-rigid dewarping: removes the frame-to-frame wobble a global fit leaves (film warp,
uneven shrinkage, rolling-shutter jello), for ``vr.stabilize(..., dewarp=R)``.

Each frame ``n`` is compared with the frames ``n-R .. n+R`` of its shot by dense flow
(luma, at most ``ANALYSIS_SIDE`` px). Where a frame's local geometry differs from its
neighbours' by a smooth field ``w_n``, the flow to neighbour ``j`` is ``w_n - w_j``; its
average over the window (frame ``n`` counting with zero flow) is ``w_n`` minus the
window's mean geometry. That average, smoothed (medians over blocks of ``SMOOTH_FRAC`` x
the short side, robust to the wrong vectors along motion edges, then a Gaussian over the
blocks: wobble is smooth, real motion is not), is undone by a bicubic backward warp.
What remains is the moving average of the geometry over ``2R + 1`` frames, so the
frame-to-frame wobble drops to about ``1 / (2R + 1)``; constant-velocity motion cancels
between ``n - d`` and ``n + d``. Vectors that are large (over ``MAX_PX``), or whose match
is photometrically poor, count as real motion and get no weight, so moving objects are not
dragged. Neighbours come in symmetric pairs ``n - d, n + d`` (so a pan cancels exactly); the
window shrinks where the clip or the shot (a scene cut) ends on either side, and the first
and last frame of a shot are left as they are.
"""

from __future__ import annotations

import cv2
import numpy as np
import vapoursynth as vs

from vsrestore import color, motion
from vsrestore.bridge import Shared, map_frames, new_frame, temporal_neighbours
from vsrestore.kernels.warp import warp

ANALYSIS_SIDE = 640
SMOOTH_FRAC = 0.06  # smoothing block side as a fraction of the short side of the analysis frame
MAX_PX = 4.0  # flow (analysis px) above this is motion, not wobble
_MATCH_TOL = 0.02  # luma 0..1: a worse compensated match is not trusted


def dewarp(clip: vs.VideoNode, radius: int, *, preset: str = "medium") -> vs.VideoNode:
    """*clip* with its non-rigid frame-to-frame wobble removed (see the module docstring)."""
    assert clip.format is not None
    fmt, w, h = clip.format, clip.width, clip.height
    r = min(1.0, ANALYSIS_SIDE / max(w, h))
    wa, ha = max(1, round(w * r)), max(1, round(h * r))
    luma = color.to_luma(clip)
    if (wa, ha) != (w, h):
        luma = vs.core.resize.Bicubic(luma, wa, ha)
    lumas = temporal_neighbours(luma, radius)
    sigma = SMOOTH_FRAC * min(wa, ha)
    last = clip.num_frames - 1
    # one flow search per pair of frames, shared by both (motion.flow_between)
    pairs: Shared[tuple[int, int], np.ndarray] = Shared(max(1, radius * (radius + vs.core.num_threads + 1)))

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        cur = np.asarray(f[radius][0], dtype=np.float32)

        acc = np.zeros((2, ha, wa), np.float32)
        wsum = np.zeros((ha, wa), np.float32)
        count = 1  # frame n itself: zero flow
        for d in range(1, radius + 1):  # symmetric pairs only: steady motion cancels in each
            if n - d < 0 or n + d > last:
                break
            pair = []
            for j in (radius - d, radius + d):
                nb = np.asarray(f[j][0], dtype=np.float32)
                flow = motion.flow_between(pairs, n + j - radius, nb, n, cur, preset=preset)  # cur ~ nb(x+f)
                if motion.is_scene_cut(nb, cur, flow=flow):
                    break
                pair.append((nb, flow))
            if len(pair) < 2:
                break  # a cut inside the window: the shot ends here on one side
            ok = np.ones((ha, wa), bool)  # a pixel counts only where both flows of the pair are
            for nb, flow in pair:         # trusted, so that steady motion cancels there
                res = cv2.GaussianBlur(np.abs(motion.warp(nb, flow) - cur), (0, 0), 1.5)
                ok &= (flow[0] ** 2 + flow[1] ** 2 < MAX_PX ** 2) & (res < _MATCH_TOL)
            okf = ok.astype(np.float32)
            acc += (pair[0][1] + pair[1][1]) * okf
            wsum += 2 * okf
            count += 2
        if count == 1:
            return f[-1]  # no neighbour in the shot: nothing to compare with
        # w_n - (window mean geometry) = sum over neighbours of their flows / count; where some
        # pairs are untrusted, the mean of the trusted ones stands in
        disp = _smooth_field(acc, wsum, sigma) * np.float32((count - 1) / count)
        src = f[-1]
        fout = new_frame(clip, src)
        for p in range(fmt.num_planes):
            plane = np.asarray(src[p], dtype=np.float32)
            ph, pw = plane.shape  # out(x) = cur(x - disp(x)), disp in this plane's pixels
            fx = cv2.resize(np.float32(-pw / wa) * disp[0], (pw, ph), interpolation=cv2.INTER_LINEAR)
            fy = cv2.resize(np.float32(-ph / ha) * disp[1], (pw, ph), interpolation=cv2.INTER_LINEAR)
            out = warp(plane, fx, fy, interp="bicubic", border="clamp")
            if fmt.sample_type == vs.INTEGER:
                out = np.clip(np.rint(out), 0, (1 << fmt.bits_per_sample) - 1)
            np.copyto(np.asarray(fout[p]), out, casting="unsafe")
        return fout

    return map_frames(clip, [*lumas, clip], fn)


def _smooth_field(acc: np.ndarray, wsum: np.ndarray, sigma: float) -> np.ndarray:
    """The smooth field of mean trusted flow ``acc / wsum``: block medians (robust to the
    wrong vectors DIS leaves along motion edges), a normalised Gaussian over the blocks
    (blocks with nothing trusted are filled from their neighbours), bilinear back up."""
    _, h, w = acc.shape
    b = max(4, round(sigma))
    nby, nbx = -(-h // b), -(-w // b)
    pad = ((0, nby * b - h), (0, nbx * b - w))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(wsum > 0, acc / wsum, np.nan)
    coarse, have = np.zeros((2, nby, nbx), np.float32), np.zeros((nby, nbx), np.float32)
    for c in range(2):
        grid = np.pad(mean[c], pad, constant_values=np.nan).reshape(nby, b, nbx, b)
        blocks = grid.transpose(0, 2, 1, 3).reshape(nby, nbx, b * b)
        valid = np.isfinite(blocks).sum(-1)
        enough = valid >= b * b // 4
        with np.errstate(all="ignore"):
            med = np.nanmedian(np.where(enough[..., None], blocks, 0.0), axis=-1)
        coarse[c] = np.where(enough, med, 0.0)
        have = enough.astype(np.float32)
    wt = cv2.GaussianBlur(have, (0, 0), 1.0)
    out = np.zeros((2, h, w), np.float32)
    for c in range(2):
        sm = np.where(wt > 1e-3, cv2.GaussianBlur(coarse[c] * have, (0, 0), 1.0) / np.maximum(wt, 1e-3), 0.0)
        out[c] = cv2.resize(sm.astype(np.float32), (nbx * b, nby * b), interpolation=cv2.INTER_LINEAR)[:h, :w]
    return out
