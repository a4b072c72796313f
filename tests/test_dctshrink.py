"""vsrestore/dctshrink.py: the grain model's DCT coefficient variances and the two-step shrinkage."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from vsrestore import dctshrink as S


@pytest.mark.parametrize("size", [0.0, 0.6, 1.2])
def test_coef_var_matches_shaped_noise(size: float) -> None:
    """Empirical variance of the 8x8 DCT coefficients of Gaussian-shaped grain (OpenCV's blur, not
    the model's kernel) against grain_coef_var, per coefficient with enough power."""
    rng = np.random.default_rng(1)
    white = rng.standard_normal((512, 512)).astype(np.float32)
    shaped = cv2.GaussianBlur(white, (0, 0), size) if size else white
    n = np.asarray(shaped, np.float64) / float(shaped.std())
    blk = n.reshape(64, 8, 64, 8).swapaxes(1, 2).reshape(-1, 8, 8)
    d = S.dct_matrix()
    emp = ((d @ blk @ d.T) ** 2).mean(axis=0)
    model = S.grain_coef_var(size)
    assert model.mean() == pytest.approx(1.0, abs=0.02)
    big = model > 0.05
    assert np.all(np.abs(emp[big] / model[big] - 1) < 0.12), np.round(emp / model, 2)


def test_shrink_denoises_and_keeps_clean_planes() -> None:
    img = cv2.resize(data.camera().astype(np.float32) / 255, (200, 150), interpolation=cv2.INTER_AREA)
    sigma = 0.02 + 0.03 * img  # spatially varying
    gains = {}
    for size, model in ((0.0, 0.0), (1.0, 1.0), (1.0, 0.0)):
        g = np.random.default_rng(2).standard_normal(img.shape).astype(np.float32)
        g = cv2.GaussianBlur(g, (0, 0), size) if size else g
        noisy = img + sigma * g / g.std()
        out = S.shrink(noisy, sigma ** 2, S.grain_coef_var(model))
        gains[size, model] = 10 * np.log10(np.mean((noisy - img) ** 2) / np.mean((out - img) ** 2))
    # measured: white 5.6 dB; grain of size 1 with its model 3.9 dB, with a white model 1.1 dB
    assert gains[0.0, 0.0] > 4.0 and gains[1.0, 1.0] > 3.0, gains
    assert gains[1.0, 1.0] > gains[1.0, 0.0] + 0.3, gains  # the grain's spectrum matters
    assert np.abs(S.shrink(img, np.zeros_like(img), S.grain_coef_var(1.0)) - img).max() < 1e-5
    tiny = np.full((5, 3), 0.25, np.float32)  # smaller than a block: padded and cropped
    assert np.allclose(S.shrink(tiny, np.full_like(tiny, 1e-4), S.grain_coef_var(0.0)), 0.25, atol=1e-5)
    with pytest.raises(ValueError, match="shrink: expected an"):
        S.shrink(img, sigma[:10], S.grain_coef_var(0.0))
