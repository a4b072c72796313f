"""One-frame defect (dust, dirt, hair) detection and repair votes for ``vr.despot``.

NumPy/OpenCV only. ``cur`` is the frame's luma ``(H, W)`` float32 0..1; ``warped`` stacks the
K (<= 4) motion-compensated neighbours ``(K, H, W)``, NaN where a neighbour has no sample.

Detection (:func:`detect`) votes per pixel. Each compensated sample is supported by the
samples within a tolerance ``tol`` of it (noise plus the compensation error that texture
gives); the best cluster is the best supported (ties: farthest from the pixel). A pixel is a
spike when that cluster has at least two members and more support than the pixel itself
(strictly more, pixel counted, for a seed), so a neighbour carrying its own defect at the same
place (common at 10 % coverage) is outvoted. Seeds (``> 2 tol``) grow by hysteresis within
2 px, then components are kept only if the pixel deviates from a spatial estimate (inpainting
around the candidates) more than the vote's value would: two neighbours that share a defect
by chance cannot make a clean pixel look like one.

Refinement (:func:`refine`) reruns the vote with every sample that a neighbour's own
first-pass mask covers left out (:func:`neighbour_flags`): components the clean samples do not
confirm are dropped, confirmed ones grow by polarity (pixels that differ from the clean
consensus in the component's direction), and the repair uses clean samples only, weighted by
:func:`sharpness` (a sample read from a whole-pixel position is sharper than one interpolated
half-way). Pixels with no sample at all are left to the caller (spatial inpainting).

Motion the flow did not follow must not pass for dust: :func:`trusted` drops the samples of
neighbours whose compensation is poor around a pixel (first pass), and :func:`drop_moved` removes
components that are found again in the neighbours (where the flow put them, or displaced
along a consistent linear motion).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vsrestore.kernels.warp import warp

K_SEED = 6.0  # seed: spike above this many noise sigmas (and 2 tol) at strength 1
K_LOW = 3.0  # hysteresis (and 1 tol)
K_GROW = 2.5  # polarity growth after refinement
TOL_K = 4.0  # agreement tolerance: TOL_K sigma + half the local gradient
HF_K = 0.7  # ... + this much of the local high frequency for samples read between pixels
OUTLIER_K = 3.0  # clean samples farther than this many tol from their median are dropped
GROW_LIMIT = 2  # hysteresis grows at most this far (px) from a seed
POOR = 8.0  # local median difference (x the frame's) above which a neighbour is not trusted
POOR_MIN = 0.05  # ... and at least this (0..1 luma)
NEAR = 3  # px: a component found this close to where the flow put it exists in that frame
MARGIN = 1.0  # a sample may lie this far (px) outside its frame (edge replicated)


@dataclass
class Vote:
    """First-pass result for one frame."""

    mask: np.ndarray  # bool (H, W)
    members: np.ndarray  # bool (K, H, W): samples the repair averages
    sharp: np.ndarray  # (K, H, W) sample weights
    spatial: np.ndarray  # spatial estimate of the frame around the candidates
    tols: np.ndarray  # (K, H, W) agreement tolerance per sample
    scale: np.ndarray  # how far from the spatial estimate a sample may plausibly lie
    core: np.ndarray  # bool (H, W): the spike candidates themselves (before growth)
    value: np.ndarray  # the vote's repair estimate of the frame's luma
    sigma: float


def sample(nbs: list[np.ndarray], flows: list[np.ndarray], interp: str = "bicubic") -> np.ndarray:
    """Neighbour planes compensated onto the frame, ``(K, H, W)``, NaN beyond :data:`MARGIN`."""
    out = []
    for nb, f in zip(nbs, flows, strict=True):
        h, w = f.shape[1:]
        gx = np.arange(w, dtype=np.float32)[None, :] + f[0]
        gy = np.arange(h, dtype=np.float32)[:, None] + f[1]
        inside = (gx >= -MARGIN) & (gx <= w - 1 + MARGIN) & (gy >= -MARGIN) & (gy <= h - 1 + MARGIN)
        v = warp(np.ascontiguousarray(nb, dtype=np.float32), f[0], f[1], interp=interp,  # type: ignore[arg-type]
                 border="clamp")
        out.append(np.where(inside, v, np.nan))
    return np.stack(out).astype(np.float32)


def trusted(cur: np.ndarray, warped: np.ndarray, window: int = 15) -> np.ndarray:
    """*warped* with the samples of poorly compensated areas set to NaN.

    A neighbour's compensation is judged around every pixel by the *median* of ``|cur - sample|``
    over a *window*: one-frame defects in either frame (up to a third of a window at 10 %
    coverage) leave it at the noise and texture level; an object the flow did not follow, or a
    region the motion uncovered, moves it. Above :data:`POOR` times the frame's typical
    difference (at least :data:`POOR_MIN`) the samples are not used for the vote, so such a
    region does not look like a defect.
    """
    out = warped.copy()
    for k in range(warped.shape[0]):
        d = np.abs(cur - warped[k])
        s = d.ravel()[:: max(1, d.size // 65536)]
        thr = max(POOR_MIN, POOR * float(np.nanmedian(s))) if np.isfinite(s).any() else 1.0
        q = np.clip(np.nan_to_num(d, nan=0.0) * (127.0 / thr), 0, 255).astype(np.uint8)
        out[k][cv2.medianBlur(q, window) > 127] = np.nan
    return out


def sharpness(flow: np.ndarray) -> np.ndarray:
    """Weight of a sample by how far its position is from whole pixels: 1 on them, 0.01 half-way."""
    f = flow - np.floor(flow)
    s = 0.1 + 0.9 * (1.0 - 2.0 * np.minimum(f, 1.0 - f))
    return (s[0] * s[1]).astype(np.float32)


def _mad(d: np.ndarray) -> float:
    s = d.ravel()[:: max(1, d.size // 65536)]
    s = s[np.isfinite(s)]
    return float(1.4826 * np.median(np.abs(s - np.median(s)))) if s.size else 0.0


def _mean(vals: np.ndarray, members: np.ndarray, weights: np.ndarray) -> np.ndarray:
    w = np.where(members, weights, 0.0)
    return (np.where(members, vals, 0.0) * w).sum(0) / np.maximum(w.sum(0), 1e-6)


def _fill(img: np.ndarray, hole: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """*img* with *hole* filled by the Gaussian-weighted mean of the pixels around it
    (normalised convolution, widened where the hole is large)."""
    if not hole.any():
        return img.astype(np.float32)
    keep = (~hole).astype(np.float32)
    out = img.astype(np.float32)
    for s in (sigma, 3 * sigma, 9 * sigma):
        den = cv2.GaussianBlur(keep, (0, 0), s)
        num = cv2.GaussianBlur(img * keep, (0, 0), s)
        todo = hole & (den > 1e-3)
        out = np.where(todo, num / np.maximum(den, 1e-3), out)
        hole = hole & ~todo
        if not hole.any():
            break
    return out


def nanmedian(x: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Median over axis 0 of the non-NaN values of a short stack; *fallback* where all are NaN."""
    n = (~np.isnan(x)).sum(0)
    v = [np.where(np.isnan(r), np.inf, r) for r in x]  # NaN sort last
    for i in range(1, len(v)):  # insertion network: len(v) is at most 4 or 5 here
        for j in range(i, 0, -1):
            v[j - 1], v[j] = np.minimum(v[j - 1], v[j]), np.maximum(v[j - 1], v[j])
    s = np.stack(v)
    lo = np.take_along_axis(s, np.maximum((n - 1) // 2, 0)[None], 0)[0]
    hi = np.take_along_axis(s, np.maximum(n // 2, 0)[None], 0)[0]
    return np.where(n > 0, 0.5 * (lo + hi), fallback).astype(np.float32)


def _disk(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def detect(cur: np.ndarray, warped: np.ndarray, sharp: np.ndarray, strength: float = 1.0) -> Vote:
    """First pass: spike vote against the compensated neighbours (module docstring)."""
    h, w = cur.shape
    k = warped.shape[0]
    valid = ~np.isnan(warped)
    diffs = cur[None] - warped
    sigma = max(float(np.median([_mad(x) for x in diffs])), 1e-5)
    ref = nanmedian(warped, cur)
    grad = cv2.blur(np.hypot(cv2.Sobel(ref, cv2.CV_32F, 1, 0, ksize=3),
                             cv2.Sobel(ref, cv2.CV_32F, 0, 1, ksize=3)) / 8, (3, 3))
    tol = (TOL_K * sigma + 0.5 * grad).astype(np.float32)
    # interpolation softens sharp detail (a thin line, fine texture): a sample read between
    # pixels may differ from the frame there by up to its local high frequency
    hf = cv2.dilate(np.abs(ref - cv2.GaussianBlur(ref, (0, 0), 1.0)), np.ones((3, 3), np.uint8))
    tols = (tol[None] + HF_K * (1.0 - sharp) * hf[None]).astype(np.float32)
    near = np.abs(warped[:, None] - warped[None]) <= np.maximum(tols[:, None], tols[None])  # (K, K, H, W)
    support = np.where(valid, near.sum(1), -1)
    n_agree = (np.abs(diffs) <= tols).sum(0)
    far = np.where(valid, np.abs(diffs), -1.0)
    best = (support * 1e3 + far / (np.nanmax(far) + 1e-6)).argmax(0)  # best support, ties: farthest
    size = np.take_along_axis(support, best[None], 0)[0]
    centre = np.take_along_axis(warped, best[None], 0)[0]
    tb = np.take_along_axis(tols, best[None], 0)[0]
    memb0 = np.abs(warped - centre[None]) <= np.maximum(tols, tb[None])
    spike = np.abs(cur - _mean(warped, memb0, np.ones_like(warped)))
    tol_c = _mean(tols, memb0, np.ones_like(warped))
    ks = 1.0 / strength
    high = (size >= 2) & (size > n_agree + 1) & (spike > np.maximum(K_SEED * ks * sigma, 2 * ks * tol_c))
    low = (size >= 2) & (size > n_agree) & (spike > np.maximum(K_LOW * ks * sigma, ks * tol_c))
    low &= cv2.dilate(high.astype(np.uint8), _disk(GROW_LIMIT)).astype(bool)
    count, labels = cv2.connectedComponents(low.astype(np.uint8), connectivity=8)
    lab = labels.ravel()
    seeded = np.bincount(lab, weights=high.ravel(), minlength=count) > 0
    seeded[0] = False
    cand = seeded[labels]
    spatial = _fill(cur, cv2.dilate(cand.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    mu = cv2.blur(ref, (9, 9))  # texture of the defect-free consensus, not of the dusty frame
    scale = 2.0 * tol + np.sqrt(np.maximum(cv2.blur(ref * ref, (9, 9)) - mu * mu, 0.0)) + 1e-6
    members = _members(warped, valid, tols, spatial, scale, sharp)
    value = _mean(warped, members, sharp)
    lab_c = np.where(cand, labels, 0).ravel()
    e_cur = np.bincount(lab_c, weights=np.abs(cur - spatial).ravel(), minlength=count)
    e_val = np.bincount(lab_c, weights=np.abs(value - spatial).ravel(), minlength=count)
    keep = seeded & (e_cur > e_val)
    mask = keep[labels]
    mask = _grow(mask, labels, cand, cur - value, K_GROW * ks * sigma)
    mask = cv2.dilate(mask.astype(np.uint8), _disk(1)).astype(bool)
    del k, h, w
    return Vote(mask, members, sharp, spatial, tols, scale, cand, value, sigma)


def _members(warped: np.ndarray, usable: np.ndarray, tols: np.ndarray, spatial: np.ndarray,
             scale: np.ndarray, sharp: np.ndarray) -> np.ndarray:
    """The repair vote among the *usable* samples: the best supported one (ties: nearer the
    spatial estimate, sharper) and the samples that agree with it."""
    v = np.where(usable, warped, np.nan)
    near = np.abs(v[:, None] - v[None]) <= np.maximum(tols[:, None], tols[None])
    cost = -near.sum(1) + np.abs(v - spatial[None]) / scale[None] - 0.5 * sharp
    ib = np.where(usable, cost, np.inf).argmin(0)[None]
    pick, tp = np.take_along_axis(v, ib, 0)[0], np.take_along_axis(tols, ib, 0)[0]
    return usable & (np.abs(v - pick[None]) <= np.maximum(tols, tp[None]))


def _grow(mask: np.ndarray, labels: np.ndarray, inside: np.ndarray, d: np.ndarray, thr: float,
          steps: int = 3, ok: np.ndarray | None = None) -> np.ndarray:
    """Grow *mask* (by up to *steps* px) into pixels that deviate by > *thr* in the direction of
    the component they touch (its mean deviation over *inside*)."""
    count = int(labels.max()) + 1
    sgn = np.sign(np.bincount(labels.ravel(), weights=np.where(inside, d, 0.0).ravel(), minlength=count))
    pol = np.where(mask, sgn[labels], 0.0).astype(np.float32)
    pos = cv2.dilate(pol, np.ones((3, 3), np.uint8)) > 0
    neg = cv2.erode(pol, np.ones((3, 3), np.uint8)) < 0
    grow = ((d > thr) & pos) | ((d < -thr) & neg)
    if ok is not None:
        grow &= ok
    m = mask.copy()
    for _ in range(steps):
        m |= cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & grow
    return m


def neighbour_flags(masks: list[np.ndarray], flows: list[np.ndarray]) -> np.ndarray:
    """``(K, H, W)``: True where a sample reads (mostly) from its own frame's defect mask."""
    return np.stack([warp(m.astype(np.float32), f[0], f[1], interp="bilinear", border="clamp") > 0.5
                     for m, f in zip(masks, flows, strict=True)])


def refine(cur: np.ndarray, warped: np.ndarray, vote: Vote, flags: np.ndarray,
           strength: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Second pass with the neighbours' own defects known: ``(mask, members, clean members)``;
    the clean members never include a flagged sample (empty where every sample is flagged)."""
    sigma, tols = vote.sigma, vote.tols
    ks = 1.0 / strength
    clean = ~np.isnan(warped) & ~flags
    cw = np.where(clean, warped, np.nan)
    med = nanmedian(cw, cur)
    clean &= np.abs(cw - med[None]) <= OUTLIER_K * tols  # far outliers: missed neighbour defects
    memb = _members(warped, clean, tols, vote.spatial, vote.scale, vote.sharp)
    have = memb.sum(0) >= 2
    d = cur - _mean(warped, memb, vote.sharp)
    tol = _mean(tols, memb, np.ones_like(tols))
    count, labels = cv2.connectedComponents(vote.mask.astype(np.uint8), connectivity=8)
    lab = np.asarray(labels, np.intp).ravel()
    informative = (have & vote.mask).ravel()
    spiky = informative & (np.abs(d) > np.maximum(tol, K_SEED * ks * sigma)).ravel()
    drop = (np.bincount(lab, weights=informative, minlength=count) >= 3) & (
        np.bincount(lab, weights=spiky, minlength=count) == 0)
    drop[0] = False
    mask = vote.mask & ~drop[labels]
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    mask = _grow(mask, labels, mask & have, d, K_GROW * ks * sigma, ok=have)
    mask = cv2.dilate(mask.astype(np.uint8), _disk(1)).astype(bool)
    members = np.where((memb.sum(0) >= 1)[None], memb, vote.members) & ~np.isnan(warped)
    # last guard: a repair value farther from the spatial estimate than the pixel itself (by
    # more than the local scale) is a neighbour's own defect that every vote missed
    value = _mean(warped, members, vote.sharp)
    spatial = _fill(cur, cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    implausible = members.any(0) & ~vote.core & (np.abs(value - spatial) > np.abs(cur - spatial) + vote.scale)
    return mask & ~implausible, members, memb


def blend(planes: np.ndarray, members: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean of the member samples (``(K, H, W)`` each): the repair value."""
    return _mean(np.nan_to_num(planes), members, weights)


def drop_moved(vote: Vote, cur: np.ndarray, nbs: list[np.ndarray], offs: list[int],
               flows: list[np.ndarray], radius: int = 10) -> np.ndarray:
    """The vote's mask without the components that are picture the flow did not follow.

    Each component (with a 3-px ring of context) is searched (``cv2.matchTemplate``, squared
    differences) in every neighbour ``d`` frames away, within ``radius * |d|`` px (at most 40)
    of where the flow puts it. A one-frame defect exists in no neighbour: nothing there comes
    closer to it than the vote's repair value does. A fast object's edge is found in the
    neighbours (squared difference under a quarter of the component's own, ``sum (cur -
    value)^2``), displaced by ``d * v``: if at least 3 neighbours (all, when fewer) agree on
    such a linear motion within 1.5 px, the component is dropped.
    """
    mask = vote.mask
    if not mask.any() or len(nbs) < 2:
        return mask
    h, w = mask.shape
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    lab = np.asarray(labels, np.intp)
    spike = np.bincount(lab.ravel(), weights=((cur - vote.value) ** 2).ravel(), minlength=count)
    drop = np.zeros(count, bool)
    for i in range(1, count):
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        x0, y0, x1, y1 = max(0, x - 3), max(0, y - 3), min(w, x + bw + 3), min(h, y + bh + 3)
        tpl = np.ascontiguousarray(cur[y0:y1, x0:x1], dtype=np.float32)
        cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
        found = []
        for nb, d, fl in zip(nbs, offs, flows, strict=True):
            r = min(40, radius * abs(d))
            px, py = x0 + int(round(float(fl[0, cy, cx]))), y0 + int(round(float(fl[1, cy, cx])))
            sx0, sy0 = max(0, px - r), max(0, py - r)
            sx1, sy1 = min(w, px + r + tpl.shape[1]), min(h, py + r + tpl.shape[0])
            if sx1 - sx0 < tpl.shape[1] or sy1 - sy0 < tpl.shape[0]:
                continue
            res = cv2.matchTemplate(np.ascontiguousarray(nb[sy0:sy1, sx0:sx1], dtype=np.float32), tpl,
                                    cv2.TM_SQDIFF)
            best, _, (mx, my), _ = cv2.minMaxLoc(res)
            if best < 0.25 * spike[i]:
                found.append((d, mx + sx0 - x0, my + sy0 - y0))
                near_flow = abs(mx + sx0 - px) <= NEAR and abs(my + sy0 - py) <= NEAR
                drop[i] |= near_flow  # there, within NEAR px of where the flow put it
        need = min(3, len(nbs))
        if not drop[i] and len(found) >= need:
            v = np.median([(sx / d, sy / d) for d, sx, sy in found], axis=0)
            agree = [abs(sx - d * v[0]) <= 1.5 and abs(sy - d * v[1]) <= 1.5 for d, sx, sy in found]
            drop[i] = sum(agree) >= need
    return mask & ~drop[labels]
