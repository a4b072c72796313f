"""INT8 vs fp32 on ONNX Runtime CPU: throughput ratio and PSNR cost, same clip, same run.

Throughput: ``vr.upscale`` under ``vspipe`` on the same 12-frame 640x360 RGBS clip with
``core.num_threads = 2`` and ``OrtCPU(threads=1)`` (the defaults: VapourSynth runs frames
in parallel), three scripts in interleaved rounds:

- fp32: ``backend=vr.OrtCPU()`` -- what vsrestore runs today;
- int8: ``backend=vr.OrtCPU(int8=True)`` -- the calibrated QDQ model (built and cached
  before the rounds start, so calibration is not timed);
- fp32 rewritten: the fp32 model with the same exact PRelu -> Max(y, a*y) rewrite the
  int8 graph gets, as ``model=<onnx>`` (a fairer fp32 reference: ORT's PRelu is slow).

Quality: PSNR-Y (BT.601 16-235, 4 px shave) of fp32 and int8 on the held-out photos
shipped in scikit-image (astronaut, chelsea, coffee, rocket, motorcycle left/right: box-shrunk
by half, centre 384 crop = ground truth, zimg bicubic b=0 c=0.5 to half size = input).
The default calibration never sees these photos. ``--corpus`` adds the model card's
held-out wallpapers from the offline corpus (developers only).

    .venv/bin/python benchmarks/bench_int8.py [--rounds 5] [--corpus]
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
clip = vr.upscale(clip, 2, model={model!r}, backend={backend})
clip.set_output()
"""
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="sr-compact-x2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2, help="core.num_threads")
    ap.add_argument("--ort-threads", type=int, default=1, help="OrtCPU(threads=...)")
    ap.add_argument("--corpus", action="store_true", help="also the held-out corpus wallpapers")
    a = ap.parse_args()
    import onnx
    import onnxruntime

    from vsrestore import models
    from vsrestore.runtime import qdq
    from vsrestore.runtime.export import cached_onnx
    from vsrestore.runtime.int8 import DEFAULT_METHOD, quantize_int8

    lm = models.resolve(a.model, "bench")
    int8_path = quantize_int8(lm)  # what OrtCPU(int8=True) runs; built now so it is not timed
    print(f"CPU: {cpu_flags()}; onnxruntime {onnxruntime.__version__}")
    print(f"int8 model: {int8_path}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        proto = onnx.load(str(cached_onnx(lm)))
        n = len(qdq.prelu_to_max(proto))
        rewritten = d / f"{a.model}-fp32-prelu-max.onnx"
        onnx.save(proto, str(rewritten))
        fmt = {"threads": a.threads, "frames": a.frames}
        fp32, int8 = f"vr.OrtCPU(threads={a.ort_threads})", f"vr.OrtCPU(threads={a.ort_threads}, int8=True)"
        scripts = {
            "fp32": SRC.format(model=a.model, backend=fp32, **fmt),
            "int8": SRC.format(model=a.model, backend=int8, **fmt),
            "fp32 rewritten": SRC.format(model=str(rewritten), backend=fp32, **fmt),
        }
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
    r2 = [q / f for q, f in zip(fps["int8"], fps["fp32 rewritten"], strict=True)]
    print(f"per-round int8/fp32 {', '.join(f'{r:.2f}' for r in r1)}; "
          f"int8/fp32-rewritten {', '.join(f'{r:.2f}' for r in r2)}")
    print(f"ratio int8 / fp32 = {med['int8'] / med['fp32']:.3f}   (fp32 = the shipped export, OrtCPU())")
    print(f"ratio int8 / fp32 rewritten = {med['int8'] / med['fp32 rewritten']:.3f}   "
          f"(fp32 with the {n} PRelu -> Max rewrites the int8 graph also gets)")
    print(f"({a.frames} frames 640x360 RGBS -> x2, core.num_threads={a.threads}, "
          f"OrtCPU(threads={a.ort_threads}), {a.rounds} interleaved rounds)")
    psnr_table(a.model, DEFAULT_METHOD, a.corpus)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
