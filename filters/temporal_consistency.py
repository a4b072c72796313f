"""Flow-guided temporal consistency (anti-flicker for per-frame processing): ``vr.temporal_consistency``."""

from __future__ import annotations

import cv2
import numpy as np
import vapoursynth as vs
from vsrestore.kernels.warp import warp

from vsrestore import color, motion
from vsrestore.bridge import Shared, frame_to_array, map_frames, new_frame, temporal_neighbours
from vsrestore.errors import VSRestoreError, check_clip

core = vs.core
NAME = "temporal_consistency"
_FLAT_TEXTURE = 0.003  # local gradient RMS (per pixel) under which a noise-free area counts as flat


def temporal_consistency(clip: vs.VideoNode, source: vs.VideoNode | None = None, *, radius: int = 1,
                         strength: float = 1.0, preset: str = "medium") -> vs.VideoNode:
    """Make a per-frame-processed clip temporally stable with motion from its source.

    Each output frame is a weighted blend of the frame and its neighbours
    ``n-radius .. n+radius``, each neighbour motion-compensated onto frame ``n``
    with dense optical flow measured on *source* (the clip before per-frame
    processing, which carries the true motion; it may be smaller than *clip*, e.g.
    the input of ``vr.upscale``: the flow is scaled to fit; where *source* has no
    texture above its noise, the frame's median motion replaces DIS's noise-driven
    vectors). A neighbour's weight is zero where the flow fails its forward-backward
    check (occlusions), where the compensated neighbour differs from the frame by more
    than the typical residual
    (misaligned moving edges would otherwise ghost), and across scene cuts. Nothing
    is invented: the output only mixes real pixels of the clip.

    Args:
        clip: the processed clip (any YUV/RGB/GRAY format, 8-16-bit int or float).
        source: the unprocessed clip with the same frame count (default: *clip*).
        radius: neighbours on each side (1 or 2 are typical).
        strength: 0..1 mix of the stabilised result; 0 returns *clip* unchanged.
        preset: optical-flow preset (``vsrestore.motion.PRESETS``).

    Example (.vpy)::

        import vapoursynth as vs, vsrestore as vr
        src = vs.core.bs.VideoSource("in.mkv")
        clip = vr.upscale(src, 2)
        clip = vr.temporal_consistency(clip, src)
        clip.set_output()
    """
    check_clip(clip, NAME)
    color.check_supported(clip, NAME)
    if isinstance(strength, bool) or not isinstance(strength, int | float) or not 0.0 <= strength <= 1.0:
        raise VSRestoreError(NAME, f"strength must be a number in 0..1, got {strength!r}",
                             "use e.g. strength=1.0 (0 returns the clip unchanged)")
    if not isinstance(radius, int) or isinstance(radius, bool) or not 1 <= radius <= 4:
        raise VSRestoreError(NAME, f"radius must be an int in 1..4, got {radius!r}", "use radius=1 or 2")
    if preset not in motion.PRESETS:
        raise VSRestoreError(NAME, f"unknown preset {preset!r}", f"use one of {', '.join(motion.PRESETS)}")
    src = clip if source is None else source
    check_clip(src, NAME)
    color.check_supported(src, NAME)
    if src.num_frames != clip.num_frames:
        raise VSRestoreError(NAME, f"source has {src.num_frames} frames, clip has {clip.num_frames}",
                             "pass the clip before per-frame processing (same frame count)")
    if strength == 0:
        return clip
    assert clip.format is not None
    fmt = clip.format
    n_nb = 2 * radius + 1
    clips = [*temporal_neighbours(clip, radius), *temporal_neighbours(color.to_luma(src), radius),
             *temporal_neighbours(color.to_luma(clip), radius)]
    peak = float((1 << fmt.bits_per_sample) - 1) if fmt.sample_type == vs.INTEGER else None
    s = float(strength)
    # Frames n and n + k need the same two flows between them (each one's forward flow is the
    # other's reverse): each pair is computed once and shared, and so is each source frame's
    # texture weight. A frame adds 2 * radius flows that frames up to radius later reuse, with
    # a frame per thread in flight: that many are kept (flows of the source's size).
    keep = 2 * radius * (radius + core.num_threads + 1)
    flows: Shared[tuple[int, int], np.ndarray] = Shared(keep)
    textures: Shared[int, np.ndarray] = Shared(keep)

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        frames, src_l, clip_l = f[:n_nb], f[n_nb: 2 * n_nb], f[2 * n_nb:]
        c = radius
        ys = [frame_to_array(x)[0] for x in src_l]
        yc = [frame_to_array(x)[0] for x in clip_l]
        planes = frame_to_array_planes(frames[c])
        acc = [p.copy() for p in planes]
        wsum = np.ones_like(yc[c])

        def flow_to(i: int, j: int) -> np.ndarray:
            """Backward flow of stack frame *j* from stack frame *i* (source), flat areas filled."""
            def compute() -> np.ndarray:
                tex = textures.get(n + j - c, lambda: _texture(ys[j]))
                return motion.fill_textureless(motion.dense_flow(ys[i], ys[j], preset=preset), tex)
            return flows.get((n + i - c, n + j - c), compute)

        for side in (-1, 1):
            for k in range(1, radius + 1):
                j = c + side * k
                if n + side * k < 0 or n + side * k >= clip.num_frames:
                    break
                fwd, rev = flow_to(j, c), flow_to(c, j)  # fwd warps the neighbour onto n
                pair = (ys[j], ys[c], fwd) if side < 0 else (ys[c], ys[j], rev)
                if motion.is_scene_cut(pair[0], pair[1], flow=pair[2]):
                    break  # nothing beyond a cut
                conf = _resize_field(motion.flow_confidence(fwd, rev), yc[c].shape)
                flow = _scale_flow(fwd, yc[c].shape)
                wgt = conf * _similarity(warp(yc[j], flow[0], flow[1], interp="bicubic"), yc[c], conf)
                wsum += wgt
                for p, plane in enumerate(frame_to_array_planes(frames[j])):
                    fl = flow if plane.shape == yc[c].shape else _scale_flow(flow, plane.shape)
                    w_p = wgt if plane.shape == wgt.shape else _resize_field(wgt, plane.shape)
                    acc[p] += w_p * warp(plane, fl[0], fl[1], interp="bicubic")
        fout = new_frame(clip, frames[c])
        for p, plane in enumerate(planes):
            w_p = wsum if plane.shape == wsum.shape else _resize_field(wsum, plane.shape)
            res = plane + s * (acc[p] / w_p - plane)
            if peak is not None:
                res = np.clip(np.rint(res), 0, peak)
            np.copyto(np.asarray(fout[p]), res, casting="unsafe")
        return fout

    return map_frames(clip, clips, fn)


def _texture(img: np.ndarray) -> np.ndarray:
    """Where flow on this source frame is trusted for its texture (``motion.texture_weight``,
    the noise sigma from the MAD of the Laplacian); elsewhere ``motion.fill_textureless`` puts
    the frame's median motion.

    On flat areas DIS returns noise-driven vectors (0.5-0.7 px off on a noisy sky), so the
    neighbours blended there are misaligned from frame to frame and E_warp keeps what the
    shared frames would have cancelled; a flat area's exact motion hardly matters for its
    pixels, its consistency does.
    """
    sigma = 1.4826 * float(np.median(np.abs(cv2.Laplacian(img, cv2.CV_32F, ksize=1)))) / np.sqrt(20.0)
    return motion.texture_weight(img, floor=_FLAT_TEXTURE, noise=sigma)


def frame_to_array_planes(frame: vs.VideoFrame) -> list[np.ndarray]:
    """Every plane as its own float32 array (planes may differ in size)."""
    return [np.array(frame[p], dtype=np.float32) for p in range(frame.format.num_planes)]


def _resize_field(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if a.shape == shape:
        return a
    return cv2.resize(a, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _scale_flow(flow: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A (2, h, w) flow resampled to *shape* with its vectors scaled to match."""
    h, w = flow.shape[1:]
    if (h, w) == tuple(shape):
        return flow
    sx, sy = shape[1] / w, shape[0] / h
    return np.stack([_resize_field(flow[0], shape) * sx, _resize_field(flow[1], shape) * sy])


def _similarity(warped: np.ndarray, cur: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """1 where the compensated neighbour matches the frame as well as typical, falling to 0
    at 2x..4x the typical (median) residual: misaligned edges do not ghost."""
    d = cv2.GaussianBlur(np.abs(warped - cur), (0, 0), 1.0)
    good = d[conf > 0.5]
    typical = float(np.median(good)) if good.size else float(np.median(d))
    t0 = max(2.0 * typical, 2e-3)
    return np.clip((2.0 * t0 - d) / t0, 0.0, 1.0).astype(np.float32)
