from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import vapoursynth as vs

import vsrestore as vr
from vsrestore import models
from vsrestore.bridge import clip_to_arrays
from vsrestore.runtime.export import export_onnx

core = vs.core


@pytest.fixture(scope="module")
def shipped_onnx(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "sr-x2.onnx"
    export_onnx(models.resolve(models.default_for("sr", 2), "test"), path)
    return path


def test_export_matches_torch(shipped_onnx: Path) -> None:
    lm = models.resolve(models.default_for("sr", 2), "test")
    x = np.random.default_rng(0).random((1, 3, 45, 61), dtype=np.float32)
    sess = ort.InferenceSession(str(shipped_onnx), providers=["CPUExecutionProvider"])
    y_onnx = sess.run(None, {"input": x})[0]
    with torch.inference_mode():
        y_torch = lm.module(torch.from_numpy(x)).numpy()
    assert y_onnx.shape == (1, 3, 90, 122)
    assert np.abs(y_onnx - y_torch).max() <= 1e-4


def test_vs_mlrt_ort_plugin_runs_export_unchanged(shipped_onnx: Path, photo_rgbs: vs.VideoNode) -> None:
    """Interop: vs-mlrt's core.ort.Model on our export matches vr.upscale within 1e-3."""
    if not hasattr(core, "ort"):
        pytest.fail("vapoursynth-mlrt-ort is a dev dependency and must be installed")
    theirs = clip_to_arrays(core.ort.Model([photo_rgbs], network_path=str(shipped_onnx)))
    ours = clip_to_arrays(vr.upscale(photo_rgbs, 2))
    for a, b in zip(theirs, ours, strict=True):
        assert a.shape == b.shape == (3, 528, 400)
        assert np.abs(a - b).max() <= 1e-3


def test_onnx_file_as_model(shipped_onnx: Path, photo_rgbs: vs.VideoNode) -> None:
    a = clip_to_arrays(vr.upscale(photo_rgbs, 2, model=shipped_onnx))
    b = clip_to_arrays(vr.upscale(photo_rgbs, 2))
    assert np.abs(a[0] - b[0]).max() <= 1e-4
    with pytest.raises(vs.Error, match="ONNX-only"):
        vr.upscale(photo_rgbs, 2, model=shipped_onnx, backend=vr.TorchCPU())
