"""INT8 static quantisation (QDQ ONNX): accuracy against fp32, the SR PSNR cost, the integer
graph ORT CPU runs, the TensorRT flavour's structure, the cache and the errors.

Numbers asserted here were measured on this machine (onnxruntime 1.32, AVX512-VNNI, default
percentile calibration): sr-compact-x2 loses 0.027 dB PSNR-Y on the held-out skimage photos
(worst photo 0.065 dB; 0.032 dB with the 7-bit weights used on CPUs without VNNI). Speed
is measured by ``benchmarks/bench_int8.py``, never here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import vapoursynth as vs
from onnx import numpy_helper

import vsrestore as vr
from vsrestore import models
from vsrestore.bridge import clip_from_arrays, clip_to_arrays
from vsrestore.errors import VSRestoreError
from vsrestore.runtime import int8
from vsrestore.runtime.backends import OrtCPU, TensorRT
from vsrestore.runtime.export import cached_onnx
from vsrestore.runtime.loader import LoadedModel, load_model
from vsrestore.runtime.runners import make_runner
from vsrestore.runtime.trt import trt_onnx
from vsrestore.training.data import HELD_OUT_SKIMAGE, psnr_y, sr_pairs

HELD_OUT_FILES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
                  "motorcycle_left.png", "motorcycle_right.png")


def _session(path: Path, optimized: Path | None = None) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 2
    if optimized is not None:
        opts.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def shipped() -> LoadedModel:
    return models.resolve("sr-compact-x2", "test")


@pytest.fixture(scope="module")
def shipped_int8(shipped: LoadedModel) -> Path:
    """The file vr.OrtCPU(int8=True) runs (cached under VSRESTORE_CACHE between runs)."""
    return int8.int8_onnx(shipped, target="cpu")


@pytest.fixture(scope="module")
def held_out_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    from skimage import data

    return sr_pairs([Path(data.data_dir) / f for f in HELD_OUT_FILES], 2, crop=384)


def _psnr_costs(fp32: Path, q: Path, pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    a, b = _session(fp32), _session(q)
    name = a.get_inputs()[0].name
    return np.array([psnr_y(a.run(None, {name: lr[None]})[0][0], hr)
                     - psnr_y(b.run(None, {name: lr[None]})[0][0], hr) for lr, hr in pairs])


# ----------------------------------------------------------------------------- calibration set


def test_default_calibration_never_sees_the_held_out_photos() -> None:
    assert not set(int8.CALIBRATION_PHOTOS) & set(int8.HELD_OUT_PHOTOS)
    for name in HELD_OUT_SKIMAGE:  # the SR evaluation photos (chelsea = skimage's cat)
        assert not any(name.startswith(c) or c.startswith(name) for c in int8.CALIBRATION_PHOTOS)
    imgs = int8.builtin_images()
    assert len(imgs) == len(int8.CALIBRATION_PHOTOS)
    for img in imgs:
        assert img.shape[0] == 3 and img.dtype == np.float32 and 0 <= img.min() <= img.max() <= 1


def test_calibration_tiles_follow_the_model_input() -> None:
    rgb = np.random.default_rng(0).random((3, 200, 300), dtype=np.float32)
    tiles = int8.calibration_tiles([rgb], 3, tile=64, multiple=8)
    assert len(tiles) == 3 and all(t.shape == (1, 3, 64, 64) for t in tiles)
    grey = int8.calibration_tiles([rgb], 1, tile=64)
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    np.testing.assert_allclose(grey[0][0, 0], luma[68:132, 118:182], rtol=1e-6)
    cond = int8.calibration_tiles([rgb, rgb], 3, 1, tile=64, extra_planes=(0.1, 0.2))
    assert [float(t[0, 3].min()) for t in cond] == pytest.approx([0.1, 0.2, 0.1, 0.2, 0.1, 0.2])
    assert all(float(t[0, 3].max()) == float(t[0, 3].min()) for t in cond)
    fixed = int8.calibration_tiles([rgb], 3, fixed_hw=(48, 80))
    assert fixed[0].shape == (1, 3, 48, 80)


# ----------------------------------------------------------------------------- accuracy (shipped SR)


def test_int8_psnr_cost_on_held_out_photos(shipped: LoadedModel, shipped_int8: Path,
                                           held_out_pairs: list) -> None:
    costs = _psnr_costs(cached_onnx(shipped), shipped_int8, held_out_pairs)
    assert costs.mean() <= 0.1, costs  # measured 0.027 dB; the bar is 0.2 dB
    assert costs.max() <= 0.2, costs  # measured 0.065 dB (rocket)
    assert costs.min() >= -0.05, costs  # int8 is not "better" than fp32 by chance margins


def test_upscale_int8_close_to_fp32_and_deterministic(photo_rgbs: vs.VideoNode, shipped_int8: Path) -> None:
    fp = clip_to_arrays(vr.upscale(photo_rgbs, 2, backend=vr.OrtCPU()))
    q = clip_to_arrays(vr.upscale(photo_rgbs, 2, backend=vr.OrtCPU(int8=True)))
    again = clip_to_arrays(vr.upscale(photo_rgbs, 2, backend=vr.OrtCPU(int8=True)))
    for a, b, c in zip(fp, q, again, strict=True):
        assert a.shape == b.shape == (3, 528, 400)
        d = np.abs(np.clip(a, 0, 1) - np.clip(b, 0, 1))
        assert d.mean() <= 0.004  # measured 0.0016
        assert np.percentile(d, 99.9) <= 0.025  # measured 0.012
        assert np.array_equal(b, c)  # same input, same bytes


def test_cpu_graph_runs_in_integers(shipped_int8: Path, tmp_path: Path) -> None:
    """What makes it fast, checked structurally: after ORT's optimisations every convolution
    but the first and the last (kept float, qdq.float_ends) is a QLinearConv, the PRelus are
    integer Max nodes, and the only dequantisation is before the last convolution."""
    proto = onnx.load(str(shipped_int8))
    ops = [n.op_type for n in proto.graph.node]
    assert "PRelu" not in ops and ops.count("Max") == 13  # PRelu -> Max(y, a*y) on uint8 codes
    optimized = tmp_path / "opt.onnx"
    _session(shipped_int8, optimized)
    opt = onnx.load(str(optimized)).graph.node
    opt_ops = [n.op_type for n in opt]
    assert opt_ops.count("QLinearConv") == 25  # 12 3x3 (32 -> 32) + 13 1x1 depthwise (a*y)
    assert opt_ops.count("Conv") == 2 and "PRelu" not in opt_ops and opt_ops.count("Max") == 13
    assert opt_ops.count("QuantizeLinear") == 1 and opt_ops.count("DequantizeLinear") <= 2


def test_prelu_and_padding_rewrites_are_exact(shipped: LoadedModel, tmp_path: Path) -> None:
    from vsrestore.runtime import qdq

    proto = onnx.load(str(cached_onnx(shipped)))
    qdq.prepare_for_cpu(proto)
    onnx.checker.check_model(proto)
    path = tmp_path / "rewritten.onnx"
    onnx.save(proto, str(path))
    x = np.random.default_rng(0).random((1, 3, 37, 53), dtype=np.float32)
    a = _session(cached_onnx(shipped)).run(None, {"input": x})[0]
    b = _session(path).run(None, {"input": x})[0]
    assert np.abs(a - b).max() <= 1e-5


# ----------------------------------------------------------------------------- TensorRT flavour


def test_tensorrt_int8_onnx_is_symmetric_qdq(shipped: LoadedModel, held_out_pairs: list,
                                             tmp_path: Path) -> None:
    """What TensorRT's explicit quantization needs, checked on the file TrtRunner builds from
    (TensorRT itself is not installable here): Q/DQ nodes, int8 with zero points 0, per-channel
    weight scales, float biases; ONNX Runtime runs it within the PSNR bar."""
    plain = trt_onnx(shipped, TensorRT(cache_dir=tmp_path))
    assert plain == cached_onnx(shipped, tmp_path) and not int8.onnx_has_qdq(plain)
    path = trt_onnx(shipped, TensorRT(int8=True, cache_dir=tmp_path))
    assert int8.onnx_has_qdq(path) and path.parent == tmp_path / "onnx" and "int8-tensorrt" in path.name
    proto = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    zps = [inits[n.input[2]] for n in proto.graph.node
           if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2]
    assert zps and all(z.dtype == np.int8 and not z.any() for z in zps)
    assert not any(v.dtype == np.int32 for v in inits.values())  # biases stay float
    weight_scales = [inits[n.input[1]] for n in proto.graph.node
                     if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None
                     and inits[n.input[0]].ndim == 4]
    assert len(weight_scales) == 12 and all(s.size > 1 for s in weight_scales)  # per channel
    # the first and last convolutions stay float (qdq.float_ends)
    assert "PRelu" in [n.op_type for n in proto.graph.node]  # no CPU rewrites for TensorRT
    costs = _psnr_costs(cached_onnx(shipped, tmp_path), path, held_out_pairs)
    assert costs.mean() <= 0.1, costs  # measured 0.029 dB on ORT CPU


# ----------------------------------------------------------------------------- other models


def _drunet(tmp_path: Path) -> LoadedModel:
    import torch
    from spandrel.architectures.DRUNet import DRUNet

    torch.manual_seed(0)
    m = DRUNet(in_nc=4, out_nc=3, nc=[8, 16, 32, 64], nb=1).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return LoadedModel(name="drunet-tiny", scale=1, in_channels=3, cond_channels=1, out_channels=3,
                       module=m, size_multiple=8, identity="drunet-tiny-test-0")


def test_drunet_with_noise_plane_quantises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Model-agnostic: a DRUNet (RGB + constant noise-level plane, strided convs,
    transposed convs, residual adds) through OrtCPU(int8=True)."""
    monkeypatch.setenv("VSRESTORE_CACHE", str(tmp_path))
    lm = _drunet(tmp_path)
    from skimage import data

    img = np.ascontiguousarray(data.camera()[100:196, 200:328], dtype=np.float32)[None] / 255
    x = np.concatenate([np.repeat(img, 3, 0), np.full((1, 96, 128), 15 / 255, np.float32)])[None]
    fp = make_runner(lm, OrtCPU(), "denoise")(x)
    runner = make_runner(lm, OrtCPU(int8=True), "denoise")
    q = runner(x)
    assert q.shape == fp.shape == (1, 3, 96, 128)
    assert int8.onnx_has_qdq(runner.onnx_path)  # type: ignore[attr-defined]
    rel = np.abs(q - fp).mean() / (fp.max() - fp.min())
    assert rel <= 0.005  # measured 0.0013 (random weights: relative to the output range)


def test_grey_model_calibrates_on_luma(tiny_grey: Path, tmp_path: Path) -> None:
    lm = load_model(tiny_grey, "upscale")
    path = int8.quantize_int8(lm, cache_dir=tmp_path)
    x = np.random.default_rng(2).random((1, 1, 40, 40), dtype=np.float32)
    y = _session(path).run(None, {"input": x})[0]
    assert y.shape == (1, 1, 80, 80)


@pytest.fixture
def tiny_grey(tmp_path: Path) -> Path:
    import torch
    from safetensors.torch import save_file
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(3)
    m = Compact(num_in_ch=1, num_out_ch=1, num_feat=8, num_conv=2, upscale=2)
    path = tmp_path / "grey-x2.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(path))
    return path


# ----------------------------------------------------------------------------- cache


def test_cache_is_reused_and_keyed(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from skimage import data

    lm = load_model(tiny_model, "upscale")
    builds: list[str] = []
    real = int8.build_int8

    def counting_build(*args: object, **kw: str) -> None:
        builds.append(kw["target"])
        real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(int8, "build_int8", counting_build)
    p1 = int8.quantize_int8(lm, cache_dir=tmp_path)
    assert p1.exists() and p1.with_suffix(".json").exists() and builds == ["cpu"]
    assert int8.quantize_int8(lm, cache_dir=tmp_path) == p1 and builds == ["cpu"]  # reused
    side = json.loads(p1.with_suffix(".json").read_text())
    assert side["tiles"] == 30 and side["target"] == "cpu" and side["mean_abs_diff"] < 0.05
    img = tmp_path / "moon.png"
    from PIL import Image

    Image.fromarray(data.moon()).save(img)
    p2 = int8.quantize_int8(lm, cache_dir=tmp_path, calibration=[str(img)])
    p3 = int8.quantize_int8(lm, cache_dir=tmp_path, target="tensorrt")
    assert len({p1, p2, p3}) == 3 and builds == ["cpu", "cpu", "tensorrt"]
    assert not [p for p in (tmp_path / "onnx").iterdir() if ".building" in p.name or p.suffix == ".tmp"]


def test_corrupt_cached_int8_is_rebuilt(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("VSRESTORE_CACHE", str(tmp_path))
    lm = load_model(tiny_model, "upscale")
    path = int8.quantize_int8(lm)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # truncated, as after a full disk
    with caplog.at_level("WARNING", logger="vsrestore.runtime"):
        runner = make_runner(lm, OrtCPU(int8=True), "upscale")
    assert "rebuilding unreadable cached ONNX" in caplog.text
    assert runner.onnx_path == path and path.read_bytes() == good  # type: ignore[attr-defined]


def test_quantising_writes_nothing_to_stdout(tiny_model: Path, tmp_path: Path,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    """stdout is the video stream under vspipe; ORT's histogram calibrators print."""
    lm = load_model(tiny_model, "upscale")
    int8.quantize_int8(lm, cache_dir=tmp_path, method="percentile")
    out, _ = capfd.readouterr()
    assert out == ""


def test_qdq_onnx_model_runs_as_it_is(tiny_model: Path, tmp_path: Path) -> None:
    lm = load_model(tiny_model, "upscale")
    qdq_file = tmp_path / "tiny-int8.onnx"
    qdq_file.write_bytes(int8.quantize_int8(lm, cache_dir=tmp_path).read_bytes())
    onnx_model = load_model(qdq_file, "upscale")
    assert int8.int8_onnx(onnx_model, target="cpu") == qdq_file
    runner = make_runner(onnx_model, OrtCPU(int8=True), "upscale")
    assert runner.onnx_path == qdq_file  # type: ignore[attr-defined]
    with pytest.raises(VSRestoreError, match="already quantised"):
        int8.quantize_int8(onnx_model, cache_dir=tmp_path)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("calibration,match", [
    ([], "calibration set is empty"),
    (["/nonexistent/frame.png"], "does not exist"),
    ([np.zeros((2, 64, 64), np.float32)], "cannot make 3-channel calibration input"),
    ([np.zeros((64, 64), np.float32)], r"shape \(64, 64\)"),
    ([np.zeros((3, 8, 8), np.float32)], None),  # tiny: still one (8 px) tile
])
def test_bad_calibration_is_refused(tiny_model: Path, tmp_path: Path, calibration, match) -> None:
    lm = load_model(tiny_model, "upscale")
    if match is None:
        assert int8.quantize_int8(lm, cache_dir=tmp_path, calibration=calibration).exists()
        return
    with pytest.raises(VSRestoreError, match=match) as ei:
        int8.quantize_int8(lm, cache_dir=tmp_path, calibration=calibration, filter_name="upscale")
    assert str(ei.value).startswith("upscale: ") and "Fix:" in str(ei.value)


def test_unreadable_calibration_image(tiny_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    with pytest.raises(VSRestoreError, match="cannot be read"):
        int8.quantize_int8(load_model(tiny_model, "upscale"), cache_dir=tmp_path, calibration=[bad])


def test_unknown_target_and_method(tiny_model: Path, tmp_path: Path) -> None:
    lm = load_model(tiny_model, "upscale")
    with pytest.raises(VSRestoreError, match="unknown int8 target 'gpu'"):
        int8.quantize_int8(lm, cache_dir=tmp_path, target="gpu")
    with pytest.raises(VSRestoreError, match="unknown calibration method 'kl'"):
        int8.quantize_int8(lm, cache_dir=tmp_path, method="kl")


def test_calibration_from_a_clip(tiny_model: Path, tmp_path: Path) -> None:
    from tests.conftest import photo

    img = photo("camera")[:, :96, :96]
    clip = clip_from_arrays([img, img[:, ::-1].copy(), img[:, :, ::-1].copy()], vs.RGBS)
    frames = int8.calibration_images(clip)
    assert len(frames) == 3 and frames[0].shape == (3, 96, 96)
    lm = load_model(tiny_model, "upscale")
    assert int8.quantize_int8(lm, cache_dir=tmp_path, calibration=clip).exists()


# ----------------------------------------------------------------------------- CLI


def test_cli_models_quantize(tiny_model: Path, tmp_path: Path) -> None:
    from PIL import Image
    from skimage import data

    img = tmp_path / "grass.png"
    Image.fromarray(data.grass()).save(img)
    out = tmp_path / "tiny-int8.onnx"
    env = {**os.environ, "VSRESTORE_CACHE": str(tmp_path / "cache")}
    res = subprocess.run([sys.executable, "-m", "vsrestore", "models", "quantize", str(tiny_model),
                          "--int8", str(out), "--calib", str(img)], capture_output=True, text=True,
                         timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and "wrote" in res.stderr
    assert int8.onnx_has_qdq(out)
    y = _session(out).run(None, {"input": np.zeros((1, 3, 20, 30), np.float32)})[0]
    assert y.shape == (1, 3, 40, 60)
    bad = subprocess.run([sys.executable, "-m", "vsrestore", "models", "quantize", str(tiny_model),
                          "--int8", str(out), "--calib", str(tmp_path / "missing.png")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode == 2 and "does not exist" in bad.stderr
