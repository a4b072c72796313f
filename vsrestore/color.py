"""Colour handling: into a model's working space and back, honouring frame props.

Models work on RGB float (RGBS) or single-plane float (GRAYS) in 0..1. Clips come
in any YUV/RGB/GRAY format, 8-16-bit integer or 16/32-bit float. Conversions read
``_Matrix``, ``_Range``, ``_ChromaLocation`` (and leave ``_Transfer`` /
``_Primaries`` untouched: models see the signal as encoded). Missing or
"unspecified" props get documented defaults and are written on the output so
the encoder sees what was assumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import vapoursynth as vs

from .errors import VSRestoreError

core = vs.core

MATRIX_NAMES = {0: "rgb", 1: "709", 4: "fcc", 5: "470bg", 6: "170m", 7: "240m", 8: "ycgco",
                9: "2020ncl", 10: "2020cl", 12: "chromancl", 13: "chromacl", 14: "ictcp"}


@dataclass(frozen=True, kw_only=True)
class ColorInfo:
    """What a clip's format and colour props were before going to the model space."""

    fmt: vs.VideoFormat
    matrix: int | None  # None for RGB/GRAY
    range: int  # 0 limited, 1 full (H.273 / VapourSynth _Range)
    chroma_loc: int | None = None  # _ChromaLocation of subsampled YUV


def default_matrix(clip: vs.VideoNode) -> int:
    """BT.709 for HD-sized clips, BT.601 (170m) for SD: what players assume."""
    return 1 if clip.width >= 1280 or clip.height >= 720 else 6


def _prop_int(clip: vs.VideoNode, key: str) -> int | None:
    """Read an int prop from frame 0 (colour props are per-clip in practice)."""
    if clip.num_frames == 0:
        return None
    v = clip.get_frame(0).props.get(key)
    return int(v) if isinstance(v, int) else None


def describe(clip: vs.VideoNode) -> ColorInfo:
    assert clip.format is not None
    fam = clip.format.color_family
    if fam == vs.YUV:
        m = _prop_int(clip, "_Matrix")
        if m is None or m in (2, 3):  # unspecified / reserved
            m = default_matrix(clip)
        if m == 0:
            m = default_matrix(clip)
        r = _prop_int(clip, "_Range")
        loc = _prop_int(clip, "_ChromaLocation")
        if loc is None and (clip.format.subsampling_w or clip.format.subsampling_h):
            loc = 0  # left, the MPEG-2/H.264 default
        return ColorInfo(fmt=clip.format, matrix=m, range=0 if r is None else r, chroma_loc=loc)
    r = _prop_int(clip, "_Range")
    return ColorInfo(fmt=clip.format, matrix=None, range=1 if r is None else r)


def with_props(clip: vs.VideoNode, info: ColorInfo) -> vs.VideoNode:
    props: dict[str, int] = {"_Range": info.range}
    if info.matrix is not None:
        props["_Matrix"] = info.matrix
    elif info.fmt.color_family == vs.RGB:
        props["_Matrix"] = 0
    if info.chroma_loc is not None:
        props["_ChromaLocation"] = info.chroma_loc
    return core.std.SetFrameProps(clip, **props)


def check_supported(clip: vs.VideoNode, filter_name: str) -> None:
    assert clip.format is not None
    f = clip.format
    if f.color_family not in (vs.YUV, vs.RGB, vs.GRAY):
        raise VSRestoreError(filter_name, f"unsupported colour family of {f.name}",
                             "convert to YUV, RGB or GRAY first")
    if f.sample_type == vs.INTEGER and not 8 <= f.bits_per_sample <= 16:
        raise VSRestoreError(filter_name, f"{f.name} has {f.bits_per_sample}-bit samples",
                             "use 8-16-bit integer or 16/32-bit float input")
    if f.sample_type == vs.FLOAT and f.bits_per_sample not in (16, 32):
        raise VSRestoreError(filter_name, f"{f.name} is not 16/32-bit float",
                             "use RGBS/RGBH or an integer format")


def to_rgbs(clip: vs.VideoNode, info: ColorInfo) -> vs.VideoNode:
    """Convert to RGBS (0..1) for a 3-channel model."""
    src = with_props(clip, info)
    return core.resize.Spline36(src, format=vs.RGBS, range_in=info.range, dither_type="none")


def to_grays(clip: vs.VideoNode, info: ColorInfo) -> vs.VideoNode:
    """The luma (or grey) plane as GRAYS 0..1, range-normalised."""
    src = with_props(clip, info)
    y = core.std.ShufflePlanes(src, 0, vs.GRAY)
    return core.resize.Point(y, format=vs.GRAYS, range_in=info.range, range=1)


def from_rgbs(rgb: vs.VideoNode, info: ColorInfo) -> vs.VideoNode:
    """Back from RGBS to the original format family, with props written."""
    fmt = info.fmt
    kwargs: dict[str, object] = {"format": fmt.id, "dither_type": "none"}
    if fmt.color_family == vs.YUV:
        kwargs["matrix"] = info.matrix
        kwargs["range"] = info.range
    elif fmt.color_family == vs.RGB:
        kwargs["range"] = info.range
    out = core.resize.Spline36(rgb, **kwargs)  # type: ignore[arg-type]
    return with_props(out, info)


def from_grays(y: vs.VideoNode, info: ColorInfo) -> vs.VideoNode:
    """GRAYS 0..1 back to a single plane of the original sample type and range."""
    fmt = core.query_video_format(vs.GRAY, info.fmt.sample_type, info.fmt.bits_per_sample, 0, 0)
    return core.resize.Point(y, format=fmt.id, range_in=1, range=info.range, dither_type="none")


def to_luma(clip: vs.VideoNode) -> vs.VideoNode:
    """Luma as GRAYS 0..1 for analysis (motion, flicker): Y of YUV, BT.709 luma of RGB, grey as is."""
    assert clip.format is not None
    info = describe(clip)
    if clip.format.color_family == vs.RGB:
        src = with_props(clip, info)
        return core.resize.Point(src, format=vs.GRAYS, matrix_s="709", range_in=info.range, range=1)
    return to_grays(clip, info)
