"""Residual jitter and speed: ``vr.stabilize`` vs OpenCV point-feature stabilisation.

Synthetic shots with ground truth, made from a photo shipped with scikit-image
(astronaut, upscaled 2x): a static shot and a constant-velocity pan (1.5 px/frame),
both with independent random gate weave per frame (uniform +-2 px, +-0.2 deg) and a
foreground patch moving 4 px/frame on its own. The residual is the RMS displacement
(over the lower-central region, away from the foreground's band) of the consecutive-
frame motion of a clip, measured with ``cv2.findTransformECC`` (MOTION_EUCLIDEAN),
minus the intended motion; the ratio output/input is printed (0 = all weave removed,
1 = none).

Peer: the widely copied OpenCV recipe (learnopencv.com, "Video Stabilization Using
Point Feature Matching in OpenCV"): goodFeaturesToTrack(200, 0.01, 30, blockSize=3),
calcOpticalFlowPyrLK, estimateAffinePartial2D (RANSAC), trajectory of (dx, dy, angle)
smoothed by a moving average with edge padding. Its radius is set to 17 so the box has
the same variance as our Gaussian (sigma 10); the recipe's trajectory/frame off-by-one
is fixed. Both run without border zoom (ours: ``borders="edge"``) so motion is compared
in the same pixel units. Speed: ours renders through VapourSynth with ``--threads``;
the peer is a sequential Python loop (its smoothing needs the whole trajectory first).

    .venv/bin/python benchmarks/bench_stabilize.py [--frames 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import time

import cv2
import numpy as np
import vapoursynth as vs
from skimage import data
from vsrestore.filters.stabilize import stabilize

from vsrestore.bridge import clip_from_arrays

W, H = 480, 320
PAN = 1.5
REGION = (slice(int(0.42 * H), int(0.92 * H)), slice(int(0.15 * W), int(0.85 * W)))


def make_shot(n: int, pan: float, seed: int) -> list[np.ndarray]:
    """RGB float frames ``(H, W, 3)`` of the upscaled astronaut photo, with weave and a foreground patch."""
    img = cv2.resize(data.astronaut().astype(np.float32) / 255, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    patch = cv2.resize(data.coffee().astype(np.float32) / 255, (300, 200))[60:156, 120:216]
    rng = np.random.default_rng(seed)
    c = np.array([(W - 1) / 2, (H - 1) / 2])
    origin = np.array([(1024 - W - pan * n) / 2, (1024 - H) / 2])
    frames = []
    for i in range(n):
        dx, dy = rng.uniform(-2, 2, 2)
        th = math.radians(rng.uniform(-0.2, 0.2))
        rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
        t = c + origin + np.array([pan * i + dx, dy]) - rot @ c
        m = np.hstack([rot, t[:, None]])
        fr = cv2.warpAffine(img, m, (W, H), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        x0 = 8 + (4 * i) % (W - 112)  # wraps round on long clips
        fr[8:104, x0:x0 + 96] = patch
        frames.append(np.clip(fr, 0, 1))
    return frames


def grey(fr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(fr, cv2.COLOR_RGB2GRAY), dtype=np.float32)


def jitter_rms(frames: list[np.ndarray], velocity: float) -> float:
    """RMS (px) over REGION of consecutive-frame motion (ECC) minus the intended motion."""
    ys, xs = np.mgrid[REGION[0].start:REGION[0].stop:8, REGION[1].start:REGION[1].stop:8]
    pts = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    mask = np.zeros((H, W), np.uint8)
    mask[REGION] = 1
    intended = np.array([[1, 0, velocity], [0, 1, 0]])
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6)
    sq = []
    for a, b in zip(frames, frames[1:], strict=False):
        ga, gb = grey(a), grey(b)
        (sx, sy), _ = cv2.phaseCorrelate(gb[REGION].astype(np.float64), ga[REGION].astype(np.float64))
        warp = np.array([[1, 0, sx], [0, 1, sy]], np.float32)
        _, warp = cv2.findTransformECC(gb, ga, warp, cv2.MOTION_EUCLIDEAN, crit, mask, 3)
        e = (warp.astype(np.float64) - intended) @ pts
        sq.append(float(np.sum(e * e, axis=0).mean()))
    return math.sqrt(float(np.mean(sq)))


def run_ours(frames: list[np.ndarray], threads: int) -> tuple[list[np.ndarray], float]:
    core = vs.core
    core.num_threads = threads
    src = clip_from_arrays([np.ascontiguousarray(f.transpose(2, 0, 1)) for f in frames], vs.RGBS)
    out = stabilize(src, smoothing=10, borders="edge")
    t = time.perf_counter()
    res = [np.stack([np.asarray(f[p]) for p in range(3)], -1).copy() for f in out.frames(close=True)]
    return res, len(frames) / (time.perf_counter() - t)


def run_peer(frames: list[np.ndarray], radius: int = 17) -> tuple[list[np.ndarray], float]:
    t = time.perf_counter()
    u8 = [(grey(f) * 255 + 0.5).astype(np.uint8) for f in frames]
    moves = np.zeros((len(frames), 3))
    for i in range(1, len(frames)):
        pts = cv2.goodFeaturesToTrack(u8[i - 1], maxCorners=200, qualityLevel=0.01, minDistance=30,
                                      blockSize=3)
        nxt, status, _ = cv2.calcOpticalFlowPyrLK(u8[i - 1], u8[i], pts, None)
        ok = status.ravel() == 1
        m, _ = cv2.estimateAffinePartial2D(pts[ok], nxt[ok])
        if m is not None:
            moves[i] = m[0, 2], m[1, 2], math.atan2(m[1, 0], m[0, 0])
    traj = np.cumsum(moves, axis=0)  # traj[i]: where frame i's content has moved to
    pad = np.pad(traj, ((radius, radius), (0, 0)), mode="edge")
    kernel = np.ones(2 * radius + 1) / (2 * radius + 1)
    smooth = np.stack([np.convolve(pad[:, j], kernel, mode="valid") for j in range(3)], 1)
    out = []
    for fr, (dx, dy, da) in zip(frames, smooth - traj, strict=True):
        m = np.array([[math.cos(da), -math.sin(da), dx], [math.sin(da), math.cos(da), dy]])
        out.append(cv2.warpAffine(fr, m, (W, H), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE))
    return out, len(frames) / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    print(f"{W}x{H}, {a.frames} frames per shot, weave +-2 px / +-0.2 deg, foreground patch 96x96")
    print(f"{'shot':8} {'input px':>9} {'ours':>8} {'peer':>8} {'peer/ours':>10}")
    speeds = []
    for name, pan in (("static", 0.0), ("pan", PAN)):
        frames = make_shot(a.frames, pan, a.seed)
        ours, fps_ours = run_ours(frames, a.threads)
        peer, fps_peer = run_peer(frames)
        base = jitter_rms(frames, pan)
        r_ours, r_peer = jitter_rms(ours, pan) / base, jitter_rms(peer, pan) / base
        print(f"{name:8} {base:9.3f} {r_ours:8.4f} {r_peer:8.4f} {r_peer / r_ours:10.2f}")
        speeds.append((fps_ours, fps_peer))
    fo, fp = (float(np.mean(s)) for s in zip(*speeds, strict=True))
    print("residual = output jitter / input jitter (lower is better)")
    print(f"speed: ours {fo:.1f} fps ({a.threads} threads), peer {fp:.1f} fps (1 thread), "
          f"ours/peer {fo / fp:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
