"""Video stabilisation (gate weave, camera jitter) that keeps intended pans and zooms: ``vr.stabilize``."""

from __future__ import annotations

import cmath
import math
import threading
from collections.abc import Callable

import cv2
import numpy as np
import vapoursynth as vs

from vsrestore import color, motion
from vsrestore.bridge import new_frame, temporal_neighbours
from vsrestore.dewarp import dewarp as _dewarp
from vsrestore.errors import VSRestoreError, check_clip

core = vs.core
NAME = "stabilize"
MODES = ("translation", "similarity", "affine")
BORDERS = ("crop", "fill", "black", "edge")
ANALYSIS_SIDE = 640  # motion is measured on luma scaled down to at most this long side
_FILL_RADIUS = 2  # borders="fill" borrows from frames n-2 .. n+2
_UNKNOWN, _SAME, _CUT = 0, 1, 2
_I3 = np.eye(3)


def stabilize(clip: vs.VideoNode, *, smoothing: float = 10.0, mode: str = "similarity",
              borders: str = "crop", margin: float = 0.03, preset: str = "medium",
              cut_threshold: float = motion.CUT_THRESHOLD, dewarp: int = 0) -> vs.VideoNode:
    """Remove gate weave and camera jitter while keeping intended pans and zooms.

    For each pair of consecutive frames the global motion is fitted to dense DIS optical
    flow of the luma: a grid of flow samples, weighted by forward-backward consistency and
    texture, gets a RANSAC start and a Tukey-biweight IRLS fit, so foreground objects that
    move on their own do not pull it. Chaining the pair motions gives the camera path of the
    shot around frame ``n``; it is smoothed by local-linear Gaussian regression (sigma =
    *smoothing* frames, truncated at ``k = ceil(3 sigma)``). Inside a shot that is a plain
    Gaussian; at shot ends it extrapolates a line instead of mirroring, so constant-velocity
    moves (pan, zoom, rotation at constant rates: the path is smoothed in the similarity
    group's Lie algebra) are kept exactly everywhere. Frame ``n`` is warped (bicubic, per
    plane, chroma placed by ``_ChromaLocation``) onto the smoothed path. Scene cuts
    (``vsrestore.motion.scene_change`` above *cut_threshold*, or a pair whose motion cannot
    be fitted) end the path: nothing is carried across.

    Lazy analysis, no first pass: frame ``n`` needs the pair motions of ``n-k .. n+k``.
    Each pair is estimated once, by whichever frame asks first (a lock and per-pair events;
    72 bytes kept per frame). Frames reach callbacks only through ``temporal_neighbours``
    clips (no ``get_frame``) in ``bridge.map_frames``' FrameEval + ModifyFrame pattern, with
    a per-frame clip list: frame ``n`` gets just the small analysis-luma frames of pairs not
    yet estimated. Sequential rendering so costs one pair per frame (a DIS flow at most
    ``ANALYSIS_SIDE`` = 640 px wide, plus a cheap reverse one) and fetches each upstream
    frame about twice (analysis ``k`` frames ahead, then output; a fixed ``2k+1`` window made
    VapourSynth recompute upstream frames ~8x at ``k = 30``). Results do not depend on the
    order or number of threads. ``dewarp=R`` then removes the non-rigid wobble that a
    global fit cannot (film warp, uneven shrinkage, rolling-shutter jello): see
    ``vsrestore.dewarp``.

    Args:
        clip: any constant-format YUV/RGB/GRAY clip (8-16-bit integer, 16/32-bit float).
        smoothing: camera-path smoothing sigma in frames (larger = steadier, follows
            slower camera moves). ``0`` returns *clip* itself: bit-exact, no props added.
        mode: fitted motion, ``"translation"``, ``"similarity"`` (shift, rotation, zoom) or
            ``"affine"``.
        borders: exposed edges: ``"crop"`` zooms about the centre by a constant
            ``1 / (1 - 2 margin)`` for the whole clip (the framing never breathes; a lazy
            analysis cannot know a whole shot's largest correction in advance) and scales
            back any correction that would still expose an edge; ``"fill"`` takes the
            missing area from the aligned frames ``n-1, n+1, n-2, n+2`` of the same shot,
            then repeats the edge; ``"black"``; ``"edge"`` repeats the edge pixels.
        margin: fraction of width and height per side that ``"crop"`` may hide (0..0.25).
        preset: optical-flow preset (``vsrestore.motion.PRESETS``).
        cut_threshold: scene-change score (0..1] above which a pair counts as a cut.
        dewarp: ``0`` (default, off) or a temporal radius ``R`` (1..8) for non-rigid
            dewarping after the global correction: each frame's smooth local displacement
            against the frames ``n-R .. n+R`` of its shot is undone, so frame-to-frame wobble
            drops to about ``1 / (2R + 1)`` (measured 0.27x at ``R = 2``,
            tests/test_stabilize.py); real motion (over 4 px per frame) is left alone;
            ``2R`` extra dense flows per frame.

    Frame props written: ``vsrestore_stab_dx``/``_dy`` (the output pixel at the frame
    centre shows the input at ``centre + (dx, dy)``, luma pixels), ``_angle`` (degrees),
    ``_scale`` of the correction, and ``vsrestore_stab_zoom`` (the crop zoom, else 1).

    Example (.vpy)::

        import vapoursynth as vs, vsrestore as vr
        clip = vs.core.bs.VideoSource("film.mkv")
        clip = vr.stabilize(clip, smoothing=12, borders="crop", margin=0.02)
        clip.set_output()
    """
    check_clip(clip, NAME)
    color.check_supported(clip, NAME)
    _check_number("smoothing", smoothing, 0, 50, "use e.g. smoothing=10 (0 disables the filter)")
    _check_number("margin", margin, 0, 0.249, "use e.g. margin=0.03")
    _check_number("cut_threshold", cut_threshold, 1e-6, 1, f"use e.g. cut_threshold={motion.CUT_THRESHOLD}")
    for arg, value, allowed in (("mode", mode, MODES), ("borders", borders, BORDERS), ("preset", preset,
                                                                                      motion.PRESETS)):
        if value not in allowed:
            raise VSRestoreError(NAME, f"unknown {arg} {value!r}", f"use one of {', '.join(allowed)}")
    if isinstance(dewarp, bool) or not isinstance(dewarp, int) or not 0 <= dewarp <= 8:
        raise VSRestoreError(NAME, f"dewarp must be an integer radius 0..8, got {dewarp!r}",
                             "use dewarp=0 (off) or e.g. dewarp=2")
    if borders == "crop" and margin == 0:
        raise VSRestoreError(NAME, "borders='crop' with margin=0 leaves no room to move the picture",
                             "use e.g. margin=0.03, or borders='fill'")
    if smoothing == 0:
        return _dewarp(clip, dewarp) if dewarp else clip
    assert clip.format is not None
    fmt, w, h = clip.format, clip.width, clip.height
    k = math.ceil(3 * smoothing)
    r = min(1.0, ANALYSIS_SIDE / max(w, h))
    wa, ha = max(1, round(w * r)), max(1, round(h * r))
    luma = color.to_luma(clip)
    if (wa, ha) != (w, h):
        luma = core.resize.Bicubic(luma, wa, ha)
    rx, ry = wa / w, ha / h  # pixel centres: x_a + 0.5 = rx (x + 0.5)
    to_ana = np.array([[rx, 0, 0.5 * rx - 0.5], [0, ry, 0.5 * ry - 0.5], [0, 0, 1]])
    analyser = _Analyser(clip.num_frames, mode, preset, float(cut_threshold), to_ana)
    full = temporal_neighbours(clip, _FILL_RADIUS) if borders == "fill" else [clip]
    nf = len(full)
    ctr = nf // 2
    z = 1 / (1 - 2 * margin) if borders == "crop" else 1.0
    cx, cy = (w - 1) / 2, (h - 1) / 2
    unzoom = np.array([[1 / z, 0, cx * (1 - 1 / z)], [0, 1 / z, cy * (1 - 1 / z)], [0, 0, 1]])

    def render(n: int, f: list[vs.VideoFrame], ana_img: Callable[[int], np.ndarray]) -> vs.VideoFrame:
        poses = analyser.poses(n, k, ana_img)
        corr = _smooth(poses, n, float(smoothing), mode, (cx, cy))
        if borders == "crop":
            corr = _limit(corr, unzoom, w, h)
        m = corr @ unzoom
        src = f[ctr]
        fout = new_frame(clip, src)
        loc = int(src.props.get("_ChromaLocation", 0))  # type: ignore[arg-type]
        rng = src.props.get("_Range")
        for p in range(fmt.num_planes):
            s = _plane_scale(fmt, p, loc)  # plane coords -> luma coords
            s_inv = np.linalg.inv(s)
            mp = s_inv @ m @ s
            black = _black(fmt, p, rng)
            out = _warp(np.asarray(src[p], dtype=np.float32), mp, borders, black)
            ph, pw = out.shape
            if borders == "black" and not _inside(mp, pw, ph):
                out[_exposed(mp, pw, ph)] = black  # a hard edge, not a blur into black
            if borders == "fill" and not _inside(mp, pw, ph):
                hole = _exposed(mp, pw, ph)
                for d in (-1, 1, -2, 2):  # the nearest aligned frames of the shot first
                    if n + d in poses and hole.any():
                        mj = s_inv @ np.linalg.inv(poses[n + d]) @ m @ s
                        take = hole & ~_exposed(mj, pw, ph)
                        out[take] = _warp(np.asarray(f[ctr + d][p], dtype=np.float32), mj, "edge", 0)[take]
                        hole &= ~take
            dst = np.asarray(fout[p])
            if fmt.sample_type == vs.INTEGER:
                out = np.clip(np.rint(out), 0, (1 << fmt.bits_per_sample) - 1)
            np.copyto(dst, out, casting="unsafe")
        u = corr @ np.array([cx, cy, 1.0])
        fout.props.update(vsrestore_stab_dx=float(u[0] - cx), vsrestore_stab_dy=float(u[1] - cy),
                          vsrestore_stab_angle=math.degrees(math.atan2(corr[1, 0] - corr[0, 1],
                                                                       corr[0, 0] + corr[1, 1])),
                          vsrestore_stab_scale=float(math.sqrt(abs(np.linalg.det(corr[:2, :2])))),
                          vsrestore_stab_zoom=float(z))
        return fout

    lumas = temporal_neighbours(luma, k)  # lumas[j - n + k] delivers frame j at frame n

    def per_frame(n: int) -> vs.VideoNode:
        need = analyser.missing_frames(n, k)  # only frames of pairs not yet estimated
        pos = {j: nf + i for i, j in enumerate(need)}

        def cb(n: int, f: vs.VideoFrame | list[vs.VideoFrame]) -> vs.VideoFrame:
            fr = f if isinstance(f, list) else [f]
            return render(n, fr, lambda j: np.array(fr[pos[j]][0], dtype=np.float32))

        return clip.std.ModifyFrame(full + [lumas[j - n + k] for j in need], cb)

    out = clip.std.FrameEval(per_frame, clip_src=full + lumas)
    return _dewarp(out, dewarp) if dewarp else out


def _check_number(arg: str, value: object, lo: float, hi: float, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise VSRestoreError(NAME, f"{arg} must be a number in {lo:g}..{hi:g}, got {value!r}", fix)


class _Analyser:
    """Pair motions ``A_i`` (frame ``i`` coords -> frame ``i-1`` coords), each estimated once."""

    def __init__(self, num_frames: int, mode: str, preset: str, cut_threshold: float,
                 to_ana: np.ndarray) -> None:
        self.mode, self.preset, self.cut_threshold = mode, preset, cut_threshold
        self.to_ana, self.from_ana = to_ana, np.linalg.inv(to_ana)
        self.mats = np.zeros((num_frames, 3, 3))
        self.state = np.zeros(num_frames, np.int8)
        self.lock = threading.Lock()
        self.busy: dict[int, threading.Event] = {}

    def missing_frames(self, n: int, k: int) -> list[int]:
        """Frames needed for the pairs of n's window not estimated yet (up to known cuts)."""
        need: set[int] = set()
        with self.lock:
            for pairs in (range(n, max(0, n - k), -1), range(n + 1, min(len(self.state), n + k + 1))):
                for i in pairs:
                    if self.state[i] == _CUT:
                        break
                    if self.state[i] == _UNKNOWN:
                        need.update((i - 1, i))
        return sorted(need)

    def poses(self, n: int, k: int, img: Callable[[int], np.ndarray]) -> dict[int, np.ndarray]:
        """``{j: T_j}`` for the frames ``j`` of n's shot within ``n-k .. n+k``; T_j maps j's coords to n's."""
        out, cur = {n: _I3}, _I3
        for i in range(n, max(0, n - k), -1):
            a, cut = self.pair(i, img)
            if cut:
                break
            cur = cur @ np.linalg.inv(a)
            out[i - 1] = cur
        cur = _I3
        for i in range(n + 1, min(len(self.state), n + k + 1)):
            a, cut = self.pair(i, img)
            if cut:
                break
            cur = cur @ a
            out[i] = cur
        return out

    def pair(self, i: int, img: Callable[[int], np.ndarray]) -> tuple[np.ndarray, bool]:
        while True:
            with self.lock:
                if self.state[i] != _UNKNOWN:
                    return self.mats[i].copy(), bool(self.state[i] == _CUT)
                ev = self.busy.get(i)
                if ev is None:
                    ev = self.busy[i] = threading.Event()
                    break
            ev.wait()  # another thread is estimating this pair; on its failure, retry here
        try:
            a, cut = self.estimate(img(i - 1), img(i))
            with self.lock:
                self.mats[i], self.state[i] = a, _CUT if cut else _SAME
        finally:
            with self.lock:
                del self.busy[i]
            ev.set()
        return a, cut

    def estimate(self, prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, bool]:
        back = motion.dense_flow(prev, cur, preset=self.preset)
        if motion.scene_change(prev, cur, flow=back) > self.cut_threshold:
            return _I3.copy(), True
        # the reverse flow only gates samples (the fit is robust anyway): the cheapest preset
        conf = motion.flow_confidence(back, motion.dense_flow(cur, prev, preset="ultrafast"))
        a = _robust_fit(cur, back, conf, self.mode)
        if a is None:
            return _I3.copy(), True  # motion unknown: start a new path rather than guess
        return self.from_ana @ a @ self.to_ana, False


def _robust_fit(img: np.ndarray, flow: np.ndarray, conf: np.ndarray, mode: str) -> np.ndarray | None:
    """Global motion ``q = A p`` from flow samples: RANSAC start, then Tukey IRLS."""
    h, w = img.shape
    step = max(2, round(math.sqrt(h * w / 3000)))
    b = min(2 * step, h // 4, w // 4)
    ys, xs = np.mgrid[b:h - b:step, b:w - b:step]
    eig = np.maximum(cv2.cornerMinEigenVal(np.ascontiguousarray(img), 5, ksize=3)[ys, xs].ravel(), 0)
    prior = conf[ys, xs].ravel() * eig / (eig + np.median(eig) + 1e-12)
    p = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    q = p + flow[:, ys, xs].reshape(2, -1).T
    keep = conf[ys, xs].ravel() > 0.5
    if keep.sum() < 12:
        return None
    p, q, prior = p[keep], q[keep], prior[keep]
    a = _I3.copy()
    a[:2, 2] = np.median(q - p, axis=0)
    if mode != "translation":
        est = cv2.estimateAffinePartial2D if mode == "similarity" else cv2.estimateAffine2D
        m, _ = est(p.astype(np.float32), q.astype(np.float32), method=cv2.RANSAC,
                   ransacReprojThreshold=1.0, maxIters=1000, refineIters=0)
        if m is not None:
            a[:2] = m
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    shift = np.array([[1, 0, c[0]], [0, 1, c[1]], [0, 0, 1]])
    for _ in range(8):
        r = np.hypot(*(q - p @ a[:2, :2].T - a[:2, 2]).T)
        cutoff = 4.685 * max(1.4826 * float(np.median(r)), 0.02)
        u = prior * np.clip(1 - (r / cutoff) ** 2, 0, None) ** 2
        if u.sum() < 1e-9:
            return None
        a = shift @ _wls(p - c, q - c, u, mode) @ np.linalg.inv(shift)
    return a


def _wls(p: np.ndarray, q: np.ndarray, u: np.ndarray, mode: str) -> np.ndarray:
    """Weighted least squares for ``q = A p`` (centred coordinates)."""
    if mode == "translation":
        t = (u[:, None] * (q - p)).sum(0) / u.sum()
        return np.array([[1, 0, t[0]], [0, 1, t[1]], [0, 0, 1]])
    x, y, one, zero, sw = p[:, 0], p[:, 1], np.ones(len(p)), np.zeros(len(p)), np.sqrt(u)
    if mode == "similarity":  # qx = a x - b y + tx, qy = b x + a y + ty
        rows = np.concatenate([np.stack([x, -y, one, zero], 1), np.stack([y, x, zero, one], 1)])
        sw2 = np.tile(sw, 2)
        sol = np.linalg.lstsq(rows * sw2[:, None], np.concatenate([q[:, 0], q[:, 1]]) * sw2, rcond=None)[0]
        return np.array([[sol[0], -sol[1], sol[2]], [sol[1], sol[0], sol[3]], [0, 0, 1]])
    rows = np.stack([x, y, one], 1) * sw[:, None]
    mx = np.linalg.lstsq(rows, q[:, 0] * sw, rcond=None)[0]
    my = np.linalg.lstsq(rows, q[:, 1] * sw, rcond=None)[0]
    return np.array([mx, my, [0, 0, 1]])


def _phi(z: complex) -> complex:
    return (cmath.exp(z) - 1) / z if abs(z) > 1e-9 else 1 + z / 2


def _sim(a: complex) -> np.ndarray:
    return np.array([[a.real, -a.imag], [a.imag, a.real]])


def _params(t: np.ndarray, mode: str, c: np.ndarray) -> np.ndarray:
    """A pose as the Lie-algebra vector of its similarity part (linear along any steady camera move).

    About the centre, as complex maps ``x -> a x + u``: ``z = log a`` (log zoom, angle) and
    ``v = u z / (e^z - 1)``; ``P^d`` gives ``d z, d v``. Affine adds ``K = sim(a)^-1 L``
    (aspect and shear, near identity), smoothed as is.
    """
    u = (t @ np.append(c, 1.0))[:2] - c
    a = complex((t[0, 0] + t[1, 1]) / 2, (t[1, 0] - t[0, 1]) / 2)
    z = cmath.log(a)
    v = complex(u[0], u[1]) / _phi(z)
    out = np.array([z.real, z.imag, v.real, v.imag])
    if mode == "affine":
        return np.concatenate([out, (np.linalg.inv(_sim(a)) @ t[:2, :2]).ravel()])
    return out


def _from_params(p: np.ndarray, mode: str, c: np.ndarray) -> np.ndarray:
    z = complex(p[0], p[1])
    u = complex(p[2], p[3]) * _phi(z)
    lin = _sim(cmath.exp(z))
    if mode == "affine":
        lin = lin @ p[4:].reshape(2, 2)
    out = _I3.copy()
    out[:2, :2], out[:2, 2] = lin, c + np.array([u.real, u.imag]) - lin @ c
    return out


def _smooth(poses: dict[int, np.ndarray], n: int, sigma: float, mode: str,
            centre: tuple[float, float]) -> np.ndarray:
    """Smoothed pose at ``n`` (local-linear Gaussian regression): maps output coords to frame n's."""
    c = np.array(centre)
    js = sorted(poses)
    d = np.array(js, dtype=np.float64) - n
    g = np.exp(-0.5 * (d / sigma) ** 2)
    s0, s1, s2 = g.sum(), (g * d).sum(), (g * d * d).sum()
    den = s0 * s2 - s1 * s1
    wts = g * (s2 - s1 * d) / den if den > 1e-9 * s0 * s0 else g / s0
    vals = np.array([_params(poses[j], mode, c) for j in js])
    return _from_params(wts @ vals, mode, c)


def _inside(m: np.ndarray, w: int, h: int) -> bool:
    """Whether the whole output maps into the source frame (affine: checking the corners suffices)."""
    pts = m @ np.array([[-0.5, w - 0.5, -0.5, w - 0.5], [-0.5, -0.5, h - 0.5, h - 0.5], [1, 1, 1, 1]])
    eps = 1e-6
    return bool(np.all((pts[0] >= -0.5 - eps) & (pts[0] <= w - 0.5 + eps)
                       & (pts[1] >= -0.5 - eps) & (pts[1] <= h - 0.5 + eps)))


def _limit(corr: np.ndarray, unzoom: np.ndarray, w: int, h: int) -> np.ndarray:
    """Scale *corr* back towards identity until the zoomed output shows no outside area."""
    if _inside(corr @ unzoom, w, h):
        return corr
    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _inside((_I3 + mid * (corr - _I3)) @ unzoom, w, h) else (lo, mid)
    return _I3 + lo * (corr - _I3)


def _exposed(m: np.ndarray, w: int, h: int) -> np.ndarray:
    """Mask of output pixels whose source point lies outside the frame."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    sx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    sy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    return np.asarray((sx < -0.5) | (sx > w - 0.5) | (sy < -0.5) | (sy > h - 0.5))


def _plane_scale(fmt: vs.VideoFormat, plane: int, loc: int) -> np.ndarray:
    """Map from a plane's pixel coords to luma pixel coords (chroma siting per ``_ChromaLocation``)."""
    if plane == 0 or fmt.color_family != vs.YUV:
        return _I3.copy()
    sx, sy = 1 << fmt.subsampling_w, 1 << fmt.subsampling_h
    ox = (sx - 1) / 2 if loc in (1, 3, 5) else 0.0  # centre / left
    oy = 0.0 if loc in (2, 3) else (sy - 1 if loc in (4, 5) else (sy - 1) / 2)  # top / bottom / centre
    return np.array([[sx, 0, ox], [0, sy, oy], [0, 0, 1]])


def _warp(src: np.ndarray, m: np.ndarray, borders: str, black: float) -> np.ndarray:
    h, w = src.shape
    mode = cv2.BORDER_CONSTANT if borders == "black" else cv2.BORDER_REPLICATE
    return cv2.warpAffine(src, m[:2], (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=mode, borderValue=(black,) * 4)


def _black(fmt: vs.VideoFormat, plane: int, rng: object) -> float:
    """Black (luma, RGB) or neutral chroma code value of *plane*."""
    if fmt.color_family == vs.YUV and plane > 0:
        return 0.0 if fmt.sample_type == vs.FLOAT else float(1 << (fmt.bits_per_sample - 1))
    limited = rng != 1 if fmt.color_family == vs.YUV else rng == 0
    if fmt.sample_type == vs.FLOAT or not limited:
        return 0.0
    return float(16 << (fmt.bits_per_sample - 8))
