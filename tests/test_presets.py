from __future__ import annotations

from pathlib import Path

import pytest
import vapoursynth as vs

from vsrestore import presets

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
