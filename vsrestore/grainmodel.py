"""The film grain model shared by ``vr.analyze_grain`` and ``vr.regrain``.

Grain is modelled as white noise through a Gaussian of width ``grain_size`` px (0: white), with a
sigma per luma bin; :class:`GrainProfile` holds what ``analyze_grain`` measured (or a stock
preset, :data:`STOCKS`), and :func:`av1_table` exports it as an AV1 film grain table. Sigma values
are fractions of the plane's full scale (integer: code / (2**bits - 1); float: as is).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import vapoursynth as vs

from vsrestore.errors import VSRestoreError

__all__ = ["GrainProfile", "STOCKS", "stock_profile", "av1_table", "parse_av1_table"]

BLOCK = 16
LAGS = 3
KR = BLOCK // 2 + 1  # radial spectrum bins 0..8

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


def rho12(acf: np.ndarray) -> tuple[float, float]:
    c = LAGS
    return (float(acf[0, c + 1] + acf[1, c]) / 2, float(acf[0, c + 2] + acf[2, c]) / 2)


_YX = np.mgrid[0:BLOCK, 0:BLOCK].reshape(2, -1).astype(np.float64) - (BLOCK - 1) / 2
_X = np.stack([np.ones(BLOCK * BLOCK), _YX[1], _YX[0]], axis=1)
PROJ = np.eye(BLOCK * BLOCK) - _X @ np.linalg.solve(_X.T @ _X, _X.T)  # residual of the plane fit
RING = np.minimum(np.rint(np.hypot(*np.meshgrid(np.fft.fftfreq(BLOCK) * BLOCK,
                                                  np.fft.fftfreq(BLOCK) * BLOCK))), KR - 1).astype(int)


@functools.cache
def detrended_model(size: float) -> tuple[np.ndarray, float]:
    """What the analysis measures on noise shaped by ``shaping_kernel(size)``: the normalised 4x7
    autocorrelation of the block residuals, and the share of variance the plane fit keeps."""
    k = shaping_kernel(size).astype(np.float64)
    pad = np.zeros((2 * BLOCK, 2 * BLOCK))
    pad[:k.shape[0], :k.shape[1]] = k
    full = np.real(np.fft.ifft2(np.abs(np.fft.fft2(pad)) ** 2))  # acf at all lags, circular index
    d = (_YX[:, :, None] - _YX[:, None, :]).astype(int)
    cov = PROJ @ full[d[0] % (2 * BLOCK), d[1] % (2 * BLOCK)] @ PROJ
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
    return sizes, np.array([rho12(detrended_model(float(v))[0]) for v in sizes])


def fit_grain_size(acf: np.ndarray) -> float:
    """Gaussian width whose lag-1/2 autocorrelation, as the analysis measures it, is nearest *acf*."""
    sizes, rho = _size_table()
    return float(sizes[int(np.argmin(((rho - np.array(rho12(acf))) ** 2).sum(axis=1)))])


def model_psd(k: np.ndarray) -> np.ndarray:
    """Radial spectrum (sum 1) of noise shaped by *k*, as the analysis would measure it."""
    pad = np.zeros((BLOCK, BLOCK))
    kh, kw = k.shape
    pad[:kh, :kw] = k
    p = np.abs(np.fft.fft2(pad)) ** 2
    rad = np.bincount(RING.ravel(), p.ravel(), KR) / np.bincount(RING.ravel(), minlength=KR)
    return rad / rad.sum()


# ---- planes, luma ---------------------------------------------------------------------------------

def channel_names(fmt: vs.VideoFormat) -> tuple[str, ...]:
    return {vs.YUV: ("Y", "U", "V"), vs.RGB: ("R", "G", "B")}.get(fmt.color_family, ("Y",))


def frame_planes(f: vs.VideoFrame) -> tuple[list[np.ndarray], list[np.ndarray]]:
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
