"""Throughput: ``vsrestore.kernels.warp.warp`` (Numba, bilinear, clamp) vs OpenCV's ``cv2.remap``.

One 1920x1080 float32 plane, a smooth random flow (up to ~20 px), the same process, runs
interleaved. The peer runs with its documented best settings for the task: ``cv2.remap`` with
``INTER_LINEAR`` + ``BORDER_REPLICATE`` (our "bilinear" + "clamp"), float32 maps (map = grid + flow,
built once outside the timing, which favours OpenCV) and a preallocated ``dst``; both single-threaded
(``cv2.setNumThreads(1)``; our kernel is serial, parallelism comes from VapourSynth frame threads)
and with OpenCV's default threads. Ours writes into a preallocated ``out``. Prints each median and
the throughput ratio ours/cv2 (> 1: we are faster); the same for bicubic against ``INTER_CUBIC``
(Keys a = -0.75 there, Catmull-Rom a = -0.5 here: the same 4x4 taps). Informational lines (no peer):
reflect border, occlusion mask.

    .venv/bin/python benchmarks/bench_warp.py [--repeats 31] [--size 1920x1080]
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
from vsrestore.kernels import warp as W


def smooth_flow(rng: np.random.Generator, h: int, w: int, amp: float) -> tuple[np.ndarray, np.ndarray]:
    coarse = rng.standard_normal((h // 64 + 2, w // 64 + 2, 2)).astype(np.float32) * amp
    fl = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(fl[..., 0]), np.ascontiguousarray(fl[..., 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=31)
    ap.add_argument("--size", default="1920x1080")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    src = rng.random((h, w), dtype=np.float32)
    fx, fy = smooth_flow(rng, h, w, 8.0)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + fx, gy + fy
    out, dst = np.empty_like(src), np.empty_like(src)
    default_threads = cv2.getNumThreads()

    def cv2_remap(threads: int, interp: int = cv2.INTER_LINEAR) -> None:
        cv2.setNumThreads(threads)
        cv2.remap(src, mx, my, interp, dst=dst, borderMode=cv2.BORDER_REPLICATE)

    runs = {
        "ours (Numba, 1 thread)": lambda: W.warp(src, fx, fy, out=out),
        "cv2.remap, 1 thread": lambda: cv2_remap(1),
        f"cv2.remap, default threads ({default_threads})": lambda: cv2_remap(default_threads),
    }
    cubic = {
        "ours bicubic clamp (Numba, 1 thread)": lambda: W.warp(src, fx, fy, interp="bicubic", out=out),
        "cv2.remap INTER_CUBIC, 1 thread": lambda: cv2_remap(1, cv2.INTER_CUBIC),
    }
    info = {
        "ours bilinear reflect": lambda: W.warp(src, fx, fy, border="reflect", out=out),
        "ours occlusion_mask": lambda: W.occlusion_mask(fx, fy, -fx, -fy, out=out),
    }
    for f in [*runs.values(), *cubic.values(), *info.values()]:
        f()  # warm caches (our kernels are compiled at import)
    times: dict[str, list[float]] = {k: [] for k in [*runs, *cubic, *info]}
    for _ in range(args.repeats):
        for name, f in [*runs.items(), *cubic.items(), *info.items()]:
            t = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t)
    cv2.setNumThreads(default_threads)

    W.warp(src, fx, fy, out=out)
    cv2_remap(1)
    print(f"{w}x{h} float32, smooth flow |d| <= {np.abs(fx).max():.1f}/{np.abs(fy).max():.1f} px, "
          f"{args.repeats} interleaved repeats; max |ours - cv2| = {np.abs(out - dst).max():.2e}")
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    for name in [*runs, *cubic, *info]:
        print(f"  {name:<40} median {med[name]:7.2f} ms   min {min(times[name]) * 1e3:7.2f} ms")
    ours = med["ours (Numba, 1 thread)"]
    for name in list(runs)[1:]:
        print(f"throughput ratio ours / {name}: {med[name] / ours:.2f}x")
    ours_c, peer_c = list(cubic)
    print(f"throughput ratio ours bicubic / {peer_c}: {med[peer_c] / med[ours_c]:.2f}x "
          f"(OpenCV's cubic is Keys a = -0.75, ours Catmull-Rom a = -0.5: the same 4x4 taps)")


if __name__ == "__main__":
    main()
