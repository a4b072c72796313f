"""Held-out evaluation of a trained network, per task (the figures in the model cards).

- ``sr``: PSNR-Y (BT.601, 16-235, 4 px shave) on centre crops (``eval_crop``) of the
  held-out pictures, vs zimg Lanczos-3; perceptual models also report ST-LPIPS (AlexNet,
  shift-tolerant) against the fidelity model they started from.
- ``denoise``: RGB PSNR on 256x256 centre crops with Gaussian noise sigma 15/25/50 (seeded,
  clipped, 8 bit), with the true sigma and blind (sigma estimated by :mod:`vsrestore.levels`).
- ``deblock``: Y-PSNR on 320x240 held-out pans (8 frames, 1 px/frame) crushed by libx264
  CRF 40 preset medium, with the true level and the blind one: the self-consistent level
  with its part that is not white noise times the model's ``level_scale``, which
  :func:`calibrate_level_scale` picks on *training* pictures (held-out ones never tune it).
- ``dnsr``: PSNR-Y at x2 with sigma 25 noise on the low-resolution input: the joint model
  vs denoise-then-upscale with the shipped ``denoise-drunet`` and ``sr-compact-x2``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import degradations as dg
from .. import levels
from . import data, tasks
from .recipes import Recipe

Net = Callable[[torch.Tensor], torch.Tensor]

METHODS = {
    "sr": "PSNR-Y BT.601 (16-235), 4 px shave, centre crops of the held-out pictures (box-shrunk by 2, "
          "bicubic b=0 c=0.5 down), vs zimg Lanczos-3; perceptual models: ST-LPIPS (AlexNet, "
          "shift-tolerant) vs the fidelity model they start from",
    "denoise": "RGB PSNR, 256x256 centre crops of the box-shrunk held-out pictures, Gaussian sigma "
               "15/25/50 (seeded, clipped, 8 bit); true sigma and blind (estimated) sigma",
    "deblock": "Y-PSNR (BT.601, full frame), 320x240 held-out pans (8 frames, 1 px/frame) through "
               "libx264 CRF 40 preset medium, frames 0/3/7; true level and blind level (self-consistent "
               "level, its non-noise part x the card's level_scale, calibrated on training pictures)",
    "dnsr": "PSNR-Y at x2 (as sr, 384 crops) with Gaussian sigma 15/25 on the low-resolution input; "
            "the joint model vs denoise-drunet then sr-compact-x2 (both blind sigma)",
}


@torch.inference_mode()
def run(net: Net, img: np.ndarray, level: float | None = None, device: str = "cpu") -> np.ndarray:
    """One (3, H, W) image through *net* (a level plane appended when given)."""
    _, h, w = img.shape
    m = 8  # DRUNet's size multiple (reflect-padded, cropped back)
    pad = ((0, 0), (0, -h % m), (0, -w % m))
    x = torch.from_numpy(np.ascontiguousarray(np.pad(img, pad, mode="reflect"), np.float32))[None]
    if level is not None:
        x = tasks.with_level(x, level)
    y = net(x.to(device)).clamp(0, 1)[0].float().cpu().numpy()
    s = y.shape[1] // x.shape[2]
    return y[:, : h * s, : w * s]


def psnr_rgb(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def noisy(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.rint((img + rng.normal(0, sigma / 255.0, img.shape)) * 255), 0, 255).astype(
        np.float32) / 255.0


def blind_level(net: Net, x: np.ndarray, device: str = "cpu", scale: float = 1.0) -> float:
    """Blind degradation level of *x* for a level-conditioned network: the self-consistent
    level, its part that is not white noise times *scale* (a deblock model's calibrated
    ``level_scale``, :func:`vsrestore.levels.scaled_level`), at most 40/255."""
    sc = levels.self_consistent_level(lambda a, lv: run(net, a, lv, device), x, start=40 / 255)
    return _scaled(sc, levels.noise_sigma(x) if scale != 1 else 0.0, scale)


def _scaled(sc: float, noise: float, scale: float) -> float:
    return min(40 / 255, levels.scaled_level(sc, noise, scale))


LEVEL_SCALES = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
CALIBRATION_CRFS = (32.0, 40.0, 46.0)  # cycled over the calibration pictures


def _pan_samples(paths: list[Path], crfs: tuple[float, ...], limit: int | None = None
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(decoded, clean) ``(3, 240, 320)`` frames 0/3/7 of 8-frame 1 px/frame pans over the
    box-shrunk pictures, through libx264 preset medium at *crfs* (cycled per picture)."""
    out: list[tuple[np.ndarray, np.ndarray]] = []
    used = 0
    for path in paths:
        img = data.box_shrink(data.load_rgb(path), 2)
        _, ih, iw = img.shape
        if ih < 260 or iw < 340:
            continue
        frames = tasks.pan(img, (iw - 320) // 2 - 4, (ih - 240) // 2, 320, 240, 8, 1.0, 0.0)
        frames = [dg.to_uint8(f).astype(np.float32) / 255.0 for f in frames]
        dec = dg.codec_roundtrip(frames, "h264", crfs[used % len(crfs)], None, "medium")
        out += [(dec[k].transpose(2, 0, 1).copy(), frames[k].transpose(2, 0, 1)) for k in (0, 3, 7)]
        used += 1
        if limit is not None and used >= limit:
            break
    return out


def calibrate_level_scale(net: Net, train_paths: list[Path], device: str = "cpu",
                          pictures: int = 12) -> dict[str, Any]:
    """The factor on the self-consistent level that restores best, on *training* pictures.

    A deblocker removes only part of the compression error, so the level at which its own
    correction has RMS L sits below the true level (a third to a half of it on photo pans
    and real clips); the part of it that is not white noise is scaled
    (:func:`vsrestore.levels.scaled_level`). The factor in :data:`LEVEL_SCALES` with the
    best mean Y-PSNR on *pictures* training pictures (spread over the sorted list, x264
    CRF 32/40/46 cycled) is kept; ties go to the smaller factor.
    """
    pics = tasks.unique_pictures(train_paths)
    pics = pics[::max(1, len(pics) // pictures)]
    samples = _pan_samples(pics, CALIBRATION_CRFS, limit=pictures)
    if not samples:
        raise ValueError("calibrate_level_scale: no training picture is 340x260 or larger after box-shrink")
    base = [(blind_level(net, x, device), levels.noise_sigma(x)) for x, _ in samples]
    score = {s: float(np.mean([_luma_psnr(run(net, x, _scaled(b, n, s), device), c)
                               for (x, c), (b, n) in zip(samples, base, strict=True)])) for s in LEVEL_SCALES}
    best = max(LEVEL_SCALES, key=lambda s: (round(score[s], 4), -s))
    return {"level_scale": best, "psnr_y_by_scale": {f"{s:g}": round(v, 3) for s, v in score.items()},
            "samples": len(samples)}


def _clean_crops(held: list[Path], size: int) -> list[np.ndarray]:
    return [data.center_crop(data.box_shrink(data.load_rgb(p), 2), size) for p in held]


def evaluate(recipe: Recipe, net: Net, held: list[Path], device: str = "cpu",
             reference: Net | None = None, level_scale: float = 1.0) -> dict[str, Any]:
    held = tasks.unique_pictures(held)
    if recipe.task == "sr":
        return _sr(recipe, net, held, device, reference)
    if recipe.task == "denoise":
        return _denoise(net, held, device)
    if recipe.task == "deblock":
        return _deblock(net, held, device, level_scale)
    if recipe.task == "dnsr":
        return _dnsr(recipe, net, held, device)
    raise ValueError(f"unknown task {recipe.task!r}")


def _sr(recipe: Recipe, net: Net, held: list[Path], device: str, reference: Net | None) -> dict[str, Any]:
    from ..metrics import stlpips

    pairs = data.sr_pairs(held, recipe.scale, crop=recipe.eval_crop)
    hrs = [hr for _, hr in pairs]
    outs = [run(net, lr, None, device) for lr, _ in pairs]
    lanczos = data.lanczos_up([lr for lr, _ in pairs], recipe.scale)
    res: dict[str, Any] = {"psnr_y": _mean(data.psnr_y, outs, hrs),
                           "psnr_y_lanczos": _mean(data.psnr_y, lanczos, hrs)}
    if recipe.kind == "perceptual":
        res["stlpips"] = _mean(stlpips, outs, hrs, 4)
        if reference is not None:
            ref = [run(reference, lr, None, device) for lr, _ in pairs]
            res["stlpips_reference"] = _mean(stlpips, ref, hrs, 4)
            res["psnr_y_reference"] = _mean(data.psnr_y, ref, hrs)
    return res


def _mean(metric: Callable[[np.ndarray, np.ndarray], float], outs: list[np.ndarray],
          refs: list[np.ndarray], digits: int = 3) -> float:
    return round(float(np.mean([metric(o, r) for o, r in zip(outs, refs, strict=True)])), digits)


def _denoise(net: Net, held: list[Path], device: str) -> dict[str, Any]:
    crops = _clean_crops(held, 256)
    res: dict[str, Any] = {}
    for sigma in (15, 25, 50):
        ins = [noisy(c, sigma, 1000 + i) for i, c in enumerate(crops)]
        est = [levels.noise_sigma(x) for x in ins]
        res[f"sigma{sigma}"] = {
            "psnr_noisy": round(float(np.mean([psnr_rgb(x, c) for x, c in zip(ins, crops, strict=True)])), 3),
            "psnr_true_sigma": round(float(np.mean([psnr_rgb(run(net, x, sigma / 255, device), c)
                                                    for x, c in zip(ins, crops, strict=True)])), 3),
            "psnr_blind": round(float(np.mean([psnr_rgb(run(net, x, e, device), c)
                                               for x, e, c in zip(ins, est, crops, strict=True)])), 3),
            "sigma_estimated_mean": round(float(np.mean(est)) * 255, 2)}
    return res


def _luma_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return data.psnr_y(a, b, shave=0)


def _deblock(net: Net, held: list[Path], device: str, level_scale: float) -> dict[str, Any]:
    p_in, p_true, p_blind, lv = [], [], [], []
    for x, c in _pan_samples(held, (40.0,)):
        true = float(np.sqrt(np.mean((x - c) ** 2)))
        est = blind_level(net, x, device, level_scale)
        p_in.append(_luma_psnr(x, c))
        p_true.append(_luma_psnr(run(net, x, true, device), c))
        p_blind.append(_luma_psnr(run(net, x, est, device), c))
        lv.append((true * 255, est * 255))
    return {"x264_crf40": {"psnr_y_input": round(float(np.mean(p_in)), 3),
                           "psnr_y_blind": round(float(np.mean(p_blind)), 3),
                           "psnr_y_true_level": round(float(np.mean(p_true)), 3),
                           "level_true_mean": round(float(np.mean([a for a, _ in lv])), 2),
                           "level_estimated_mean": round(float(np.mean([b for _, b in lv])), 2)}}


def _dnsr(recipe: Recipe, net: Net, held: list[Path], device: str) -> dict[str, Any]:
    from .. import models

    pairs = data.sr_pairs(held, recipe.scale, crop=recipe.eval_crop)
    dn = models.resolve("denoise-drunet", "train").module
    sr = models.resolve("sr-compact-x2", "train").module
    res: dict[str, Any] = {}
    for sigma in (15, 25):
        joint, seq = [], []
        for i, (lr, hr) in enumerate(pairs):
            x = noisy(lr, sigma, 2000 + i)
            est = levels.noise_sigma(x)
            joint.append(data.psnr_y(run(net, x, est, device), hr))
            seq.append(data.psnr_y(run(sr, run(dn, x, est)), hr))
        res[f"sigma{sigma}"] = {"psnr_y_joint": round(float(np.mean(joint)), 3),
                                "psnr_y_denoise_then_upscale": round(float(np.mean(seq)), 3)}
    return res
