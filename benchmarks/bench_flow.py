"""Motion compensation of frame n-1 onto frame n: ``optical_flow`` + bilinear warp vs mvtools.

The clip has known motion: a window panning at sub-pixel speed over a real photo
(scikit-image's ``retina``) and a patch of another photo (``coffee``) moving with
its own velocity, rendered at 2x with bicubic shifts, area-downscaled, per-frame
noise (sigma 2.5/255), YUV420P8 limited range. Both methods compensate the noisy
frame n-1 onto n; the error is measured on luma against the clean frame n, away
from the border, the patch's edges and what the patch uncovers (no true match there).

Peers (vapoursynth-mvtools, the settings its docs and the common denoise scripts
use for compensation): ``Super(pel=2, sharp=2)``, ``Analyse(isb=True, truemotion=True,
search=4, searchparam=2, delta=1)`` with blksize 8 / overlap 4, blksize 16 / overlap 8,
and blksize 16 / overlap 8 refined by ``Recalculate(blksize=8, overlap=4)``; then
``Compensate``. Ours: ``optical_flow(direction="backward")`` (presets medium and fast;
on a machine with an NVIDIA GPU also ``backend=TorchCUDA()``, the PyTorch estimator),
then sampling frame n-1 at ``x + dx, y + dy`` (``kernels.warp``, bilinear, edges clamped). Everything runs in
this process with ``core.num_threads`` threads (OpenCV itself single-threaded unless
``--cv-threads``); runs are interleaved and the median
fps of each is printed with its ratio to the best mvtools setting, and the median of the
ratios of the runs made one after the other in each round (steadier when the machine's load drifts).

Every setup renders the synthetic source too (a Python frame source, then luma as GRAYS),
a fifth to a third of mvtools' time; "source only" times it alone, and the last ratio
("net") compares the time per frame each method adds to it. The ratios move with what else
runs; ``--only`` (just the named setups and the source) is the steadier comparison.
``--sizes`` runs several resolutions (the motion scales with the width; larger sizes upscale
the same photo, so their content is smoother than real HD). Two runs of

    .venv/bin/python benchmarks/bench_flow.py --threads 1 --rounds 7 \
        --sizes 320x180,640x360,1280x720,1920x1080 --only "ours fast, no confidence;mvtools b16/o8"

gave "fast, no confidence" 0.73/0.69x mvtools b16/o8's speed at 320x180 (and -2.45 dB on
clean frames), 0.83/0.78x at 640x360 (+1.56/+0.40 dB noisy/clean), 1.11/1.04x at 1280x720
(+2.43/+2.38 dB) and 1.20/1.17x at 1920x1080 (+2.70/+4.80 dB). With the two-stage scene-cut
check, four runs at ``--rounds 9 --sizes 640x360,720x480``: 0.80-0.98x at 640x360 and
0.93-0.98x at 720x480 (+1.59/-0.52 dB); the README has the table. All setups interleaved:

    .venv/bin/python benchmarks/bench_flow.py --threads 1 --rounds 7
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
import vapoursynth as vs
from vsrestore.filters.optical_flow import optical_flow
from vsrestore.kernels.warp import warp

from vsrestore.bridge import clip_from_arrays, map_frames, new_frame
from vsrestore.runtime.backends import TorchCUDA, cuda_available

core = vs.core
BG_V = (2.35, -0.85)  # background content moves by -BG_V px/frame (backward flow = +BG_V)
FG_U = (-3.1, 1.7)  # the patch moves by FG_U px/frame (backward flow = -FG_U)
# both at 640 px wide; other widths scale them (the same shot at another resolution)


def velocities(w: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(background, patch) velocity in px/frame at width *w*."""
    k = w / 640
    return (BG_V[0] * k, BG_V[1] * k), (FG_U[0] * k, FG_U[1] * k)


def _grey(name: str) -> np.ndarray:
    from skimage import data

    img = getattr(data, name)().astype(np.float32) / 255
    return img @ np.array([0.2126, 0.7152, 0.0722], np.float32) if img.ndim == 3 else img


def _shift(src: np.ndarray, dx: float, dy: float, w: int, h: int, border: int) -> np.ndarray:
    m = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    return cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=border)


def make_clip(w: int, h: int, n: int) -> tuple[vs.VideoNode, vs.VideoNode, list[np.ndarray],
                                               list[np.ndarray]]:
    """(noisy YUV420P8 clip, the same clean, clean luma 0..1, masks of pixels with a match in n-1)."""
    rng = np.random.default_rng(0)
    bg_v, fg_u = velocities(w)
    bg = cv2.resize(_grey("retina")[200:1200, 150:1250], (2 * w + 200, 2 * h + 200),
                    interpolation=cv2.INTER_AREA)
    patch = cv2.resize(_grey("coffee"), (2 * w, 2 * h))[: h, : 2 * w // 3]  # h/2 x w/3 on screen
    clean, noisy, alpha = [], [], []
    for t in range(n):
        img = _shift(bg, 2 * (40 + t * bg_v[0]), 2 * (60 + t * bg_v[1]), 2 * w, 2 * h, cv2.BORDER_REFLECT)
        px, py = 2 * (w / 2 + t * fg_u[0]), 2 * (h / 4 + t * fg_u[1])
        fg = _shift(patch, -px, -py, 2 * w, 2 * h, cv2.BORDER_CONSTANT)
        al = _shift(np.ones_like(patch), -px, -py, 2 * w, 2 * h, cv2.BORDER_CONSTANT).clip(0, 1)
        img = cv2.resize(img * (1 - al) + fg * al, (w, h), interpolation=cv2.INTER_AREA)
        clean.append(img)
        noisy.append(np.clip(img + rng.normal(0, 2.5 / 255, img.shape), 0, 1).astype(np.float32))
        alpha.append(cv2.resize(al, (w, h), interpolation=cv2.INTER_AREA))
    masks = [np.zeros((h, w), bool)]
    k = np.ones((9, 9), np.uint8)
    for t in range(1, n):
        # the background point of frame t came from x + bg_v in t-1: there it must not be covered
        covered_before = _shift(alpha[t - 1], bg_v[0], bg_v[1], w, h, cv2.BORDER_CONSTANT) > 0.02
        edges = cv2.dilate(((alpha[t] > 0.02) & (alpha[t] < 0.98)).astype(np.uint8), k) > 0
        ok = ~edges & ((alpha[t] > 0.98) | ~covered_before)
        ok[:16], ok[-16:], ok[:, :16], ok[:, -16:] = False, False, False, False
        masks.append(ok)
    return _yuv(noisy), _yuv(clean), clean, masks


def _yuv(frames: list[np.ndarray]) -> vs.VideoNode:
    grey = clip_from_arrays([f[None] for f in frames], vs.GRAYS)
    y = core.resize.Point(grey, format=vs.GRAY8, range_in=1, range=0, dither_type="none")
    u = core.std.BlankClip(y, width=y.width // 2, height=y.height // 2, color=128)
    yuv = core.std.ShufflePlanes([y, u, u], [0, 0, 0], vs.YUV)
    return core.std.SetFrameProps(yuv, _Matrix=1, _Range=0)


def ours(clip: vs.VideoNode, src: vs.VideoNode, preset: str, scale: float = 1.0,
         confidence: bool = True, backend: TorchCUDA | None = None) -> vs.VideoNode:
    """Frame n-1 of *src* warped onto n with our backward flow of *clip*, as GRAYS 0..1."""
    flow = optical_flow(clip, preset=preset, scale=scale, confidence=confidence, backend=backend)
    y = core.resize.Point(core.std.ShufflePlanes(src, 0, vs.GRAY), format=vs.GRAYS, range_in=0, range=1)
    prev = y[0] + y[:-1]

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        out = new_frame(y, f[1])
        warp(np.asarray(f[1][0]), np.asarray(f[0][0]), np.asarray(f[0][1]), out=np.asarray(out[0]))
        return out

    return map_frames(y, [flow, prev], fn)


def mvtools(clip: vs.VideoNode, src: vs.VideoNode, blksize: int, recalc: int | None) -> vs.VideoNode:
    """Frame n-1 of *src* compensated onto n with mvtools vectors from *clip*, as GRAYS 0..1."""
    sup = core.mv.Super(clip, pel=2, sharp=2)
    vec = core.mv.Analyse(sup, isb=True, blksize=blksize, overlap=blksize // 2, truemotion=True,
                          search=4, searchparam=2, delta=1)
    if recalc:
        vec = core.mv.Recalculate(sup, vec, blksize=recalc, overlap=recalc // 2, truemotion=True,
                                  search=4, searchparam=2)
    comp = core.mv.Compensate(src, sup if src is clip else core.mv.Super(src, pel=2, sharp=2), vec)
    y = core.std.ShufflePlanes(comp, 0, vs.GRAY)
    return core.resize.Point(y, format=vs.GRAYS, range_in=0, range=1)


SOURCE = "source only"


def source(clip: vs.VideoNode) -> vs.VideoNode:
    """What every setup renders besides its own work: the source's luma as GRAYS 0..1."""
    y = core.std.ShufflePlanes(clip, 0, vs.GRAY)
    return core.resize.Point(y, format=vs.GRAYS, range_in=0, range=1)


def error(comp: vs.VideoNode, clean: list[np.ndarray], masks: list[np.ndarray]) -> tuple[float, float]:
    """(PSNR dB, MAE in 8-bit codes) of compensated frames 1.. against the clean frames."""
    se, ae, cnt = 0.0, 0.0, 0
    for n, f in enumerate(comp.frames(close=True)):
        if n == 0:
            continue
        d = (np.asarray(f[0], dtype=np.float64) - clean[n])[masks[n]]
        se, ae, cnt = se + float((d * d).sum()), ae + float(np.abs(d).sum()), cnt + d.size
    return 10 * np.log10(1 / (se / cnt)), 255 * ae / cnt


def fps(make: Callable[[], vs.VideoNode]) -> float:
    clip = make()  # a fresh graph: no frame cache carried between runs
    t0 = time.perf_counter()
    for _ in clip.frames(close=True):
        pass
    return clip.num_frames / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--sizes", default=None,
                    help="several sizes, one after the other, e.g. 640x360,1280x720,1920x1080 "
                         "(replaces --width/--height; a summary of all closes the output)")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cv-threads", type=int, default=1,
                    help="OpenCV's own threads inside each frame request (default 1: all "
                         "parallelism comes from VapourSynth's frame threads, as for mvtools)")
    ap.add_argument("--only", default=None,
                    help="setups to run, separated by ';' (at least one mvtools one), e.g. "
                         "'ours fast, no confidence;mvtools b16/o8': the other setups change "
                         "the machine's state between the timed runs")
    a = ap.parse_args()
    try:
        sizes = ([tuple(int(v) for v in wh.lower().split("x")) for wh in a.sizes.split(",")]
                 if a.sizes else [(a.width, a.height)])
    except ValueError:
        ap.error(f"--sizes {a.sizes!r}: use WIDTHxHEIGHT[,WIDTHxHEIGHT...], e.g. 640x360,1280x720")
    if any(len(wh) != 2 or min(wh) < 64 for wh in sizes):
        ap.error(f"--sizes {a.sizes!r}: each size is WIDTHxHEIGHT, both at least 64")
    core.num_threads = a.threads
    cv2.setNumThreads(a.cv_threads)
    names = [n.strip() for n in a.only.split(";") if n.strip()] if a.only else None
    summary: list[str] = []
    for w, h in sizes:
        lines = run(w, h, a.frames, a.rounds, a.threads, a.cv_threads, names, ap)
        summary += [f"{w}x{h}: {line}" for line in lines]
        print()
    if len(sizes) > 1:
        print("summary")
        print("\n".join(summary))
    return 0


def run(w: int, h: int, frames: int, rounds: int, threads: int, cv_threads: int, only: list[str] | None,
        ap: argparse.ArgumentParser) -> list[str]:
    """Measure every setup at *w* x *h*; print the table; return the per-method ratio lines."""
    clip, clean_clip, clean, masks = make_clip(w, h, frames)
    setups: dict[str, Callable[[vs.VideoNode], vs.VideoNode]] = {
        "ours medium": lambda src: ours(clip, src, "medium"),
        "ours fast": lambda src: ours(clip, src, "fast"),
        "ours fast, no confidence": lambda src: ours(clip, src, "fast", confidence=False),
        "ours ultrafast, no conf.": lambda src: ours(clip, src, "ultrafast", confidence=False),
        "ours medium 1/2, no conf.": lambda src: ours(clip, src, "medium", 0.5, confidence=False),
        **({"ours CUDA fast, no conf.": lambda src: ours(clip, src, "fast", confidence=False,
                                                         backend=TorchCUDA()),
            "ours CUDA medium, no conf.": lambda src: ours(clip, src, "medium", confidence=False,
                                                           backend=TorchCUDA())}
           if cuda_available() else {}),
        "mvtools b8/o4": lambda src: mvtools(clip, src, 8, None),
        "mvtools b16/o8": lambda src: mvtools(clip, src, 16, None),
        "mvtools b16/o8+recalc b8/o4": lambda src: mvtools(clip, src, 16, 8),
    }
    if only is not None:
        unknown = [n for n in only if n not in setups]
        if unknown or not any(n.startswith("mvtools") for n in only):
            ap.error(f"--only: unknown {unknown} or no mvtools setup; setups: {'; '.join(setups)}")
        setups = {n: setups[n] for n in only}
    bg_v, fg_u = velocities(w)
    print(f"{w}x{h}, {frames} frames, {threads} threads (OpenCV {cv_threads}), "
          f"bg ({bg_v[0]:.2f}, {bg_v[1]:.2f}) px/f, patch ({fg_u[0]:.2f}, {fg_u[1]:.2f}) px/f")
    print("noisy: frame n-1 of the noisy input compensated (what a denoiser gets; an interpolation")
    print("       that averages noise helps); clean: the same vectors applied to the clean frames")
    errs = {name: error(make(clip), clean, masks) for name, make in setups.items()}
    errs_clean = {name: error(make(clean_clip), clean, masks) for name, make in setups.items()}
    timed: dict[str, Callable[[], vs.VideoNode]] = {
        name: (lambda make=make: make(clip)) for name, make in setups.items()}  # type: ignore[misc]
    timed[SOURCE] = lambda: source(clip)
    runs: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(rounds):
        for name, make in timed.items():
            runs[name].append(fps(make))
    med = {name: statistics.median(v) for name, v in runs.items()}
    peers = [name for name in setups if name.startswith("mvtools")]
    best_err = max(peers, key=lambda k: errs_clean[k][0])
    best_fps = max(peers, key=lambda k: med[k])
    print(f"{'setup':28s} {'noisy: PSNR dB':>14s} {'MAE':>6s} {'clean: PSNR dB':>14s} {'MAE':>6s} "
          f"{'fps (median)':>12s}  runs")
    for name in setups:
        (p, m), (pc, mc) = errs[name], errs_clean[name]
        print(f"{name:28s} {p:14.2f} {m:6.3f} {pc:14.2f} {mc:6.3f} {med[name]:12.2f}  "
              f"{', '.join(f'{x:.2f}' for x in runs[name])}")
    print(f"{SOURCE:28s} {'':>14s} {'':>6s} {'':>14s} {'':>6s} {med[SOURCE]:12.2f}  "
          f"{', '.join(f'{x:.2f}' for x in runs[SOURCE])}")

    def net(name: str) -> float:  # ms per frame on top of rendering the source
        return 1000 / med[name] - 1000 / med[SOURCE]

    lines = []
    for name in (k for k in setups if k.startswith("ours")):
        paired = statistics.median(o / b for o, b in zip(runs[name], runs[best_err], strict=True))
        lines.append(f"{name}: PSNR {errs[name][0] - errs[best_err][0]:+.2f} dB (noisy), "
                     f"{errs_clean[name][0] - errs_clean[best_err][0]:+.2f} dB (clean) vs {best_err}; "
                     f"speed x{med[name] / med[best_err]:.2f} of it (net of the source "
                     f"x{net(best_err) / net(name):.2f}: {net(name):.2f} vs {net(best_err):.2f} ms/frame), "
                     f"x{med[name] / med[best_fps]:.2f} of {best_fps}; round by round x{paired:.2f}")
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
