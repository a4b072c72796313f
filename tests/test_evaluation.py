"""``vsrestore eval`` (vsrestore/evaluation.py, eval_peers.py, eval_report.py, eval_cli.py):
reports, skips with reasons, argument errors, and the peers doing their job on tiny inputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import photo
from vsrestore import degradations as dg
from vsrestore import models as registry
from vsrestore.bridge import clip_from_arrays, clip_to_arrays
from vsrestore.evaluation import cli as eval_cli
from vsrestore.evaluation import peers as eval_peers
from vsrestore.training import data
from vsrestore.training.evaluate import noisy, psnr_rgb


def by_key(res: dict) -> dict[str, dict]:
    return {m["key"]: m for m in res["methods"]}


def test_sr_report_ours_beats_lanczos(tmp_path: Path) -> None:
    out = tmp_path / "sr"
    rc = eval_cli.main(["sr", "--limit", "2", "--crop", "64", "--peers", "lanczos,znedi3", "--crops", "1",
                        "--model", "sr-not-shipped-x2", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    m = by_key(res)
    assert res["pictures"] == ["astronaut", "chelsea"] and res["command"].startswith("vsrestore eval sr")
    assert res["settings"]["scale"] == 2 and res["settings"]["sizes"]["astronaut"] == [64, 64]
    assert {m["ours"]["status"], m["lanczos"]["status"], m["znedi3"]["status"]} == {"ok"}
    assert set(m["ours"]["mean"]) == {"psnr_y", "ssim_y", "stlpips"}
    assert m["ours"]["mean"]["psnr_y"] > m["lanczos"]["mean"]["psnr_y"] + 0.3  # measured +0.98 dB
    assert m["ours"]["mean"]["stlpips"] < m["lanczos"]["mean"]["stlpips"]
    assert set(m["ours"]["per_picture"]) == {"astronaut", "chelsea"}
    best = m[res["best_peer"]]
    assert best["kind"] == "peer" and best["delta_vs_best_peer"] == 0
    assert m["ours"]["delta_vs_best_peer"] == pytest.approx(
        m["ours"]["mean"]["psnr_y"] - best["mean"]["psnr_y"], abs=1e-3)
    skipped = m["ours:sr-not-shipped-x2"]
    assert skipped["status"] == "skipped" and "not installed" in skipped["reason"]
    assert [r["status"] for r in res["methods"]][-1] == "skipped"  # skipped ones come last
    md = (out / "results.md").read_text()
    assert "| 1 | **vr.upscale (sr-compact-x2)** | ours |" in md  # sorted by PSNR-Y: ours first
    assert "Skipped:" in md and "sr-not-shipped-x2" in md and "## Per picture" in md
    with Image.open(out / "sr_psnr_y.png") as im:
        assert im.width > 300 and im.height > 60
    with Image.open(out / "crop_1_astronaut.png") as im:  # input | best peer | ours | ground truth
        assert im.width == 4 * (3 * 64 + 4)  # the 64 px picture enlarged x3
    assert not (out / "crop_2_chelsea.png").exists()


def test_denoise_skips_with_reasons_and_runs_a_given_model(tmp_path: Path, tiny_drunet: Path,
                                                          tiny_model: Path, monkeypatch) -> None:
    monkeypatch.setattr(registry, "default_for", lambda task, scale: None)  # no shipped denoiser
    monkeypatch.setattr(eval_peers, "missing_plugin", lambda ns: f"VapourSynth plugin '{ns}' is not loaded")
    out = tmp_path / "dn"
    rc = eval_cli.main(["denoise", "--limit", "1", "--crop", "48", "--sigma", "20", "--oracle",
                        "--crops", "1", "--peers", "dfttest2-rgb24,nlmeans-yuv444p",
                        "--model", str(tiny_drunet), "--model", str(tiny_model), "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    m = by_key(res)
    assert m["ours"]["status"] == "skipped" and "denoise-drunet is not installed" in m["ours"]["reason"]
    assert m["dfttest2-rgb24"]["status"] == "skipped" and "dfttest2_cpu" in m["dfttest2-rgb24"]["reason"]
    assert m["ours:tiny-x2"]["status"] == "skipped" and m["ours:tiny-x2"]["reason"].startswith("failed:")
    assert m["ours:tiny-drunet"]["status"] == "ok" and m["oracle:tiny-drunet"]["status"] == "ok"
    assert m["ours:tiny-drunet"]["label"].endswith("(tiny-drunet.safetensors)")  # a file: its name
    assert m["input"]["mean"]["psnr_rgb"] == pytest.approx(22.1, abs=1.0)  # sigma 20 noise
    nl = m["nlmeans-yuv444p"]
    assert nl["status"] == "ok" and res["best_peer"] == "nlmeans-yuv444p"
    assert nl["setting"]["s"] in [p["setting"]["s"] for p in nl["sweep"]] and len(nl["sweep"]) == 8
    assert nl["mean"]["psnr_rgb"] == pytest.approx(max(p["mean"] for p in nl["sweep"]), abs=1e-3)
    assert nl["mean"]["psnr_rgb"] > m["input"]["mean"]["psnr_rgb"] + 2
    md = (out / "results.md").read_text()
    assert "## Peer sweeps" in md and f"**s={nl['setting']['s']:g}:" in md
    assert "denoise-drunet is not installed" in md


def test_deblock_task_mechanics(tmp_path: Path, tiny_drunet: Path) -> None:
    out = tmp_path / "db"
    rc = eval_cli.main(["deblock", "--limit", "1", "--crop", "48", "--frames", "4", "--crf", "45",
                        "--crops", "1", "--peers", "deblock", "--model", str(tiny_drunet), "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    m = by_key(res)
    assert res["settings"]["frames"] == {"astronaut": 3} and res["settings"]["levels"]["astronaut"] > 3
    assert m["input"]["status"] == "ok" and m["ours:tiny-drunet"]["status"] == "ok"
    d = m["deblock"]
    assert d["status"] == "ok" and 25 <= d["setting"]["quant"] <= 50 and len(d["sweep"]) == 6
    assert d["mean"]["psnr_y"] >= m["input"]["mean"]["psnr_y"] - 0.05  # x264 deblocks in-loop already
    assert (out / "deblock_psnr_y.png").is_file() and (out / "crop_1_astronaut.png").is_file()


# ---- the peers on tiny inputs ----------------------------------------------------------------

@pytest.fixture(scope="module")
def clean_noisy() -> tuple[np.ndarray, np.ndarray]:
    c = data.center_crop(data.box_shrink(photo("astronaut"), 2), 64)
    return c, noisy(c, 25, 3)


@pytest.mark.parametrize("chain,pix", [(eval_peers.bm3d_chain(50), "yuv444p"),
                                       (eval_peers.bm3d_chain(100), "gbrp"),
                                       (eval_peers.bm3d_chain(60, 200), "yuv444p"),
                                       ("nlmeans=s=10", "yuv444p"), ("nlmeans=s=17", "gbrp")])
def test_ffmpeg_denoisers(clean_noisy, chain: str, pix: str) -> None:
    c, x = clean_noisy
    out = eval_peers.ffmpeg_filter([x], chain, pix)[0]
    assert out.shape == c.shape and out.dtype == np.float32
    assert psnr_rgb(out, c) > psnr_rgb(x, c) + 3  # noisy 20.7 dB; measured +5..+7


@pytest.mark.parametrize("fmt,sigma", [("rgb24", 1536), ("yuv444p", 512)])
def test_dfttest2(clean_noisy, fmt: str, sigma: float) -> None:
    c, x = clean_noisy
    out = eval_peers.dfttest2_denoise([x], sigma, fmt)[0]
    assert psnr_rgb(out, c) > psnr_rgb(x, c) + 3


def test_deblock_peer_on_jpeg_blocks() -> None:
    c = np.rint(data.center_crop(data.box_shrink(photo("astronaut"), 2), 64) * 255) / 255
    j = dg.jpeg(c.transpose(1, 2, 0), 10).transpose(2, 0, 1)
    out = eval_peers.deblock_peer([j], 40)[0]
    assert data.psnr_y(out, c, 0) > data.psnr_y(j, c, 0) + 0.1  # measured +0.23 dB


def test_znedi3_doubling_is_on_the_pixel_grid() -> None:
    hr = data.center_crop(data.box_shrink(photo("coffee"), 2), 96)
    lr = data.bicubic_down([hr], 2)[0]
    up = eval_peers.znedi3_up([lr], 2)[0]
    assert up.shape == hr.shape
    lanczos = eval_peers.resize_up([lr], 2, "lanczos")[0]
    raw = clip_to_arrays(eval_peers._double(clip_from_arrays([lr])))[0]
    np.testing.assert_array_equal(raw[:, ::2, ::2], lr)  # field=1 keeps the input on even rows/columns
    assert data.psnr_y(up, hr) > data.psnr_y(raw, hr) + 1.5  # the half-pixel correction matters
    assert data.psnr_y(up, hr) > data.psnr_y(lanczos, hr) - 0.3


# ---- argument errors -------------------------------------------------------------------------

@pytest.mark.parametrize("args,msg", [
    (["sr", "--sigma", "5"], "--sigma applies to denoise and dnsr, not sr"),
    (["dnsr", "--scale", "4"], "(dnsr is x2)"),
    (["denoise", "--sigma", "0"], "--sigma must be in (0, 75]"),
    (["deblock", "--crf", "60"], "--crf must be in 0..51"),
    (["sr", "--peers", "bm3d"], "unknown for sr: bm3d; sr peers: lanczos, spline36, bicubic, znedi3"),
    (["sr", "--model", "nope.safetensors"], "--model nope.safetensors: no such model file"),
    (["sr", "--images", "/nonexistent.png"], "no such file: /nonexistent.png"),
    (["sr", "--crop", "8"], "--crop must be 0 (whole picture) or at least 32"),
    (["sr", "--manifest", "/nonexistent.txt"], "/nonexistent.txt not found"),
    (["upscale"], "invalid choice: 'upscale'"),
    (["deblock", "--start", "3"], "--start applies to --clips"),
])
def test_bad_arguments(args: list[str], msg: str, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        eval_cli.main(args)
    assert e.value.code == 2
    assert msg in capsys.readouterr().err


def test_dispatch_from_vsrestore_cli(capsys) -> None:
    from vsrestore.cli import USAGE, main

    assert "eval sr|denoise|deblock|dnsr" in USAGE
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "--manifest" in capsys.readouterr().out


def test_deblock_on_a_real_clip(tmp_path: Path, capsys) -> None:
    import subprocess

    import imageio_ffmpeg

    clip = tmp_path / "clip.y4m"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=96x64:rate=24", "-frames:v", "5", "-pix_fmt", "yuv420p", str(clip)],
                   check=True)
    out = tmp_path / "clip"
    assert eval_cli.main(["deblock", "--clips", str(clip), "--frames", "4", "--peers", "deblock",
                          "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["pictures"] == ["clip"] and res["settings"]["sizes"]["clip"] == [64, 96]
    assert res["settings"]["frames"]["clip"] == 3 and by_key(res)["deblock"]["status"] == "ok"
    assert res["settings"]["crop_text"] == "96x64 clip centres"
    assert eval_cli.main(["deblock", "--clips", str(clip), "--start", "3", "--peers", "none",
                          "--out", str(out)]) == 0  # frames 3..4 of 5
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["frames"]["clip"] == 2 and res["settings"]["start"] == 3
    with pytest.raises(SystemExit):
        eval_cli.main(["deblock", "--clips", str(clip), "--start", "5", "--out", str(out)])
    assert "--start 5 is past the clip's last frame (4)" in capsys.readouterr().err
