"""SR quality on held-out photos: a shipped model vs classic scalers (the project's SR measure).

Ground truth = photo box-shrunk by half, centre crop (default 384x384); input = zimg
bicubic b=0, c=0.5 to 1/scale; baselines = zimg Lanczos (3 taps), Spline36, Bicubic
(b=0, c=0.5) back up; PSNR on BT.601 Y (16-235), 4 px border shaved.

    .venv/bin/python benchmarks/eval_sr.py                      # held-out pictures of the corpus
    .venv/bin/python benchmarks/eval_sr.py --images a.png b.jpg # any photos

The corpus manifest comes from ``shared/data/corpus.sh`` (developers only).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import vapoursynth as vs

import vsrestore as vr
from vsrestore.bridge import clip_from_arrays, clip_to_arrays
from vsrestore.training import data

core = vs.core


def classic(lr: np.ndarray, scale: int, kernel: str) -> np.ndarray:
    clip = clip_from_arrays([lr], vs.RGBS)
    w, h = lr.shape[2] * scale, lr.shape[1] * scale
    if kernel == "lanczos":
        up = core.resize.Lanczos(clip, w, h, filter_param_a=3)
    elif kernel == "spline36":
        up = core.resize.Spline36(clip, w, h)
    else:
        up = core.resize.Bicubic(clip, w, h, filter_param_a=0, filter_param_b=0.5)
    return clip_to_arrays(up)[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="shipped name or file (default: shipped for --scale)")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--crop", type=int, default=384)
    ap.add_argument("--manifest", type=Path, default=data.env_manifest())
    ap.add_argument("--images", type=Path, nargs="*", help="evaluate these photos instead")
    a = ap.parse_args()
    paths = a.images or data.split(data.read_manifest(a.manifest))[1]
    pairs = data.sr_pairs(paths, a.scale, crop=a.crop)
    rows = []
    print(f"{'picture':<22} {'ours':>7} {'lanczos':>8} {'spline36':>9} {'bicubic':>8} {'gain':>6}")
    for p, (lr, hr) in zip(paths, pairs, strict=True):
        ours = clip_to_arrays(vr.upscale(clip_from_arrays([lr], vs.RGBS), a.scale, model=a.model))[0]
        r = [data.psnr_y(ours, hr)] + [data.psnr_y(classic(lr, a.scale, k), hr)
                                       for k in ("lanczos", "spline36", "bicubic")]
        rows.append(r)
        name = data.picture_name(p)
        print(f"{name:<22} {r[0]:7.2f} {r[1]:8.2f} {r[2]:9.2f} {r[3]:8.2f} {r[0] - r[1]:+6.2f}")
    m = np.mean(rows, axis=0)
    print(f"{'mean (' + str(len(rows)) + ' photos)':<22} {m[0]:7.2f} {m[1]:8.2f} {m[2]:9.2f} {m[3]:8.2f} "
          f"{m[0] - m[1]:+6.2f}")
    print(f"vr.upscale x{a.scale} vs Lanczos-3: {m[0] - m[1]:+.2f} dB PSNR-Y (mean over {len(rows)} photos)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
