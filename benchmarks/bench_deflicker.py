"""Flicker removal with ground truth: ``vr.deflicker`` vs ffmpeg's ``deflicker`` filter.

Scenes (grey, 16-bit, from scikit-image's ``astronaut`` and ``coffee`` photos): a static
shot and a pan (1 px/frame, plus a patch of another photo moving by (+1, -2) px/frame),
each with per-frame flicker: a global gain U(0.9, 1.1) times a smooth local field +-5 %,
new every frame, and noise sigma 0.01. Measures:

* residual flicker: RMS over 32x32 blocks of the temporal std of (block mean of output) /
  (block mean of clean frame), as a fraction of the same for the input (lower is better);
* fade error: a clean fade (8 frames at 100 %, a linear ramp to 50 % over 24 frames, 8 at
  50 %, pan, no flicker): the largest |mean(output) / mean(input) - 1| over frames;
* fade + flicker: the same fade with flicker, residual flicker of frame means (output /
  clean), as a fraction of the input's;
* fps: whole clip rendered (ours: VapourSynth with ``core.num_threads`` threads; ffmpeg:
  the subprocess, raw frames piped in and out).

Peer: ffmpeg's ``deflicker`` (the imageio-ffmpeg binary), the classic global method: each
frame's mean luma is scaled to the arithmetic mean of the means of a moving window
(``mode=am``). Its documented default ``size=5`` and ``size=25`` (our default window,
2 * 12 + 1) are both run. It scales luma around 0 and has no notion of motion, regions or
fades. Ours runs with defaults; ``local=False`` is shown as an ablation.

    /tmp/vsenv/bin/python benchmarks/bench_deflicker.py --width 256 --height 192 --frames 48
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from collections.abc import Callable

import cv2
import imageio_ffmpeg
import numpy as np
import vapoursynth as vs
from vsrestore.filters.deflicker import deflicker

from vsrestore.bridge import clip_from_arrays, clip_to_arrays

core = vs.core
B = 32  # measurement block
Method = Callable[[list[np.ndarray]], list[np.ndarray]]


def _grey(name: str) -> np.ndarray:
    from skimage import data

    img = getattr(data, name)().astype(np.float32) / 255
    return img @ np.array([0.2126, 0.7152, 0.0722], np.float32) if img.ndim == 3 else img


def scene(w: int, h: int, t: int, *, pan: bool, flicker: bool = True, levels: np.ndarray | None = None,
          seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(clean, degraded) grey frames in 0..1."""
    rng = np.random.default_rng(seed)
    need_w, need_h = w + t + 40, h + 80
    bg = _grey("astronaut")
    k = max(need_w / bg.shape[1], need_h / bg.shape[0], 1.0)
    bg = 0.05 + 0.8 * cv2.resize(bg, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC).clip(0, 1)
    p = max(16, min(w, h) // 3)
    fg = 0.05 + 0.8 * _grey("coffee")[100:100 + p, 200:200 + p]
    clean, degraded = [], []
    for i in range(t):
        x0 = 20 + (i if pan else 0)
        f = bg[40:40 + h, x0:x0 + w].copy()
        if pan:
            fy, fx = h // 3 + i // 2, min(w - p, w // 2 + t) - 2 * i
            if 0 <= fx and fy + p <= h:
                f[fy:fy + p, fx:fx + p] = fg
        if levels is not None:
            f *= levels[i]
        clean.append(f)
        g: float | np.ndarray = 1.0
        if flicker:
            field = cv2.resize(rng.uniform(-1, 1, (3, 4)).astype(np.float32), (w, h),
                               interpolation=cv2.INTER_CUBIC)
            g = rng.uniform(0.9, 1.1) * (1 + 0.05 * field / max(float(np.abs(field).max()), 1e-6))
        degraded.append(np.clip(f * g + rng.normal(0, 0.01, f.shape), 0, 1).astype(np.float32))
    return clean, degraded


def block_flicker(frames: list[np.ndarray], clean: list[np.ndarray]) -> float:
    h, w = (clean[0].shape[0] // B) * B, (clean[0].shape[1] // B) * B

    def bm(x: np.ndarray) -> np.ndarray:
        return x[:h, :w].reshape(h // B, B, w // B, B).mean(axis=(1, 3))

    r = np.array([bm(o) / bm(c) for o, c in zip(frames, clean, strict=True)])
    return float(np.sqrt(np.mean(r.std(axis=0) ** 2)))


def _to16(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [np.rint(np.clip(f, 0, 1) * 65535).astype(np.uint16) for f in frames]


def ours(**kwargs: object) -> Method:
    def run(frames: list[np.ndarray]) -> list[np.ndarray]:
        clip = clip_from_arrays([f[None].astype(np.float32) for f in _to16(frames)], vs.GRAY16)
        out = clip_to_arrays(deflicker(core.std.SetFrameProps(clip, _Range=1), **kwargs))  # type: ignore[arg-type]
        return [o[0] / 65535.0 for o in out]

    return run


def ffmpeg_deflicker(size: int) -> Method:
    exe = imageio_ffmpeg.get_ffmpeg_exe()

    def run(frames: list[np.ndarray]) -> list[np.ndarray]:
        h, w = frames[0].shape
        raw_fmt = ["-f", "rawvideo", "-pix_fmt", "gray16le"]
        cmd = [exe, "-v", "error", *raw_fmt, "-s", f"{w}x{h}", "-r", "24", "-i", "-",
               "-vf", f"deflicker=size={size}:mode=am", *raw_fmt, "-"]
        raw = b"".join(f.astype("<u2").tobytes() for f in _to16(frames))
        res = subprocess.run(cmd, input=raw, capture_output=True, check=True)
        out = np.frombuffer(res.stdout, "<u2").reshape(-1, h, w)
        if len(out) != len(frames):
            raise RuntimeError(f"ffmpeg returned {len(out)} frames for {len(frames)}")
        return [o / 65535.0 for o in out]

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--height", type=int, default=192)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    core.num_threads = args.threads
    w, h, t = args.width, args.height, args.frames
    levels = np.concatenate([np.ones(8), np.linspace(1, 0.5, 24), np.full(8, 0.5)]).astype(np.float32)
    data = {
        "static": scene(w, h, t, pan=False),
        "pan": scene(w, h, t, pan=True, seed=1),
        "fade": scene(w, h, len(levels), pan=True, flicker=False, levels=levels, seed=2),
        "fade+flicker": scene(w, h, len(levels), pan=True, levels=levels, seed=3),
    }
    methods: dict[str, Method] = {
        "vr.deflicker (defaults)": ours(),
        "vr.deflicker local=False": ours(local=False),
        "ffmpeg deflicker size=5": ffmpeg_deflicker(5),
        "ffmpeg deflicker size=25": ffmpeg_deflicker(25),
    }
    print(f"{w}x{h}, {t} frames (fades: {len(levels)}), {core.num_threads} threads")
    print(f"{'method':28s} {'static':>7s} {'pan':>7s} {'fade err':>9s} {'fade+fl':>8s} {'fps':>7s}")
    rows: dict[str, tuple[float, float, float, float, float]] = {}
    for name, run in methods.items():
        run(data["static"][1][:8])  # warm-up: thread pools, flow instances, ffmpeg's first start
        res, secs, n = {}, 0.0, 0
        for key in ("static", "pan"):
            clean, src = data[key]
            t0 = time.perf_counter()
            out = run(src)
            secs, n = secs + time.perf_counter() - t0, n + len(src)
            res[key] = block_flicker(out, clean) / block_flicker(src, clean)
        _, src = data["fade"]
        out = run(src)
        ratios = np.array([o.mean() / s.mean() for o, s in zip(out, src, strict=True)])
        fade_err = float(np.max(np.abs(ratios - 1)))
        clean, src = data["fade+flicker"]
        out = run(src)
        mc = np.array([c.mean() for c in clean])
        ff = float(np.std([o.mean() for o in out] / mc) / np.std([s.mean() for s in src] / mc))
        rows[name] = (res["static"], res["pan"], fade_err, ff, n / secs)
        print(f"{name:28s} {res['static']:7.3f} {res['pan']:7.3f} {fade_err:9.4f} {ff:8.3f} {n / secs:7.1f}",
              flush=True)
    base = rows["vr.deflicker (defaults)"]
    print("\nratios ours / peer (residual flicker: < 1 is better; fps: > 1 is faster):")
    for name in ("ffmpeg deflicker size=5", "ffmpeg deflicker size=25"):
        p = rows[name]
        print(f"  vs {name}: static {base[0] / p[0]:.2f}x, pan {base[1] / p[1]:.2f}x, "
              f"fade error {base[2]:.4f} vs {p[2]:.4f}, fade+flicker {base[3] / p[3]:.2f}x, "
              f"fps {base[4] / p[4]:.2f}x")


if __name__ == "__main__":
    main()
