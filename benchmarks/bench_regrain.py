"""Grain synthesis: ``vr.regrain`` vs the grain tools that ship as PyPI wheels — fps, and what grain
each makes (sigma against its request, luma dependence, spatial correlation).

Peers (same clip, same run, interleaved runs, median fps):
  * ``core.noise.Add`` — wwww-wwww's vs-noise (the AddGrain port; PyPI wheel ``vsnoise``), Gaussian
    noise, ``var``/``uvar`` in 8-bit code units squared. Not a vsrestore dependency: ``pip install
    vsnoise``, or pass ``--noise-plugin path/to/libaddnoise.so`` (e.g. from the unpacked wheel).
  * ``core.adg.Mask`` (``vapoursynth-adaptivegrain``) is only a mask, no generator: timed in the
    classic adaptive-grain recipe (kagefunc's ``adaptive_grain``): ``noise.Add`` grain merged
    through ``adg.Mask(PlaneStats(clip), luma_scaling)``, so grain fades in bright areas.
  * vs-jetpack's ``vsdeband.Grainer.GAUSS`` (``vsjetpack``): the same noise plugin on a neutral
    clip, edge/neutral-chroma protection, ``luma_scaling`` through ``core.vszip.AdaptiveGrainMask``
    (jetpack's own adaptive mask; it does not call ``core.adg``).
  * ``Grainer.SIMPLEX`` (vs-noise's simplex noise, ``size=1.5``): the jetpack grainer with spatially
    correlated grain.
Not run: ``Grainer.PLACEBO`` (``vs-placebo``, libplacebo) needs a Vulkan device: on these
machines it fails ("VK_ERROR_INCOMPATIBLE_DRIVER") and the process crashes.
``vapoursynth-chickendream`` has no Linux wheel. Without vs-noise no peer can run and only ours
is measured.

Settings: ours ``vr.regrain(clip, "35mm-fine", seed=1)`` (sigma 0.010 of full scale at mid-grey,
0.4x at black and white, Gaussian grain size 0.55 px, chroma 0.35x; fresh Gaussian noise for every
pixel of every frame, drawn inside the kernel by a counter-based generator keyed by (seed, frame,
plane), shaped by a separable 5x5 FIR and scaled by sigma(luma) in one pass per plane, nogil, frames
in parallel through ``map_frames``); peers at the same mid-grey
sigma (2.55 codes at 8 bits: var 6.5, uvar 0.8), ``luma_scaling=8`` (jetpack's default).
Clip: 1920x1080 YUV420P10 (``--size``, ``--format``), ``--frames`` frames of one photo, all
filters through VapourSynth with ``--threads`` core threads.

Grain: measured as output - input on a horizontal luma ramp (64..940 of 1023) at the same size:
sigma at mid-grey against the request, sigma at the dark (~10 %) and bright (~90 %) ends relative
to mid-grey, and the lag-1 horizontal autocorrelation (0: white). For ours, the profile's own
curve and autocorrelation are the target (tests/test_grain.py checks the curve to 10 % and the
spectrum to 15 %).

    python benchmarks/bench_regrain.py [--frames 24] [--threads 2] [--repeats 3] [--noise-plugin PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import vapoursynth as vs
from skimage import data
from vsrestore.filters.regrain import regrain

from vsrestore.bridge import clip_from_arrays
from vsrestore.grainmodel import film_curve, stock_profile

core = vs.core
STOCK = "35mm-fine"
MID_SIGMA = 0.010  # the stock's sigma at mid-grey


def has_noise(path: str | None) -> bool:
    if path and not hasattr(core, "noise"):
        core.std.LoadPlugin(path)
    return hasattr(core, "noise")


def peers() -> dict[str, Callable[[vs.VideoNode], vs.VideoNode]]:
    from vsdeband import Grainer

    var = (MID_SIGMA * 255) ** 2
    uvar = (MID_SIGMA * 0.35 * 255) ** 2

    def adaptive(c: vs.VideoNode) -> vs.VideoNode:
        mask = core.adg.Mask(core.std.PlaneStats(c), luma_scaling=8)
        return core.std.MaskedMerge(c, core.noise.Add(c, var=var, uvar=uvar, type=0, seed=1), mask)

    return {
        "noise.Add": lambda c: core.noise.Add(c, var=var, uvar=uvar, type=0, seed=1),
        "adg.Mask+noise.Add": adaptive,
        "Grainer.GAUSS": lambda c: Grainer.GAUSS(c, (var, uvar), luma_scaling=8, seed=1),
        "Grainer.SIMPLEX": lambda c: Grainer.SIMPLEX(c, (var, uvar), size=1.5, seed=1),
    }


def photo_clip(w: int, h: int, fmt: int, n: int) -> vs.VideoNode:
    img = np.ascontiguousarray(data.astronaut().astype(np.float32).transpose(2, 0, 1) / 255)
    rgb = core.resize.Bicubic(clip_from_arrays([img], vs.RGBS), w, h)
    frame = core.resize.Bicubic(rgb, format=fmt, matrix_s="709").get_frame(0)
    return core.std.BlankClip(rgb, format=fmt, length=n, keep=True).std.ModifyFrame(
        core.std.BlankClip(rgb, format=fmt, length=n), lambda n, f: frame)  # served from memory


def ramp_clip(w: int, h: int, fmt: int) -> vs.VideoNode:
    """Luma ramp 64..940 (10-bit codes) left to right, neutral chroma."""
    ff = core.get_video_format(fmt)
    blank = core.std.BlankClip(format=fmt, width=w, height=h, length=2, keep=True)
    peak = (1 << ff.bits_per_sample) - 1
    ramp = np.broadcast_to(np.rint(np.linspace(64, 940, w) / 1023 * peak), (h, w))

    def put(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        fout = f.copy()
        np.copyto(np.asarray(fout[0]), ramp, casting="unsafe")
        for p in (1, 2):
            np.asarray(fout[p])[:] = (peak + 1) // 2
        return fout

    return core.std.SetFrameProps(blank.std.ModifyFrame(blank, put), _Matrix=1)


def fps(clip: vs.VideoNode) -> float:
    t = time.perf_counter()
    for _ in clip.frames(close=True):
        pass
    return clip.num_frames / (time.perf_counter() - t)


def grain_stats(out: vs.VideoNode, src: vs.VideoNode) -> tuple[float, float, float, float]:
    """(sigma at mid-grey as a fraction of full scale, dark / mid, bright / mid, lag-1 acf) of Y."""
    peak = float((1 << src.format.bits_per_sample) - 1)
    g = (np.asarray(out.get_frame(1)[0], np.float64) - np.asarray(src.get_frame(1)[0], np.float64)) / peak
    w = g.shape[1]

    def sig(x: float) -> float:
        c = int(x * w)
        return float(g[:, c - w // 40:c + w // 40].std())

    mid = sig(0.5)
    lag1 = float((g[:, 1:] * g[:, :-1]).mean() / (g * g).mean())
    return mid, sig(0.1) / mid, sig(0.9) / mid, lag1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--format", default="YUV420P10", help="a VapourSynth preset format name")
    ap.add_argument("--noise-plugin", default=None, help="path to vs-noise's libaddnoise.so")
    a = ap.parse_args()
    core.num_threads = a.threads
    w, h = (int(v) for v in a.size.split("x"))
    fmt = int(getattr(vs, a.format))
    filters: dict[str, Callable[[vs.VideoNode], vs.VideoNode]] = {
        "vr.regrain": lambda c: regrain(c, STOCK, seed=1)}
    if has_noise(a.noise_plugin):
        filters |= peers()
    else:
        print("vs-noise (core.noise) not found: peers skipped (pip install vsnoise, or --noise-plugin)")
    src = photo_clip(w, h, fmt, a.frames)
    for f in filters.values():  # warm-up: JIT, plugin init
        f(src[:2]).get_frame(1)
    runs: dict[str, list[float]] = {k: [] for k in filters}
    for _ in range(a.repeats):
        for k, f in filters.items():
            runs[k].append(fps(f(src)))
    med = {k: statistics.median(v) for k, v in runs.items()}
    ramp = ramp_clip(w, h, fmt)
    prof = stock_profile(STOCK)
    lum = (64 + np.array([0.1, 0.5, 0.9]) * 876) / 1023  # luma where grain_stats looks
    target = film_curve(lum) / film_curve(lum)[1]
    acf = prof.acf[0]
    print(f"{a.format} {w}x{h}, {a.frames} frames, {a.threads} threads, median of {a.repeats} interleaved "
          f"runs\n")
    print(f"{'filter':20s}{'fps':>9s}{'vs ours':>9s}{'sigma/req':>11s}{'dark/mid':>10s}{'bright/mid':>12s}"
          f"{'lag-1 acf':>11s}")
    for k, f in filters.items():
        mid, dark, bright, lag1 = grain_stats(f(ramp), ramp)
        print(f"{k:20s}{med[k]:9.2f}{med[k] / med['vr.regrain']:9.2f}{mid / MID_SIGMA:11.2f}{dark:10.2f}"
              f"{bright:12.2f}{lag1:11.2f}")
    print(f"\ntarget for vr.regrain ({STOCK}): sigma/req 1.00, dark/mid {target[0]:.2f}, bright/mid "
          f"{target[2]:.2f} (the stock curve at luma {lum[0]:.2f} / {lum[2]:.2f}), lag-1 acf {acf[0][4]:.2f} "
          "(the profile's model)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
