"""Dense optical flow as a clip: ``vr.optical_flow``."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import vapoursynth as vs

from vsrestore import color, motion
from vsrestore.bridge import map_frames, new_frame, resized_template, temporal_neighbours
from vsrestore.errors import VSRestoreError, check_clip
from vsrestore.runtime.backends import TorchCPU, TorchCUDA, cuda_available

core = vs.core
NAME = "optical_flow"
DIRECTIONS = ("backward", "forward")
DIRECTION_PROP = "vsrestore_flow_direction"
SCENECUT_PROP = "vsrestore_scenecut"
_KEEP_PROPS = ("_DurationNum", "_DurationDen", "_AbsoluteTime")


def optical_flow(clip: vs.VideoNode, *, direction: str = "backward", preset: str = "medium",
                 scale: float = 1.0, confidence: bool = True,
                 backend: TorchCPU | TorchCUDA | None = None) -> vs.VideoNode:
    """Dense motion between each frame and its neighbour, as an RGBS clip of flow vectors.

    Output: RGBS, same size, length and frame rate as *clip*. For frame ``n``:

    - plane 0 = ``dx``, plane 1 = ``dy``, in pixels of *clip*: frame ``n`` at ``(x, y)``
      shows what the neighbour shows at ``(x + dx, y + dy)``. The neighbour is ``n - 1``
      for ``direction="backward"`` (where each pixel came from) and ``n + 1`` for
      ``"forward"`` (where it goes). Warping the neighbour with the flow (bilinear
      sampling at ``x + dx, y + dy``) motion-compensates it onto frame ``n``.
    - plane 2 = confidence 0..1 from the forward-backward check: near 1 where the flow
      is trustworthy, near 0 where the pixel is occluded in (or outside of) the
      neighbour, e.g. the strip that a pan uncovers.
    - props ``vsrestore_flow_direction`` (``"backward"``/``"forward"``) and
      ``vsrestore_scenecut`` (1 when frame ``n`` and its neighbour lie on two sides
      of a scene cut, else 0). Across a cut, and on the first frame (backward) or the
      last frame (forward), which have no neighbour, ``dx = dy = 0`` and confidence
      is 0, so nothing propagates from the other shot.

    Motion is estimated on luma (YUV: plane Y, honouring ``_Range``; GRAY: the plane;
    RGB: BT.709-weighted grey) with OpenCV's DIS optical flow (``vsrestore.motion``) on
    the CPU, or with ``backend=vr.TorchCUDA()`` by the same method written in PyTorch
    (``vsrestore.torchflow``) on an NVIDIA GPU. Scene cuts and the forward-backward
    check are computed on the CPU in both cases.

    Args:
        clip: YUV, RGB or GRAY clip, 8-16-bit integer or 16/32-bit float.
        direction: ``"backward"`` (to ``n - 1``, default) or ``"forward"`` (to ``n + 1``).
        preset: ``"ultrafast"``, ``"fast"``, ``"medium"`` (default) or ``"slow"``:
            speed against accuracy.
        scale: 0 < scale <= 1; below 1 the flow is computed on a copy downscaled by
            *scale* (faster, less detail) and the vectors are scaled back to full size.
            (The presets search at a fraction of that resolution anyway: "slow" 1, "medium"
            1/2, "fast" 1/3, "ultrafast" 1/4; the frames are downscaled once in the graph.
            On frames under ~640 px wide "fast" loses accuracy: use "medium" there.)
        confidence: ``False`` skips the reverse flow of the forward-backward check (about
            twice as fast): plane 2 is then only 1 where ``(x + dx, y + dy)`` lies inside
            the neighbour and 0 outside, with no occlusion information.
        backend: ``None`` (default): OpenCV DIS on the CPU. ``vr.TorchCUDA(device=N)``:
            the PyTorch estimator on GPU N (float32; ``fp16`` is ignored: sub-pixel
            vectors need the precision); its "medium" and "slow" search at full
            resolution. ``vr.TorchCPU()`` runs that estimator on the CPU (slow; a
            reference for the GPU path). Figures in ``vsrestore/torchflow.py``.

    Example (.vpy)::

        import vapoursynth as vs, vsrestore as vr
        clip = vs.core.bs.VideoSource("in.mkv")
        flow = vr.optical_flow(clip, direction="backward", scale=0.5)  # RGBS: dx, dy, conf
        # on an NVIDIA GPU: vr.optical_flow(clip, backend=vr.TorchCUDA())
        flow.set_output()
    """
    check_clip(clip, NAME)
    color.check_supported(clip, NAME)
    if direction not in DIRECTIONS:
        raise VSRestoreError(NAME, f"direction must be 'backward' or 'forward', got {direction!r}",
                             "use direction='backward' (flow to frame n-1) or 'forward' (to n+1)")
    if preset not in motion.PRESETS:
        raise VSRestoreError(NAME, f"unknown preset {preset!r}",
                             f"use one of {', '.join(repr(p) for p in motion.PRESETS)}")
    if not isinstance(confidence, bool):
        raise VSRestoreError(NAME, f"confidence must be True or False, got {confidence!r}",
                             "use confidence=True (occlusion-aware) or False (faster)")
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale <= 1:
        raise VSRestoreError(NAME, f"scale must be a number with 0 < scale <= 1, got {scale!r}",
                             "use scale=1.0 (full resolution) or e.g. 0.5 for speed")
    if backend is not None and not isinstance(backend, TorchCPU | TorchCUDA):
        raise VSRestoreError(NAME, f"backend must be None, vr.TorchCPU() or vr.TorchCUDA(), got {backend!r}",
                             "leave backend=None for OpenCV DIS on the CPU, or pass vr.TorchCUDA()")
    estimate = _torch_estimator(backend, preset) if backend is not None else None
    w, h = clip.width, clip.height
    # DIS's finest level is *reduced* times smaller than its input: downscale each frame
    # once here (zimg, antialiased) instead of twice per pair inside DIS
    if backend is None:
        reduced = motion.finest_factor(preset)
    else:
        from vsrestore import torchflow  # torch is imported only for this backend

        reduced = torchflow.finest_factor(preset)
    sw, sh = max(1, round(w * scale / reduced)), max(1, round(h * scale / reduced))
    grey = _luma(clip, (sw, sh))
    shifted = temporal_neighbours(grey, 1)
    backward = direction == "backward"
    neighbour = shifted[0] if backward else shifted[2]
    edge = 0 if backward else clip.num_frames - 1
    template = resized_template(clip, w, h, vs.RGBS)
    kx, ky = w / sw, h / sh

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        fout = new_frame(template)
        for key in _KEEP_PROPS:
            if key in f[1].props:
                fout.props[key] = f[1].props[key]
        fout.props[DIRECTION_PROP] = direction
        out = [np.asarray(fout[p]) for p in range(3)]
        cut = False
        if n != edge:
            other, this = np.asarray(f[0][0]), np.asarray(f[1][0])
            if estimate is None:
                flow = motion.dense_flow(other, this, preset=preset, reduced=reduced)
            else:
                flow = estimate(other, this)
            cut = motion.is_scene_cut(other, this, flow=flow)
            if not cut:
                if not confidence:
                    conf = _inside(flow)
                elif estimate is None:
                    conf = motion.flow_confidence(flow, motion.dense_flow(this, other, preset=preset,
                                                                          reduced=reduced))
                else:
                    conf = motion.flow_confidence(flow, estimate(this, other))
                _write_plane(out[0], flow[0], kx)
                _write_plane(out[1], flow[1], ky)
                _write_plane(out[2], conf, 1.0)
        if n == edge or cut:
            for plane in out:
                plane.fill(0.0)
        fout.props[SCENECUT_PROP] = int(cut)
        return fout

    return map_frames(template, [neighbour, grey], fn)


def _torch_estimator(backend: TorchCPU | TorchCUDA,
                     preset: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``(prev, cur) -> backward flow of cur`` (numpy in and out) by vsrestore.torchflow on *backend*."""
    import torch

    from vsrestore import torchflow

    if isinstance(backend, TorchCUDA):
        if not cuda_available():
            raise VSRestoreError(NAME, "backend=vr.TorchCUDA() but torch sees no CUDA GPU here",
                                 "leave backend=None (OpenCV DIS on the CPU) on this machine")
        if not 0 <= backend.device < torch.cuda.device_count():
            raise VSRestoreError(NAME, f"no CUDA device {backend.device} (torch sees "
                                 f"{torch.cuda.device_count()})", "pass vr.TorchCUDA(device=0)")
        device = torch.device("cuda", backend.device)
    else:
        device = torch.device("cpu")

    def estimate(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        a = torch.tensor(prev, dtype=torch.float32, device=device)  # a copy: VS planes are read-only
        b = torch.tensor(cur, dtype=torch.float32, device=device)
        return torchflow.dense_flow(a, b, preset=preset).cpu().numpy()

    return estimate


def _inside(flow: np.ndarray) -> np.ndarray:
    """1 where the flow samples inside the frame, else 0."""
    _, h, w = flow.shape
    gx, gy = motion._grid(h, w)
    x, y = flow[0] + gx, flow[1] + gy
    return ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).astype(np.float32)


def _luma(clip: vs.VideoNode, size: tuple[int, int] | None = None) -> vs.VideoNode:
    """GRAYS 0..1 at *size* (bilinear; default: the clip's): Y of YUV or the GRAY plane
    (range-normalised), BT.709 grey of RGB."""
    assert clip.format is not None
    size = size or (clip.width, clip.height)
    info = color.describe(clip)
    if clip.format.color_family != vs.RGB:
        if size == (clip.width, clip.height):
            return color.to_grays(clip, info)
        y = core.std.ShufflePlanes(color.with_props(clip, info), 0, vs.GRAY)  # one zimg pass: depth and size
        return core.resize.Bilinear(y, *size, format=vs.GRAYS, range_in=info.range, range=1)
    rgb = color.to_rgbs(clip, info)
    r, g, b = (core.std.ShufflePlanes(rgb, p, vs.GRAY) for p in range(3))
    grey = core.std.Expr([r, g, b], "x 0.2126 * y 0.7152 * + z 0.0722 * +")
    return grey if size == (clip.width, clip.height) else core.resize.Bilinear(grey, *size)


def _write_plane(dst: np.ndarray, src: np.ndarray, gain: float) -> None:
    """Write *src* (possibly smaller) into *dst*, resized bilinearly and multiplied by *gain*."""
    if gain != 1.0:  # on the (smaller) source: fewer multiplications
        src = src * np.float32(gain)
    if src.shape == dst.shape:
        np.copyto(dst, src, casting="unsafe")
    elif dst.flags.c_contiguous:  # straight into the frame
        cv2.resize(src, (dst.shape[1], dst.shape[0]), dst=dst, interpolation=cv2.INTER_LINEAR)
    else:
        dst[...] = cv2.resize(src, (dst.shape[1], dst.shape[0]), interpolation=cv2.INTER_LINEAR)
