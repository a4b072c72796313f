"""Run a loaded image model over a clip: colour space in and out, tiling, level planes, props.

Shared by every model-driven stage (``upscale``, ``denoise``, ``deblock``): the clip goes
to RGBS (or GRAYS for the luma path / grey models) with its colour props honoured, each
frame runs through the model (tiled when asked, with the model's constant level planes
appended for level-conditioned networks such as DRUNet), and the result goes back to the
clip's own format with props written. Frames of synthesizing models are marked.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import vapoursynth as vs

from .. import color
from ..bridge import frame_to_array, map_frames, new_frame, resized_template
from ..errors import VSRestoreError
from ..props import mark_synthesized
from .backends import Backend, auto_backend
from .loader import LoadedModel
from .runners import Runner, make_runner
from .tiling import run_tiled

core = vs.core


def parse_tile(tile: int | tuple[int, int] | None, stage: str) -> tuple[int, int] | None:
    if tile is None:
        return None
    hw: tuple[Any, ...] = ()
    if isinstance(tile, int):
        hw = (tile, tile)
    elif isinstance(tile, tuple | list):
        hw = tuple(tile)
    if len(hw) != 2 or any(not isinstance(v, int) or isinstance(v, bool) or v < 8 for v in hw):
        raise VSRestoreError(stage, f"tile must be an int or (height, width) of at least 8, got {tile!r}",
                             "use e.g. tile=256 or tile=(360, 640)")
    return (int(hw[0]), int(hw[1]))


Tile = tuple[int, int] | None


def prepare_runner(lm: LoadedModel, stage: str, *, tile: int | tuple[int, int] | None,
                   overlap: int | None, backend: Backend | None) -> tuple[Runner, Tile, int]:
    """(runner, tile, overlap) for *lm*: tile validated, overlap defaulted from the model's
    receptive field, backend chosen (``None``: fastest available), tiles forced to fit a
    fixed-shape engine."""
    tile_hw = parse_tile(tile, stage)
    if overlap is None:
        r = lm.receptive_radius or 16
        overlap = max(8, int(math.ceil(r / 4) * 4))
    elif isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise VSRestoreError(stage, f"overlap must be >= 0 (an int), got {overlap!r}", "use overlap=16")
    runner = make_runner(lm, backend if backend is not None else auto_backend(), stage)
    if runner.max_shape is not None and tile_hw is None:
        tile_hw = (runner.max_shape[0] - 2 * overlap, runner.max_shape[1] - 2 * overlap)
    return runner, tile_hw, overlap


def apply_model(clip: vs.VideoNode, lm: LoadedModel, runner: Runner, *, stage: str,
                luma_only: bool = False, tile: tuple[int, int] | None = None, overlap: int = 16,
                level: float | None = None) -> vs.VideoNode:
    """*clip* through *lm* once (output *lm.scale* times larger), in *clip*'s format.

    ``level`` fills the model's level planes (``lm.cond_channels``); it is required for
    level-conditioned models and ignored otherwise. ``luma_only``: YUV clips send Y alone
    (chroma scaled with Spline36).
    """
    assert clip.format is not None
    info = color.describe(clip)
    fam = clip.format.color_family
    s = lm.scale
    if fam == vs.GRAY or (luma_only and fam == vs.YUV):
        y = _run(color.to_grays(clip, info), lm, runner, stage, tile, overlap, level)
        y = color.from_grays(y, info)
        if fam == vs.GRAY:
            return y
        chroma = clip if s == 1 else core.resize.Spline36(clip, clip.width * s, clip.height * s)
        return color.with_props(core.std.ShufflePlanes([y, chroma], [0, 1, 2], vs.YUV), info)
    rgb = _run(color.to_rgbs(clip, info), lm, runner, stage, tile, overlap, level)
    return color.from_rgbs(rgb, info)


def _run(src: vs.VideoNode, lm: LoadedModel, runner: Runner, stage: str,
         tile: tuple[int, int] | None, overlap: int, level: float | None) -> vs.VideoNode:
    """Apply the model frame by frame to an RGBS or GRAYS clip."""
    s = lm.scale
    template = resized_template(src, src.width * s, src.height * s)
    synth = lm.kind in ("perceptual", "generative")
    cond = lm.cond_channels
    if cond and level is None:
        raise ValueError(f"{stage}: model {lm.name} needs a level")

    def infer(x: np.ndarray) -> np.ndarray:
        if cond:
            planes = np.full((x.shape[0], cond, *x.shape[2:]), level, np.float32)
            x = np.concatenate([x, planes], axis=1)
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
            mark_synthesized(fout, stage)
        return fout

    return map_frames(template, [src], fn)
