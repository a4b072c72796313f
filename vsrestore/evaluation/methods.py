"""What ``vsrestore eval`` runs: the samples' types, and per task our stages and the peers.

A :class:`Method` is a stage or peer as ``run(sample, **setting) -> frames`` with the grid of
settings to sweep and, when it cannot run here, the reason (``missing``). Ours: the stage
with the default shipped model (``vr.upscale`` / ``vr.denoise`` / ``vr.deblock``), each
``--model``, and with ``oracle`` the true level; peers come from :mod:`vsrestore.evaluation.peers`
with their sweep grids; ``input`` rows are the degraded input itself. Frames are RGB float
``(3, H, W)`` in 0..1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import vapoursynth as vs

from .. import models as registry
from ..bridge import clip_from_arrays, clip_to_arrays
from . import peers

Frames = list[np.ndarray]
TASKS = ("sr", "denoise", "deblock", "dnsr")


@dataclass
class Sample:
    """One picture (or clip): degraded input frames, ground-truth frames, true level (0-255)."""

    name: str
    inp: Frames
    ref: Frames
    level: float | None = None


@dataclass(kw_only=True)
class Method:
    """A stage or peer: ``run(sample, **setting)`` -> output frames; ``grid`` is swept."""

    key: str
    label: str
    kind: str  # ours | oracle | peer | baseline | input
    run: Callable[..., Frames]
    call: str
    grid: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    missing: str | None = None  # why it cannot run here


@dataclass(frozen=True, kw_only=True)
class Config:
    task: str
    scale: int = 2
    sigma: float = 25.0
    crf: float = 40.0
    models: tuple[str, ...] = ()
    oracle: bool = False
    peers: tuple[str, ...] | None = None  # peer keys or prefixes; None = all that apply
    seed: int = 0
    keep: int = 3  # samples whose outputs are kept for side-by-side crops


# ---- methods ---------------------------------------------------------------------------------

ClipFn = Callable[[vs.VideoNode, Sample], vs.VideoNode]


def _on_clip(fn: ClipFn) -> Callable[..., Frames]:
    """A stage as a method: the sample's frames as an RGBS clip through *fn*, back as arrays."""
    def run(s: Sample) -> Frames:
        return [np.clip(a, 0.0, 1.0) for a in clip_to_arrays(fn(clip_from_arrays(s.inp, vs.RGBS), s))]
    return run


def _model_missing(model: str | None, task: str, scale: int) -> str | None:
    """Why a model cannot be used here: a shipped name that is not installed (yet)."""
    if model is None:
        if task == "sr" and scale == 4 and registry.default_for("sr", 4) is None:
            return _model_missing(None, "sr", 2)  # x4 = the x2 model twice
        if registry.default_for(task, scale) is None:
            name = registry.DEFAULTS.get((task, scale), f"for {task} x{scale}")
            return f"shipped model {name} is not installed yet (vsrestore/models/weights; " \
                   "`vsrestore models list`)"
        return None
    if Path(model).expanduser().is_file() or model in {m.name for m in registry.available()}:
        return None
    return f"shipped model '{model}' is not installed (`vsrestore models list`)"


def _model_label(model: str | None, task: str, scale: int) -> str:
    if model is not None:
        return Path(model).stem if Path(model).suffix else model
    name = registry.default_for(task, scale)
    if name is None and task == "sr" and scale == 4 and registry.default_for("sr", 2):
        return f"{registry.default_for('sr', 2)} twice"
    return name or registry.DEFAULTS.get((task, scale), f"{task} x{scale}")


def _stage_fn(task: str, scale: int, model: str | None, oracle: bool) -> ClipFn:
    import vsrestore as vr

    def fn(c: vs.VideoNode, s: Sample) -> vs.VideoNode:
        if task == "sr":
            return vr.upscale(c, scale, model=model)
        if task == "deblock":
            return vr.deblock(c, min(float(s.level or 0), 40.0) if oracle else None, model=model)
        level = min(float(s.level or 0), 75.0) if oracle else None
        return vr.denoise(c, level, model=model, scale=scale)
    return fn


def _ours(cfg: Config) -> list[Method]:
    import vsrestore as vr

    task, scale = {"sr": ("sr", cfg.scale), "denoise": ("denoise", 1), "deblock": ("deblock", 1),
                   "dnsr": ("denoise", 2)}[cfg.task]
    name = "upscale" if task == "sr" else task
    kw = ", scale=2" if cfg.task == "dnsr" else (f", {scale}" if task == "sr" else "")
    joint = "joint " if cfg.task == "dnsr" else ""
    res = []
    for m in (None, *cfg.models):
        label, miss = _model_label(m, task, scale), _model_missing(m, task, scale)
        tag = "" if m is None else f":{label}"
        if m is not None and Path(m).suffix:  # a file: its name shown (a shipped model's copy is told apart)
            label = Path(m).name
        mk = "" if m is None else f", model={str(m)!r}"
        blind = "" if task == "sr" else f"{joint}blind "
        res.append(Method(key=f"ours{tag}", label=f"vr.{name} {blind}({label})", kind="ours",
                          call=f"vr.{name}(clip{kw}{mk})", missing=miss,
                          run=_on_clip(_stage_fn(task, scale, m, False))))
        if cfg.oracle and task != "sr":
            lv = "true RMS level" if task == "deblock" else "true sigma"
            res.append(Method(key=f"oracle{tag}", label=f"vr.{name} {joint}{lv} ({label})", kind="oracle",
                              call=f"vr.{name}(clip, LEVEL{kw}{mk})", missing=miss,
                              run=_on_clip(_stage_fn(task, scale, m, True))))
    if cfg.task == "dnsr":
        sr, dn = _model_label(None, "sr", 2), _model_label(None, "denoise", 1)
        res.append(Method(key="ours:denoise-then-upscale", label=f"vr.upscale(vr.denoise) ({dn} then {sr})",
                          kind="ours", call="vr.upscale(vr.denoise(clip), 2)",
                          missing=_model_missing(None, "denoise", 1) or _model_missing(None, "sr", 2),
                          run=_on_clip(lambda c, s: vr.upscale(vr.denoise(c), 2))))
        res.append(Method(key="baseline:upscale-noisy", label=f"vr.upscale, no denoising ({sr})",
                          kind="baseline", call="vr.upscale(clip, 2)", missing=_model_missing(None, "sr", 2),
                          run=_on_clip(lambda c, s: vr.upscale(c, 2))))
    return res


def _grid(name: str, values: Sequence[float]) -> list[dict[str, Any]]:
    return [{name: v} for v in dict.fromkeys(values)]


def _bm3d2_grid(sigma: float) -> list[dict[str, Any]]:
    """ffmpeg bm3d's sigma is not the noise sigma: at noise sigma 25 on 12 held-out corpus crops
    one step peaked at 60 (yuv444p) / 100 (gbrp), two steps at basic 60 + final 400."""
    return [{"sigma": round(a * sigma), "final_sigma": round(b * sigma)}
            for a in (2.0, 2.4, 2.8, 3.2, 4.0) for b in (6.0, 8.0, 12.0, 16.0, 24.0)]


def _dft_missing() -> str | None:
    return peers.missing_plugin("dfttest2_cpu") or peers.missing_module("dfttest2")


def _dft_grid(sigma: float) -> list[dict[str, Any]]:
    """dfttest's sigma is a power-spectrum level: it scales with the noise variance."""
    return _grid("sigma", [round(v * (sigma / 25) ** 2) for v in
                           (128, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)])


def _sr_peers(k: int) -> list[Method]:
    def scaler(kernel: str) -> Callable[..., Frames]:
        return lambda x: peers.resize_up(x.inp, k, kernel)

    res = [Method(key=key, label=label, kind="peer", call=call, run=scaler(key)) for key, label, call in (
        ("lanczos", "zimg Lanczos (3 taps)", "core.resize.Lanczos(filter_param_a=3)"),
        ("spline36", "zimg Spline36", "core.resize.Spline36"),
        ("bicubic", "zimg Bicubic (b=0, c=0.5)",
         "core.resize.Bicubic(filter_param_a=0, filter_param_b=0.5)"))]
    zs = ", ".join(f"{a}={b}" for a, b in peers.ZNEDI3_SETTINGS.items())
    res.append(Method(key="znedi3", label=f"znedi3 doubling x{k} + Spline36 centre shift", kind="peer",
                      call=f"core.znedi3.nnedi3(field=1, dh=True, {zs}) on rows and columns",
                      run=lambda x: peers.znedi3_up(x.inp, k), missing=peers.missing_plugin("znedi3")))
    return res


def _ffmpeg_run(pix: str, chain: Callable[..., str]) -> Callable[..., Frames]:
    return lambda x, **g: peers.ffmpeg_filter(x.inp, chain(**g), pix)


def _denoise_peers(s: float) -> list[Method]:
    bm, nl = peers.missing_ffmpeg_filter("bm3d"), peers.missing_ffmpeg_filter("nlmeans")
    res = [Method(key=f"bm3d-{pix}", label=f"ffmpeg bm3d ({pix})", kind="peer", missing=bm,
                  call=f"ffmpeg -vf format={pix},bm3d=sigma=S", run=_ffmpeg_run(pix, peers.bm3d_chain),
                  grid=_grid("sigma", [round(f * s) for f in (1.6, 2, 2.4, 2.8, 3.2, 4, 5, 6)]))
           for pix in ("gbrp", "yuv444p")]
    res.append(Method(key="bm3d2-yuv444p", label="ffmpeg bm3d two-step (yuv444p)", kind="peer", missing=bm,
                      call="ffmpeg -vf split, bm3d estim=basic, bm3d estim=final (ref = basic)",
                      run=_ffmpeg_run("yuv444p", peers.bm3d_chain), grid=_bm3d2_grid(s)))
    nl_grid = _grid("s", [min(30.0, max(1.0, round(f * s, 1)))
                          for f in (0.24, 0.32, 0.4, 0.48, 0.56, 0.68, 0.8, 1)])
    res += [Method(key=f"nlmeans-{pix}", label=f"ffmpeg nlmeans ({pix})", kind="peer", missing=nl,
                   call=f"ffmpeg -vf format={pix},nlmeans=s=S", grid=nl_grid,
                   run=_ffmpeg_run(pix, lambda s: f"nlmeans=s={s:g}")) for pix in ("gbrp", "yuv444p")]
    dft, dft_grid = _dft_missing(), _dft_grid(s)

    def dfttest(fmt: str) -> Callable[..., Frames]:
        return lambda x, sigma: peers.dfttest2_denoise(x.inp, sigma, fmt)

    res += [Method(key=f"dfttest2-{fmt}", label=f"dfttest2 CPU ({fmt})", kind="peer", missing=dft,
                   call="dfttest2.DFTTest(sigma=S, tbsize=1, backend=dfttest2.Backend.CPU())",
                   grid=dft_grid, run=dfttest(fmt)) for fmt in ("rgb24", "yuv444p")]
    return res


def _peers(cfg: Config) -> list[Method]:
    if cfg.task == "sr":
        return _sr_peers(cfg.scale)
    if cfg.task == "denoise":
        return _denoise_peers(cfg.sigma)
    if cfg.task == "deblock":
        return [Method(key="deblock", label="core.deblock.Deblock (yuv444p)", kind="peer",
                       call="core.deblock.Deblock(quant=Q)", missing=peers.missing_plugin("deblock"),
                       grid=_grid("quant", range(25, 51, 5)),
                       run=lambda x, quant: peers.deblock_peer(x.inp, quant))]

    def bm3d_lanczos(x: Sample, **g: Any) -> Frames:
        return peers.resize_up(peers.ffmpeg_filter(x.inp, peers.bm3d_chain(**g), "yuv444p"), 2, "lanczos")

    def dft_lanczos(x: Sample, sigma: float) -> Frames:
        return peers.resize_up(peers.dfttest2_denoise(x.inp, sigma, "yuv444p"), 2, "lanczos")

    return [Method(key="bm3d2-lanczos", label="ffmpeg bm3d two-step (yuv444p) then Lanczos-3", kind="peer",
                   call="ffmpeg bm3d basic + final, then core.resize.Lanczos(filter_param_a=3)",
                   missing=peers.missing_ffmpeg_filter("bm3d"), grid=_bm3d2_grid(cfg.sigma),
                   run=bm3d_lanczos),
            Method(key="dfttest2-lanczos", label="dfttest2 CPU (yuv444p) then Lanczos-3", kind="peer",
                   call="dfttest2.DFTTest(sigma=S, tbsize=1), then core.resize.Lanczos(filter_param_a=3)",
                   missing=_dft_missing(), grid=_dft_grid(cfg.sigma), run=dft_lanczos)]


def _inputs(cfg: Config) -> list[Method]:
    label = {"denoise": "noisy input", "deblock": f"x264 CRF {cfg.crf:g} (input)"}.get(cfg.task)
    if label is None:  # sr/dnsr: the input has another size
        return []
    return [Method(key="input", label=label, kind="input", call="-", run=lambda x: x.inp)]


def peer_keys(task: str) -> list[str]:
    return [m.key for m in _peers(Config(task=task))]


def methods_for(cfg: Config) -> list[Method]:
    """Inputs, ours and the selected peers (keys or key prefixes in ``cfg.peers``) of the task."""
    ps = _peers(cfg)
    if cfg.peers is not None:
        ps = [m for m in ps if any(m.key == p or m.key.startswith(p) for p in cfg.peers)]
    return _inputs(cfg) + _ours(cfg) + ps
