"""`vsrestore metrics`: images, .vpy scripts, JSON on stdout, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import photo
from vsrestore import metrics
from vsrestore.metrics_cli import main


def _png(path, arr):
    Image.fromarray(np.rint(np.clip(arr, 0, 1).transpose(1, 2, 0) * 255).astype(np.uint8)).save(path)


def test_images_and_scripts(tmp_path, capsys):
    img = photo("coffee")[:, :64, :96]
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 0.05, img.shape), 0, 1)
    _png(tmp_path / "a.png", img)
    _png(tmp_path / "b.png", noisy)
    assert main([str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--metrics", "psnr,ssim,de2000"]) == 0
    res = json.loads(capsys.readouterr().out)
    a = np.rint(img * 255) / 255
    b = np.rint(noisy * 255) / 255
    assert res["frames"] == 1 and abs(res["psnr"] - metrics.psnr_y(b, a, shave=0)) < 1e-6
    assert 0 < res["ssim"] < 1 and res["de2000"] > 0
    script = tmp_path / "s.vpy"
    script.write_text(f"""
import vapoursynth as vs
from vsrestore.bridge import clip_from_arrays
from vsrestore.training.data import load_rgb
f = load_rgb({str(tmp_path / 'a.png')!r})
clip_from_arrays([f, f], vs.RGBS).set_output()
""")
    assert main([str(script), str(script), "--per-frame"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["frames"] == 2 and res["psnr"] == float("inf") and len(res["psnr_per_frame"]) == 2


def test_errors(tmp_path, capsys):
    img = photo("coffee")[:, :32, :32]
    _png(tmp_path / "a.png", img)
    _png(tmp_path / "c.png", photo("coffee")[:, :40, :32])
    assert main([str(tmp_path / "a.png"), str(tmp_path / "c.png")]) == 2
    assert "sizes differ" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("not a video")
    with pytest.raises(SystemExit, match="notes.txt is neither an image, a video nor a .vpy script"):
        main([str(tmp_path / "notes.txt"), str(tmp_path / "notes.txt")])
