"""Flow accuracy (end-point error on known motion) and speed: our DIS presets vs OpenCV's own.

Scenes: tests/test_optical_flow.py's ``scene`` (224x160: a window panning over a real photo,
a patch of another photo moving differently, rendered at 2x with sub-pixel shifts, noise 1-1.5 %):
astronaut/chelsea, coffee/astronaut (the two the tests use) and rocket/coffee. Score: mean EPE
over frames 1..7, away from the borders and the patch's edges (the tests' ``valid`` mask).

Setups: ``vsrestore.motion.dense_flow`` for each preset; OpenCV's DIS presets (ULTRAFAST, FAST,
MEDIUM) on the 8-bit frames as OpenCV ships them; Farneback at the best of the tests' settings
per scene. Time: median ms per pair, one thread, on the 640x360 luma frames of
``bench_flow.py``'s clip (a pan plus a moving patch), ``--rounds`` passes over ``--frames`` pairs.

    .venv/bin/python benchmarks/bench_flow_epe.py [--rounds 5] [--frames 24]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import vapoursynth as vs
from bench_flow import make_clip
from vsrestore.filters.optical_flow import _luma

from vsrestore import motion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import test_optical_flow as T  # noqa: E402  (the tests' scenes and mask: one definition)

Flow = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (prev, cur) 0..1 float -> backward flow of cur


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def opencv_dis(preset: int) -> Flow:
    inst = cv2.DISOpticalFlow.create(preset)
    return lambda prev, cur: inst.calc(_u8(cur), _u8(prev), None).transpose(2, 0, 1)  # type: ignore[call-overload]


def ours(preset: str) -> Flow:
    return lambda prev, cur: motion.dense_flow(prev, cur, preset=preset)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=24)
    a = ap.parse_args()
    if a.rounds < 1 or a.frames < 2:
        ap.error("--rounds at least 1, --frames at least 2")
    cv2.setNumThreads(1)
    vs.core.num_threads = 1
    scenes = {"astronaut/chelsea": T.scene(),
              "coffee/astronaut": T.scene(bg="coffee", fg="astronaut", v=(-0.8, 0.45), u=(-1.9, -1.4),
                                          noise=0.015, seed=1),
              "rocket/coffee": T.scene(bg="rocket", fg="coffee", v=(0.6, 1.1), u=(-1.2, 0.9), seed=2)}
    setups: dict[str, Flow] = {f"ours {p}": ours(p) for p in motion.PRESETS}
    setups |= {f"OpenCV DIS {name}": opencv_dis(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{name}"))
               for name in ("ULTRAFAST", "FAST", "MEDIUM")}
    clip, _, _, _ = make_clip(640, 360, a.frames)
    frames = [np.asarray(f[0]).copy() for f in _luma(clip).frames(close=True)]
    ts = range(1, 8)
    print(f"mean EPE (px) over frames 1..7 of three 224x160 scenes; ms per pair at 640x360, one thread, "
          f"median of {a.rounds} passes over {a.frames - 1} pairs")
    print(f"{'setup':22s} " + " ".join(f"{k:>17s}" for k in scenes) + f" {'ms/pair':>8s}")
    for name, fn in setups.items():
        e = [np.mean([T.epe(fn(s.frames[t - 1], s.frames[t]), s, t) for t in ts]) for s in scenes.values()]
        runs = []
        for _ in range(a.rounds):
            t0 = time.perf_counter()
            for i in range(1, len(frames)):
                fn(frames[i - 1], frames[i])
            runs.append((time.perf_counter() - t0) / (len(frames) - 1) * 1e3)
        print(f"{name:22s} " + " ".join(f"{x:17.3f}" for x in e) + f" {statistics.median(runs):8.2f}")
    best = [min(np.mean([T.epe(T._farneback(_u8(s.frames[t - 1]), _u8(s.frames[t]), p), s, t) for t in ts])
                for p in T.FARNEBACK) for s in scenes.values()]
    print(f"{'Farneback (best)':22s} " + " ".join(f"{x:17.3f}" for x in best) + f" {'':>8s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
