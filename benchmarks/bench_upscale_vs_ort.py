"""Throughput: ``vr.upscale`` (default backend) vs vs-mlrt's ``core.ort.Model`` on the same ONNX.

Both run under ``vspipe`` on the same 12-frame 640x360 RGBS clip with
``core.num_threads = 2``, each filter at its defaults (vs-mlrt: CPU provider,
num_streams=1). Runs are interleaved; the script prints each run's fps (as
vspipe reports it), the medians and their ratio.

    .venv/bin/python benchmarks/bench_upscale_vs_ort.py --model sr-compact-x2
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
core = vs.core
core.num_threads = {threads}
frames = demo_frames({frames})
clip = clip_from_arrays(frames, vs.RGBS)
clip = core.resize.Bicubic(clip, 640, 360)
"""
OURS = SRC + """
import vsrestore as vr
clip = vr.upscale(clip, 2, model={model!r})
clip.set_output()
"""
THEIRS = SRC + """
clip = core.ort.Model([clip], network_path={onnx!r})
clip.set_output()
"""


def vspipe_fps(script: Path) -> float:
    exe = Path(sys.executable).with_name("vspipe")
    res = subprocess.run([str(exe), "-p", str(script), "--"], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"vspipe failed on {script}:\n{res.stderr}")
    m = re.search(r"Output \d+ frames in [\d.]+ seconds \(([\d.]+) fps\)", res.stderr)
    if not m:
        raise SystemExit(f"no fps in vspipe output:\n{res.stderr}")
    return float(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="sr-compact-x2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    from vsrestore import models
    from vsrestore.runtime.backends import auto_backend
    from vsrestore.runtime.export import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        onnx = export_onnx(models.resolve(a.model, "bench"), d / "model.onnx")
        fmt = {"threads": a.threads, "frames": a.frames, "model": a.model, "onnx": str(onnx)}
        ours, theirs = d / "ours.vpy", d / "theirs.vpy"
        ours.write_text(OURS.format(**fmt))
        theirs.write_text(THEIRS.format(**fmt))
        vspipe_fps(ours), vspipe_fps(theirs)  # warm caches (exported ONNX, page cache)
        fo, ft = [], []
        for i in range(a.rounds):
            fo.append(vspipe_fps(ours))
            ft.append(vspipe_fps(theirs))
            print(f"round {i + 1}: vr.upscale {fo[-1]:.3f} fps, core.ort.Model {ft[-1]:.3f} fps")
    mo, mt = statistics.median(fo), statistics.median(ft)
    print(f"vr.upscale (default backend {auto_backend()}) median {mo:.3f} fps")
    print(f"core.ort.Model (vs-mlrt, CPU provider, defaults) median {mt:.3f} fps")
    ratios = [o / t for o, t in zip(fo, ft, strict=True)]
    print(f"per-round ratios {', '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.3f}")
    print(f"ratio vr.upscale / core.ort.Model = {mo / mt:.3f}  "
          f"({a.frames} frames 640x360 RGBS -> x2, core.num_threads={a.threads}, {a.rounds} rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
