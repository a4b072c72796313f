"""Shared fixtures: small inputs made here (tests never need ../shared/)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("VSRESTORE_CACHE", str(_ROOT / ".pytest_cache" / "vsrestore"))

core = vs.core


def photo(name: str = "astronaut") -> np.ndarray:
    """A real photo shipped inside the scikit-image wheel, as float RGB (3, H, W)."""
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return np.ascontiguousarray(img[..., :3].astype(np.float32).transpose(2, 0, 1) / 255.0)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A small spandrel Compact x2 model with fixed random weights (mechanics tests)."""
    import torch
    from safetensors.torch import save_file
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(1)
    m = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=3, upscale=2)
    path = tmp_path_factory.mktemp("models") / "tiny-x2.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_drunet(tmp_path_factory) -> Path:
    """A small DRUNet (RGB + level plane) with fixed random weights (mechanics tests)."""
    import torch
    from safetensors.torch import save_file
    from spandrel.architectures.DRUNet import DRUNet

    torch.manual_seed(2)
    m = DRUNet(in_nc=4, out_nc=3, nc=[8, 8, 8, 8], nb=2, act_mode="R", downsample_mode="strideconv",
               upsample_mode="convtranspose")
    path = tmp_path_factory.mktemp("models") / "tiny-drunet.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="session")
def photo_rgbs() -> vs.VideoNode:
    from vsrestore.bridge import clip_from_arrays

    img = photo("astronaut")[:, 100:364, 150:350]  # 264 x 200
    return clip_from_arrays([img, img[:, ::-1].copy()], vs.RGBS)
