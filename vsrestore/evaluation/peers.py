"""Classic peers for ``vsrestore eval``: each takes and returns RGB float frames.

Frames are ``(3, H, W)`` float32 arrays in 0..1; every function takes a list of frames of
one size and returns the processed list (outputs in 0..1, float). A peer that cannot run
here says why through :func:`missing_plugin` / :func:`missing_ffmpeg_filter` (``None``
when it can), so the evaluation reports it as skipped instead of failing.

- :func:`resize_up`: zimg Lanczos (3 taps), Spline36, Bicubic (b=0, c=0.5) on RGBS.
- :func:`znedi3_up`: nnedi3 doubling (``core.znedi3.nnedi3``, ``field=1, dh=True``) along
  rows, then along columns through transposes; x4 doubles twice. ``field=1`` keeps the top
  field: the input's row k is output row 2k (checked: bit-exact), whereas the
  centre-aligned grid of zimg (and of the ground truth) puts it at 2k + 0.5. One final
  Spline36 resample at the same size moves the picture by half an output pixel right and
  down (``src_left = src_top = -0.5``; x4: -1.5, the two doublings' offsets 2 * 0.5 + 0.5
  accumulated and corrected once) — the centre shift of ``nnedi3_rpow2``.
- :func:`ffmpeg_filter`: one ffmpeg filter chain on 8-bit frames in a chosen pixel format
  (``gbrp`` or ``yuv444p``: swscale's BT.601 limited-range conversion) — ``bm3d``,
  ``nlmeans``; :func:`bm3d_chain` builds ffmpeg bm3d's one-step and two-step
  (basic + final Wiener) graphs.
- :func:`dfttest2_denoise`: ``dfttest2.DFTTest(..., tbsize=1, backend=dfttest2.Backend.CPU())``
  on RGB24 or YUV444P8 (BT.601 limited).
- :func:`deblock_peer`: ``core.deblock.Deblock(quant=...)`` on YUV444P8 (BT.601 limited,
  the matrix the codec round trip used), all planes.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Sequence

import numpy as np
import vapoursynth as vs

from ..bridge import clip_from_arrays, clip_to_arrays

core = vs.core
Frames = list[np.ndarray]

PLUGIN_PACKAGES = {"znedi3": "vapoursynth-znedi3", "dfttest2_cpu": "vapoursynth-dfttest2-cpu dfttest2",
                   "deblock": "vapoursynth-deblock"}


def missing_plugin(namespace: str) -> str | None:
    """Why the VapourSynth plugin *namespace* cannot be used, or ``None`` when it is loaded."""
    if hasattr(core, namespace):
        return None
    pkg = PLUGIN_PACKAGES.get(namespace, namespace)
    return f"VapourSynth plugin '{namespace}' is not loaded (pip install {pkg})"


def missing_module(name: str) -> str | None:
    try:
        __import__(name)
    except ImportError as e:
        return f"Python package '{name}' is not importable ({e})"
    return None


@functools.lru_cache(maxsize=1)
def _ffmpeg() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


@functools.lru_cache(maxsize=8)
def missing_ffmpeg_filter(name: str) -> str | None:
    """Why ffmpeg's filter *name* cannot be used, or ``None`` when imageio-ffmpeg's ffmpeg has it."""
    try:
        exe = _ffmpeg()
    except Exception as e:  # imageio-ffmpeg without a binary
        return f"no ffmpeg executable ({e})"
    r = subprocess.run([exe, "-hide_banner", "-h", f"filter={name}"], capture_output=True, text=True)
    if r.returncode != 0 or "Unknown filter" in r.stdout + r.stderr:
        return f"ffmpeg at {exe} has no '{name}' filter"
    return None


def _stack8(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Frames -> (N, H, W, 3) uint8 (rounded)."""
    return np.stack([np.clip(np.rint(f.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8) for f in frames])


# ---- scalers ---------------------------------------------------------------------------------

def resize_up(frames: Frames, scale: int, kernel: str) -> Frames:
    """zimg upscale by *scale*: ``lanczos`` (3 taps), ``spline36`` or ``bicubic`` (b=0, c=0.5)."""
    clip = clip_from_arrays(frames, vs.RGBS)
    w, h = clip.width * scale, clip.height * scale
    if kernel == "lanczos":
        up = core.resize.Lanczos(clip, w, h, filter_param_a=3)
    elif kernel == "spline36":
        up = core.resize.Spline36(clip, w, h)
    elif kernel == "bicubic":
        up = core.resize.Bicubic(clip, w, h, filter_param_a=0, filter_param_b=0.5)
    else:
        raise ValueError(f"resize_up: unknown kernel {kernel!r}")
    return clip_to_arrays(up)


ZNEDI3_SETTINGS = {"nsize": 0, "nns": 4, "qual": 2, "pscrn": 0}  # 8x6 window (nnedi3's advice for
# enlargement), the largest network, both networks averaged, no prescreener: its best quality


def _double(clip: vs.VideoNode) -> vs.VideoNode:
    nn = core.znedi3.nnedi3
    rows = nn(clip, field=1, dh=True, **ZNEDI3_SETTINGS)
    return nn(core.std.Transpose(rows), field=1, dh=True, **ZNEDI3_SETTINGS).std.Transpose()


def znedi3_up(frames: Frames, scale: int) -> Frames:
    """nnedi3 doubling to x2 or x4 with the centre-shift correction described above."""
    if scale not in (2, 4):
        raise ValueError(f"znedi3_up: scale must be 2 or 4, got {scale}")
    clip = clip_from_arrays(frames, vs.RGBS)
    out, shift = _double(clip), -0.5
    if scale == 4:
        out, shift = _double(out), -1.5
    fixed = core.resize.Spline36(out, out.width, out.height, src_left=shift, src_top=shift)
    return [np.clip(a, 0.0, 1.0) for a in clip_to_arrays(fixed)]


# ---- ffmpeg filters --------------------------------------------------------------------------

def bm3d_chain(sigma: float, final_sigma: float | None = None) -> str:
    """ffmpeg bm3d: one step (``estim=basic``, other options at ffmpeg's defaults), or, with
    *final_sigma*, the documented two-step graph: the basic estimate guides a final
    (Wiener) pass over the noisy input."""
    if final_sigma is None:
        return f"bm3d=sigma={sigma:g}"
    return (f"split[a][b];[a]bm3d=sigma={sigma:g}:estim=basic[a];"
            f"[b][a]bm3d=sigma={final_sigma:g}:estim=final")


def ffmpeg_filter(frames: Frames, chain: str, pix_fmt: str) -> Frames:
    """Run the ffmpeg filter *chain* on 8-bit frames converted to *pix_fmt* and back to RGB."""
    u8 = _stack8(frames)
    n, h, w, _ = u8.shape
    vf = f"format={pix_fmt},{chain},format=rgb24"
    cmd = [_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "rawvideo",
           "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "24", "-i", "-", "-vf", vf,
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    r = subprocess.run(cmd, input=u8.tobytes(), capture_output=True, check=False)
    size = n * h * w * 3
    if r.returncode != 0 or len(r.stdout) < size:
        raise RuntimeError(f"ffmpeg -vf {vf!r} failed: {r.stderr.decode(errors='replace')[-400:]}")
    out = np.frombuffer(r.stdout[:size], np.uint8).reshape(n, h, w, 3)
    return [np.ascontiguousarray(o.transpose(2, 0, 1), dtype=np.float32) / 255.0 for o in out]


# ---- VapourSynth plugins on 8-bit formats ----------------------------------------------------

def _to8(frames: Frames, fmt: str) -> vs.VideoNode:
    clip = clip_from_arrays([np.clip(np.rint(f * 255.0), 0, 255) / 255.0 for f in frames], vs.RGBS)
    if fmt == "rgb24":
        return core.resize.Point(clip, format=vs.RGB24)
    if fmt == "yuv444p":
        return core.resize.Point(clip, format=vs.YUV444P8, matrix_s="170m", range_s="limited")
    raise ValueError(f"unknown format {fmt!r}; use 'rgb24' or 'yuv444p'")


def _from8(clip: vs.VideoNode, fmt: str) -> Frames:
    kw = {"matrix_in_s": "170m", "range_in_s": "limited"} if fmt == "yuv444p" else {}
    rgb = core.resize.Point(clip, format=vs.RGBS, **kw)  # type: ignore[arg-type]
    return [np.clip(a, 0.0, 1.0) for a in clip_to_arrays(rgb)]


def dfttest2_denoise(frames: Frames, sigma: float, fmt: str) -> Frames:
    """dfttest2 (CPU backend), spatial only (``tbsize=1``), on 8-bit *fmt*."""
    import dfttest2

    clip = _to8(frames, fmt)
    out = dfttest2.DFTTest(clip, sigma=float(sigma), tbsize=1, backend=dfttest2.Backend.CPU())
    return _from8(out, fmt)


def deblock_peer(frames: Frames, quant: int) -> Frames:
    """``core.deblock.Deblock(quant=quant)`` on YUV444P8 (BT.601 limited), all planes."""
    clip = _to8(frames, "yuv444p")
    return _from8(core.deblock.Deblock(clip, quant=int(quant)), "yuv444p")
