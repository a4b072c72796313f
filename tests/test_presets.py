from __future__ import annotations

from pathlib import Path

import pytest
import vapoursynth as vs

from vsrestore import models, presets
from vsrestore import props as vsprops

core = vs.core


def test_default_preset_loads_and_runs() -> None:
    assert "default" in presets.available()
    p = presets.load("default")
    assert p.stages[0].filter == "upscale" and not p.forensic
    clip = core.std.BlankClip(format=vs.YUV420P8, width=32, height=24, length=1)
    out = presets.apply(clip, "default")
    assert (out.width, out.height) == (64, 48)


@pytest.mark.parametrize("text,match", [
    ('[[stage]]\nfilter = "sharpen"\n', "unknown filter 'sharpen'"),
    ('[[stage]]\nfilter = "upscale"\nfactor = 2\n', r"unknown options \['factor'\]"),
    ("[[stage]\n", "not valid TOML"),
])
def test_bad_presets(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(vs.Error, match=f"presets: .*{match}.*Fix: "):
        presets.load(p)


def test_unknown_preset_name() -> None:
    with pytest.raises(vs.Error, match="no preset 'nope'"):
        presets.load("nope")


def _forensic(tmp_path: Path, stages: str) -> Path:
    p = tmp_path / "forensic.toml"
    p.write_text(f'name = "forensic-test"\nforensic = true\n{stages}')
    return p


def test_forensic_preset_refuses_synthesizing_stages(tmp_path: Path) -> None:
    clip = core.std.BlankClip(format=vs.YUV420P8, width=32, height=24, length=2)
    grain = _forensic(tmp_path, '[[stage]]\nfilter = "regrain"\nprofile_or_stock = "16mm"\n')
    with pytest.raises(vs.Error, match=r"forensic preset 'forensic-test': stage 1 \(regrain\) "
                                       r"synthesizes film grain.*Fix: "):
        presets.apply(clip, grain)
    up = _forensic(tmp_path, '[[stage]]\nfilter = "upscale"\nscale = 2\n')
    with pytest.raises(vs.Error, match="whose kind .* is unknown"):  # an override reaches the check
        presets.apply(clip, up, model=str(tmp_path / "someone-elses.safetensors"))
    synth = [m.name for m in models.available() if m.synthesizes]
    for name in synth:
        with pytest.raises(vs.Error, match=f"perceptual model '{name}', which invents detail"):
            presets.apply(clip, up, model=name)
    out = presets.apply(clip, up)  # the default (fidelity) model runs
    assert out.width == 64 and vsprops.SYNTH_PROP not in out.get_frame(0).props


def test_forensic_guard_stops_marked_frames(tmp_path: Path) -> None:
    clip = core.std.BlankClip(format=vs.GRAY8, width=16, height=16, length=3)
    marked = core.std.SetFrameProps(clip[1], vsrestore_synthesized=["despot"])
    guarded = presets.forensic_guard(clip[0] + marked + clip[2], "f")
    guarded.get_frame(0)
    with pytest.raises(vs.Error, match="frame 1 holds content synthesized by despot"):
        guarded.get_frame(1)
    none = _forensic(tmp_path, "")
    assert presets.apply(clip, none).get_frame(2).props.get(vsprops.SYNTH_PROP) is None
