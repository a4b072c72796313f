"""kernels/grain.py (CPU, CUDA simulator vs NumPy) and filters/grain.py (analysis, regrain, AV1 table)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import vapoursynth as vs
from skimage import data
from vsrestore.filters import grain as G
from vsrestore.kernels import grain as K

from vsrestore.bridge import clip_from_arrays, clip_to_arrays
from vsrestore.props import synthesized_stages

core = vs.core
H, W = 128, 192


def kernel_inputs(rng: np.random.Generator, h: int, w: int, kh: int, kw: int) -> tuple[np.ndarray, ...]:
    f32 = np.float32
    return (rng.random((h, w), dtype=f32), rng.standard_normal((h + kh - 1, w + kw - 1)).astype(f32),
            rng.standard_normal((kh, kw)).astype(f32), (rng.random((h, w)) * 1.4 - 0.2).astype(f32),
            rng.random(9, dtype=f32))


@pytest.mark.parametrize("shape", [(37, 53, 5, 5), (8, 9, 1, 1), (1, 30, 3, 7), (20, 3, 9, 9)])
def test_kernel_cpu_matches_reference(shape: tuple[int, int, int, int]) -> None:
    args = kernel_inputs(np.random.default_rng(1), *shape)
    got = K.regrain_plane(*args)
    assert got.dtype == np.float32 and got.shape == shape[:2]
    assert np.abs(got - K.regrain_plane_reference(*args)).max() <= 1e-5


def test_kernel_errors() -> None:
    p, nz, k, lum, lut = kernel_inputs(np.random.default_rng(2), 8, 9, 3, 3)
    with pytest.raises(ValueError, match=r"regrain_plane: noise has shape .*pad it"):
        K.regrain_plane(p, nz[1:], k, lum, lut)
    with pytest.raises(ValueError, match=r"regrain_plane: plane must be a 2-D float32.*astype"):
        K.regrain_plane(p.astype(np.float64), nz, k, lum, lut)


CUDA_SCRIPT = textwrap.dedent("""
    import numpy as np
    from numba import cuda
    from vsrestore.kernels import grain as K
    rng = np.random.default_rng(3)
    h, w, kh, kw = 21, 30, 5, 3
    f32 = np.float32
    args = (rng.random((h, w), dtype=f32), rng.standard_normal((h + kh - 1, w + kw - 1)).astype(f32),
            rng.standard_normal((kh, kw)).astype(f32), (rng.random((h, w)) * 1.4 - 0.2).astype(f32),
            rng.random(7, dtype=f32))
    got = K.regrain_plane_cuda(*[cuda.to_device(a) for a in args]).copy_to_host()
    print("RESULT", float(np.abs(got - K.regrain_plane_reference(*args)).max()))
""")


def test_kernel_cuda_simulator_matches_reference() -> None:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    res = subprocess.run([sys.executable, "-c", CUDA_SCRIPT], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    worst = float([ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")][-1].split()[1])
    assert worst <= 1e-5


# ---- test material: an independent grain generator (not regrain) --------------------------------

def base_image(i: int) -> np.ndarray:
    """Clean images: 5 smooth gradients, then scikit-image photos (softened), 0..1 float32."""
    if i < 5:
        yy, xx = np.mgrid[0:H, 0:W]
        return (0.05 + 0.9 * xx / W + 0.03 * np.sin(yy / (7 + i))).astype(np.float32)
    im = [data.camera(), data.moon(), data.coins(), data.page(), data.text()][(i - 5) % 5]
    im = cv2.resize(im.astype(np.float32) / 255, (W, H), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(im, (0, 0), 1.5)


def film_grain(img: np.ndarray, rng: np.random.Generator, size: float, s: float = 0.03) -> np.ndarray:
    n = cv2.GaussianBlur(rng.standard_normal(img.shape).astype(np.float32), (0, 0), size)
    return img + s * (0.3 + 0.7 * 4 * img * (1 - img)) * n / n.std()


def digital_noise(img: np.ndarray, rng: np.random.Generator, poisson: bool, s: float = 0.03) -> np.ndarray:
    sig = s * 1.2 * np.sqrt(np.clip(img, 0, 1)) if poisson else s
    return img + sig * rng.standard_normal(img.shape).astype(np.float32)


def gray_clip(frames: list[np.ndarray]) -> vs.VideoNode:
    return clip_from_arrays([f[None].astype(np.float32) for f in frames], vs.GRAYS)


@pytest.fixture(scope="module")
def film_profile() -> G.GrainProfile:
    rng = np.random.default_rng(10)
    img = base_image(0)
    return G.analyze_grain(gray_clip([film_grain(img, rng, 1.0) for _ in range(6)]))


def test_verdict_film_vs_digital() -> None:
    rng = np.random.default_rng(11)
    right, total = 0, 0
    for i in range(10):
        img = base_image(i)
        film = gray_clip([film_grain(img, rng, 0.8 + 0.1 * (i % 5)) for _ in range(4)])
        digi = gray_clip([digital_noise(img, rng, poisson=i % 2 == 1) for _ in range(4)])
        right += G.analyze_grain(film).kind == "film"
        right += G.analyze_grain(digi).kind == "digital"
        total += 2
    assert right / total >= 0.9, (right, total)


def test_profile_measures_the_generator(film_profile: G.GrainProfile) -> None:
    p = film_profile
    assert p.kind == "film" and p.channels == ("Y",)
    assert 0.8 <= p.grain_size[0] <= 1.2
    assert abs(p.temporal_corr[0]) < 0.1
    centres = (np.arange(16) + 0.5) / 16
    truth = 0.03 * (0.3 + 0.7 * 4 * centres * (1 - centres))
    ok = np.array(p.counts[0]) >= 2000
    ok[[0, 15]] = False  # the image spans luma 0.05..0.95: the end bins are partly empty
    assert ok.sum() >= 10
    assert np.all(np.abs(np.array(p.sigma[0])[ok] / truth[ok] - 1) < 0.08)


def test_regrain_matches_profile(film_profile: G.GrainProfile) -> None:
    img = base_image(5)  # camera
    clean = gray_clip([img] * 8)
    out = G.regrain(clean, film_profile, seed=3)
    grain = [a[0] - img for a in clip_to_arrays(out)]
    # sigma vs luma, per bin with enough pixels
    lum = np.minimum((img * 16).astype(int), 15)
    g = np.stack(grain)
    for b in range(16):
        m = np.broadcast_to(lum == b, g.shape)
        if m.sum() >= 5000:
            assert abs(g[m].std() / film_profile.sigma[0][b] - 1) < 0.10, b
    # radial power spectrum, measured like the analysis does
    psd = np.zeros(G._KR)
    for f in grain:
        blk = G._blocks(f.astype(np.float64))
        psd += G.block_stats((blk.reshape(len(blk), -1) @ G._PROJ).reshape(blk.shape))[1]
    psd /= psd.sum()
    target = np.array(film_profile.psd[0])
    bands = target >= 0.01
    assert np.all(np.abs(psd[bands] / target[bands] - 1) < 0.15), (psd, target)
    # fresh grain each frame
    for a, b in zip(grain, grain[1:], strict=False):
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.1


def test_profile_json_round_trip(film_profile: G.GrainProfile) -> None:
    text = json.dumps(film_profile.to_dict())
    assert G.GrainProfile.from_dict(json.loads(text)) == film_profile


def test_seed_determinism_strength_zero_and_prop() -> None:
    src = core.std.BlankClip(format=vs.YUV420P8, width=64, height=48, length=3, color=[128, 128, 128])
    src = core.std.SetFrameProps(src, _Matrix=1, vsrestore_synthesized=["upscale"])
    a = G.regrain(src, "16mm", seed=5)
    b = G.regrain(src, "16mm", seed=5)
    c = G.regrain(src, "16mm", seed=6)
    fa, fb, fc = a.get_frame(1), b.get_frame(1), c.get_frame(1)
    for p in range(3):
        np.testing.assert_array_equal(np.asarray(fa[p]), np.asarray(fb[p]))
    assert not np.array_equal(np.asarray(fa[0]), np.asarray(fc[0]))
    assert not np.array_equal(np.asarray(fa[0]), np.asarray(a.get_frame(2)[0]))
    assert a.format.id == vs.YUV420P8 and fa.props["_Matrix"] == 1
    assert list(fa.props["vsrestore_synthesized"]) == ["upscale", "regrain"]
    assert 2 < np.asarray(fa[0]).std() < 12 and np.asarray(fa[1]).std() > 0
    assert G.regrain(src, "16mm", strength=0) is src
    plain = core.std.BlankClip(format=vs.RGBS, width=32, height=32, length=1)
    props = G.regrain(plain, "super8").get_frame(0).props
    assert synthesized_stages(props) == ["regrain"]
    assert "vsrestore_synthesized" not in G.regrain(plain, "super8", strength=0).get_frame(0).props


def test_errors_name_filter_and_fix() -> None:
    src = core.std.BlankClip(format=vs.GRAY8, width=32, height=32, length=2)
    with pytest.raises(vs.Error, match=r"regrain: unknown grain stock 'imax'.*Fix: use one of"):
        G.regrain(src, "imax")
    with pytest.raises(vs.Error, match=r"regrain: strength=-1.*Fix"):
        G.regrain(src, "16mm", strength=-1)
    with pytest.raises(vs.Error, match=r"regrain: seed=-2.*Fix"):
        G.regrain(src, "16mm", seed=-2)
    with pytest.raises(vs.Error, match=r"regrain: expected a GrainProfile"):
        G.regrain(src, 3)  # type: ignore[arg-type]
    with pytest.raises(vs.Error, match=r"analyze_grain: frames=\[5\].*Fix"):
        G.analyze_grain(src, frames=[5])
    with pytest.raises(vs.Error, match=r"analyze_grain: method='temporal'.*Fix"):
        G.analyze_grain(src, method="temporal")
    with pytest.raises(vs.Error, match=r"analyze_grain: the clip is 8x8"):
        G.analyze_grain(core.std.BlankClip(format=vs.GRAY8, width=8, height=8))


def test_av1_table_round_trip(film_profile: G.GrainProfile, tmp_path: object) -> None:
    yuv = G.stock_profile("16mm", ("Y", "U", "V"))
    for prof in (film_profile, yuv):
        path = os.path.join(str(tmp_path), "grain.tbl")
        text = prof.to_av1_table(path)
        assert open(path).read() == text and text.startswith("filmgrn1\n")
        (e,) = G.parse_av1_table(text)
        assert e["E"][2:] == [1, 7391, 1] and len(e["p"]) == 12 and e["p"][0] == 2
        assert len(e["cY"]) == 12 and len(e["cCb"]) == len(e["cCr"]) == 13
        assert all(-128 <= v <= 127 for v in e["cY"])
        coef, gain = G._ar_fit(np.array(prof.acf[0]), 2)
        centres = (np.arange(16) + 0.5) / 16
        xs = [x for x, _ in e["sY"]]
        assert xs == sorted(xs) and xs[0] == 0 and xs[-1] == 255
        want = np.interp(np.array(xs) / 255, centres, prof.sigma[0]) * 255 * 8 / gain
        assert np.abs(np.array([y for _, y in e["sY"]]) - want).max() <= 0.5 + 1e-9
    assert len(e["sCb"]) == 8 and e["sCb"][3][1] < e["sY"][3][1]
    assert e["cY"][-1] > 0  # correlated grain: positive coefficient on the left neighbour
