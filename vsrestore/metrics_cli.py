"""``vsrestore metrics REFERENCE DISTORTED``: quality metrics of two images, videos or scripts.

Inputs are image files (PNG/JPEG/WebP/TIFF: one frame), video files (decoded with
VapourSynth's bestsource plugin, colour props honoured) or ``.vpy`` scripts (their output
0). Both inputs need the same size and frame count (``--frames N`` compares the first N).
Prints one JSON object on stdout: the mean of each metric over the frames (and, with
``--per-frame``, every frame's value); progress goes to stderr.

    vsrestore metrics clean.png restored.png
    vsrestore metrics ref.mkv out.mkv --metrics psnr,ssim,vmaf --matrix 709
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics as mt

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
PER_FRAME: dict[str, Callable[..., float]] = {"psnr": mt.psnr_y, "ssim": mt.ssim_y, "stlpips": mt.stlpips,
                                              "de2000": mt.delta_e2000}
SEQUENCE = ("vmaf", "ewarp")


def load_frames(path: Path, limit: int | None) -> list[np.ndarray]:
    """RGB float ``(3, H, W)`` frames of an image, a video or a ``.vpy`` script."""
    import vapoursynth as vs

    if not path.is_file():
        raise SystemExit(f"vsrestore metrics: {path} does not exist")
    if path.suffix.lower() in IMAGE_EXTS:
        from .training.data import load_rgb

        return [load_rgb(path)]
    if path.suffix.lower() == ".vpy":
        vs.clear_outputs()
        runpy.run_path(str(path), run_name="__vapoursynth__")
        out = vs.get_output(0)
        clip = out.clip if isinstance(out, vs.VideoOutputTuple) else out
    else:
        try:
            clip = vs.core.bs.VideoSource(str(path))
        except vs.Error as e:
            raise SystemExit(f"vsrestore metrics: {path} is neither an image, a video nor a .vpy "
                             f"script ({e}). Fix: pass PNG/JPEG/TIFF images, a video file or a "
                             ".vpy") from None
    if not isinstance(clip, vs.VideoNode):
        raise SystemExit(f"vsrestore metrics: {path} has no video output")
    if limit is not None:
        clip = clip[: min(limit, clip.num_frames)]
    return mt._arrays(clip)


def compute(ref: list[np.ndarray], dist: list[np.ndarray], names: list[str], *, matrix: str = "601",
            shave: int = 0, per_frame: bool = False) -> dict[str, Any]:
    if len(ref) != len(dist):
        raise ValueError(f"reference has {len(ref)} frames, distorted {len(dist)}; use --frames N")
    if ref and ref[0].shape != dist[0].shape:
        raise ValueError(f"sizes differ: {ref[0].shape[1:]} vs {dist[0].shape[1:]}")
    res: dict[str, Any] = {"frames": len(ref)}
    for name in names:
        if name in PER_FRAME:
            kw: dict[str, Any] = {"matrix": matrix, "shave": shave} if name in ("psnr", "ssim") else {}
            vals = [PER_FRAME[name](d, r, **kw) for r, d in zip(ref, dist, strict=True)]
            res[name] = float(np.mean(vals))
            if per_frame:
                res[f"{name}_per_frame"] = vals
        elif name == "vmaf":
            res["vmaf"] = mt.vmaf(ref, dist, matrix="709" if matrix == "709" else "601")
        elif name == "ewarp":
            res["ewarp"] = mt.e_warp(dist, source=ref)
        else:
            raise ValueError(f"unknown metric {name!r}; use {', '.join([*PER_FRAME, *SEQUENCE])}")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vsrestore metrics", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reference", type=Path)
    ap.add_argument("distorted", type=Path)
    ap.add_argument("--metrics", default="psnr,ssim",
                    help=f"comma list of {', '.join([*PER_FRAME, *SEQUENCE])} (default psnr,ssim)")
    ap.add_argument("--matrix", choices=("601", "709"), default="601", help="luma weights of psnr/ssim")
    ap.add_argument("--shave", type=int, default=0, help="border pixels left out of psnr/ssim")
    ap.add_argument("--frames", type=int, default=None, help="compare only the first N frames")
    ap.add_argument("--per-frame", action="store_true")
    a = ap.parse_args(argv)
    names = [n.strip() for n in a.metrics.split(",") if n.strip()]
    bad = [n for n in names if n not in PER_FRAME and n not in SEQUENCE]
    if bad:
        ap.error(f"unknown metric(s) {', '.join(bad)}; use {', '.join([*PER_FRAME, *SEQUENCE])}")
    try:
        ref, dist = load_frames(a.reference, a.frames), load_frames(a.distorted, a.frames)
        res = compute(ref, dist, names, matrix=a.matrix, shave=a.shave, per_frame=a.per_frame)
    except ValueError as e:
        print(f"vsrestore metrics: {e}", file=sys.stderr)
        return 2
    print(json.dumps(res, indent=2))
    return 0
