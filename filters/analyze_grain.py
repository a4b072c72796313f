"""Film grain measurement: ``vr.analyze_grain``.

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
frame). The grain model (:mod:`vsrestore.grainmodel`: white noise through a Gaussian of width
``grain_size`` px) is fitted to the lag-1/2 autocorrelation; ``vr.regrain`` synthesizes it.

Verdict ``kind``: "film" when the grain is spatially correlated (lag-1 autocorrelation > 0.3) and
its sigma curve is not Poisson-like (rising with luma), or mildly correlated (> 0.12) with a
mid-tone peak (sigma in the mid-tones >= 1.15x the ends); else "digital".
Sigma values are fractions of the plane's full scale (integer: code / (2**bits - 1); float: as is).
"""

from __future__ import annotations

import math

import numpy as np
import vapoursynth as vs

from vsrestore.errors import VSRestoreError, check_clip
from vsrestore.grainmodel import (
    BLOCK,
    KR,
    LAGS,
    PROJ,
    RING,
    GrainProfile,
    channel_names,
    detrended_model,
    fit_grain_size,
    frame_planes,
    rho12,
)

__all__ = ["analyze_grain", "block_stats"]


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
    psd = np.bincount(RING.ravel(), p.ravel(), KR) / np.bincount(RING.ravel(), minlength=KR)
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
    cw, ch = clip.width >> clip.format.subsampling_w, clip.height >> clip.format.subsampling_h
    if clip.format.num_planes > 1 and (cw < BLOCK or ch < BLOCK):
        raise VSRestoreError(name, f"the chroma planes of this {clip.width}x{clip.height} "
                             f"{clip.format.name} clip are {cw}x{ch}, smaller than a 16x16 block",
                             f"use a clip of at least {BLOCK << clip.format.subsampling_w}x"
                             f"{BLOCK << clip.format.subsampling_h}, or convert to 4:2:0/4:4:4")
    if not isinstance(bins, int) or not 2 <= bins <= 64:
        raise VSRestoreError(name, f"bins={bins!r} is out of range", "use an integer in 2..64, e.g. 16")
    for key, value, lo in (("max_frames", max_frames, 1), ("min_count", min_count, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < lo:
            raise VSRestoreError(name, f"{key}={value!r} is not an integer >= {lo}",
                                 "use the default (max_frames=16, min_count=256)")
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
            cache[i] = frame_planes(clip.get_frame(i))
        return cache[i]

    def detrend(a: np.ndarray) -> np.ndarray:
        blk = _blocks(a.astype(np.float64))
        return (blk.reshape(len(blk), -1) @ PROJ).reshape(blk.shape)

    sq, cnt = np.zeros((nch, bins)), np.zeros((nch, bins))
    acf, psd = np.zeros((nch, LAGS + 1, 2 * LAGS + 1)), np.zeros((nch, KR))
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
    return GrainProfile(channels=channel_names(clip.format), sigma=tuple(sig),
                        counts=tuple(tuple(int(v) for v in cnt[c]) for c in range(nch)),
                        acf=tuple(acfs), psd=tuple(psds), grain_size=tuple(sizes),
                        temporal_corr=tuple(1.0 + 2.0 * float(tnum[c] / tden[c]) if tden[c] > 0 else 0.0
                                            for c in range(nch)),
                        kind=_verdict(feats), features=feats)


def _features(acf: np.ndarray, sig: np.ndarray, ok: np.ndarray) -> dict[str, float]:
    rho1, rho2 = rho12(acf)
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
