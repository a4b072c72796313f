"""Film grain: measure it (``analyze_grain``), synthesize it (``regrain``), export it for AV1.

Estimating grain (no motion compensation in this version). With >= 3 frames, frame n minus the mean
of its two neighbours (times sqrt(2/3)) is used, so static texture cancels; else the frame itself.
Each plane (or that difference) is cut into 16x16 blocks;
a plane ``a + b x + c y`` is fitted to every block by least squares and the residual is the grain
estimate. Per luma bin (of the block's mean luma) the blocks whose residual variance is at most twice
the bin's 30th percentile are kept as "flat" (texture raises the variance; grain alone does not).
From the kept residuals: sigma per luma bin (per pixel luma, corrected for the variance the fit
removes), 2-D autocorrelation (lags 0..3 down, -3..3 across), the radially averaged power spectrum
(16-point block FFT, bins k = 0..8 cycles per 16 px) and the grain's frame-to-frame correlation
rho = 1 + 2 corr(f[n] - f[n-1], f[n+1] - f[n]) over the kept blocks (0: fresh grain each
frame). Grain is modelled as white noise through a Gaussian of width
``grain_size`` px (0: white), fitted to the lag-1/2 autocorrelation; ``regrain`` uses that model.

Verdict ``kind``: "film" when the grain is spatially correlated (lag-1 autocorrelation > 0.3) and
its sigma curve is not Poisson-like (rising with luma), or mildly correlated (> 0.12) with a
mid-tone peak (sigma in the mid-tones >= 1.15x the ends); else "digital".
Sigma values are fractions of the plane's full scale (integer: code / (2**bits - 1); float: as is).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import vapoursynth as vs
from vsrestore.kernels.grain import noise_key, regrain_plane_seeded

from vsrestore.bridge import map_frames, new_frame
from vsrestore.errors import VSRestoreError, check_clip
from vsrestore.props import SYNTH_PROP, synthesized_stages

__all__ = ["GrainProfile", "analyze_grain", "regrain", "STOCKS"]

BLOCK = 16
LAGS = 3
_KR = BLOCK // 2 + 1  # radial spectrum bins 0..8

# name: (sigma at mid-grey, grain size px, chroma sigma / luma sigma). Parameter sets, not emulations.
STOCKS: dict[str, tuple[float, float, float]] = {
    "35mm-fine": (0.010, 0.55, 0.35),
    "35mm-coarse": (0.020, 0.90, 0.40),
    "16mm": (0.028, 1.20, 0.45),
    "super8": (0.040, 1.60, 0.50),
}


@dataclass(frozen=True, kw_only=True)
class GrainProfile:
    """Measured (or stock) grain. Per channel: ``sigma[c][i]`` for luma bin i of ``len(sigma[c])``
    equal bins over 0..1 with ``counts[c][i]`` pixels; ``acf[c]`` 2-D autocorrelation rows dy 0..3,
    columns dx -3..3; ``psd[c]`` radial power spectrum (sum 1, bins 0..8 cycles/16 px);
    ``grain_size[c]`` Gaussian shaping width in px; ``temporal_corr[c]``; ``kind`` "film"/"digital"."""

    channels: tuple[str, ...]
    sigma: tuple[tuple[float, ...], ...]
    counts: tuple[tuple[int, ...], ...]
    acf: tuple[tuple[tuple[float, ...], ...], ...]
    psd: tuple[tuple[float, ...], ...]
    grain_size: tuple[float, ...]
    temporal_corr: tuple[float, ...]
    kind: str
    features: dict[str, float] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (lists for tuples)."""
        return json_lists(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GrainProfile:
        """Inverse of :meth:`to_dict`."""
        t = dict(d)
        for k in ("channels", "sigma", "counts", "acf", "psd", "grain_size", "temporal_corr"):
            t[k] = _tuples(t[k])
        t["features"] = dict(t.get("features", {}))
        return cls(**t)

    def to_av1_table(self, path: str | Path | None = None, **kwargs: Any) -> str:
        """AV1 film grain table text (aomenc ``--film-grain-table``, SVT-AV1 ``--fgs-table``);
        written to *path* unless None. :func:`av1_table` documents the mapping and options."""
        text = av1_table(self, **kwargs)
        if path is not None:
            Path(path).write_text(text)
        return text


def json_lists(x: Any) -> Any:
    if isinstance(x, (tuple, list)):
        return [json_lists(v) for v in x]
    if isinstance(x, dict):
        return {k: json_lists(v) for k, v in x.items()}
    return x


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


# ---- the grain model: Gaussian-shaped white noise ------------------------------------------------

def shaping_kernel(size: float) -> np.ndarray:
    """Gaussian FIR of width *size* px, radius <= 4, unit energy (shaped noise keeps unit variance)."""
    if size <= 0.05:
        return np.ones((1, 1), np.float32)
    r = min(4, max(1, math.ceil(3.0 * size)))
    g = np.exp(-0.5 * (np.arange(-r, r + 1) / size) ** 2)
    k = np.outer(g, g)
    return (k / math.sqrt(float((k * k).sum()))).astype(np.float32)


def kernel_acf(k: np.ndarray) -> np.ndarray:
    """2-D autocorrelation of noise shaped by *k*: rows dy 0..3, columns dx -3..3."""
    kk = k.astype(np.float64)
    kh, kw = kk.shape
    pad = np.zeros((kh + 2 * LAGS, kw + 2 * LAGS))
    pad[LAGS:LAGS + kh, LAGS:LAGS + kw] = kk
    out = np.empty((LAGS + 1, 2 * LAGS + 1))
    for dy in range(LAGS + 1):
        for dx in range(-LAGS, LAGS + 1):
            out[dy, dx + LAGS] = float((pad[LAGS:LAGS + kh, LAGS:LAGS + kw]
                                        * pad[LAGS + dy:LAGS + dy + kh, LAGS + dx:LAGS + dx + kw]).sum())
    return out


def _rho12(acf: np.ndarray) -> tuple[float, float]:
    c = LAGS
    return (float(acf[0, c + 1] + acf[1, c]) / 2, float(acf[0, c + 2] + acf[2, c]) / 2)


_YX = np.mgrid[0:BLOCK, 0:BLOCK].reshape(2, -1).astype(np.float64) - (BLOCK - 1) / 2
_X = np.stack([np.ones(BLOCK * BLOCK), _YX[1], _YX[0]], axis=1)
_PROJ = np.eye(BLOCK * BLOCK) - _X @ np.linalg.solve(_X.T @ _X, _X.T)  # residual of the plane fit
_RING = np.minimum(np.rint(np.hypot(*np.meshgrid(np.fft.fftfreq(BLOCK) * BLOCK,
                                                  np.fft.fftfreq(BLOCK) * BLOCK))), _KR - 1).astype(int)


@functools.cache
def detrended_model(size: float) -> tuple[np.ndarray, float]:
    """What the analysis measures on noise shaped by ``shaping_kernel(size)``: the normalised 4x7
    autocorrelation of the block residuals, and the share of variance the plane fit keeps."""
    k = shaping_kernel(size).astype(np.float64)
    pad = np.zeros((2 * BLOCK, 2 * BLOCK))
    pad[:k.shape[0], :k.shape[1]] = k
    full = np.real(np.fft.ifft2(np.abs(np.fft.fft2(pad)) ** 2))  # acf at all lags, circular index
    d = (_YX[:, :, None] - _YX[:, None, :]).astype(int)
    cov = _PROJ @ full[d[0] % (2 * BLOCK), d[1] % (2 * BLOCK)] @ _PROJ
    out = np.empty((LAGS + 1, 2 * LAGS + 1))
    pos = _YX.T
    for dy in range(LAGS + 1):
        for dx in range(-LAGS, LAGS + 1):
            i = np.flatnonzero((pos[:, 0] + dy <= _YX[0].max()) & (pos[:, 1] + dx >= _YX[1].min())
                               & (pos[:, 1] + dx <= _YX[1].max()))
            out[dy, dx + LAGS] = float(cov[i, i + dy * BLOCK + dx].mean())
    return out / out[0, LAGS], float(np.trace(cov)) / (BLOCK * BLOCK)


@functools.cache
def _size_table() -> tuple[np.ndarray, np.ndarray]:
    sizes = np.round(np.arange(0.0, 2.51, 0.04), 2)
    return sizes, np.array([_rho12(detrended_model(float(v))[0]) for v in sizes])


def fit_grain_size(acf: np.ndarray) -> float:
    """Gaussian width whose lag-1/2 autocorrelation, as the analysis measures it, is nearest *acf*."""
    sizes, rho = _size_table()
    return float(sizes[int(np.argmin(((rho - np.array(_rho12(acf))) ** 2).sum(axis=1)))])


def model_psd(k: np.ndarray) -> np.ndarray:
    """Radial spectrum (sum 1) of noise shaped by *k*, as the analysis would measure it."""
    pad = np.zeros((BLOCK, BLOCK))
    kh, kw = k.shape
    pad[:kh, :kw] = k
    p = np.abs(np.fft.fft2(pad)) ** 2
    rad = np.bincount(_RING.ravel(), p.ravel(), _KR) / np.bincount(_RING.ravel(), minlength=_KR)
    return rad / rad.sum()


# ---- planes, luma ---------------------------------------------------------------------------------

def _channel_names(fmt: vs.VideoFormat) -> tuple[str, ...]:
    return {vs.YUV: ("Y", "U", "V"), vs.RGB: ("R", "G", "B")}.get(fmt.color_family, ("Y",))


def _frame_planes(f: vs.VideoFrame) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Planes as float32 fractions of full scale, and luma (0..1) at each plane's size."""
    fmt = f.format
    scale = 1.0 if fmt.sample_type == vs.FLOAT else 1.0 / ((1 << fmt.bits_per_sample) - 1)
    planes = [np.asarray(f[p], dtype=np.float32) * np.float32(scale) for p in range(fmt.num_planes)]
    if fmt.color_family == vs.RGB:
        y = 0.2126 * planes[0] + 0.7152 * planes[1] + 0.0722 * planes[2]
    else:
        y = planes[0]
    lumas = []
    for p in planes:
        fy, fx = y.shape[0] // p.shape[0], y.shape[1] // p.shape[1]
        ly = y if (fy, fx) == (1, 1) else y[:p.shape[0] * fy, :p.shape[1] * fx].reshape(
            p.shape[0], fy, p.shape[1], fx).mean(axis=(1, 3))
        lumas.append(np.ascontiguousarray(ly, dtype=np.float32))
    return planes, lumas


# ---- analysis -----------------------------------------------------------------------------------

def block_stats(res: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Summed 2-D lag products (4x7, lag 0 at [0, 3]) and summed radial power of residual blocks
    ``(n, 16, 16)``; normalise by ``acf[0, 3]`` / ``psd.sum()``."""
    acf = np.zeros((LAGS + 1, 2 * LAGS + 1))
    for dy in range(LAGS + 1):
        for dx in range(-LAGS, LAGS + 1):
            if dx >= 0:
                a, b = res[:, :BLOCK - dy, :BLOCK - dx], res[:, dy:, dx:]
            else:
                a, b = res[:, :BLOCK - dy, -dx:], res[:, dy:, :BLOCK + dx]
            acf[dy, dx + LAGS] = float((a * b).mean()) * res.shape[0]
    p = (np.abs(np.fft.fft2(res)) ** 2).sum(axis=0)
    psd = np.bincount(_RING.ravel(), p.ravel(), _KR) / np.bincount(_RING.ravel(), minlength=_KR)
    return acf, psd


def _blocks(a: np.ndarray) -> np.ndarray:
    h, w = (a.shape[0] // BLOCK) * BLOCK, (a.shape[1] // BLOCK) * BLOCK
    return a[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).swapaxes(1, 2).reshape(-1, BLOCK, BLOCK)


def _flat_blocks(res: np.ndarray, lum: np.ndarray, bins: int) -> np.ndarray:
    var = (res.reshape(len(res), -1) ** 2).mean(axis=1)
    lb = np.minimum((lum.reshape(len(lum), -1).mean(axis=1) * bins).astype(int), bins - 1)
    keep = np.zeros(len(res), bool)
    for b in np.unique(lb):
        m = lb == b
        keep |= m & (var <= 2.0 * np.percentile(var[m], 30) + 1e-12)
    return keep


def analyze_grain(clip: vs.VideoNode, *, frames: list[int] | None = None, bins: int = 16,
                  max_frames: int = 16, min_count: int = 256, method: str = "auto") -> GrainProfile:
    """Measure the grain/noise of *clip* (see the module notes for the method).

    Args:
        clip: any YUV/RGB/GRAY clip, integer or float, at least 16x16.
        frames: frame numbers to measure (default: up to *max_frames* spread over the clip).
        bins: luma bins over 0..1 for the sigma curve.
        min_count: pixels a bin needs to be measured; others are interpolated from neighbours.
        method: "temporal" (frame minus the mean of its two neighbours: texture of static areas
            cancels; moving blocks drop out as "not flat"), "spatial" (the frame itself), or
            "auto" (temporal when the clip has >= 3 frames).

    Example (.vpy)::

        prof = vr.analyze_grain(src, frames=[100, 200, 300])
        prof.to_av1_table("grain.tbl")   # aomenc --film-grain-table=grain.tbl
        clip = vr.regrain(vr.denoise(src), prof)
    """
    name = "analyze_grain"
    check_clip(clip, name)
    assert clip.format is not None
    if clip.width < BLOCK or clip.height < BLOCK:
        raise VSRestoreError(name, f"the clip is {clip.width}x{clip.height}", "use a clip of at least 16x16")
    if not isinstance(bins, int) or not 2 <= bins <= 64:
        raise VSRestoreError(name, f"bins={bins!r} is out of range", "use an integer in 2..64, e.g. 16")
    nf = clip.num_frames
    if frames is None:
        frames = sorted({int(i) for i in np.linspace(0, nf - 1, min(nf, max_frames))})
    if not frames or any(not isinstance(i, int) or not 0 <= i < nf for i in frames):
        raise VSRestoreError(name, f"frames={frames!r} must be a non-empty list of frame numbers "
                             f"in 0..{nf - 1}", "pass e.g. frames=[0, 10, 20] or None")
    nch = clip.format.num_planes
    temporal = nf >= 3 if method == "auto" else method == "temporal"
    if method not in ("auto", "temporal", "spatial") or (temporal and nf < 3):
        raise VSRestoreError(name, f"method={method!r} is not possible for a {nf}-frame clip",
                             "use method='auto', 'spatial', or 'temporal' with at least 3 frames")
    cache: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}

    def get(i: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if i not in cache:
            cache[i] = _frame_planes(clip.get_frame(i))
        return cache[i]

    def detrend(a: np.ndarray) -> np.ndarray:
        blk = _blocks(a.astype(np.float64))
        return (blk.reshape(len(blk), -1) @ _PROJ).reshape(blk.shape)

    sq, cnt = np.zeros((nch, bins)), np.zeros((nch, bins))
    acf, psd = np.zeros((nch, LAGS + 1, 2 * LAGS + 1)), np.zeros((nch, _KR))
    tnum, tden = np.zeros(nch), np.zeros(nch)
    for n in frames:
        planes, lumas = get(n)
        nb = [n - 1, n + 1] if 0 < n < nf - 1 else ([1, 2] if n == 0 else [nf - 2, nf - 3])
        for c, (p, lum) in enumerate(zip(planes, lumas, strict=True)):
            if temporal:
                p = (p - 0.5 * (get(nb[0])[0][c] + get(nb[1])[0][c])) * np.float32(math.sqrt(2 / 3))
            res, lb = detrend(p), _blocks(lum)
            keep = _flat_blocks(res, lb, bins)
            res, lb = res[keep], lb[keep]
            pix = np.minimum((lb.ravel() * bins).astype(int), bins - 1).clip(0)
            sq[c] += np.bincount(pix, res.ravel() ** 2, bins)
            cnt[c] += np.bincount(pix, minlength=bins)
            a, s = block_stats(res)
            acf[c] += a
            psd[c] += s
            if 0 < n < nf - 1:  # grain's frame-to-frame correlation from differences (texture cancels)
                d1 = detrend(planes[c] - get(n - 1)[0][c])[keep]
                d2 = detrend(get(n + 1)[0][c] - planes[c])[keep]
                tnum[c] += float((d1 * d2).sum())
                tden[c] += math.sqrt(float((d1 ** 2).sum()) * float((d2 ** 2).sum()))
    sig, acfs, psds, sizes = [], [], [], []
    for c in range(nch):
        a = acf[c] / max(acf[c][0, LAGS], 1e-30)
        size = fit_grain_size(a)
        kept = detrended_model(size)[1]
        ok = cnt[c] >= min_count
        s = np.sqrt(sq[c] / np.maximum(cnt[c], 1) / kept)
        centres = (np.arange(bins) + 0.5) / bins
        s = np.interp(centres, centres[ok], s[ok]) if ok.any() else np.zeros(bins)
        sig.append(tuple(float(v) for v in s))
        acfs.append(tuple(tuple(float(v) for v in row) for row in a))
        psds.append(tuple(float(v) for v in psd[c] / max(psd[c].sum(), 1e-30)))
        sizes.append(size)
    feats = _features(np.array(acfs[0]), np.array(sig[0]), cnt[0] >= min_count)
    return GrainProfile(channels=_channel_names(clip.format), sigma=tuple(sig),
                        counts=tuple(tuple(int(v) for v in cnt[c]) for c in range(nch)),
                        acf=tuple(acfs), psd=tuple(psds), grain_size=tuple(sizes),
                        temporal_corr=tuple(1.0 + 2.0 * float(tnum[c] / tden[c]) if tden[c] > 0 else 0.0
                                            for c in range(nch)),
                        kind=_verdict(feats), features=feats)


def _features(acf: np.ndarray, sig: np.ndarray, ok: np.ndarray) -> dict[str, float]:
    rho1, rho2 = _rho12(acf)
    s = sig[ok]
    if len(s) < 3:
        return {"rho1": rho1, "rho2": rho2, "midness": 1.0, "rise": 1.0}
    ends = max(float(s[0]), float(s[-1]), 1e-12)
    return {"rho1": rho1, "rho2": rho2, "midness": float(s[1:-1].max()) / ends,
            "rise": float(s[-1]) / max(float(s[0]), 1e-12)}


def _verdict(f: dict[str, float]) -> str:
    poisson = f["rise"] > 1.5 and f["midness"] < 1.05
    if f["rho1"] > 0.3 and not poisson:
        return "film"
    return "film" if f["rho1"] > 0.12 and f["midness"] >= 1.15 else "digital"


# ---- stock presets and regrain --------------------------------------------------------------------

def film_curve(luma: np.ndarray) -> np.ndarray:
    """Stock sigma shape over luma: 1 at mid-grey, 0.4 at black and white."""
    return 0.4 + 0.6 * 4.0 * luma * (1.0 - luma)


def stock_profile(name: str, channels: tuple[str, ...] = ("Y", "U", "V"), bins: int = 16) -> GrainProfile:
    """The :data:`STOCKS` parameter set *name* as a profile with *channels*."""
    if name not in STOCKS:
        raise VSRestoreError("regrain", f"unknown grain stock {name!r}",
                             f"use one of {sorted(STOCKS)} or a GrainProfile from analyze_grain")
    base, size, chroma = STOCKS[name]
    k = shaping_kernel(size)
    curve = film_curve((np.arange(bins) + 0.5) / bins) * base
    sig = tuple(tuple(float(v) * (chroma if ch in ("U", "V") else 1.0) for v in curve) for ch in channels)
    acf = tuple(tuple(float(v) for v in row) for row in kernel_acf(k))
    return GrainProfile(channels=channels, sigma=sig, counts=tuple((0,) * bins for _ in channels),
                        acf=(acf,) * len(channels),
                        psd=(tuple(float(v) for v in model_psd(k)),) * len(channels),
                        grain_size=(size,) * len(channels), temporal_corr=(0.0,) * len(channels),
                        kind="film", features={"stock": 1.0})


def regrain(clip: vs.VideoNode, profile_or_stock: GrainProfile | str, *, seed: int = 0,
            strength: float = 1.0) -> vs.VideoNode:
    """Add synthesized grain following a measured profile or a stock preset.

    Each channel c of the profile goes to plane c (a one-channel profile on RGB gives the same,
    monochrome grain to R, G and B; planes beyond the profile get none). The grain is Gaussian white
    noise drawn per frame by the counter-based generator of ``vsrestore.kernels.grain`` (SplitMix64
    + Box-Muller, keyed by ``noise_key(seed, n, c)``: the same bytes whatever the thread count),
    shaped by the profile's Gaussian (``grain_size``, two 1-D passes) and scaled per pixel by its
    sigma-vs-luma curve times *strength* (luma: Y box-averaged to the chroma size, or
    0.2126 R + 0.7152 G + 0.0722 B). One fused pass per plane: noise, FIR, sigma, add, and for
    integer clips rounding and clamping to the code range; float clips are not clamped. Every output
    frame gets "regrain" appended to its ``vsrestore_synthesized`` prop; ``strength=0`` returns
    *clip* itself.

    Args:
        clip: any YUV/RGB/GRAY clip, integer or float.
        profile_or_stock: a :class:`GrainProfile` or one of :data:`STOCKS`.
        seed: non-negative integer; the same seed gives the same grain.
        strength: sigma multiplier (>= 0).

    Example (.vpy)::

        clip = vr.regrain(clip, "35mm-fine", seed=1)
        clip = vr.regrain(clip, vr.analyze_grain(src), strength=0.8)
    """
    name = "regrain"
    check_clip(clip, name)
    assert clip.format is not None
    if not isinstance(strength, (int, float)) or isinstance(strength, bool) or not 0 <= strength < math.inf:
        raise VSRestoreError(name, f"strength={strength!r} is not a finite number >= 0",
                             "use e.g. strength=1.0")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise VSRestoreError(name, f"seed={seed!r} is not a non-negative integer", "use e.g. seed=0")
    if isinstance(profile_or_stock, str):
        prof = stock_profile(profile_or_stock, _channel_names(clip.format))
    elif isinstance(profile_or_stock, GrainProfile):
        prof = profile_or_stock
    else:
        raise VSRestoreError(name, f"expected a GrainProfile or a stock name, got "
                             f"{type(profile_or_stock).__name__}", f"pass one of {sorted(STOCKS)}")
    if strength == 0:
        return clip
    fmt = clip.format
    integer = fmt.sample_type == vs.INTEGER
    peak = float((1 << fmt.bits_per_sample) - 1) if integer else 1.0
    mono = len(prof.channels) == 1 and fmt.color_family == vs.RGB
    rgb = fmt.color_family == vs.RGB
    half = not integer and fmt.bits_per_sample == 16  # float16: the CPU kernel works in float32
    plan: list[tuple[int, np.ndarray, np.ndarray, tuple[int, int]] | None] = []
    for p in range(fmt.num_planes):
        c = 0 if mono else p
        if c >= len(prof.channels):
            plan.append(None)
            continue
        lut = (np.asarray(prof.sigma[c], np.float64) * strength * peak).astype(np.float32)
        sub = (1 << fmt.subsampling_h, 1 << fmt.subsampling_w) if p > 0 and not rgb else (1, 1)
        plan.append((c, shaping_kernel(prof.grain_size[c]), lut, sub))

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        src = f[0]
        fout = new_frame(clip, src)
        if rgb:  # luma from R, G, B as a fraction of full scale
            luma, lscale = _frame_planes(src)[1][0], 1.0
        else:  # the Y (GRAY) plane as it is: the kernel scales and box-averages it
            luma, lscale = np.asarray(src[0]), 1.0 / peak
            if half:
                luma = luma.astype(np.float32)
        for p, job in enumerate(plan):
            dst, plane = np.asarray(fout[p]), np.asarray(src[p])
            if job is None:
                np.copyto(dst, plane)
                continue
            c, k, lut, sub = job
            key = noise_key(seed, n, c)
            if half:
                out = regrain_plane_seeded(plane.astype(np.float32), luma, lut, k, key, luma_scale=lscale,
                                           sub=sub)
                np.copyto(dst, out, casting="unsafe")
            else:
                regrain_plane_seeded(plane, luma, lut, k, key, out=dst, peak=peak if integer else 0.0,
                                     luma_scale=lscale, sub=sub)
        fout.props[SYNTH_PROP] = [*synthesized_stages(src.props), name]
        return fout

    return map_frames(clip, [clip], fn)


def av1_table(profile: GrainProfile, *, random_seed: int = 7391, duration_s: float = 1e6,
              points: int = 8, ar_lag: int = 2) -> str:
    """The profile as one AV1 film grain table entry (libaom ``grain_table.c`` text format).

    Scaling points: sigma (as 8-bit codes) at *points* luma values 0..255, scaling = 8 sigma / g,
    assuming the AV1 Gaussian sequence's std of ~512 at 12 bits (32 at 8 bits), scaling_shift 8
    and g the AR filter's gain; Cb/Cr from channels "U"/"V" at the same luma positions (neutral
    cb/cr mults; an approximation: AV1 indexes chroma scaling by a luma/chroma mix). AR
    coefficients (lag *ar_lag*, shift 7) are the Yule-Walker fit to the channel's autocorrelation.
    """
    lag = min(max(int(ar_lag), 1), 2)
    acf0 = np.array(profile.acf[0])
    coef, gain = _ar_fit(acf0, lag)
    xs = np.rint(np.linspace(0, 255, max(2, min(points, 14)))).astype(int)
    centres = (np.arange(len(profile.sigma[0])) + 0.5) / len(profile.sigma[0])

    def pts(c: int | None, g: float) -> list[tuple[int, int]]:
        if c is None:
            return []
        sig = np.interp(xs / 255.0, centres, np.asarray(profile.sigma[c])) * 255.0
        return [(int(x), int(np.clip(np.rint(8.0 * v / g), 0, 255))) for x, v in zip(xs, sig, strict=True)]

    idx = {ch: i for i, ch in enumerate(profile.channels)}
    lines = ["filmgrn1", f"E 0 {int(duration_s * 1e7)} 1 {int(random_seed)} 1",
             f"\tp {lag} 7 0 8 0 1 128 192 256 128 192 256"]
    chroma_c: list[list[int]] = []
    for tag, ch in (("sY", idx.get("Y", 0)), ("sCb", idx.get("U")), ("sCr", idx.get("V"))):
        cc, g = (coef, gain) if ch is None or ch == 0 else _ar_fit(np.array(profile.acf[ch]), lag)
        if tag != "sY":
            chroma_c.append([int(v) for v in cc] + [0])
        p = pts(ch, g)
        lines.append(f"\t{tag} {len(p)}" + "".join(f" {x} {y}" for x, y in p))
    lines.append("\tcY" + "".join(f" {int(v)}" for v in coef))
    lines.append("\tcCb" + "".join(f" {v}" for v in chroma_c[0]))
    lines.append("\tcCr" + "".join(f" {v}" for v in chroma_c[1]))
    return "\n".join(lines) + "\n"


def _ar_fit(acf: np.ndarray, lag: int) -> tuple[np.ndarray, float]:
    """Causal AR coefficients (x 128, int8) and the output/innovation std gain."""
    nb = [(dy, dx) for dy in range(-lag, 1) for dx in range(-lag, lag + 1) if dy < 0 or dx < 0]

    def r(dy: int, dx: int) -> float:
        if dy < 0:
            dy, dx = -dy, -dx
        return float(acf[dy, dx + LAGS]) if dy <= LAGS and abs(dx) <= LAGS else 0.0

    big = np.array([[r(a[0] - b[0], a[1] - b[1]) for b in nb] for a in nb])
    vec = np.array([r(a[0], a[1]) for a in nb])
    a = np.linalg.lstsq(big + 1e-6 * np.eye(len(nb)), vec, rcond=None)[0]
    q = np.clip(np.rint(a * 128), -128, 127)
    gain = 1.0 / math.sqrt(max(1.0 - float((q / 128) @ vec), 0.05))
    return q.astype(int), gain


def parse_av1_table(text: str) -> list[dict[str, Any]]:
    """Read AV1 film grain table text back: one dict per ``E`` entry (keys E, p, sY, sCb, ...)."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "filmgrn1":
        raise ValueError("parse_av1_table: no 'filmgrn1' header; pass an AV1 film grain table")
    entries: list[dict[str, Any]] = []
    for ln in lines[1:]:
        tok = ln.split()
        if not tok:
            continue
        vals = [int(v) for v in tok[1:]]
        if tok[0] == "E":
            entries.append({"E": vals})
        elif tok[0] in ("sY", "sCb", "sCr"):
            entries[-1][tok[0]] = list(zip(vals[1::2], vals[2::2], strict=True))
            if len(entries[-1][tok[0]]) != vals[0]:
                raise ValueError(f"parse_av1_table: {tok[0]} announces {vals[0]} points")
        else:
            entries[-1][tok[0]] = vals
    return entries
