"""Faded-print restoration: ``vr.restore_color`` vs gray-world and auto levels (CIEDE2000, fps).

Material: slow pans (2 px/frame, light grain) across the photos scikit-image ships
(astronaut, coffee, chelsea, rocket), faded in density D = -log10(T) of linear light
(sRGB curve, print D-max 3): ``D' = k * D + fog`` per channel, three profiles of
cyan/yellow dye loss (20-50 %), less magenta loss and base/stain fog. Score: mean CIEDE2000
(skimage, CIELAB D65, sRGB 0..1) of every 3rd frame against the unfaded pan; lower is better.

Peers, with their usual best settings for the task:
  * gray-world: each channel scaled (in linear light; better here than on code values) so
    its mean equals the mean grey, per frame;
  * auto levels: per-channel percentile stretch of code values with 0.1 % clipped at each
    end (Photoshop's "Enhance Per Channel Contrast" default), per frame.
OpenCV's ``xphoto`` white balancers are not in opencv-python-headless (no contrib), so
they are not run. Speed: ours renders an RGBS clip through VapourSynth (core threads as
set); peers are NumPy loops on one thread, on the same frames (default 1920x1080).

    python benchmarks/bench_restore_color.py [--frames 24] [--threads 2] [--size 1920x1080]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import vapoursynth as vs
from skimage import data
from vsrestore.filters.restore_color import restore_color

from vsrestore.bridge import clip_from_arrays, clip_to_arrays
from vsrestore.metrics import delta_e2000

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
FADES = {
    "pink": ((0.6, 0.9, 0.7), (0.03, 0.05, 0.08)),
    "red-yellow-stain": ((0.5, 0.85, 0.65), (0.06, 0.03, 0.10)),
    "cyan-loss": ((0.55, 0.95, 0.8), (0.02, 0.02, 0.05)),
}


def srgb_to_lin(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0, 1)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def lin_to_srgb(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0, 1)
    return np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)


def fade(frame: np.ndarray, k: tuple[float, ...], fog: tuple[float, ...]) -> np.ndarray:
    d = -np.log10(np.maximum(srgb_to_lin(frame), 1e-3))
    d = d * np.asarray(k)[:, None, None] + np.asarray(fog)[:, None, None]
    return lin_to_srgb(10.0 ** -d).astype(np.float32)


def pan(name: str, n: int, w: int, h: int, seed: int = 0) -> list[np.ndarray]:
    img = getattr(data, name)()[..., :3].astype(np.float32) / 255
    width = w + 2 * n
    img = cv2.resize(img, (width, max(h, round(width * img.shape[0] / img.shape[1]))),
                     interpolation=cv2.INTER_AREA if width < img.shape[1] else cv2.INTER_CUBIC)
    y0 = (img.shape[0] - h) // 2
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        fr = img[y0:y0 + h, 2 * i: 2 * i + w].transpose(2, 0, 1)
        out.append(np.clip(fr + rng.normal(0, 0.004, fr.shape), 0, 1).astype(np.float32))
    return out


delta_e = delta_e2000  # vsrestore.metrics: mean CIEDE2000 of sRGB frames (D65)


def gray_world(frame: np.ndarray) -> np.ndarray:
    lin = srgb_to_lin(frame)
    m = lin.reshape(3, -1).mean(axis=1)
    return lin_to_srgb(lin * (m.mean() / m)[:, None, None])


def auto_levels(frame: np.ndarray, clip_pct: float = 0.1) -> np.ndarray:
    lo, hi = np.percentile(frame.reshape(3, -1), [clip_pct, 100 - clip_pct], axis=1)
    return np.clip((frame - lo[:, None, None]) / np.maximum(hi - lo, 1e-6)[:, None, None], 0, 1)


def ours(frames: list[np.ndarray]) -> list[np.ndarray]:
    return clip_to_arrays(restore_color(clip_from_arrays(frames, vs.RGBS)))


def timed(fn, frames: list[np.ndarray]) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn(frames)
    return len(frames) / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", default="1920x1080", help="frame size for the speed run")
    a = ap.parse_args()
    vs.core.num_threads = a.threads
    methods = {"ours": ours, "gray-world": lambda fs: [gray_world(f) for f in fs],
               "auto-levels": lambda fs: [auto_levels(f) for f in fs]}
    scores: dict[str, list[float]] = {m: [] for m in ["faded", *methods]}
    print(f"{'case':28s} " + " ".join(f"{m:>11s}" for m in scores) + "   ours/gw  ours/al")
    for name in PHOTOS:
        ref = pan(name, a.frames, 256, 184)
        for fname, (k, fog) in FADES.items():
            faded = [fade(f, k, fog) for f in ref]
            row = {"faded": faded} | {m: fn(faded) for m, fn in methods.items()}
            res = {m: float(np.mean([delta_e(o, r) for o, r in list(zip(out, ref, strict=True))[::3]]))
                   for m, out in row.items()}
            for m, v in res.items():
                scores[m].append(v)
            print(f"{name + '/' + fname:28s} " + " ".join(f"{res[m]:11.2f}" for m in scores)
                  + f"   {res['ours'] / res['gray-world']:7.2f}  {res['ours'] / res['auto-levels']:7.2f}")
    mean = {m: float(np.mean(v)) for m, v in scores.items()}
    print(f"{'mean':28s} " + " ".join(f"{mean[m]:11.2f}" for m in scores)
          + f"   {mean['ours'] / mean['gray-world']:7.2f}  {mean['ours'] / mean['auto-levels']:7.2f}")
    w, h = (int(v) for v in a.size.split("x"))
    frames = [fade(f, *FADES["pink"]) for f in pan("astronaut", a.frames, w, h)]
    speed = {m: timed(fn, frames) for m, fn in methods.items()}
    print(f"speed at {w}x{h}: ours {speed['ours']:.1f} fps ({a.threads} threads), gray-world "
          f"{speed['gray-world']:.1f} fps, auto-levels {speed['auto-levels']:.1f} fps (1 thread)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
