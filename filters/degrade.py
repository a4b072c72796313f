"""Synthetic degradations (blur, downscale, sensor noise, JPEG, H.264/HEVC): ``vr.degrade``.

Stages run in a float working space (RGBS, or GRAYS for GRAY clips) and the result
is converted back to the input format. Randomness is a pure function of
``(seed, pass, stage, frame or window number)``: same seed, same bytes, whatever
the thread count.

Codec stage design: compression is temporal, so frames are encoded in GOP-sized
windows of ``Codec.window`` frames aligned to multiples of the window (frames
``k*W .. k*W+W-1``; the last window is padded by repeating the final frame). The
callback for frame ``n`` receives all frames of its window through ``W``
re-indexed clips (``SelectEvery`` + ``Interleave``; no ``get_frame`` in a
callback), encodes and decodes the whole window once through ffmpeg
(libx264/libx265, one encoder thread, so bit-exact), caches the decoded window
in a small thread-safe LRU (other frames of the window reuse it) and returns
frame ``n``. Every window starts with an IDR frame, like a closed-GOP encode.
"""

from __future__ import annotations

import functools
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal

import cv2
import numpy as np
import vapoursynth as vs

from vsrestore import color
from vsrestore import degradations as dg
from vsrestore.bridge import Shared, frame_to_array, map_frames, new_frame, resized_template
from vsrestore.errors import VSRestoreError, check_clip

core = vs.core
NAME = "degrade"
PROP = "vsrestore_degrade"

Range = float | tuple[float, float]
"""A fixed value, or ``(low, high)``: drawn uniformly per frame (per clip/window where noted)."""
Kernel = Literal["bicubic", "bilinear", "lanczos", "spline36", "point", "area"]


@dataclass(frozen=True, kw_only=True)
class GaussianBlur:
    """Isotropic Gaussian PSF of standard deviation *sigma* pixels."""

    sigma: Range = 1.0


@dataclass(frozen=True, kw_only=True)
class AnisotropicBlur:
    """Gaussian PSF with *sigma_x* along the direction *angle* (degrees) and *sigma_y* across it."""

    sigma_x: Range = 2.0
    sigma_y: Range = 0.7
    angle: Range = (0.0, 180.0)


@dataclass(frozen=True, kw_only=True)
class DefocusBlur:
    """Out-of-focus disk of *radius* pixels, or (``airy=True``) an Airy pattern with its first ring there."""

    radius: Range = 2.0
    airy: bool = False


@dataclass(frozen=True, kw_only=True)
class MotionBlur:
    """Linear motion blur over *length* pixels at *angle* degrees (0 = horizontal)."""

    length: Range = 7.0
    angle: Range = 0.0


Blur = GaussianBlur | AnisotropicBlur | DefocusBlur | MotionBlur


@dataclass(frozen=True, kw_only=True)
class Downscale:
    """Downscale by *factor* with *kernel* (zimg; ``"area"`` = OpenCV INTER_AREA).

    The clip gets smaller (``round(size / factor)``, kept a multiple of the chroma
    subsampling) unless ``keep_size=True``, which scales back up with *up_kernel*.
    A factor range is drawn once per clip (a clip has one size).
    """

    factor: Range = 2.0
    kernel: Kernel = "bicubic"
    keep_size: bool = False
    up_kernel: Kernel = "bicubic"


@dataclass(frozen=True, kw_only=True)
class Noise:
    """Poisson-Gaussian sensor noise: variance ``shot * x + read**2`` at signal *x* (0..1).

    ``luma_only`` adds one grey noise field to all channels; otherwise each channel
    gets its own. The noise is added to ``x**gamma`` (``gamma=2.2`` approximates
    the linear sensor domain of gamma-encoded video; 1.0 = as encoded).
    """

    shot: Range = 0.002
    read: Range = 0.01
    luma_only: bool = False
    gamma: float = 1.0


@dataclass(frozen=True, kw_only=True)
class Jpeg:
    """JPEG round trip through OpenCV at *quality* (1-100) on 8-bit RGB (or grey), per frame."""

    quality: Range = 50


@dataclass(frozen=True, kw_only=True)
class Codec:
    """Real H.264/HEVC compression through ffmpeg (libx264/libx265), windows of *window* frames.

    Give *crf* (a range is drawn per window) or *bitrate* in kbit/s (then set ``crf=None``).
    """

    codec: Literal["h264", "hevc"] = "h264"
    crf: Range | None = 28.0
    bitrate: int | None = None
    preset: str = "veryfast"
    window: int = 8


Stage = Blur | Downscale | Noise | Jpeg | Codec
_CODES = {"blur": 1, "downscale": 2, "noise": 3, "jpeg": 4, "codec": 5}
_ZIMG = {"bicubic": "Bicubic", "bilinear": "Bilinear", "lanczos": "Lanczos", "spline36": "Spline36",
         "point": "Point"}


def degrade(clip: vs.VideoNode, *, seed: int, blur: Blur | None = GaussianBlur(sigma=1.0),
            downscale: Downscale | None = Downscale(factor=2.0, keep_size=True),
            noise: Noise | None = Noise(), jpeg: Jpeg | None = Jpeg(quality=50), codec: Codec | None = None,
            order: Literal["fixed", "random"] = "fixed", second_order: bool = False) -> vs.VideoNode:
    """Degrade *clip* the way real footage is degraded (training pairs, evaluation).

    Enabled stages run in the order blur, downscale, noise, JPEG, codec; pass ``None``
    to disable one. The default chain (Gaussian blur sigma 1, x2 bicubic down and
    back up, Poisson-Gaussian noise, JPEG q50) keeps the size and lands well below
    35 dB PSNR. With every stage disabled the input node itself is returned.

    Args:
        clip: any YUV/RGB/GRAY clip, 8-16-bit integer or 16/32-bit float; the output
            has the same format (and size, unless ``downscale`` has ``keep_size=False``).
        seed: non-negative int. Same seed, same output bytes; per-frame parameters and
            noise are drawn from an RNG keyed on (seed, pass, stage, frame).
        blur: ``GaussianBlur``, ``AnisotropicBlur``, ``DefocusBlur`` or ``MotionBlur``.
        downscale: ``Downscale(factor, kernel, keep_size)``; changes the clip size
            unless ``keep_size=True``.
        noise: ``Noise(shot, read, luma_only, gamma)``.
        jpeg: ``Jpeg(quality)``.
        codec: ``Codec(codec="h264"|"hevc", crf or bitrate, window)``; off by default (slow).
        order: ``"fixed"``, or ``"random"``: a seeded permutation of the enabled stages,
            drawn once per clip and pass (a clip must keep one size per frame).
        second_order: run the whole chain a second time with freshly drawn parameters
            and noise (Real-ESRGAN's second-order degradation).

    Each output frame carries ``vsrestore_degrade``: JSON with the seed and, per pass,
    the stages applied and their drawn parameters.

    Example (.vpy)::

        import vapoursynth as vs, vsrestore as vr
        from vsrestore.filters.degrade import Codec, GaussianBlur, Noise, degrade
        clip = vs.core.bs.VideoSource("clean.mkv")
        lq = degrade(clip, seed=7, blur=GaussianBlur(sigma=(0.5, 2.0)), noise=Noise(read=(0.0, 0.02)),
                     codec=Codec(crf=(23, 35)), order="random", second_order=True)
        lq.set_output()
    """
    check_clip(clip, NAME)
    color.check_supported(clip, NAME)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise VSRestoreError(NAME, f"seed must be a non-negative int, got {seed!r}", "pass e.g. seed=0")
    if order not in ("fixed", "random"):
        raise VSRestoreError(NAME, f"order must be 'fixed' or 'random', got {order!r}", "use order='random'")
    stages: list[tuple[str, Stage]] = []
    for name, spec, kinds in (("blur", blur, (GaussianBlur, AnisotropicBlur, DefocusBlur, MotionBlur)),
                              ("downscale", downscale, (Downscale,)), ("noise", noise, (Noise,)),
                              ("jpeg", jpeg, (Jpeg,)), ("codec", codec, (Codec,))):
        if spec is None:
            continue
        if not isinstance(spec, kinds):
            want = " or ".join(k.__name__ for k in kinds)
            raise VSRestoreError(NAME, f"{name}= takes {want} or None, got {type(spec).__name__}",
                                 f"pass e.g. {name}={kinds[0].__name__}()")
        _validate(name, spec)
        stages.append((name, spec))
    if not stages:
        return clip
    assert clip.format is not None
    info = color.describe(clip)
    gray = clip.format.color_family == vs.GRAY
    work = color.to_grays(clip, info) if gray else color.to_rgbs(clip, info)
    mult = (1 << clip.format.subsampling_w, 1 << clip.format.subsampling_h)
    plan: list[list[tuple[str, Stage]]] = []
    sizes: dict[int, tuple[int, int]] = {}  # pass -> size after its downscale
    for p in range(2 if second_order else 1):
        seq = list(stages)
        if order == "random":
            seq = [seq[i] for i in _rng(seed, p, 0, 0).permutation(len(seq))]
        plan.append(seq)
        work = _apply_pass(work, seq, seed, p, mult, sizes)
    out = color.from_grays(work, info) if gray else color.from_rgbs(work, info)
    return _write_props(out, plan, seed, sizes)


def _rng(seed: int, p: int, code: int, n: int, sub: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, p, code, n, sub])


def _draw(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1])) if isinstance(r, tuple) else float(r)


def _check_range(stage: str, field: str, r: object, lo: float, hi: float = float("inf"),
                 open_lo: bool = False) -> None:
    vals = r if isinstance(r, tuple) else (r,)
    ok = len(vals) in (1, 2) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals)
    ok = ok and all((v > lo if open_lo else v >= lo) and v <= hi for v in vals)  # type: ignore[operator]
    ok = ok and (len(vals) == 1 or vals[0] <= vals[1])  # type: ignore[operator]
    if not ok:
        bound = f"{'>' if open_lo else '>='} {lo:g}" + (f" and <= {hi:g}" if hi != float("inf") else "")
        raise VSRestoreError(NAME, f"{stage}.{field}={r!r} is invalid: it must be a number {bound}, "
                             "or a (low, high) tuple of such numbers", f"e.g. {field}={max(lo, 1):g}")


def _validate(name: str, spec: Stage) -> None:
    if isinstance(spec, GaussianBlur):
        _check_range(name, "sigma", spec.sigma, 0, 10, open_lo=True)
    elif isinstance(spec, AnisotropicBlur):
        _check_range(name, "sigma_x", spec.sigma_x, 0, 10, open_lo=True)
        _check_range(name, "sigma_y", spec.sigma_y, 0, 10, open_lo=True)
        _check_range(name, "angle", spec.angle, -360, 360)
    elif isinstance(spec, DefocusBlur):
        _check_range(name, "radius", spec.radius, 0, 30, open_lo=True)
    elif isinstance(spec, MotionBlur):
        _check_range(name, "length", spec.length, 0, 60, open_lo=True)
        _check_range(name, "angle", spec.angle, -360, 360)
    elif isinstance(spec, Downscale):
        _check_range(name, "factor", spec.factor, 1, 16)
        for k in (spec.kernel, spec.up_kernel):
            if k not in (*_ZIMG, "area"):
                raise VSRestoreError(NAME, f"unknown resize kernel {k!r}",
                                     f"use one of {', '.join([*_ZIMG, 'area'])}")
    elif isinstance(spec, Noise):
        _check_range(name, "shot", spec.shot, 0, 1)
        _check_range(name, "read", spec.read, 0, 1)
        _check_range(name, "gamma", spec.gamma, 0.1, 5)
    elif isinstance(spec, Jpeg):
        _check_range(name, "quality", spec.quality, 1, 100)
    elif isinstance(spec, Codec):
        if spec.codec not in dg.ENCODERS:
            raise VSRestoreError(NAME, f"unknown codec {spec.codec!r}", "use codec='h264' or 'hevc'")
        if (spec.crf is None) == (spec.bitrate is None):
            raise VSRestoreError(NAME, "codec needs exactly one of crf and bitrate",
                                 "pass Codec(crf=28) or Codec(crf=None, bitrate=800)")
        if spec.crf is not None:
            _check_range(name, "crf", spec.crf, 0, 51)
        if spec.bitrate is not None:
            _check_range(name, "bitrate", spec.bitrate, 1, 10**6)
        if not isinstance(spec.window, int) or isinstance(spec.window, bool) or not 1 <= spec.window <= 250:
            raise VSRestoreError(NAME, f"codec window must be an int in 1..250, got {spec.window!r}",
                                 "use window=8")
        missing = _missing_encoder(dg.ENCODERS[spec.codec][0])
        if missing:
            raise VSRestoreError(NAME, missing, "install imageio-ffmpeg (its ffmpeg has libx264/libx265)")


@functools.cache
def _missing_encoder(lib: str) -> str | None:
    try:
        r = subprocess.run([dg._ffmpeg(), "-hide_banner", "-encoders"], capture_output=True, check=False)
    except (OSError, RuntimeError) as e:
        return f"ffmpeg is not available ({e})"
    return None if lib in r.stdout.decode(errors="replace") else f"this ffmpeg has no {lib} encoder"


def _params(name: str, spec: Stage, seed: int, p: int, n: int, size: tuple[int, int]) -> dict[str, Any]:
    """The parameters stage *name* uses on frame *n* of pass *p* (JSON-ready)."""
    if isinstance(spec, Codec):
        k = n // spec.window
        rng = _rng(seed, p, _CODES[name], k)
        rate = {"bitrate": spec.bitrate} if spec.bitrate is not None else {
            "crf": round(_draw(rng, spec.crf), 2) if spec.crf is not None else None}
        return {"stage": name, "codec": spec.codec, **rate, "window": k, "frames": spec.window}
    if isinstance(spec, Downscale):
        f = _draw(_rng(seed, p, _CODES[name], 0), spec.factor)
        return {"stage": name, "factor": round(f, 4), "kernel": spec.kernel, "keep_size": spec.keep_size,
                "size": list(size)}
    rng = _rng(seed, p, _CODES[name], n)
    out: dict[str, Any] = {"stage": name}
    if not isinstance(spec, Noise | Jpeg):
        out["kind"] = type(spec).__name__
    for fld in fields(spec):
        v = getattr(spec, fld.name)
        out[fld.name] = round(_draw(rng, v), 4) if isinstance(v, int | float | tuple) and not isinstance(
            v, bool) else v
    if isinstance(spec, Jpeg):
        out["quality"] = int(round(out["quality"]))
    return out


def _apply_pass(work: vs.VideoNode, seq: list[tuple[str, Stage]], seed: int, p: int,
                mult: tuple[int, int], sizes: dict[int, tuple[int, int]]) -> vs.VideoNode:
    group: list[tuple[str, Stage]] = []
    for name, spec in [*seq, ("", Jpeg())]:  # sentinel flushes the last group
        if name in ("blur", "noise", "jpeg"):
            group.append((name, spec))
            continue
        if group:
            work = _pixel_stages(work, group, seed, p)
            group = []
        if isinstance(spec, Downscale):
            work, sizes[p] = _resize(work, spec, seed, p, mult)
        elif isinstance(spec, Codec):
            work = _codec(work, spec, seed, p)
    return work


def _pixel_stages(work: vs.VideoNode, group: list[tuple[str, Stage]], seed: int, p: int) -> vs.VideoNode:
    size = (work.width, work.height)

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        img = np.ascontiguousarray(frame_to_array(f[0]).transpose(1, 2, 0))
        for name, spec in group:
            prm = _params(name, spec, seed, p, n, size)
            img = dg.apply_stage(img, prm, _rng(seed, p, _CODES[name], n, 1))
        return _to_frame(img, work, f[0])

    return map_frames(work, [work], fn)


def _to_frame(img: np.ndarray, template: vs.VideoNode, props_from: vs.VideoFrame) -> vs.VideoFrame:
    fout = new_frame(template, props_from)
    for c in range(img.shape[2]):
        np.copyto(np.asarray(fout[c]), img[..., c], casting="unsafe")
    return fout


def _scaled(work: vs.VideoNode, w: int, h: int, kernel: str) -> vs.VideoNode:
    if kernel != "area":
        resizer: Callable[..., vs.VideoNode] = getattr(core.resize, _ZIMG[kernel])
        return resizer(work, w, h)
    tpl = resized_template(work, w, h)

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        img = np.ascontiguousarray(frame_to_array(f[0]).transpose(1, 2, 0))
        out = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA).reshape(h, w, img.shape[2])
        return _to_frame(out, tpl, f[0])

    return map_frames(tpl, [work], fn)


def _resize(work: vs.VideoNode, spec: Downscale, seed: int, p: int,
            mult: tuple[int, int]) -> tuple[vs.VideoNode, tuple[int, int]]:
    factor = _draw(_rng(seed, p, _CODES["downscale"], 0), spec.factor)
    w = max(mult[0], int(round(work.width / factor / mult[0])) * mult[0])
    h = max(mult[1], int(round(work.height / factor / mult[1])) * mult[1])
    small = _scaled(work, w, h, spec.kernel)
    return (_scaled(small, work.width, work.height, spec.up_kernel) if spec.keep_size else small), (w, h)


def _codec(work: vs.VideoNode, spec: Codec, seed: int, p: int) -> vs.VideoNode:
    win, count = spec.window, work.num_frames
    pad = (-count) % win
    src = work + work[count - 1] * pad if pad else work
    # clips[d][n] = src[(n // win) * win + d]: the whole window of frame n, no get_frame needed
    clips = [core.std.Interleave([src.std.SelectEvery(win, [d])] * win)[:count] if win > 1 else src
             for d in range(win)]
    cache: Shared[int, list[np.ndarray]] = Shared(4)  # each window encoded once
    fps = float(work.fps) if work.fps.numerator > 0 else 24.0
    size = (work.width, work.height)

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        prm = _params("codec", spec, seed, p, n, size)

        def encode() -> list[np.ndarray]:
            frames = [np.ascontiguousarray(frame_to_array(x).transpose(1, 2, 0)) for x in f]
            try:
                return dg.codec_roundtrip(frames, spec.codec, prm.get("crf"), spec.bitrate, spec.preset, fps)
            except RuntimeError as e:
                raise VSRestoreError(NAME, str(e), "check the Codec settings (preset, crf/bitrate)") from e

        decoded = cache.get(n // win, encode)
        return _to_frame(decoded[n % win], work, f[n % win])

    return map_frames(work, clips, fn)


def _write_props(out: vs.VideoNode, plan: list[list[tuple[str, Stage]]], seed: int,
                 sizes: dict[int, tuple[int, int]]) -> vs.VideoNode:
    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        size = (out.width, out.height)
        passes = [[_params(name, spec, seed, p, n, sizes.get(p, size)) for name, spec in seq]
                  for p, seq in enumerate(plan)]
        fout = f[0].copy()
        fout.props[PROP] = json.dumps({"seed": seed, "passes": passes}, separators=(",", ":"))
        return fout

    return map_frames(out, [out], fn)


__all__ = ["AnisotropicBlur", "Blur", "Codec", "DefocusBlur", "Downscale", "GaussianBlur", "Jpeg",
           "MotionBlur", "Noise", "Range", "degrade"]
