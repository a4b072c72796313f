"""Training data per task: (input, target, level) pairs, on-the-fly degradation, patch batches.

- ``sr``: the project's SR measure (see :mod:`.data`): input = zimg bicubic (b=0, c=0.5)
  at 1/scale of a box-shrunk photo.
- ``denoise``: clean = box-shrunk photo; input = clean + Gaussian noise of sigma ~ U(0, 50)
  (0-255 scale) per patch, clipped and rounded to 8 bit; level = sigma / 255.
- ``dnsr``: the ``sr`` pair with that noise added to the low-resolution input.
- ``deblock``: real encoder output. Crops of the photos are panned over 6 frames and
  encoded with libx264 (CRF 20-48, 60 %), libx265 (CRF 20-48, 25 %) or JPEG (quality
  10-60, 15 %), decoded, and frames 0, 2 and 5 kept; level = RMS error of the frame / 255.
Level planes follow DRUNet's noise-map convention: a constant plane after the RGB input.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from .. import degradations as dg
from . import data
from .recipes import Recipe

log = logging.getLogger("vsrestore.train")

DESCRIPTIONS = {
    "sr": "box-shrunk by 2 (JPEG washed out); input by zimg bicubic (b=0, c=0.5) at 1/scale",
    "denoise": "box-shrunk by 2; input + Gaussian noise sigma ~ U(0, 50) (0-255), clipped, 8 bit; "
               "level plane sigma/255",
    "dnsr": "box-shrunk by 2, bicubic (b=0, c=0.5) to 1/2, then Gaussian noise sigma ~ U(0, 50) on the "
            "low-resolution input, clipped, 8 bit; level plane sigma/255",
    "deblock": "box-shrunk by 2; 320x240 crops panned over 6 frames, libx264 (CRF 20-48, 60 %), libx265 "
               "(CRF 20-48, 25 %) or JPEG (q 10-60, 15 %), frames 0/2/5; level plane = RMS error/255",
}

# pictures that are flat-colour artwork / line art (the "art" data of anime models)
ART = ("firstgeneration", "FlyingKonqui", "SafeLanding", "the-mouse", "goldfish", "city", "desert",
       "calla", "Kay", "Patak", "Canopee", "Cascade", "Flow", "IceCold", "pixels-d", "pixels-l",
       "licorice-d", "licorice-l", "truchet-d", "truchet-l", "grid-d", "grid-l", "2004default",
       "rhythm", "rollpaper", "string", "fluent-color", "focal-ubuntukylin", "adwaita-d", "adwaita-l",
       "Opal", "Shell", "Kokkini", "Elarun", "Cluster", "Honeywave", "symbolic-d", "symbolic-l")
ART_HELD_OUT = ("SafeLanding", "FlyingKonqui", "Kay")


@dataclass
class Pair:
    inp: np.ndarray  # (3, h, w) float32 0..1, or uint8 0..255
    tgt: np.ndarray  # (3, h * scale, w * scale)
    level: float | None = None  # RMS degradation / 255 (deblock)


def split_for(recipe: Recipe, paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(train, held_out) paths for the recipe's data."""
    train, held = data.split(paths)
    if recipe.data != "art":
        return train, held
    art = [p for p in paths if data.picture_name(p) in ART]
    return ([p for p in art if data.picture_name(p) not in ART_HELD_OUT],
            [p for p in art if data.picture_name(p) in ART_HELD_OUT])


def unique_pictures(paths: list[Path]) -> list[Path]:
    """One file per picture (the largest size of a wallpaper)."""
    best: dict[str, Path] = {}
    for p in paths:
        name = data.picture_name(p)
        if name not in best or p.stat().st_size > best[name].stat().st_size:
            best[name] = p
    return [best[k] for k in sorted(best)]


def prepare(recipe: Recipe, paths: list[Path], rng: np.random.Generator) -> list[Pair]:
    """Training pairs for the recipe (deterministic for the rng's state)."""
    if recipe.task in ("sr", "dnsr"):
        return [Pair(lr, hr) for lr, hr in data.sr_pairs(paths, recipe.scale)]
    clean = [data.box_shrink(data.load_rgb(p), 2) for p in paths]
    if recipe.task == "denoise":
        return [Pair(c, c) for c in clean]
    if recipe.task == "deblock":
        return compressed_pairs(clean, rng)
    raise ValueError(f"unknown task {recipe.task!r}")


def pan(img: np.ndarray, x: int, y: int, w: int, h: int, frames: int, vx: float,
        vy: float) -> list[np.ndarray]:
    """*frames* crops (H, W, 3) of *img* (3, H, W) moving by (vx, vy) px a frame (bilinear)."""
    hwc = np.ascontiguousarray(img.transpose(1, 2, 0))
    out = []
    for n in range(frames):
        m = np.array([[1, 0, -(x + vx * n)], [0, 1, -(y + vy * n)]], np.float32)
        out.append(cv2.warpAffine(hwc, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return out


def compressed_pairs(clean: list[np.ndarray], rng: np.random.Generator, crops: int = 4,
                     size: tuple[int, int] = (320, 240), keep: tuple[int, ...] = (0, 2, 5)) -> list[Pair]:
    w, h = size
    pairs = []
    for img in clean:
        _, ih, iw = img.shape
        if ih < h + 40 or iw < w + 40:
            continue
        for _ in range(crops):
            x, y = int(rng.integers(16, iw - w - 16)), int(rng.integers(16, ih - h - 16))
            vx, vy = rng.uniform(-3, 3), rng.uniform(-2, 2)
            frames = pan(img, x, y, w, h, 6, vx, vy)
            frames = [dg.to_uint8(f).astype(np.float32) / 255.0 for f in frames]
            u = rng.random()
            if u < 0.85:
                codec = "h264" if u < 0.6 else "hevc"
                dec = dg.codec_roundtrip(frames, codec, float(rng.uniform(20, 48)), None, "medium")
            else:
                q = int(rng.integers(10, 61))
                dec = [dg.jpeg(f, q) for f in frames]
            for k in keep:
                a, b = dec[k], frames[k]
                lvl = float(np.sqrt(np.mean((a - b) ** 2)))
                pairs.append(Pair(dg.to_uint8(a).transpose(2, 0, 1).copy(),
                                  dg.to_uint8(b).transpose(2, 0, 1).copy(), lvl))
    log.info("deblock: %d compressed frames, RMS level %.1f..%.1f (0-255)", len(pairs),
             255 * min(p.level or 0 for p in pairs), 255 * max(p.level or 0 for p in pairs))
    return pairs


class PatchSampler:
    """Random aligned input/target patches with flips and 90-degree rotations."""

    def __init__(self, pairs: list[Pair], scale: int, patch: int, rng: np.random.Generator) -> None:
        self.pairs = [p for p in pairs if min(p.inp.shape[1:]) > patch]
        areas = np.array([p.inp.shape[1] * p.inp.shape[2] for p in self.pairs], dtype=np.float64)
        self.weights = areas / areas.sum()
        self.scale, self.patch, self.rng = scale, patch, rng

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        s, p = self.scale, self.patch
        lrs = np.empty((n, 3, p, p), np.float32)
        hrs = np.empty((n, 3, p * s, p * s), np.float32)
        levels = np.zeros(n, np.float32)
        for i in range(n):
            pair = self.pairs[self.rng.choice(len(self.pairs), p=self.weights)]
            lr, hr = pair.inp, pair.tgt
            y = int(self.rng.integers(0, lr.shape[1] - p + 1))
            x = int(self.rng.integers(0, lr.shape[2] - p + 1))
            a = lr[:, y: y + p, x: x + p]
            b = hr[:, y * s: (y + p) * s, x * s: (x + p) * s]
            k = int(self.rng.integers(0, 8))
            if k & 1:
                a, b = a[:, :, ::-1], b[:, :, ::-1]
            if k & 2:
                a, b = a[:, ::-1], b[:, ::-1]
            if k & 4:
                a, b = a.transpose(0, 2, 1), b.transpose(0, 2, 1)
            if lr.dtype == np.uint8:
                a, b = a / np.float32(255), b / np.float32(255)
            lrs[i], hrs[i] = a, b
            levels[i] = pair.level or 0.0
        return torch.from_numpy(lrs), torch.from_numpy(hrs), levels


def add_noise(x: torch.Tensor, sigma255: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """Gaussian noise of per-sample sigma (0-255 scale), clipped and rounded to 8 bit."""
    noise = rng.standard_normal(tuple(x.shape), dtype=np.float32)
    noise *= (sigma255 / 255.0).astype(np.float32)[:, None, None, None]
    return torch.round(torch.clamp(x + torch.from_numpy(noise), 0, 1) * 255) / 255


def with_level(x: torch.Tensor, level: np.ndarray | float) -> torch.Tensor:
    """Append the constant level plane(s) (DRUNet's noise map) to an NCHW batch."""
    lv = torch.as_tensor(np.broadcast_to(np.asarray(level, np.float32), (x.shape[0],)).copy())
    return torch.cat([x, lv[:, None, None, None].expand(-1, 1, *x.shape[2:])], dim=1)


def training_batch(recipe: Recipe, sampler: PatchSampler,
                   rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(network input, target) for one step."""
    inp, tgt, levels = sampler.batch(recipe.batch)
    if recipe.task in ("denoise", "dnsr"):
        sigma = rng.uniform(0.0, recipe.max_level, recipe.batch).astype(np.float32)
        inp = add_noise(inp, sigma, rng)
        levels = sigma / 255.0
    if recipe.task in ("denoise", "dnsr", "deblock"):  # level-conditioned networks
        inp = with_level(inp, levels)
    return inp, tgt
