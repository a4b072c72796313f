from __future__ import annotations

import numpy as np
import pytest
import vapoursynth as vs

import vsrestore as vr
from vsrestore.bridge import clip_to_arrays
from vsrestore.runtime.tiling import axis_weights, pad_to_multiple, run_tiled, window_starts


@pytest.mark.parametrize("length,window,overlap", [(264, 96, 16), (200, 96, 16), (1000, 300, 32),
                                                   (97, 96, 16), (130, 40, 8)])
def test_weights_are_a_partition_of_unity(length: int, window: int, overlap: int) -> None:
    starts = window_starts(length, window, overlap)
    assert starts[0] == 0 and starts[-1] == length - window
    for scale in (1, 2):
        acc = np.zeros(length * scale)
        for s, w in zip(starts, axis_weights(starts, window, length, overlap, scale), strict=True):
            acc[s * scale: (s + window) * scale] += w
        assert np.allclose(acc, 1.0, atol=1e-6)


def test_pad_to_multiple() -> None:
    x = np.arange(2 * 5 * 7, dtype=np.float32).reshape(1, 2, 5, 7)
    y, ph, pw = pad_to_multiple(x, 4)
    assert y.shape == (1, 2, 8, 8) and (ph, pw) == (3, 1)
    assert np.array_equal(y[:, :, :5, :7], x)


def test_run_tiled_with_padding_multiple() -> None:
    calls = []

    def infer(x: np.ndarray) -> np.ndarray:
        calls.append(x.shape)
        assert x.shape[2] % 8 == 0 and x.shape[3] % 8 == 0
        return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)

    x = np.random.default_rng(0).random((1, 3, 101, 77), dtype=np.float32)
    y = run_tiled(infer, x, scale=2, tile=(32, 32), overlap=8, multiple=8)
    ref = np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)
    assert y.shape == ref.shape and np.abs(y - ref).max() < 1e-5 and len(calls) > 1


def test_tiled_equals_untiled_64px_tiles(photo_rgbs: vs.VideoNode) -> None:
    """Bar: 64 px tiles on a ~200x264 RGBS frame vs untiled, max abs diff <= 1e-3."""
    whole = clip_to_arrays(vr.upscale(photo_rgbs, 2))
    tiled = clip_to_arrays(vr.upscale(photo_rgbs, 2, tile=64))
    for a, b in zip(whole, tiled, strict=True):
        assert a.shape == (3, 528, 400)
        assert np.abs(a - b).max() <= 1e-3
