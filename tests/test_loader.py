from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import vapoursynth as vs

import vsrestore as vr
from vsrestore.runtime.loader import load_model

core = vs.core


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # runs os.system at unpickling time if ever unpickled unsafely
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"body.0.weight": torch.zeros(1), "x": _Payload(marker)}, evil)
    with pytest.raises(vs.Error, match=r"upscale: refused to load .*evil\.pth.*Fix:"):
        vr.upscale(core.std.BlankClip(format=vs.RGBS, width=32, height=32), 2, model=evil)
    assert not marker.exists()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(vs.Error, match=r"upscale: model '.*nope\.pth' is neither a shipped model"):
        vr.upscale(core.std.BlankClip(format=vs.RGBS, width=32, height=32), 2, model=tmp_path / "nope.pth")


@pytest.mark.parametrize("name,content", [("notes.pth", b"hello, not a model"),
                                          ("garbage.safetensors", b"\x00\x01garbage" * 10),
                                          ("model.onnx", b"not onnx at all"),
                                          ("weights.txt", b"1 2 3")])
def test_non_model_files(tmp_path: Path, name: str, content: bytes) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(vs.Error, match=r"^upscale: .*Fix: "):
        load_model(p, "upscale")


def test_unknown_architecture(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    p = tmp_path / "mystery.safetensors"
    save_file({"foo.weight": torch.zeros(3, 3)}, str(p))
    with pytest.raises(vs.Error, match="not a model architecture spandrel recognises"):
        load_model(p, "upscale")


def test_pth_state_dict_loads(tmp_path: Path, tiny_model: Path) -> None:
    from safetensors.torch import load_file

    p = tmp_path / "tiny.pth"
    torch.save({"params_ema": load_file(str(tiny_model))}, p)  # BasicSR-style wrapper
    lm = load_model(p, "upscale")
    assert lm.scale == 2 and lm.in_channels == 3 and lm.module is not None


def test_torchscript_refused(tmp_path: Path) -> None:
    p = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Conv2d(3, 3, 3)), str(p))
    with pytest.raises(vs.Error, match="TorchScript"):
        load_model(p, "upscale")


def test_wrong_scale(tiny_model: Path) -> None:
    with pytest.raises(vs.Error, match=r"upscale: model tiny-x2 upscales by 2, but scale=3"):
        vr.upscale(core.std.BlankClip(format=vs.RGBS, width=32, height=32), 3, model=tiny_model)
