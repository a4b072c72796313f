"""``vsrestore eval``: the stages against named peers on one degradation, measured in one run.

Tasks (degradation -> methods -> main metric):

- ``sr`` (``scale`` 2 or 4): the project's SR measure (photo box-shrunk by 2, zimg bicubic
  b=0 c=0.5 down by the scale, :func:`vsrestore.training.data.sr_pairs`). Ours:
  ``vr.upscale`` with the default model and each extra model; peers: zimg Lanczos (3 taps),
  Spline36, Bicubic, znedi3 doubling (:mod:`vsrestore.evaluation.peers`). PSNR-Y.
- ``denoise`` (``sigma``): Gaussian noise per channel (0-255 scale), rounded to 8 bit,
  seeded. Ours: ``vr.denoise(clip)`` (blind; ``oracle``: the true sigma); peers: ffmpeg
  ``bm3d`` (one step on gbrp and yuv444p, two steps on yuv444p), ffmpeg ``nlmeans`` (gbrp,
  yuv444p), dfttest2 (CPU, ``tbsize=1``; RGB24, YUV444P8). RGB PSNR.
- ``deblock`` (``crf``): short 320x240 pans (1 px a frame) over each picture, or the
  320x240 centre of frames of real clips (from ``--start``), through libx264 CRF N preset
  medium as one GOP (:func:`vsrestore.degradations.codec_roundtrip`); measured on the first, middle and last
  frame. Ours: ``vr.deblock(clip)`` (blind; ``oracle``: the true RMS level); peer:
  ``core.deblock.Deblock``; the crushed input itself. Y-PSNR (BT.601, full frame).
- ``dnsr`` (``sigma``): the ``sr`` x2 pair with that noise on the low-resolution input.
  Ours: joint ``vr.denoise(clip, scale=2)`` and ``vr.upscale(vr.denoise(clip), 2)``;
  baseline ``vr.upscale(noisy, 2)``; peers: ffmpeg bm3d (two steps) or dfttest2 (YUV444P8),
  then Lanczos-3. PSNR-Y.

Every peer runs at its best setting from a sweep over the same samples (the grid and the
mean metric of each setting are kept in the results, so a peer at the edge of its grid
shows). Methods that cannot run here (missing plugin, model not shipped yet, a failure)
are reported as skipped with the reason. Nothing here prints: progress is logged to
``vsrestore.eval``. Here: samples, metrics, running; :mod:`vsrestore.evaluation.methods`: what
runs; :mod:`vsrestore.evaluation.report`: the files; :mod:`vsrestore.evaluation.cli`: the command line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import metrics as mt
from .methods import TASKS, Config, Frames, Method, Sample, methods_for, peer_keys

__all__ = ["TASKS", "Config", "Method", "Metric", "Sample", "evaluate", "make_samples", "methods_for",
           "peer_keys", "run_method", "task_metrics"]

log = logging.getLogger("vsrestore.eval")
DEFAULT_CROP = {"sr": 384, "denoise": 256, "dnsr": 384}  # ground-truth side; deblock: 320x240 pans
DEBLOCK_WINDOW = (320, 240)


@dataclass(frozen=True, kw_only=True)
class Metric:
    key: str
    label: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool = True
    description: str = ""


def psnr_rgb(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def task_metrics(task: str) -> list[Metric]:
    """The metrics of a task, main one first."""
    y = Metric(key="psnr_y", label="PSNR-Y (dB)", fn=lambda a, b: mt.psnr_y(a, b),
               description="BT.601 Y' (16-235), 4 px border shaved")
    ssim = Metric(key="ssim_y", label="SSIM-Y", fn=lambda a, b: mt.ssim_y(a, b),
                  description="Wang et al. 2004 on BT.601 Y', 4 px border shaved")
    lpips = Metric(key="stlpips", label="ST-LPIPS", fn=lambda a, b: mt.stlpips(a, b), higher_is_better=False,
                   description="shift-tolerant LPIPS (AlexNet), lower is better")
    if task in ("sr", "dnsr"):
        return [y, ssim, lpips]
    if task == "denoise":
        return [Metric(key="psnr_rgb", label="PSNR RGB (dB)", fn=psnr_rgb, description="mean over R, G, B"),
                ssim]
    full = Metric(key="psnr_y", label="PSNR-Y (dB)", fn=lambda a, b: mt.psnr_y(a, b, shave=0),
                  description="BT.601 Y' (16-235), full frame")
    return [full, Metric(key="ssim_y", label="SSIM-Y", fn=lambda a, b: mt.ssim_y(a, b, shave=0),
                         description="Wang et al. 2004 on BT.601 Y', full frame")]


def degradation_text(cfg: Config) -> str:
    if cfg.task == "sr":
        return (f"x{cfg.scale}: ground truth = picture box-shrunk by 2 (centre crop, a multiple of "
                f"{cfg.scale}); input = zimg bicubic (b=0, c=0.5) down by {cfg.scale}")
    if cfg.task == "denoise":
        return (f"Gaussian noise sigma {cfg.sigma:g} (0-255 scale) per channel on the box-shrunk "
                "picture, rounded and clipped to 8 bit, seeded")
    if cfg.task == "deblock":
        return (f"libx264 CRF {cfg.crf:g} preset medium, yuv420p, one GOP per pan (1 px/frame) or "
                "clip; measured on the first, middle and last frame against the 8-bit frames")
    return (f"x2 with Gaussian noise sigma {cfg.sigma:g} (0-255, 8 bit, seeded) on the bicubic "
            "low-resolution input")


# ---- samples ---------------------------------------------------------------------------------

def make_samples(cfg: Config, pictures: Sequence[tuple[str, Frames]], crop: int | None,
                 window: tuple[int, int] | None = None, frames: int = 8) -> list[Sample]:
    """Degrade ground-truth frames for the task.

    *pictures*: (name, frames) with frames ``(3, H, W)`` 0..1 (a photo: one frame, already
    box-shrunk; a clip: its frames). *crop*: centre-crop side (``None``/0: whole frame).
    Deblock pans a *window* (w, h) over one-frame pictures for *frames* frames.
    """
    from .. import degradations as dg
    from ..training import data
    from ..training.evaluate import noisy

    def cut(f: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(data.center_crop(f, crop) if crop else f)

    out = []
    for i, (name, fr) in enumerate(pictures):
        if cfg.task in ("sr", "dnsr"):
            scale = cfg.scale if cfg.task == "sr" else 2
            hr = [np.ascontiguousarray(data.crop_multiple(cut(f), scale)) for f in fr]
            lr = data.bicubic_down(hr, scale)
            if cfg.task == "dnsr":
                lr = [noisy(x, cfg.sigma, 10000 * cfg.seed + 100 * i + k) for k, x in enumerate(lr)]
            out.append(Sample(name, lr, hr, cfg.sigma if cfg.task == "dnsr" else None))
        elif cfg.task == "denoise":
            clean = [cut(f) for f in fr]
            out.append(Sample(name, [noisy(c, cfg.sigma, 10000 * cfg.seed + 100 * i + k)
                                     for k, c in enumerate(clean)], clean, cfg.sigma))
        else:
            one = len(fr) == 1
            if one:
                seq = _pan_frames(fr[0], window or DEBLOCK_WINDOW, frames)
            else:  # a clip: its centre window (whole frames with crop 0)
                seq = [f if crop == 0 else _centre(f, window or DEBLOCK_WINDOW) for f in fr]
            gt = [dg.to_uint8(f.transpose(1, 2, 0)).astype(np.float32) / 255.0 for f in seq]
            dec = dg.codec_roundtrip(gt, "h264", cfg.crf, None, "medium")
            keep = sorted({0, (len(gt) - 1) // 2, len(gt) - 1})
            x = [np.ascontiguousarray(dec[k].transpose(2, 0, 1)) for k in keep]
            c = [np.ascontiguousarray(gt[k].transpose(2, 0, 1)) for k in keep]
            rms = float(np.sqrt(np.mean([np.mean((a - b) ** 2) for a, b in zip(x, c, strict=True)])))
            out.append(Sample(name, x, c, rms * 255.0))
    return out


def _centre(f: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """The centre *window* (w, h) of a ``(3, H, W)`` frame (the whole side where it is smaller)."""
    _, h, w = f.shape
    cw, ch = min(w, window[0]), min(h, window[1])
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(f[:, y0: y0 + ch, x0: x0 + cw])


def _pan_frames(img: np.ndarray, window: tuple[int, int], n: int) -> Frames:
    """*n* frames of a *window* (w, h) moving right 1 px a frame, centred in *img* (fitted)."""
    from ..training.tasks import pan

    _, ih, iw = img.shape
    w = min(window[0], (iw - n - 8) // 16 * 16)
    h = min(window[1], (ih - 8) // 16 * 16)
    if w < 32 or h < 32:
        raise ValueError(f"picture of {iw}x{ih} is too small for a {window[0]}x{window[1]} pan")
    x0, y0 = (iw - w - n) // 2, (ih - h) // 2
    return [np.ascontiguousarray(f.transpose(2, 0, 1)) for f in pan(img, x0, y0, w, h, n, 1.0, 0.0)]


# ---- running ---------------------------------------------------------------------------------

def _score(ms: list[Metric], outs: Frames, refs: Frames) -> dict[str, float]:
    for o, r in zip(outs, refs, strict=True):
        if o.shape != r.shape:
            raise ValueError(f"output of shape {o.shape} for ground truth {r.shape}")
    return {m.key: float(np.mean([m.fn(o, r) for o, r in zip(outs, refs, strict=True)])) for m in ms}


def at_edge(grid: list[dict[str, Any]], setting: dict[str, Any]) -> list[str]:
    """The parameters of *setting* at the smallest or largest value of the *grid* (peak maybe outside)."""
    edge = []
    for k, v in setting.items():
        vals = [g[k] for g in grid]
        if len(set(vals)) > 1 and v in (min(vals), max(vals)):
            edge.append(k)
    return edge


def run_method(m: Method, samples: list[Sample], ms: list[Metric], keep: int = 3) -> dict[str, Any]:
    """Run *m* on every sample at each setting of its grid; the best setting's results.

    A sweep ranks settings by the main metric alone; all metrics are computed for the best.
    Returns a JSON-ready dict; its ``"_kept"`` entry holds the output's middle frame for the
    first *keep* samples (for the crops) and is not meant for the JSON file.
    """
    res: dict[str, Any] = {"key": m.key, "label": m.label, "kind": m.kind, "call": m.call}
    if m.missing:
        log.info("eval: %s skipped: %s", m.label, m.missing)
        return {**res, "status": "skipped", "reason": m.missing}
    main = ms[0]
    sign = 1 if main.higher_is_better else -1
    best: tuple[float, dict[str, Any], list[Frames]] | None = None
    sweep = []
    t0 = time.perf_counter()
    for setting in m.grid:
        try:
            outs = [m.run(s, **setting) for s in samples]
            score = float(np.mean([_score([main], o, s.ref)[main.key]
                                   for o, s in zip(outs, samples, strict=True)]))
        except Exception as e:  # a peer or model that fails is reported, not fatal
            log.info("eval: %s failed: %s: %s", m.label, type(e).__name__, e, exc_info=log.isEnabledFor(10))
            return {**res, "status": "skipped", "reason": f"failed: {type(e).__name__}: {e}"}
        sweep.append({"setting": setting, "mean": score})
        if best is None or sign * score > sign * best[0]:
            best = (score, setting, outs)
        if len(m.grid) > 1:
            log.info("eval:   %s %s: %s %.3f", m.label, setting, main.key, score)
    assert best is not None
    _, setting, outs = best
    per = {s.name: _score(ms, o, s.ref) for o, s in zip(outs, samples, strict=True)}
    mean = {k.key: float(np.mean([p[k.key] for p in per.values()])) for k in ms}
    res.update(status="ok", seconds=round(time.perf_counter() - t0, 2), mean=mean, per_picture=per,
               _kept=[o[len(o) // 2] for o in outs[:keep]])
    if len(m.grid) > 1:
        res.update(setting=setting, sweep=sweep, edge_of_sweep=at_edge(m.grid, setting))
    log.info("eval: %-48s %s %.3f", m.label, main.key, mean[main.key])
    return res


def evaluate(cfg: Config, samples: list[Sample]) -> dict[str, Any]:
    """Every method of the task on *samples*; the results (see :mod:`vsrestore.evaluation.report`)."""
    if cfg.task not in TASKS:
        raise ValueError(f"unknown task {cfg.task!r}; use one of {', '.join(TASKS)}")
    if not samples:
        raise ValueError("no samples to evaluate")
    ms = task_metrics(cfg.task)
    runs = [run_method(m, samples, ms, cfg.keep) for m in methods_for(cfg)]
    main = ms[0]
    sign = 1 if main.higher_is_better else -1
    ok = sorted((r for r in runs if r["status"] == "ok"), key=lambda r: -sign * r["mean"][main.key])
    peers_ok = [r for r in ok if r["kind"] == "peer"]
    best_peer = peers_ok[0] if peers_ok else None
    for r in ok:
        if best_peer is not None:
            r["delta_vs_best_peer"] = r["mean"][main.key] - best_peer["mean"][main.key]
    return {"task": cfg.task, "main_metric": main.key,
            "metrics": {m.key: {"label": m.label, "description": m.description,
                                "higher_is_better": m.higher_is_better} for m in ms},
            "degradation": degradation_text(cfg), "pictures": [s.name for s in samples],
            "methods": ok + [r for r in runs if r["status"] != "ok"],
            "best_peer": best_peer["key"] if best_peer else None}
