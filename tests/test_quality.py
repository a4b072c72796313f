"""The shipped x2 model beats classic scalers on held-out photos (the project's SR measure).

The photos ship inside the scikit-image wheel and are held out of training
(see ``vsrestore.training.data.HELD_OUT_SKIMAGE``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import vapoursynth as vs

import vsrestore as vr
from vsrestore.bridge import clip_from_arrays, clip_to_arrays
from vsrestore.training import data

core = vs.core


def _held_out_photos() -> list[Path]:
    from skimage import data as skdata

    root = Path(skdata.__file__).parent
    paths = [p for p in root.iterdir() if p.stem in data.HELD_OUT_SKIMAGE]
    assert len(paths) >= 5, paths
    return sorted(paths)


def test_shipped_x2_beats_lanczos_by_1db_on_held_out_photos() -> None:
    pairs = data.sr_pairs(_held_out_photos(), 2)
    gains = []
    for lr, hr in pairs:
        ours = clip_to_arrays(vr.upscale(clip_from_arrays([lr], vs.RGBS), 2))[0]
        lanczos = data.lanczos_up([lr], 2)[0]
        gains.append(data.psnr_y(ours, hr) - data.psnr_y(lanczos, hr))
    assert min(gains) > 0.3, gains
    assert float(np.mean(gains)) >= 1.0, gains


def test_held_out_pictures_were_not_trained_on() -> None:
    card = vr.models.info("sr-compact-x2").card
    assert not set(card["training_pictures"]) & set(card["held_out"])
    assert set(data.HELD_OUT_SKIMAGE) <= set(card["held_out"])
    assert card["params"] <= 500_000 and card["kind"] == "fidelity"
