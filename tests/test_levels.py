"""vsrestore.levels: blind noise-sigma estimation and the self-consistent level."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import photo
from vsrestore import levels


def _noisy(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.rint((img + rng.normal(0, sigma / 255, img.shape)) * 255), 0, 255) / 255


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_noise_sigma_on_real_photos(name):
    img = photo(name)[:, :256, :256]
    for sigma in (10, 25, 40):
        est = levels.noise_sigma(_noisy(img, sigma, 3)) * 255
        # measured 9.7-10.8 / 23.8-25.4 / 36.9-40.6 (clipping at 0/255 lowers the real sigma)
        assert abs(est - sigma) <= 0.12 * sigma + 1.0, (name, sigma, est)


def test_noise_sigma_ignores_texture():
    """Texture alone (no noise) reads far below its local standard deviation."""
    img = photo("astronaut")[:, :256, :256]
    local_std = float(np.std(img[0] - np.roll(img[0], 1, axis=1))) * 255
    est = levels.noise_sigma(np.rint(img * 255) / 255) * 255
    assert est < 0.4 * local_std and est < 6, (est, local_std)  # measured 5.3 vs 15.2


def test_noise_sigma_small_image_error():
    with pytest.raises(ValueError, match="too small"):
        levels.noise_sigma(np.zeros((3, 8, 8)))


def test_self_consistent_level_finds_the_true_level():
    """A restorer told level L removes min(L, truth) of the degradation and, above the truth,
    some detail too: iterating from above lands on the truth."""
    rng = np.random.default_rng(0)
    clean = photo("coffee")[:, :64, :64]
    true = 0.03
    noise = rng.normal(0, true, clean.shape)
    detail = rng.normal(0, 1, clean.shape)
    detail /= np.sqrt(np.mean(detail**2))
    x = clean + noise

    def restore(a, level):
        removed = noise * min(1.0, level / true)
        lost = detail * 0.5 * max(0.0, level - true)
        return a - removed - lost

    got = levels.self_consistent_level(restore, x, start=0.15, iterations=30, tol=1e-5)
    assert abs(got - true) < 2e-3, got
    assert levels.self_consistent_level(restore, x, start=0.15, iterations=1) < 0.15  # moves down


def test_scaled_level_scales_only_the_structured_part():
    assert levels.scaled_level(0.02, 0.005, 1.0) == pytest.approx(0.02)  # no calibration: unchanged
    assert levels.scaled_level(0.02, 0.0, 2.5) == pytest.approx(0.05)  # noise-free: all scaled
    assert levels.scaled_level(0.02, 0.03, 2.5) == pytest.approx(0.02)  # all noise: found already
    mixed = levels.scaled_level(0.02, 0.012, 2.5)
    assert mixed == pytest.approx(np.sqrt(0.012**2 + 6.25 * (0.02**2 - 0.012**2)))
    assert 0.02 < mixed < 0.05
    with pytest.raises(ValueError, match="scale must be >= 1"):
        levels.scaled_level(0.02, 0.0, 0.5)
