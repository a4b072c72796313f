from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

import vsrestore as vr
from vsrestore.bridge import clip_from_arrays, clip_to_arrays

from .conftest import photo

core = vs.core


def _src(fmt: int, w: int, h: int, **props: int) -> vs.VideoNode:
    rgb = clip_from_arrays([photo("coffee")], vs.RGBS)
    f = core.get_video_format(fmt)
    kw: dict = {"format": fmt, "width": w, "height": h}
    if f.color_family != vs.RGB:
        kw["matrix_s"] = "709"
    clip = core.resize.Bicubic(rgb, **kw)
    return core.std.SetFrameProps(clip, **props) if props else clip


@pytest.mark.parametrize("fmt,w,h", [(vs.YUV420P8, 718, 482), (vs.YUV444P8, 719, 481),
                                     (vs.RGBH, 160, 120), (vs.GRAY16, 161, 99),
                                     (vs.YUV420P10, 160, 120), (vs.RGB48, 64, 48),
                                     (vs.YUV422P16, 96, 64), (vs.YUV444PS, 64, 48)])
def test_formats_sizes_and_props(tiny_model: Path, fmt: int, w: int, h: int) -> None:
    clip = _src(fmt, w, h, _Transfer=1, _Primaries=1)
    out = vr.upscale(clip, 2, model=tiny_model)
    assert out.format.id == clip.format.id
    assert (out.width, out.height, out.num_frames) == (2 * w, 2 * h, clip.num_frames)
    f = out.get_frame(0)
    assert f.props["_Transfer"] == 1 and f.props["_Primaries"] == 1
    if clip.format.color_family == vs.YUV:
        assert f.props["_Matrix"] == 1 and f.props["_Range"] == 0
    arr = np.asarray(f[0])
    assert np.isfinite(arr.astype(np.float64)).all() and arr.std() > 0


def test_missing_matrix_gets_a_default_written(tiny_model: Path) -> None:
    clip = core.std.RemoveFrameProps(_src(vs.YUV420P8, 160, 120), ["_Matrix", "_Range"])
    f = vr.upscale(clip, 2, model=tiny_model).get_frame(0)
    assert f.props["_Matrix"] == 6 and f.props["_Range"] == 0  # SD -> BT.601, limited


def test_matrix_prop_is_honoured(tiny_model: Path) -> None:
    base = _src(vs.YUV444P8, 64, 48)
    a = clip_to_arrays(vr.upscale(core.std.SetFrameProps(base, _Matrix=1), 2, model=tiny_model),
                       np.float64)[0]
    b = clip_to_arrays(vr.upscale(core.std.SetFrameProps(base, _Matrix=9), 2, model=tiny_model),
                       np.float64)[0]
    assert np.abs(a - b).max() > 1  # the model saw different RGB


def test_luma_only_keeps_chroma_classic(tiny_model: Path) -> None:
    clip = _src(vs.YUV420P8, 160, 120, _Matrix=1)
    out = vr.upscale(clip, 2, model=tiny_model, luma_only=True)
    spline = core.resize.Spline36(clip, 320, 240)
    fo, fs = out.get_frame(0), spline.get_frame(0)
    assert np.array_equal(np.asarray(fo[1]), np.asarray(fs[1]))
    assert np.array_equal(np.asarray(fo[2]), np.asarray(fs[2]))
    assert not np.array_equal(np.asarray(fo[0]), np.asarray(fs[0]))
    assert fo.props["_ChromaLocation"] == 0 and fo.props["_Matrix"] == 1


def test_backends_agree(tiny_model: Path, photo_rgbs: vs.VideoNode) -> None:
    a = clip_to_arrays(vr.upscale(photo_rgbs, 2, model=tiny_model, backend=vr.OrtCPU()))
    b = clip_to_arrays(vr.upscale(photo_rgbs, 2, model=tiny_model, backend=vr.TorchCPU()))
    assert np.abs(a[0] - b[0]).max() < 1e-4


def test_default_backend_on_cpu() -> None:
    assert vr.auto_backend() == vr.OrtCPU()


def test_scale4_default_chains_shipped_x2() -> None:
    clip = _src(vs.YUV420P8, 48, 32)
    out = vr.upscale(clip, 4)
    assert (out.width, out.height) == (192, 128)
    out.get_frame(0)


@pytest.mark.parametrize("kwargs,match", [
    ({"scale": 3}, "no shipped model for scale=3"),
    ({"scale": 0}, "scale must be a positive integer"),
    ({"scale": 2, "tile": 4}, "tile must be"),
    ({"scale": 2, "tile": 256.0}, "tile must be"),
    ({"scale": 2, "tile": (64, 64, 3)}, "tile must be"),
    ({"scale": 2, "overlap": -1}, "overlap must be >= 0"),
    ({"scale": 2, "model": "no-such-model"}, "neither a shipped model nor an existing file"),
])
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(vs.Error, match=f"^upscale: .*{match}.*Fix: "):
        vr.upscale(_src(vs.YUV420P8, 64, 48), **kwargs)


def test_bad_clips(tiny_model: Path) -> None:
    with pytest.raises(vs.Error, match="upscale: expected a vs.VideoNode"):
        vr.upscale("clip.mkv", 2)  # type: ignore[arg-type]
    var = core.std.Splice([core.std.BlankClip(width=32, height=32), core.std.BlankClip(width=48, height=32)],
                          mismatch=True)
    with pytest.raises(vs.Error, match="upscale: the clip has a variable format or size"):
        vr.upscale(var, 2, model=tiny_model)
    gray32 = core.query_video_format(vs.GRAY, vs.INTEGER, 32, 0, 0)
    with pytest.raises(vs.Error, match="upscale: Gray32 has 32-bit samples.*Fix: "):
        vr.upscale(core.std.BlankClip(format=gray32.id, width=32, height=32), 2, model=tiny_model)


def test_no_stdout_during_render(tiny_model: Path, capfd: pytest.CaptureFixture[str]) -> None:
    vr.upscale(_src(vs.YUV420P8, 64, 48), 2, model=tiny_model).get_frame(0)
    assert capfd.readouterr().out == ""
