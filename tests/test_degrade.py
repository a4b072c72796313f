"""vr.degrade: synthetic degradations, determinism, each stage's effect, errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import vapoursynth as vs
from vsrestore.filters.degrade import (
    AnisotropicBlur,
    Codec,
    DefocusBlur,
    Downscale,
    GaussianBlur,
    Jpeg,
    MotionBlur,
    Noise,
    degrade,
)

from tests.conftest import photo
from vsrestore import degradations as dg
from vsrestore.bridge import clip_from_arrays, clip_to_arrays
from vsrestore.errors import VSRestoreError

core = vs.core
OFF = {"blur": None, "downscale": None, "noise": None, "jpeg": None}


def _frames(n: int = 4) -> list[np.ndarray]:
    img = photo("astronaut")[:, 60:188, 140:332]  # 3 x 128 x 192
    return [np.ascontiguousarray(np.roll(img, 3 * i, axis=2)) for i in range(n)]


@pytest.fixture(scope="module")
def rgbs() -> vs.VideoNode:
    return clip_from_arrays(_frames(4), vs.RGBS)


@pytest.fixture(scope="module")
def rgb24() -> vs.VideoNode:
    return clip_from_arrays([np.rint(f * 255) for f in _frames(4)], vs.RGB24)


def _bytes(clip: vs.VideoNode) -> bytes:
    out = bytearray()
    for f in clip.frames(close=True):
        for p in range(f.format.num_planes):
            out += np.asarray(f[p]).tobytes()
    return bytes(out)


def _psnr(a: vs.VideoNode, b: vs.VideoNode) -> float:
    x, y = np.stack(clip_to_arrays(a)), np.stack(clip_to_arrays(b))
    return float(10 * np.log10(1.0 / np.mean((x - y) ** 2)))


def _hf_energy(clip: vs.VideoNode) -> float:
    return float(np.mean([np.mean(np.abs(np.diff(a, axis=2))) + np.mean(np.abs(np.diff(a, axis=1)))
                          for a in clip_to_arrays(clip)]))


def _record(clip: vs.VideoNode, n: int = 0) -> dict:
    return json.loads(clip.get_frame(n).props["vsrestore_degrade"])


def test_default_chain_degrades_visibly(rgbs: vs.VideoNode) -> None:
    out = degrade(rgbs, seed=0)
    assert (out.width, out.height, out.num_frames, out.format.id) == (192, 128, 4, vs.RGBS)
    assert _psnr(out, rgbs) < 35.0
    rec = _record(out)
    assert rec["seed"] == 0
    assert [s["stage"] for s in rec["passes"][0]] == ["blur", "downscale", "noise", "jpeg"]


def test_same_seed_same_bytes_across_thread_counts(rgb24: vs.VideoNode) -> None:
    kw = {"codec": Codec(crf=(20.0, 40.0), window=4), "second_order": True, "order": "random"}
    old = core.num_threads
    try:
        core.num_threads = 1
        one = _bytes(degrade(rgb24, seed=5, **kw))
        core.num_threads = 2
        two = _bytes(degrade(rgb24, seed=5, **kw))
        again = _bytes(degrade(rgb24, seed=5, **kw))
    finally:
        core.num_threads = old
    assert one == two == again
    assert _bytes(degrade(rgb24, seed=6, **kw)) != one


def test_different_seed_differs(rgbs: vs.VideoNode) -> None:
    assert _bytes(degrade(rgbs, seed=1)) != _bytes(degrade(rgbs, seed=2))


@pytest.mark.parametrize("blur", [
    GaussianBlur(sigma=1.5), AnisotropicBlur(sigma_x=3.0, sigma_y=0.5, angle=30.0), DefocusBlur(radius=2.5),
    DefocusBlur(radius=2.0, airy=True), MotionBlur(length=9.0, angle=45.0)])
def test_blur_lowers_high_frequency_energy(rgbs: vs.VideoNode, blur: object) -> None:
    out = degrade(rgbs, seed=0, **{**OFF, "blur": blur})
    assert _hf_energy(out) < 0.7 * _hf_energy(rgbs)
    # PSFs preserve the mean (normalised kernels)
    assert abs(np.mean(clip_to_arrays(out)[0]) - np.mean(clip_to_arrays(rgbs)[0])) < 2e-3


def test_motion_blur_is_directional(rgbs: vs.VideoNode) -> None:
    src = clip_to_arrays(rgbs)[0]

    def ratios(angle: float) -> tuple[float, float]:
        blur = MotionBlur(length=11.0, angle=angle)
        out = clip_to_arrays(degrade(rgbs, seed=0, **{**OFF, "blur": blur}))[0]
        return tuple(float(np.mean(np.abs(np.diff(out, axis=ax))) / np.mean(np.abs(np.diff(src, axis=ax))))
                     for ax in (2, 1))  # type: ignore[return-value]

    (hx, hy), (vx, vy) = ratios(0.0), ratios(90.0)
    assert hx < 0.8 * hy and vy < 0.8 * vx
    k = dg.motion_kernel(9.0, 0.0)
    assert np.count_nonzero(k.sum(axis=1)) == 1 and k.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("kernel", ["bicubic", "bilinear", "lanczos", "area"])
def test_downscale_changes_size(rgbs: vs.VideoNode, kernel: str) -> None:
    out = degrade(rgbs, seed=0, **{**OFF, "downscale": Downscale(factor=2.0, kernel=kernel)})  # type: ignore[arg-type]
    assert (out.width, out.height, out.num_frames) == (96, 64, 4)
    assert _record(out)["passes"][0][0]["size"] == [96, 64]
    kept = degrade(rgbs, seed=0, **{**OFF, "downscale": Downscale(factor=2.0, kernel=kernel, keep_size=True)})  # type: ignore[arg-type]
    assert (kept.width, kept.height) == (192, 128)
    assert _hf_energy(kept) < _hf_energy(rgbs)


def test_downscale_keeps_chroma_subsampling_valid(rgbs: vs.VideoNode) -> None:
    yuv = core.resize.Bicubic(rgbs, format=vs.YUV420P8, matrix_s="709")
    out = degrade(yuv, seed=0, **{**OFF, "downscale": Downscale(factor=3.0)})
    assert out.format.id == vs.YUV420P8 and out.width % 2 == 0 and out.height % 2 == 0
    assert (out.width, out.height) == (64, 42)
    out.get_frame(0)


def test_poisson_gaussian_noise_grows_with_signal() -> None:
    levels = [0.1, 0.4, 0.8]
    flat = clip_from_arrays([np.full((1, 128, 128), v, np.float32) for v in levels], vs.GRAYS)
    shot, read = 0.004, 0.005
    out = clip_to_arrays(degrade(flat, seed=3, **{**OFF, "noise": Noise(shot=shot, read=read)}))
    stds = [float(np.std(a)) for a in out]
    assert stds[0] < stds[1] < stds[2]
    for v, s in zip(levels, stds, strict=True):
        assert s == pytest.approx(np.sqrt(shot * v + read**2), rel=0.1)
    assert [float(np.mean(a)) for a in out] == pytest.approx(levels, abs=2e-3)


def test_noise_in_linear_domain_is_stronger_in_shadows() -> None:
    flat = clip_from_arrays([np.full((1, 64, 64), v, np.float32) for v in (0.1, 0.8)], vs.GRAYS)
    out = clip_to_arrays(degrade(flat, seed=3, **{**OFF, "noise": Noise(shot=0.002, read=0.002, gamma=2.2)}))
    assert float(np.std(out[0])) > float(np.std(out[1]))  # gamma encoding lifts shadow noise


def test_luma_only_noise_is_grey(rgbs: vs.VideoNode) -> None:
    out = clip_to_arrays(degrade(rgbs, seed=0, **{**OFF, "noise": Noise(read=0.02, luma_only=True)}))[0]
    src = clip_to_arrays(rgbs)[0]
    d = out - src
    mask = (src > 0.25).all(0) & (src < 0.75).all(0)  # away from clipping
    assert mask.sum() > 1000
    assert np.allclose(d[0][mask], d[1][mask], atol=1e-5)
    assert np.allclose(d[0][mask], d[2][mask], atol=1e-5)


def test_jpeg_equals_cv2_round_trip(rgb24: vs.VideoNode) -> None:
    out = degrade(rgb24, seed=0, **{**OFF, "jpeg": Jpeg(quality=40)})
    assert out.format.id == vs.RGB24
    for got, src in zip(clip_to_arrays(out, np.uint8), clip_to_arrays(rgb24, np.uint8), strict=True):
        bgr = np.ascontiguousarray(src[::-1].transpose(1, 2, 0))
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 40])
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        assert ok and dec is not None
        assert np.array_equal(got, dec[..., ::-1].transpose(2, 0, 1))


def test_h264_crf_and_exact_shape() -> None:
    frames = [f[:, :66, :94] for f in _frames(10)]  # odd-ish size, 10 frames = 8 + partial window
    clip = clip_from_arrays(frames, vs.RGBS)
    hi = degrade(clip, seed=0, **OFF, codec=Codec(crf=20.0))
    lo = degrade(clip, seed=0, **OFF, codec=Codec(crf=40.0))
    assert (lo.width, lo.height, lo.num_frames) == (94, 66, 10)
    assert _psnr(lo, clip) < _psnr(hi, clip) - 3.0
    assert _psnr(hi, clip) > 30.0
    rec = _record(lo, 9)["passes"][0][0]
    assert rec == {"stage": "codec", "codec": "h264", "crf": 40.0, "window": 1, "frames": 8}


def test_hevc_and_bitrate(rgbs: vs.VideoNode) -> None:
    small = core.resize.Bicubic(rgbs, 64, 48)
    out = degrade(small, seed=0, **OFF, codec=Codec(codec="hevc", crf=None, bitrate=50, window=4))
    assert (out.width, out.height, out.num_frames) == (64, 48, 4)
    assert 15.0 < _psnr(out, small) < 40.0


def test_random_order_differs_from_fixed(rgbs: vs.VideoNode) -> None:
    fixed = degrade(rgbs, seed=4)
    rand = degrade(rgbs, seed=4, order="random")
    order_f = [s["stage"] for s in _record(fixed)["passes"][0]]
    order_r = [s["stage"] for s in _record(rand)["passes"][0]]
    assert sorted(order_f) == sorted(order_r) and order_f != order_r
    assert _bytes(fixed) != _bytes(rand)


def test_second_order_applies_chain_twice(rgbs: vs.VideoNode) -> None:
    one = degrade(rgbs, seed=0)
    two = degrade(rgbs, seed=0, second_order=True)
    assert len(_record(two)["passes"]) == 2
    assert _psnr(two, rgbs) < _psnr(one, rgbs)


def test_random_ranges_drawn_per_frame(rgbs: vs.VideoNode) -> None:
    kw = {**OFF, "blur": GaussianBlur(sigma=(0.5, 3.0)), "jpeg": Jpeg(quality=(20, 90))}
    out = degrade(rgbs, seed=0, **kw)
    sig = [_record(out, n)["passes"][0][0]["sigma"] for n in range(4)]
    q = [_record(out, n)["passes"][0][1]["quality"] for n in range(4)]
    assert len(set(sig)) == 4 and all(0.5 <= s <= 3.0 for s in sig)
    assert all(isinstance(v, int) and 20 <= v <= 90 for v in q)


@pytest.mark.parametrize("fmt", [vs.YUV420P10, vs.GRAY16, vs.RGBH, vs.YUV444PS])
def test_formats_round_trip(rgbs: vs.VideoNode, fmt: int) -> None:
    kw = {"matrix_s": "709"} if fmt not in (vs.RGBH,) else {}
    src = core.resize.Bicubic(rgbs, format=fmt, **kw)  # type: ignore[arg-type]
    out = degrade(src, seed=0)
    assert (out.format.id, out.width, out.height) == (fmt, src.width, src.height)
    out.get_frame(0)


def test_all_disabled_returns_input_node(rgbs: vs.VideoNode) -> None:
    assert degrade(rgbs, seed=0, **OFF) is rgbs


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"seed": -1}, "seed must be a non-negative int"),
    ({"seed": 1.5}, "seed must be a non-negative int"),
    ({"seed": 0, "blur": Jpeg()}, "blur= takes GaussianBlur"),
    ({"seed": 0, "blur": GaussianBlur(sigma=-1.0)}, "blur.sigma=-1.0 is invalid"),
    ({"seed": 0, "jpeg": Jpeg(quality=(80, 20))}, "jpeg.quality"),
    ({"seed": 0, "jpeg": Jpeg(quality=0)}, "jpeg.quality"),
    ({"seed": 0, "downscale": Downscale(kernel="nope")}, "unknown resize kernel"),  # type: ignore[arg-type]
    ({"seed": 0, "downscale": Downscale(factor=0.5)}, "downscale.factor"),
    ({"seed": 0, "codec": Codec(crf=None)}, "exactly one of crf and bitrate"),
    ({"seed": 0, "codec": Codec(codec="vp9")}, "unknown codec"),  # type: ignore[arg-type]
    ({"seed": 0, "codec": Codec(window=0)}, "window"),
    ({"seed": 0, "order": "sorted"}, "order must be"),
])
def test_bad_arguments_raise_clear_errors(rgbs: vs.VideoNode, kwargs: dict, match: str) -> None:
    with pytest.raises(VSRestoreError, match=match) as e:
        degrade(rgbs, **kwargs)
    assert str(e.value).startswith("degrade: ") and "Fix:" in str(e.value)
    assert isinstance(e.value, vs.Error)


def test_rejects_non_clip() -> None:
    with pytest.raises(vs.Error, match="degrade"):
        degrade("clip.mkv", seed=0)  # type: ignore[arg-type]
