"""vr.degrain (filters/degrain.py): PSNR against the clean plate and dfttest2, bit-exact strength 0,
static clips, formats, cuts, moving objects, errors.

Material: slow pans over photos scikit-image ships (area-sampled from the photo at 2x, so sub-pixel
pans are exact) with spatially correlated, luma-dependent grain from a generator written here
(white Gaussian noise, Gaussian blur, unit variance, times ``s0 * (0.3 + 0.7 * 4 L (1 - L))``);
not vr.regrain.
"""

from __future__ import annotations

import cv2
import dfttest2
import numpy as np
import pytest
import vapoursynth as vs
from skimage import data
from vsrestore.filters import analyze_grain as A
from vsrestore.filters.degrain import degrain, measure

from vsrestore import grainmodel as G
from vsrestore.bridge import clip_from_arrays, clip_to_arrays

core = vs.core
W, H, N = 192, 128, 8
S0, SIZE = 0.04, 0.9
# dfttest2 on this material (benchmarks/bench_degrain.py, 12 frames, sigma 4..2048 x tbsize 1/3/5):
# best at tbsize=5, sigma=512 on all 8 cases: mean PSNR 33.44 dB (input 29.50 dB), per case
# astronaut 33.04/33.43, coffee 32.71/33.02, chelsea 31.20/31.52, rocket 36.30/36.31 (1 / 0.5 px).
DFT_SIGMA, DFT_TBSIZE = 512.0, 5


def luma_photo(name: str) -> np.ndarray:
    img = getattr(data, name)()
    img = img[..., :3].astype(np.float32) / 255 if img.ndim == 3 else img.astype(np.float32)[..., None] / 255
    return img @ np.array([0.2126, 0.7152, 0.0722], np.float32) if img.shape[2] == 3 else img[..., 0]


def pan(name: str, vx: float, vy: float = 0.0, n: int = N, k: int = 2) -> list[np.ndarray]:
    """A W x H window moving (vx, vy) px/frame, area-sampled from the photo at k x."""
    img = luma_photo(name)
    out = []
    for i in range(n):
        x0, y0 = round(i * vx * k), round(i * vy * k)
        out.append(cv2.resize(img[y0:y0 + H * k, x0:x0 + W * k], (W, H), interpolation=cv2.INTER_AREA))
    return out


def add_grain(frames: list[np.ndarray], seed: int, s0: float = S0, size: float = SIZE) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for f in frames:
        g = cv2.GaussianBlur(rng.standard_normal(f.shape).astype(np.float32), (0, 0), size)
        out.append((f + s0 * (0.3 + 0.7 * 4 * f * (1 - f)) * g / g.std()).astype(np.float32))
    return out


def gray(frames: list[np.ndarray]) -> vs.VideoNode:
    return clip_from_arrays([f[None] for f in frames], vs.GRAYS)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    return float(10 * np.log10(peak ** 2 / np.mean((np.asarray(a, np.float64) - b) ** 2)))


def mean_psnr(out: list[np.ndarray], clean: list[np.ndarray]) -> float:
    """Mean over the inner frames (each has two neighbours on both sides)."""
    return float(np.mean([psnr(np.squeeze(o), c) for o, c in zip(out[2:-2], clean[2:-2], strict=True)]))


@pytest.mark.parametrize("name,vx,vy", [("astronaut", 1.0, 0.0), ("chelsea", 0.5, 0.0), ("coffee", 0.5, 0.5)])
def test_psnr_gain_and_beats_dfttest2(name: str, vx: float, vy: float) -> None:
    clean = pan(name, vx, vy)
    noisy = add_grain(clean, seed=1)
    clip = gray(noisy)
    ours = mean_psnr(clip_to_arrays(degrain(clip)), clean)  # profile measured on the clip
    peer = mean_psnr(clip_to_arrays(dfttest2.DFTTest(clip, sigma=DFT_SIGMA, tbsize=DFT_TBSIZE,
                                                      backend=dfttest2.Backend.CPU())), clean)
    grainy = mean_psnr(noisy, clean)
    # measured: astronaut 1 px 37.7 dB (input 30.0, dfttest2 33.0); chelsea 0.5 px 35.0 (28.4, 31.5)
    assert ours >= grainy + 5.0, (ours, grainy)
    assert ours >= peer + 1.5, (ours, peer)


def test_measure_reads_sigma_on_a_pan() -> None:
    """The motion-compensated measurement: analyze_grain alone reads ~2x the sigma on this pan."""
    noisy = add_grain(pan("astronaut", 1.0, n=6), seed=2)
    prof = measure(gray(noisy))
    centres = (np.arange(16) + 0.5) / 16
    truth = S0 * (0.3 + 0.7 * 4 * centres * (1 - centres))
    ok = np.array(prof.counts[0]) >= 1000
    assert ok.sum() >= 8
    ratio = np.array(prof.sigma[0])[ok] / truth[ok]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.15), ratio
    assert 0.6 <= prof.grain_size[0] <= 1.2 and abs(prof.temporal_corr[0]) < 0.2
    assert np.median(np.array(A.analyze_grain(gray(noisy)).sigma[0])[ok] / truth[ok]) > 1.4


def test_measurement_is_reported_on_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """Measuring renders upstream frames before the first output frame: the log says so and what it found."""
    noisy = gray(add_grain(pan("astronaut", 1.0, n=6), seed=2))
    with caplog.at_level("INFO", logger="vsrestore.degrain"):
        degrain(noisy)
    lines = [r.getMessage() for r in caplog.records if r.name == "vsrestore.degrain"]
    assert len(lines) == 2 and "measuring the grain" in lines[0]
    sigma = float(lines[1].split("sigma Y ")[1].split()[0])
    assert sigma == pytest.approx(255 * S0 * 0.8, rel=0.35)  # the generator's sigma, mid-luma weighted
    caplog.clear()
    with caplog.at_level("INFO", logger="vsrestore.degrain"):
        degrain(noisy, G.stock_profile("16mm", ("Y",)))
    assert not [r for r in caplog.records if r.name == "vsrestore.degrain"]


def test_strength_zero_is_the_input_and_determinism() -> None:
    src = core.std.BlankClip(format=vs.YUV420P8, width=64, height=48, length=4, color=[100, 128, 128])
    src = core.std.SetFrameProps(src, _Matrix=1)
    prof = G.stock_profile("16mm", ("Y", "U", "V"))
    assert degrain(src, prof, strength=0) is src
    assert degrain(src, strength=0) is src  # no measuring either
    assert "vsrestore_synthesized" not in degrain(src, prof).get_frame(1).props
    noisy = gray(add_grain(pan("rocket", 1.0, n=4), seed=3))
    a, b = (np.stack(clip_to_arrays(degrain(noisy, prof))) for _ in range(2))
    assert np.array_equal(a, b)


def test_one_flow_search_per_frame_pair_in_any_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frame n warps n + k with the inverse of n + k's flow from n: one search per pair, shared,
    and the output does not depend on which frame asked first."""
    from vsrestore import motion

    noisy = gray(add_grain(pan("astronaut", 0.5, 0.5, n=7), seed=4))
    prof = G.stock_profile("16mm", ("Y",))
    seq = clip_to_arrays(degrain(noisy, prof, radius=2))
    calls = []
    orig = motion.dense_flow
    monkeypatch.setattr(motion, "dense_flow", lambda *a, **k: calls.append(1) or orig(*a, **k))
    fresh = degrain(noisy, prof, radius=2)
    for n in reversed(range(fresh.num_frames)):
        np.testing.assert_array_equal(np.asarray(fresh.get_frame(n)[0]), seq[n][0])
    assert len(calls) == sum(1 for a in range(7) for b in range(a + 1, 7) if b - a <= 2)


def test_static_clean_clip_changes_little() -> None:
    img = pan("astronaut", 0.0, n=1)[0]
    clip = core.resize.Point(gray([img] * 5), format=vs.GRAY8)
    src = np.stack([np.asarray(f[0], np.int16) for f in clip.frames()])
    auto = np.stack([np.asarray(f[0], np.int16) for f in degrain(clip).frames()])
    assert np.abs(auto - src).max() <= 1  # measured: identical (no grain found)
    fine = np.stack([np.asarray(f[0], np.int16) for f in degrain(clip, G.stock_profile("35mm-fine", ("Y",)))
                     .frames()])
    assert psnr(fine, src, 255) > 48  # measured 52.8 dB with sigma 0.01 assumed


@pytest.mark.parametrize("fmt", [vs.YUV420P8, vs.RGB48, vs.YUV444PH])
def test_formats(fmt: int) -> None:
    rgb = data.coffee().astype(np.float32) / 255
    crops = [cv2.resize(rgb[50:50 + 2 * H, 2 * i:2 * i + 2 * W], (W, H), interpolation=cv2.INTER_AREA)
             for i in range(6)]
    rng = np.random.default_rng(4)
    grain = [cv2.GaussianBlur(rng.standard_normal((H, W, 3)).astype(np.float32), (0, 0), 0.8) for _ in crops]
    frames = [c.transpose(2, 0, 1).copy() for c in crops]
    noisy = [(c + 0.03 * g / g.std()).transpose(2, 0, 1).copy() for c, g in zip(crops, grain, strict=True)]
    kw = {"matrix_s": "709"} if core.get_video_format(fmt).color_family == vs.YUV else {}
    clean = core.resize.Bicubic(clip_from_arrays(frames, vs.RGBS), format=fmt, **kw)  # type: ignore[arg-type]
    grainy = core.resize.Bicubic(clip_from_arrays(noisy, vs.RGBS), format=fmt, **kw)  # type: ignore[arg-type]
    out = degrain(grainy)
    assert out.format.id == fmt and (out.width, out.height, out.num_frames) == (W, H, 6)
    ff = core.get_video_format(fmt)
    peak = 1.0 if ff.sample_type == vs.FLOAT else float((1 << ff.bits_per_sample) - 1)
    for p in range(3):
        c, g, o = ([np.asarray(f[p], np.float64) for f in x.frames()][2:4] for x in (clean, grainy, out))
        gain = np.mean([psnr(b, a, peak) - psnr(d, a, peak) for a, b, d in zip(c, o, g, strict=True)])
        assert gain > 3.0, (p, gain)
    if kw:
        assert out.get_frame(0).props["_Matrix"] == 1


def test_scene_cut_and_moving_object_do_not_smear() -> None:
    a, b = pan("astronaut", 1.0, n=5), pan("rocket", 1.0, n=5)
    obj = pan("coffee", 0.0, n=1)[0][40:96, 60:116]
    yy, xx = np.mgrid[0:56, 0:56]
    disc = (yy - 27.5) ** 2 + (xx - 27.5) ** 2 < 27 ** 2
    clean, where = [], []
    for i, f in enumerate(a + b):  # a cut after frame 4; in shot b a textured disc moves 4 px/frame
        f = f.copy()
        if i >= 5:
            x = 120 - 4 * i
            f[40:96, x:x + 56] = np.where(disc, obj, f[40:96, x:x + 56])
            m = np.zeros((H, W), bool)
            m[40:96, x:x + 56] = disc
            where.append(cv2.dilate(m.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0)
        clean.append(f)
    noisy = add_grain(clean, seed=5)
    out = [o[0] for o in clip_to_arrays(degrain(gray(noisy)))]
    for i in (4, 5):  # either side of the cut: no ghost of the other shot
        assert psnr(out[i], clean[i]) > psnr(noisy[i], clean[i]) + 4.5, i  # measured +5.8, +7.1
    i, region = 7, where[2]  # the disc and its edges (occlusions, two motions) gain too
    err_in, err_out = (np.mean((x[region] - clean[i][region]) ** 2) for x in (out[i], noisy[i]))
    assert 10 * np.log10(err_out / err_in) > 4.0  # measured +6.0 dB


def test_errors_name_filter_and_fix() -> None:
    src = core.std.BlankClip(format=vs.GRAY8, width=32, height=32, length=3)
    with pytest.raises(vs.Error, match=r"degrain: strength must be a number in 0..4.*Fix"):
        degrain(src, strength=-1)
    with pytest.raises(vs.Error, match=r"degrain: radius must be an int in 0..3.*Fix: use radius=2"):
        degrain(src, radius=5)
    with pytest.raises(vs.Error, match=r"degrain: unknown preset 'turbo'.*Fix"):
        degrain(src, preset="turbo")
    with pytest.raises(vs.Error, match=r"degrain: profile must be a GrainProfile.*Fix"):
        degrain(src, "16mm")  # type: ignore[arg-type]
    with pytest.raises(vs.Error, match=r"degrain: the profile was measured on channels \('Y', 'U', 'V'\).*"
                       r"\('R', 'G', 'B'\).*Fix"):
        degrain(core.std.BlankClip(format=vs.RGB24, width=32, height=32), G.stock_profile("16mm"))
    with pytest.raises(vs.Error, match=r"degrain: the clip is 8x8, too small.*Fix: pass a profile"):
        degrain(core.std.BlankClip(format=vs.GRAY8, width=8, height=8))
    with pytest.raises(vs.Error, match=r"^degrain: cannot measure the clip's grain: the chroma planes "
                       r".* 10x8.*Fix: pass profile= measured on a larger clip"):
        degrain(core.std.BlankClip(format=vs.YUV410P8, width=40, height=32, length=5))
    with pytest.raises(vs.Error, match=r"degrain: .*Fix"):
        degrain(core.std.BlankClip(format=vs.GRAY32, width=32, height=32), strength=1)
