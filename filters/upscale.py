"""Super-resolution: ``vr.upscale``."""

from __future__ import annotations

import math
from pathlib import Path

import vapoursynth as vs

from vsrestore import color
from vsrestore import models as registry
from vsrestore.errors import VSRestoreError, check_clip
from vsrestore.runtime.apply import apply_model, prepare_runner
from vsrestore.runtime.backends import Backend

core = vs.core
NAME = "upscale"


def upscale(clip: vs.VideoNode, scale: int = 2, *, model: str | Path | None = None,
            luma_only: bool = False, tile: int | tuple[int, int] | None = None,
            overlap: int | None = None, backend: Backend | None = None) -> vs.VideoNode:
    """Upscale *clip* by *scale* with a super-resolution model.

    YUV in gives YUV out (same family, sample type and subsampling), RGB gives RGB,
    GRAY gives GRAY; colour props are honoured and written. ``model=None`` uses the
    shipped fidelity model for the scale (``sr-compact-x2``, ``sr-compact-x4``; without an x4
    model installed, x4 runs the x2 model twice).

    Args:
        clip: any YUV/RGB/GRAY clip, 8-16-bit integer or 16/32-bit float.
        scale: upscale factor; must match the model's.
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
    if lm.cond_channels:
        raise VSRestoreError(NAME, f"model {lm.name} needs a noise/artefact level input",
                             "run it with vr.denoise(clip, scale=...) or vr.deblock(clip, model=...)")
    runner, tile_hw, overlap = prepare_runner(lm, NAME, tile=tile, overlap=overlap, backend=backend)
    out = clip
    for _ in range(passes):
        out = apply_model(out, lm, runner, stage=NAME, luma_only=luma_only, tile=tile_hw, overlap=overlap)
    return out
