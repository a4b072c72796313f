"""Super-resolution: ``vr.upscale``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import vapoursynth as vs

from vsrestore import color
from vsrestore import models as registry
from vsrestore.bridge import frame_to_array, map_frames, new_frame, resized_template
from vsrestore.errors import VSRestoreError, check_clip
from vsrestore.props import mark_synthesized
from vsrestore.runtime.backends import Backend, auto_backend
from vsrestore.runtime.loader import LoadedModel
from vsrestore.runtime.runners import Runner, make_runner
from vsrestore.runtime.tiling import run_tiled

core = vs.core
NAME = "upscale"


def upscale(clip: vs.VideoNode, scale: int = 2, *, model: str | Path | None = None,
            luma_only: bool = False, tile: int | tuple[int, int] | None = None,
            overlap: int | None = None, backend: Backend | None = None) -> vs.VideoNode:
    """Upscale *clip* by *scale* with a super-resolution model.

    YUV in gives YUV out (same family, sample type and subsampling), RGB gives RGB,
    GRAY gives GRAY; colour props are honoured and written. ``model=None`` uses the
    shipped fidelity model for the scale (x4 = the x2 model twice).

    Args:
        clip: any YUV/RGB/GRAY clip, 8-16-bit integer or 16/32-bit float.
        scale: upscale factor; must match the model's (or 4 with the default x2 model).
        model: shipped model name (``vsrestore models list``) or a path to a
            spandrel-supported ``.pth``/``.safetensors`` file or an ``.onnx`` file.
        luma_only: run the model on Y only and scale chroma with Spline36 (YUV input).
        tile: process in tiles of this core size (int or (height, width)) to bound
            memory; tiles overlap and are blended so no seams show.
        overlap: context pixels around each tile (default: from the model's receptive
            field, 16 if unknown).
        backend: ``vr.OrtCPU()``, ``vr.TorchCPU()``, ``vr.TorchCUDA()``, ``vr.OrtCUDA()``,
            ``vr.TensorRT()``; ``None`` picks the fastest available.

    Example (.vpy)::

        import vapoursynth as vs, vsrestore as vr
        clip = vs.core.bs.VideoSource("in.mkv")
        clip = vr.upscale(clip, 2, luma_only=True)
        clip.set_output()
    """
    check_clip(clip, NAME)
    color.check_supported(clip, NAME)
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise VSRestoreError(NAME, f"scale must be a positive integer, got {scale!r}", "use scale=2 or 4")
    passes = 1
    if model is None:
        name = registry.default_for("sr", scale)
        if name is None:
            base = registry.default_for("sr", 2)
            k = int(round(math.log2(scale))) if scale > 1 else 0
            if base is None or 2**k != scale:
                raise VSRestoreError(NAME, f"no shipped model for scale={scale}",
                                     "use scale=2 or 4, or pass model='path/to/model'")
            name, passes = base, k
        model = name
    lm = registry.resolve(model, NAME)
    if lm.scale ** passes != scale:
        raise VSRestoreError(NAME, f"model {lm.name} upscales by {lm.scale}, but scale={scale}",
                             f"pass scale={lm.scale} or a model trained for x{scale}")
    if lm.in_channels not in (1, 3) or lm.out_channels != lm.in_channels:
        raise VSRestoreError(NAME, f"model {lm.name} maps {lm.in_channels} to {lm.out_channels} "
                             "channels", "use an RGB (3-channel) or grey (1-channel) model")
    tile_hw = _parse_tile(tile)
    if overlap is None:
        r = lm.receptive_radius or 16
        overlap = max(8, int(math.ceil(r / 4) * 4))
    elif overlap < 0:
        raise VSRestoreError(NAME, f"overlap must be >= 0, got {overlap}", "use overlap=16")
    runner = make_runner(lm, backend if backend is not None else auto_backend(), NAME)
    if runner.max_shape is not None and tile_hw is None:
        tile_hw = (runner.max_shape[0] - 2 * overlap, runner.max_shape[1] - 2 * overlap)
    out = clip
    for _ in range(passes):
        out = _upscale_once(out, lm, runner, luma_only, tile_hw, overlap)
    return out


def _parse_tile(tile: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if tile is None:
        return None
    hw = (tile, tile) if isinstance(tile, int) else tuple(tile)
    if len(hw) != 2 or any(not isinstance(v, int) or v < 8 for v in hw):
        raise VSRestoreError(NAME, f"tile must be an int or (height, width) of at least 8, got {tile!r}",
                             "use e.g. tile=256 or tile=(360, 640)")
    return (int(hw[0]), int(hw[1]))


def _upscale_once(clip: vs.VideoNode, lm: LoadedModel, runner: Runner, luma_only: bool,
                  tile: tuple[int, int] | None, overlap: int) -> vs.VideoNode:
    assert clip.format is not None
    info = color.describe(clip)
    fam = clip.format.color_family
    s = lm.scale
    if fam == vs.GRAY or (luma_only and fam == vs.YUV):
        y = _run_model(color.to_grays(clip, info), lm, runner, tile, overlap)
        y = color.from_grays(y, info)
        if fam == vs.GRAY:
            return y
        chroma = core.resize.Spline36(clip, clip.width * s, clip.height * s)
        return color.with_props(core.std.ShufflePlanes([y, chroma], [0, 1, 2], vs.YUV), info)
    rgb = _run_model(color.to_rgbs(clip, info), lm, runner, tile, overlap)
    return color.from_rgbs(rgb, info)


def _run_model(src: vs.VideoNode, lm: LoadedModel, runner: Runner,
               tile: tuple[int, int] | None, overlap: int) -> vs.VideoNode:
    """Apply the model frame by frame to an RGBS or GRAYS clip."""
    s = lm.scale
    template = resized_template(src, src.width * s, src.height * s)
    synth = lm.kind in ("perceptual", "generative")

    def infer(x: np.ndarray) -> np.ndarray:
        return np.asarray(runner(x), dtype=np.float32)

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        arr = frame_to_array(f[0])  # (planes, H, W)
        planes = arr.shape[0]
        if lm.in_channels == 3 and planes == 1:
            x = np.repeat(arr[None], 3, axis=1)  # grey -> (1, 3, H, W)
        elif lm.in_channels == 1:
            x = arr[:, None]  # each plane on its own
        else:
            x = arr[None]
        y = np.concatenate([run_tiled(infer, x[i: i + 1], scale=s, tile=tile, overlap=overlap,
                                      multiple=lm.size_multiple, minimum=lm.min_size)
                            for i in range(x.shape[0])])
        y = y.mean(axis=1, keepdims=True)[0] if lm.in_channels == 3 and planes == 1 else y.reshape(
            planes, y.shape[-2], y.shape[-1])
        fout = new_frame(template, f[0])
        for p in range(planes):
            np.copyto(np.asarray(fout[p]), y[p])
        if synth:
            mark_synthesized(fout, NAME)
        return fout

    return map_frames(template, [src], fn)
