"""INT8 vs fp32 on ONNX Runtime CPU: throughput ratio and PSNR cost, same clip, same run.

Two modes, picked by the model card's task (``vsrestore.models.info(name).task``):
SR models (default ``sr-compact-x2``) run through ``vr.upscale(clip, 2)``; denoise models
(``--model denoise-drunet``: a DRUNet with the noise level as a 4th input plane) through
``vr.denoise(clip, 25)`` -- a fixed strength, so the blind sigma estimator is not timed.

Throughput: the filter under ``vspipe`` on the same 12-frame 640x360 RGBS clip with
``core.num_threads = 2`` and ``OrtCPU(threads=1)`` (the defaults: VapourSynth runs frames
in parallel), scripts in interleaved rounds:

- fp32: ``backend=vr.OrtCPU()`` -- what vsrestore runs today;
- int8: ``backend=vr.OrtCPU(int8=True)`` -- the calibrated QDQ model (built and cached
  before the rounds start, so calibration is not timed; for DRUNet the calibration tiles
  carry noise-level planes 0-50, ``int8.EXTRA_PLANES``);
- fp32 rewritten: the fp32 model with the same exact PRelu -> Max(y, a*y) rewrite the
  int8 graph gets, as ``model=<onnx>`` (a fairer fp32 reference: ORT's PRelu is slow).
  Only for models that have PRelu nodes: DRUNet has none (Conv/ReLU only), so this row is
  skipped there and the output says so.

Quality, SR mode: PSNR-Y (BT.601 16-235, 4 px shave) of fp32 and int8 on the held-out photos
shipped in scikit-image (astronaut, chelsea, coffee, rocket, motorcycle left/right: box-shrunk
by half, centre 384 crop = ground truth, zimg bicubic b=0 c=0.5 to half size = input).
Quality, denoise mode: RGB PSNR (mean squared error over R, G, B; ``evaluation.psnr_rgb``)
of fp32 and int8 ``vr.denoise(clip, 25)`` outputs against the clean picture, on the same
photos box-shrunk by half, centre 256 crop = clean, plus Gaussian noise sigma 25 (0-255
scale), rounded to 8 bit, seed 1000 + index (``training.evaluate.noisy``, as the model
card's evaluation). The default calibration never sees these photos. ``--corpus`` adds the
model card's held-out wallpapers from the offline corpus (developers only).

    .venv/bin/python benchmarks/bench_int8.py [--rounds 5] [--corpus]
    .venv/bin/python benchmarks/bench_int8.py --model denoise-drunet [--rounds 3] [--frames 6]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = """
import vapoursynth as vs
from vsrestore.bridge import clip_from_arrays
from vsrestore.demo import demo_frames
import vsrestore as vr
core = vs.core
core.num_threads = {threads}
clip = clip_from_arrays(demo_frames({frames}), vs.RGBS)
clip = core.resize.Bicubic(clip, 640, 360)
clip = {call}
clip.set_output()
"""
# the filter call of each mode (``{model!r}``, ``{backend}`` filled in per script)
CALLS = {"sr": "vr.upscale(clip, 2, model={model!r}, backend={backend})",
         "denoise": "vr.denoise(clip, {sigma}, model={model!r}, backend={backend})"}
SIGMA = 25  # denoise mode: fixed strength (0-255 scale), also the noise added for the PSNR
DENOISE_CROP = 256
HELD_OUT_FILES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
                  "motorcycle_left.png", "motorcycle_right.png")


def vspipe_fps(script: Path) -> float:
    exe = Path(sys.executable).with_name("vspipe")
    res = subprocess.run([str(exe), "-p", str(script), "--"], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"vspipe failed on {script}:\n{res.stderr}")
    m = re.search(r"Output \d+ frames in [\d.]+ seconds \(([\d.]+) fps\)", res.stderr)
    if not m:
        raise SystemExit(f"no fps in vspipe output:\n{res.stderr}")
    return float(m.group(1))


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    lines = text.splitlines()
    flags = set(next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), []))
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")
    want = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    return f"{model}; " + " ".join(f"{f}={'yes' if f in flags else 'no'}" for f in want)


def psnr_table(model: str, method: str, corpus: bool) -> None:
    import numpy as np
    import vapoursynth as vs
    from skimage import data

    import vsrestore as vr
    from vsrestore.bridge import clip_from_arrays, clip_to_arrays
    from vsrestore.training.data import HELD_OUT_WALLPAPERS, picture_name, psnr_y, read_manifest, sr_pairs

    paths = [Path(data.data_dir) / f for f in HELD_OUT_FILES]
    if corpus:
        paths += [p for p in read_manifest() if picture_name(p) in HELD_OUT_WALLPAPERS]
    pairs = sr_pairs(paths, 2, crop=384)
    rows: list[tuple[str, float, float, float]] = []
    for p, (lr, hr) in zip(paths, pairs, strict=True):
        clip = clip_from_arrays([lr], vs.RGBS)
        fp = clip_to_arrays(vr.upscale(clip, 2, model=model, backend=vr.OrtCPU()))[0]
        q = clip_to_arrays(vr.upscale(clip, 2, model=model, backend=vr.OrtCPU(int8=True)))[0]
        diff = float(np.abs(np.clip(fp, 0, 1) - np.clip(q, 0, 1)).mean())
        name = p.stem if "skimage" in p.parts else f"{picture_name(p)}/{p.stem}"
        rows.append((name, psnr_y(fp, hr), psnr_y(q, hr), diff))
    print(f"\nPSNR-Y on held-out photos ({model}, calibration {method} on the built-in set):")
    print(f"{'picture':<28} {'fp32':>8} {'int8':>8} {'cost':>7} {'mean|d|':>9}")
    for name, a, b, d in rows:
        print(f"{name[:28]:<28} {a:8.3f} {b:8.3f} {a - b:7.3f} {d:9.5f}")
    sk = rows[: len(HELD_OUT_FILES)]
    fa, fb = statistics.mean(r[1] for r in rows), statistics.mean(r[2] for r in rows)
    ska, skb = statistics.mean(r[1] for r in sk), statistics.mean(r[2] for r in sk)
    print(f"mean (skimage held-out, {len(sk)})  fp32 {ska:.3f}  int8 {skb:.3f}  "
          f"PSNR cost {ska - skb:.3f} dB")
    if corpus:
        print(f"mean (all held-out, {len(rows)})      fp32 {fa:.3f}  int8 {fb:.3f}  "
              f"PSNR cost {fa - fb:.3f} dB")


def denoise_table(model: str, method: str, corpus: bool) -> None:
    import numpy as np
    import vapoursynth as vs
    from skimage import data as skdata

    import vsrestore as vr
    from vsrestore.bridge import clip_from_arrays, clip_to_arrays
    from vsrestore.evaluation import psnr_rgb
    from vsrestore.training.data import (
        HELD_OUT_WALLPAPERS,
        box_shrink,
        center_crop,
        load_rgb,
        picture_name,
        read_manifest,
    )
    from vsrestore.training.evaluate import noisy

    paths = [Path(skdata.data_dir) / f for f in HELD_OUT_FILES]
    if corpus:
        paths += [p for p in read_manifest() if picture_name(p) in HELD_OUT_WALLPAPERS]
    rows: list[tuple[str, float, float, float, float]] = []
    for i, p in enumerate(paths):
        clean = center_crop(box_shrink(load_rgb(p), 2), DENOISE_CROP)
        x = noisy(clean, SIGMA, 1000 + i)
        clip = clip_from_arrays([x], vs.RGBS)
        fp = clip_to_arrays(vr.denoise(clip, SIGMA, model=model, backend=vr.OrtCPU()))[0]
        q = clip_to_arrays(vr.denoise(clip, SIGMA, model=model, backend=vr.OrtCPU(int8=True)))[0]
        diff = float(np.abs(np.clip(fp, 0, 1) - np.clip(q, 0, 1)).mean())
        name = p.stem if "skimage" in p.parts else f"{picture_name(p)}/{p.stem}"
        rows.append((name, psnr_rgb(x, clean), psnr_rgb(fp, clean), psnr_rgb(q, clean), diff))
    print(f"\nRGB PSNR on held-out photos, Gaussian sigma {SIGMA} -> vr.denoise(clip, {SIGMA}) "
          f"({model}, {DENOISE_CROP} px crops, calibration {method} on the built-in set):")
    print(f"{'picture':<28} {'noisy':>8} {'fp32':>8} {'int8':>8} {'cost':>7} {'mean|d|':>9}")
    for name, n, a, b, d in rows:
        print(f"{name[:28]:<28} {n:8.3f} {a:8.3f} {b:8.3f} {a - b:7.3f} {d:9.5f}")
    groups = [(f"skimage held-out, {len(HELD_OUT_FILES)}", rows[: len(HELD_OUT_FILES)])]
    if corpus:
        groups.append((f"all held-out, {len(rows)}", rows))
    for label, rs in groups:
        n, a, b = (statistics.mean(r[k] for r in rs) for k in (1, 2, 3))
        print(f"mean ({label})  noisy {n:.3f}  fp32 {a:.3f}  int8 {b:.3f}  PSNR cost {a - b:.3f} dB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="sr-compact-x2",
                    help="a shipped model (its card's task picks the mode: sr or denoise) or a file")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2, help="core.num_threads")
    ap.add_argument("--ort-threads", type=int, default=1, help="OrtCPU(threads=...)")
    ap.add_argument("--corpus", action="store_true", help="also the held-out corpus wallpapers")
    a = ap.parse_args()
    import onnx
    import onnxruntime

    from vsrestore import models
    from vsrestore.errors import VSRestoreError
    from vsrestore.runtime import qdq
    from vsrestore.runtime.export import cached_onnx
    from vsrestore.runtime.int8 import DEFAULT_METHOD, quantize_int8

    lm = models.resolve(a.model, "bench")
    try:
        task = models.info(a.model).task
    except VSRestoreError:  # a model file: DRUNet-style (RGB + level plane, x1) = denoise
        task = "denoise" if lm.cond_channels == 1 and lm.scale == 1 else "sr"
    if task not in CALLS:
        raise SystemExit(f"{a.model}: task {task!r} is not covered (sr, denoise)")
    int8_path = quantize_int8(lm)  # what OrtCPU(int8=True) runs; built now so it is not timed
    print(f"CPU: {cpu_flags()}; onnxruntime {onnxruntime.__version__}")
    print(f"mode: {task}; int8 model: {int8_path}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        proto = onnx.load(str(cached_onnx(lm)))
        n = len(qdq.prelu_to_max(proto))
        fp32, int8 = f"vr.OrtCPU(threads={a.ort_threads})", f"vr.OrtCPU(threads={a.ort_threads}, int8=True)"

        def script(model: str, backend: str) -> str:
            call = CALLS[task].format(model=model, backend=backend, sigma=SIGMA)
            return SRC.format(threads=a.threads, frames=a.frames, call=call)

        scripts = {"fp32": script(a.model, fp32), "int8": script(a.model, int8)}
        if n:
            rewritten = d / f"{Path(a.model).stem}-fp32-prelu-max.onnx"
            onnx.save(proto, str(rewritten))
            scripts["fp32 rewritten"] = script(str(rewritten), fp32)
        else:
            print(f"{a.model} has no PRelu: the int8 graph gets no PRelu -> Max rewrite, "
                  "so the 'fp32 rewritten' reference would equal fp32 (skipped)")
        paths = {}
        for name, text in scripts.items():
            paths[name] = d / f"{name.replace(' ', '_')}.vpy"
            paths[name].write_text(text)
            vspipe_fps(paths[name])  # warm: exports, page cache
        fps: dict[str, list[float]] = {k: [] for k in scripts}
        for i in range(a.rounds):
            for name, path in paths.items():
                fps[name].append(vspipe_fps(path))
            print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.3f} fps" for k, v in fps.items()))
    med = {k: statistics.median(v) for k, v in fps.items()}
    for k, v in med.items():
        print(f"{k:<15} median {v:.3f} fps")
    r1 = [q / f for q, f in zip(fps["int8"], fps["fp32"], strict=True)]
    per_round = f"per-round int8/fp32 {', '.join(f'{r:.2f}' for r in r1)}"
    if n:
        r2 = [q / f for q, f in zip(fps["int8"], fps["fp32 rewritten"], strict=True)]
        per_round += f"; int8/fp32-rewritten {', '.join(f'{r:.2f}' for r in r2)}"
    print(per_round)
    print(f"ratio int8 / fp32 = {med['int8'] / med['fp32']:.3f}   (fp32 = the shipped export, OrtCPU())")
    if n:
        print(f"ratio int8 / fp32 rewritten = {med['int8'] / med['fp32 rewritten']:.3f}   "
              f"(fp32 with the {n} PRelu -> Max rewrites the int8 graph also gets)")
    what = "-> x2" if task == "sr" else f"-> vr.denoise strength {SIGMA}"
    print(f"({a.frames} frames 640x360 RGBS {what}, core.num_threads={a.threads}, "
          f"OrtCPU(threads={a.ort_threads}), {a.rounds} interleaved rounds)")
    if task == "sr":
        psnr_table(a.model, DEFAULT_METHOD, a.corpus)
    else:
        denoise_table(a.model, DEFAULT_METHOD, a.corpus)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
