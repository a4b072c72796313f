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


SHIPPED = {"default", "anime", "film", "archival", "forensic", "realtime"}


def _weave_clip(frames: int = 6) -> vs.VideoNode:
    """A 128x96 YUV420P8 shot of a real photo with gate weave, flicker and noise."""
    import cv2
    import numpy as np

    from vsrestore.bridge import clip_from_arrays

    from .conftest import photo

    img = np.ascontiguousarray(photo("astronaut")[:, 100:292:2, 100:356:2].transpose(1, 2, 0))
    rng = np.random.default_rng(0)
    out = []
    for _ in range(frames):
        m = np.float32([[1, 0, rng.uniform(-1.5, 1.5)], [0, 1, rng.uniform(-1.5, 1.5)]])
        f = cv2.warpAffine(img, m, (128, 96), borderMode=cv2.BORDER_REFLECT) * rng.uniform(0.93, 1.07)
        out.append(np.clip(f + rng.normal(0, 0.02, f.shape), 0, 1).astype(np.float32).transpose(2, 0, 1))
    return core.resize.Bicubic(clip_from_arrays(out, vs.RGBS), format=vs.YUV420P8, matrix_s="709")


def test_shipped_presets_run_and_say_what_they_synthesize() -> None:
    """Every shipped preset loads, runs on a weaving, flickering, noisy clip, keeps the format,
    upscales when it says so, and only the film preset (regrain) marks its frames synthesized."""
    assert set(presets.available()) >= SHIPPED
    clip = _weave_clip()
    for name in sorted(SHIPPED):
        p = presets.load(name)
        assert p.description and p.stages, name
        out = presets.apply(clip, name)
        scale = 2 if any(s.filter == "upscale" for s in p.stages) else 1
        assert (out.width, out.height, out.num_frames) == (128 * scale, 96 * scale, 6), name
        assert out.format.id == vs.YUV420P8, name
        marks = {m for f in out.frames(close=True) for m in vsprops.synthesized_stages(f.props)}
        assert marks == ({"regrain"} if name == "film" else set()), (name, marks)
    assert presets.load("forensic").forensic
    assert not any(presets.load(n).forensic for n in SHIPPED - {"forensic"})
    for st in presets.load("forensic").stages:
        assert presets.synthesizing_reason(st.filter, st.options) is None
    assert presets.load("anime").stages[-1].options["model"] == "sr-anime-x2"
    assert presets.load("realtime").stages[0].options["luma_only"] is True


def test_forensic_preset_beats_lanczos_on_noisy_footage() -> None:
    """On a noisy half-size photo (sigma 8/255) the forensic preset is >= 0.5 dB better than
    Lanczos and than upscaling alone (which sharpens the noise; 'default'), Y-PSNR vs the
    original; adding vr.denoise after vr.deblock over-smooths (why the preset has no denoise)."""
    import numpy as np

    import vsrestore as vr
    from vsrestore.bridge import clip_from_arrays

    from .conftest import photo

    gt = photo("astronaut")[:, 40:232, 100:356]
    c, h, w = gt.shape
    lr = gt.reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    noisy = np.clip(lr + np.random.default_rng(1).normal(0, 8 / 255, lr.shape), 0, 1).astype(np.float32)

    def yuv(a: np.ndarray) -> vs.VideoNode:
        return core.resize.Bicubic(clip_from_arrays([a]), format=vs.YUV420P8, matrix_s="709")

    src, ref = yuv(noisy), np.asarray(yuv(np.ascontiguousarray(gt)).get_frame(0)[0], np.float64)

    def psnr(clip: vs.VideoNode) -> float:
        d = np.asarray(clip.get_frame(0)[0], np.float64)[4:-4, 4:-4] - ref[4:-4, 4:-4]
        return float(10 * np.log10(255**2 / np.mean(d * d)))

    forensic = psnr(presets.apply(src, "forensic"))
    lanczos = psnr(core.resize.Lanczos(src, w, h, filter_param_a=3))
    default = psnr(presets.apply(src, "default"))
    both = psnr(vr.upscale(vr.denoise(vr.deblock(src)), 2))
    assert forensic > lanczos + 0.5 and forensic > default + 0.5, (forensic, lanczos, default)
    assert both < forensic - 0.3, (both, forensic)


def test_script_writes_an_editable_vpy_that_renders(tmp_path: Path) -> None:
    """``vsrestore script`` spells a preset out as vr.* calls; the .vpy renders to the preset's
    output; a forensic script ends with the guard; bad arguments fail clearly."""
    import subprocess

    import imageio_ffmpeg
    import numpy as np

    from vsrestore import script
    from vsrestore.cli import main

    src = tmp_path / "in.y4m"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=64x48:rate=24", "-frames:v", "3", "-pix_fmt", "yuv420p", str(src)],
                   check=True)
    vpy = tmp_path / "out.vpy"
    assert main(["script", str(src), "--preset", "realtime", "-o", str(vpy)]) == 0
    text = vpy.read_text()
    assert "clip = vr.upscale(clip, scale=2, luma_only=True)" in text and "set_output()" in text
    env: dict = {}
    exec(compile(text, str(vpy), "exec"), env)  # what vspipe does with the file
    out = vs.get_output(0).clip  # type: ignore[union-attr]
    assert (out.width, out.height, out.num_frames) == (128, 96, 3)
    direct = presets.apply(core.bs.VideoSource(str(src)), "realtime")
    assert np.array_equal(np.asarray(out.get_frame(1)[0]), np.asarray(direct.get_frame(1)[0]))
    vs.clear_outputs()
    forensic = script.render(src, "forensic")
    assert forensic.rstrip().endswith("clip.set_output()")
    assert "clip = presets.forensic_guard(clip, 'forensic')" in forensic
    for name in SHIPPED:  # every preset writes a script that Python can compile
        compile(script.render(src, name), name, "exec")
    assert main(["script", str(src), "--preset", "nope", "-o", str(vpy)]) == 2
    with pytest.raises(SystemExit):
        main(["script", str(src), "-o", str(tmp_path / "out.txt")])
    with pytest.raises(SystemExit):
        main(["script", str(tmp_path / "missing.mkv"), "-o", str(vpy)])
