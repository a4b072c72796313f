"""Tests of vsrestore.metrics on small images the dependencies ship or that are made here."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.metrics import structural_similarity

from vsrestore import metrics as m
from vsrestore.bridge import clip_from_arrays


@pytest.fixture(scope="module")
def img() -> np.ndarray:
    return (data.astronaut()[::4, ::4].astype(np.float64) / 255).transpose(2, 0, 1)  # (3, 128, 128)


def _noisy(x: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    return np.clip(x + np.random.default_rng(seed).normal(0, sigma, x.shape), 0, 1)


def test_psnr_identical_and_known_mse(img: np.ndarray) -> None:
    assert m.psnr_y(img, img) == math.inf
    # a uniform RGB step d moves Y' by 219 d on every pixel: MSE = (219 d)^2
    d = 0.01
    flat = np.full_like(img, 0.5)
    assert m.psnr_y(flat, flat + d) == pytest.approx(10 * math.log10(255**2 / (219 * d) ** 2))
    assert m.psnr_y(flat, flat + d) == pytest.approx(41.322, abs=1e-3)


def test_psnr_matrix_and_shave(img: np.ndarray) -> None:
    noisy = _noisy(img, 0.03)
    p601, p709 = m.psnr_y(img, noisy), m.psnr_y(img, noisy, matrix="709")
    assert abs(p601 - p709) > 0.1
    # an error only in the border is shaved away
    edge = img.copy()
    edge[:, :2] = 0
    assert m.psnr_y(img, edge) == math.inf and m.psnr_y(img, edge, shave=0) < 30
    with pytest.raises(ValueError, match="matrix"):
        m.psnr_y(img, noisy, matrix="2020")


@pytest.mark.parametrize("matrix", ["601", "709"])
def test_ssim_matches_skimage(img: np.ndarray, matrix: str) -> None:
    noisy = _noisy(img, 0.05)
    ya, yb = (m.luma(x, matrix=matrix)[4:-4, 4:-4] for x in (img, noisy))
    ref = structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=255)
    assert m.ssim_y(img, noisy, matrix=matrix) == pytest.approx(ref, abs=1e-4)
    assert m.ssim_y(img, img) == pytest.approx(1.0)


def test_stlpips_identical_blur_shift(img: np.ndarray) -> None:
    assert m.stlpips(img, img) == pytest.approx(0.0, abs=1e-6)
    blur = np.stack([cv2.GaussianBlur(p, (0, 0), 1.5) for p in img])
    shifted = np.concatenate([img[:, :, :1], img[:, :, :-1]], axis=2)  # 1-px shift right
    s_blur, s_shift = m.stlpips(img, blur), m.stlpips(img, shifted)
    assert s_blur > 0.1 and s_shift < 0.05 and s_blur > 5 * s_shift


def _texture(h: int, w: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.stack([cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2.0) for _ in range(3)])
    lo, hi = base.min(), base.max()
    return ((base - lo) / (hi - lo)).astype(np.float32)


def _moving(n: int = 4, h: int = 64, w: int = 80) -> list[np.ndarray]:
    """Frame t is the crop of a texture at x offset 2t: cur(x) = prev(x + 2), i.e. flow dx = 2."""
    big = _texture(h, w + 2 * n)
    return [np.ascontiguousarray(big[:, :, 2 * t:2 * t + w]) for t in range(n)]


def test_e_warp_exact_motion_and_noise() -> None:
    frames = _moving()
    _, h, w = frames[0].shape
    flow = np.zeros((2, h, w), np.float32)
    flow[0] = 2.0
    masks = [np.broadcast_to(np.arange(w) < w - 2, (h, w))] * (len(frames) - 1)  # x + 2 inside
    assert m.e_warp(frames, [flow] * 3, masks=masks) < 1e-12
    est = m.e_warp(frames, source=frames)  # flow estimated on the input, occlusion check on
    assert est < 2e-5
    sigma = 0.02
    noisy = [f + np.random.default_rng(t).normal(0, sigma, f.shape).astype(np.float32)
             for t, f in enumerate(frames)]
    assert m.e_warp(noisy, [flow] * 3, masks=masks) == pytest.approx(2 * sigma**2, rel=0.1)
    assert m.e_warp(noisy, source=frames) == pytest.approx(2 * sigma**2, rel=0.15)
    # clips are accepted too
    clip = clip_from_arrays(frames)
    assert m.e_warp(clip, source=clip) == pytest.approx(est, rel=1e-3, abs=1e-7)


def test_e_warp_errors() -> None:
    frames = _moving()
    with pytest.raises(ValueError, match="source"):
        m.e_warp(frames)
    with pytest.raises(ValueError, match="entries"):
        m.e_warp(frames, source=frames[:2])


# Sharma, Wu & Dalal (2005), CIEDE2000 test data: pairs 1, 2, 17, 25
SHARMA = [((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
          ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
          ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
          ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644)]


def test_delta_e2000(img: np.ndarray) -> None:
    lab1, lab2, want = (np.array([p[i] for p in SHARMA]) for i in range(3))
    np.testing.assert_allclose(m.delta_e2000_lab(lab1, lab2), want, atol=1e-4)
    assert m.delta_e2000(img, img) == 0.0
    assert 0.5 < m.delta_e2000(img, _noisy(img, 0.02)) < m.delta_e2000(img, _noisy(img, 0.05))


def test_delta_e_itp() -> None:
    grey = np.full((3, 4, 4), 0.5)
    assert m.delta_e_itp(grey, grey) == 0.0
    # neutral greys: L = M = S = Y, Ct = Cp = 0, I = PQ(Y): a PQ code step of 0.01 is 720 * 0.01
    assert m.delta_e_itp(grey, grey + 0.01) == pytest.approx(7.2, abs=1e-9)
    # published ST 2084 values: 100 cd/m^2 -> 0.5081, 1000 -> 0.7518, 10000 -> 1
    np.testing.assert_allclose(m.pq_inverse_eotf(np.array([100.0, 1000.0, 10000.0])),
                               [0.5081, 0.7518, 1.0], atol=1e-4)
    # SDR white at 100 cd/m^2 against black: I = PQ(100)
    white, black = np.ones((3, 2, 2)), np.zeros((3, 2, 2))
    assert m.delta_e_itp(white, black, transfer="sdr", white=100.0) == pytest.approx(
        720 * float(m.pq_inverse_eotf(np.array(100.0))), rel=1e-3)
    steps = [m.delta_e_itp(grey, grey + d, transfer="sdr") for d in (0.0, 0.01, 0.02, 0.05, 0.1)]
    assert steps[0] == 0.0 and all(x < y for x, y in zip(steps, steps[1:], strict=False))
    with pytest.raises(ValueError, match="transfer"):
        m.delta_e_itp(grey, grey, transfer="hlg")


def test_vmaf() -> None:
    ref = (data.astronaut()[::2, ::2].astype(np.float32) / 255).transpose(2, 0, 1)  # (3, 256, 256)
    frames = [ref, np.roll(ref, 3, axis=2), np.roll(ref, 6, axis=2)]
    same = m.vmaf(frames, frames)
    assert same >= 97
    blurred = [np.stack([cv2.GaussianBlur(p, (0, 0), 2.0) for p in f]) for f in frames]
    assert m.vmaf(frames, blurred) < same - 10
    assert m.vmaf(clip_from_arrays(frames), clip_from_arrays(frames)) == pytest.approx(same, abs=0.5)


def test_per_frame_on_clips(img: np.ndarray) -> None:
    noisy = _noisy(img, 0.03).astype(np.float32)
    a, b = clip_from_arrays([img, img]), clip_from_arrays([img, noisy])
    scores = m.per_frame(m.psnr_y, a, b)
    assert scores[0] == math.inf and scores[1] == pytest.approx(m.psnr_y(img.astype(np.float32), noisy),
                                                                abs=1e-3)
