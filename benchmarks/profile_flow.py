"""Where the time of ``bench_flow.py``'s "ours fast, no confidence" setup goes, stage by stage.

The same synthetic clip as ``bench_flow.py`` (a pan over ``retina`` with a moving ``coffee``
patch, noise 2.5/255). Each stage of the per-frame work of ``optical_flow(preset="fast",
confidence=False)`` followed by the compensating warp runs alone on the clip's frames, outside
VapourSynth, single-threaded, and prints its median time per frame over ``--rounds`` passes;
then the whole pipeline and mvtools' ``Super/Analyse/Compensate`` (blksize 16, overlap 8, the
setting ``bench_flow.py`` compares against) through VapourSynth with one thread, net of
rendering the source, so the stage sums can be set against what each method costs per frame.

    .venv/bin/python benchmarks/profile_flow.py [--size 640x360] [--frames 48] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
import vapoursynth as vs
from bench_flow import SOURCE, fps, make_clip, mvtools, ours, source
from vsrestore.filters import optical_flow as of
from vsrestore.kernels.warp import warp

from vsrestore import motion

core = vs.core


def per_frame(fn: Callable[[int], object], n: int, rounds: int) -> float:
    """Median over *rounds* of the mean ms per call of ``fn(i)`` for i = 1 .. n-1."""
    ts = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(1, n):
            fn(i)
        ts.append((time.perf_counter() - t0) / (n - 1) * 1e3)
    return statistics.median(ts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    try:
        w, h = (int(v) for v in a.size.lower().split("x"))
    except ValueError:
        ap.error(f"--size {a.size!r}: use WIDTHxHEIGHT, e.g. 640x360")
    if min(w, h) < 64 or a.frames < 3 or a.rounds < 1:
        ap.error("--size: both sides at least 64; --frames at least 3; --rounds at least 1")
    core.num_threads = 1
    cv2.setNumThreads(1)
    clip, _, _, _ = make_clip(w, h, a.frames)
    n, red = a.frames, motion.finest_factor("fast")
    sw, sh = max(1, round(w / red)), max(1, round(h / red))
    full = [np.asarray(f[0]).copy() for f in of._luma(clip).frames(close=True)]
    small = [cv2.resize(f, (sw, sh), interpolation=cv2.INTER_LINEAR) for f in full]
    flows = [np.zeros((2, sh, sw), np.float32)] + [
        motion.dense_flow(small[i - 1], small[i], preset="fast", reduced=red) for i in range(1, n)]
    planes = np.zeros((3, h, w), np.float32)

    def write(i: int) -> None:
        of._write_plane(planes[0], flows[i][0], w / sw)
        of._write_plane(planes[1], flows[i][1], h / sh)
        of._write_plane(planes[2], of._inside(flows[i]), 1.0)

    u8 = [motion._to_u8_pair(small[i - 1], small[i]) for i in range(n)]
    dis = motion._dis(motion._DIS["fast"], 0, (sh, sw))
    warped = np.empty((h, w), np.float32)
    stages: dict[str, Callable[[int], object]] = {
        f"luma downscale to {sw}x{sh} (cv2, as zimg does)":
            lambda i: cv2.resize(full[i], (sw, sh), interpolation=cv2.INTER_LINEAR),
        "dense_flow (DIS fast + quantisation)":
            lambda i: motion.dense_flow(small[i - 1], small[i], preset="fast", reduced=red),
        "  of which DIS calc alone": lambda i: dis.calc(u8[i][1], u8[i][0], None),
        "scene-cut check (is_scene_cut)":
            lambda i: motion.is_scene_cut(small[i - 1], small[i], flow=flows[i]),
        "inside mask + three plane writes": write,
        f"warp {w}x{h} (kernels.warp)": lambda i: warp(full[i - 1], planes[0], planes[1], out=warped),
    }
    print(f"{w}x{h}, {n} frames, search frames {sw}x{sh}, 1 thread; median of {a.rounds} passes")
    total = 0.0
    for name, fn in stages.items():
        ms = per_frame(fn, n, a.rounds)
        total += 0.0 if name.startswith("  ") else ms
        print(f"  {name:48s} {ms:7.3f} ms/frame")
    print(f"  {'sum of the stages':48s} {total:7.3f} ms/frame")
    timed = {"ours fast, no confidence (VapourSynth)": lambda: ours(clip, clip, "fast", confidence=False),
             "mvtools b16/o8 (VapourSynth)": lambda: mvtools(clip, clip, 16, None),
             SOURCE: lambda: source(clip)}
    runs: dict[str, list[float]] = {k: [] for k in timed}
    for _ in range(a.rounds):
        for k, make in timed.items():
            runs[k].append(1e3 / fps(make))
    med = {k: statistics.median(v) for k, v in runs.items()}
    for k in list(timed)[:2]:
        print(f"  {k:48s} {med[k] - med[SOURCE]:7.3f} ms/frame net of the source")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
