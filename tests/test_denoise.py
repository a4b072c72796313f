"""vr.denoise / vr.deblock mechanics: level plumbing, formats, strength 0, errors.

The shipped models' quality is measured in tests/test_restoration_quality.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import vapoursynth as vs
from vsrestore.filters.deblock import deblock
from vsrestore.filters.denoise import denoise, estimate_sigma

from tests.conftest import photo
from vsrestore.bridge import clip_from_arrays, clip_to_arrays
from vsrestore.errors import VSRestoreError

core = vs.core


@pytest.fixture(scope="module")
def noisy_clip():
    rng = np.random.default_rng(5)
    img = photo("coffee")[:, :96, :128]
    frames = [np.clip(np.rint((img + rng.normal(0, 20 / 255, img.shape)) * 255), 0, 255) / 255
              for _ in range(3)]
    return clip_from_arrays([f.astype(np.float32) for f in frames], vs.RGBS)


def test_strength_zero_is_the_input(noisy_clip, tiny_drunet):
    assert denoise(noisy_clip, 0, model=tiny_drunet) is noisy_clip
    assert deblock(noisy_clip, 0, model=tiny_drunet) is noisy_clip


def test_level_reaches_the_network(noisy_clip, tiny_drunet):
    a = clip_to_arrays(denoise(noisy_clip, 5, model=tiny_drunet))[0]
    b = clip_to_arrays(denoise(noisy_clip, 40, model=tiny_drunet))[0]
    c = clip_to_arrays(deblock(noisy_clip, 40, model=tiny_drunet))[0]
    assert a.shape == (3, 96, 128) and np.abs(a - b).max() > 1e-3
    np.testing.assert_array_equal(b, c)  # same network, same level plane


def test_blind_sigma_estimate(noisy_clip):
    assert abs(estimate_sigma(noisy_clip) - 20) < 2.5


def test_blind_deblock_level_uses_the_cards_scale(noisy_clip, tiny_drunet, monkeypatch):
    """The self-consistent level's part that is not white noise is multiplied by the card's
    calibrated level_scale (1 for a file without a card: the level unchanged); a broken card
    value is refused by name."""
    from dataclasses import replace

    from vsrestore.filters import deblock as db

    from vsrestore import levels
    from vsrestore import models as registry
    from vsrestore.runtime.apply import prepare_runner

    lm = registry.resolve(str(tiny_drunet), "deblock")
    runner, _, _ = prepare_runner(lm, "deblock", tile=None, overlap=None, backend=None)
    monkeypatch.setattr(levels, "self_consistent_level", lambda restore, x, start: 4 / 255)
    monkeypatch.setattr(levels, "noise_sigma", lambda x: 1 / 255)
    assert db.estimate_level(noisy_clip, lm, runner) == pytest.approx(4)
    scaled = db.estimate_level(noisy_clip, replace(lm, card={"level_scale": 2.5}), runner)
    assert scaled == pytest.approx(np.sqrt(1 + 6.25 * (16 - 1)))
    monkeypatch.setattr(levels, "self_consistent_level", lambda restore, x, start: 6 / 255)
    capped = db.estimate_level(noisy_clip, replace(lm, card={"level_scale": 8}), runner)
    assert capped == db.MAX_LEVEL  # sqrt(1 + 64 * 35) = 47.3, capped
    with pytest.raises(VSRestoreError, match="deblock: model .* card level_scale 'big'.*models evaluate"):
        db.estimate_level(noisy_clip, replace(lm, card={"level_scale": "big"}), runner)


@pytest.mark.parametrize("fmt,w,h", [(vs.YUV420P8, 118, 82), (vs.YUV444P16, 71, 49), (vs.GRAY16, 64, 40),
                                     (vs.RGBH, 64, 48)])
def test_formats_sizes_and_props(tiny_drunet, fmt, w, h):
    src = clip_from_arrays([photo("chelsea")[:, :h, :w]], vs.RGBS)
    kw = {"matrix_s": "709"} if fmt != vs.RGBH else {}
    clip = core.resize.Bicubic(src, format=fmt, **kw)
    out = denoise(clip, 10, model=tiny_drunet, tile=32, overlap=8)
    assert out.format.id == clip.format.id and (out.width, out.height) == (w, h)
    f = out.get_frame(0)
    if fmt in (vs.YUV420P8, vs.YUV444P16):
        assert f.props["_Matrix"] == 1


def test_luma_chroma_untouched_planes_for_grey_model_input(tiny_drunet):
    """GRAY clips go through the RGB model as grey and come back as one plane."""
    clip = core.std.BlankClip(format=vs.GRAY8, width=40, height=32, color=[128], length=1)
    out = deblock(clip, 6, model=tiny_drunet)
    assert out.format.id == vs.GRAY8 and out.get_frame(0)[0].shape == (32, 40)


@pytest.mark.parametrize("kwargs,msg", [
    ({"strength": -1}, "strength must be None or a noise sigma"),
    ({"strength": "x"}, "strength must be None or a noise sigma"),
    ({"scale": 3}, "scale must be 1 or 2"),
])
def test_denoise_bad_arguments(noisy_clip, tiny_drunet, kwargs, msg):
    with pytest.raises(vs.Error, match=msg):
        denoise(noisy_clip, model=tiny_drunet, **kwargs)


def test_blind_estimate_on_a_tiny_clip_asks_for_a_strength(tiny_drunet):
    tiny = core.std.BlankClip(format=vs.RGB24, width=12, height=40, length=2)
    with pytest.raises(vs.Error, match=r"denoise: the clip is 12x40, too small to estimate.*Fix: pass str"):
        denoise(tiny, model=tiny_drunet)
    assert denoise(tiny, 10, model=tiny_drunet).get_frame(0).width == 12


def test_wrong_models_are_refused(noisy_clip, tiny_model, tiny_drunet, tmp_path):
    with pytest.raises(VSRestoreError, match="does not take a noise level"):
        denoise(noisy_clip, 10, model=tiny_model)
    with pytest.raises(VSRestoreError, match="not a level-conditioned"):
        deblock(noisy_clip, 4, model=tiny_model)
    with pytest.raises(VSRestoreError, match="scales by 1, but scale=2"):
        denoise(noisy_clip, 10, scale=2, model=tiny_drunet)
    with pytest.raises(VSRestoreError, match="neither a shipped model nor an existing file"):
        deblock(noisy_clip, 4, model=tmp_path / "missing.safetensors")
    with pytest.raises(VSRestoreError, match="deblock: strength must be None or an artefact level"):
        deblock(noisy_clip, 99, model=tiny_drunet)
    with pytest.raises(VSRestoreError, match="upscale: model .* needs a noise/artefact level"):
        from vsrestore.filters.upscale import upscale

        upscale(noisy_clip, 1, model=tiny_drunet)


def test_chain_model_denoises_and_upscales(noisy_clip, tiny_drunet, tiny_model, tmp_path):
    """A chain file (stages.0 = DRUNet, stages.1 = Compact x2) loads as one x2 model with a level."""
    from safetensors.torch import load_file, save_file

    from vsrestore.runtime.loader import load_model

    sd = {f"stages.0.{k}": v for k, v in load_file(str(tiny_drunet)).items()}
    sd |= {f"stages.1.{k}": v for k, v in load_file(str(tiny_model)).items()}
    path = tmp_path / "chain.safetensors"
    save_file(sd, str(path))
    lm = load_model(path, "denoise")
    assert (lm.scale, lm.in_channels, lm.cond_channels, lm.size_multiple) == (2, 3, 1, 8)
    out = denoise(noisy_clip, 12, scale=2, model=path)
    a = clip_to_arrays(out)[0]
    assert a.shape == (3, 192, 256) and np.isfinite(a).all()
    from vsrestore import TorchCPU

    b = clip_to_arrays(denoise(noisy_clip, 12, scale=2, model=path, backend=TorchCPU()))[0]
    assert np.abs(a - b).max() < 1e-4  # the ONNX export (ORT, default on CPU) matches torch


def test_exported_level_model_runs_in_vs_mlrt(noisy_clip, tiny_drunet, tmp_path):
    """vs-mlrt's core.ort.Model takes the export with the level plane as a second (GRAYS) clip."""
    from vsrestore.runtime.export import export_onnx
    from vsrestore.runtime.loader import load_model

    onnx = export_onnx(load_model(tiny_drunet, "test"), tmp_path / "d.onnx")
    level = core.std.BlankClip(noisy_clip, format=vs.GRAYS, color=[20 / 255])
    theirs = clip_to_arrays(core.ort.Model([noisy_clip, level], network_path=str(onnx)))[0]
    ours = clip_to_arrays(denoise(noisy_clip, 20, model=tiny_drunet))[0]
    assert np.abs(theirs - ours).max() < 1e-4


def test_missing_joint_model_names_the_way_out(noisy_clip, monkeypatch):
    from vsrestore import models as registry

    monkeypatch.setattr(registry, "default_for", lambda task, scale: None)
    with pytest.raises(VSRestoreError, match="vr.upscale\\(vr.denoise\\(clip\\), 2\\)"):
        denoise(noisy_clip, 10, scale=2)
