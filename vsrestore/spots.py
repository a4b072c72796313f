"""One-frame defect (dust, dirt, hair) detection and repair votes for ``vr.despot``.

NumPy/OpenCV, with the per-pixel votes as Numba kernels (:mod:`vsrestore.spotkernels`;
serial, ``nogil``: VapourSynth runs frames in parallel); the samples and their weights come
from :mod:`vsrestore.spotsamples`. ``cur`` is the frame's luma ``(H, W)`` float32 0..1;
``warped`` stacks the K (<= 8) motion-compensated neighbours ``(K, H, W)``, NaN where a
neighbour has no sample.

Every sample has a tolerance (:func:`prepare`: noise, the local gradient, and for a sample read
between pixels the local high frequency that interpolation softens) and a weight, its
*reliability* (:func:`~vsrestore.spotsamples.reliability`): how well its neighbour matches the
frame around the pixel compared with the best-matching neighbour. In fine texture a neighbour
read half-way between pixels aliases differently from the frame; all such neighbours agree
with each other, not with the frame, and would otherwise outvote the neighbours read on whole
pixels.

Detection (:func:`detect`) votes per pixel. Each sample is supported by the (weighted) samples
within tolerance of it; the best cluster is the best supported (ties: farthest from the pixel).
A pixel is a spike when that cluster outweighs the samples that agree with the pixel (by more
than the pixel's own weight, and with at least :data:`MIN_SEED` members, for a seed), so
neighbours carrying their own defect at the same place (common at 10 % coverage) are
outvoted. Seeds (``> 2 tol``) grow by hysteresis within 2 px, then by polarity and by level
(pixels that look like the defect they touch: :func:`_grow_level`).

Refinement (:func:`refine`) reruns the vote with every sample that a neighbour's own
first-pass mask covers left out (:func:`neighbour_flags`): components the clean samples do not
confirm are dropped, confirmed ones grow by polarity and level, and the repair uses clean
samples only, weighted by reliability and :func:`~vsrestore.spotsamples.sharpness` (a sample
read from a whole-pixel position is sharper than one interpolated half-way). A masked pixel
without any clean sample takes, of itself and its flagged samples, the value nearest to the
picture around it (left alone when that is itself). Pixels with no sample at all are left to
the caller (spatial inpainting).

Motion the flow did not follow must not pass for dust: :func:`~vsrestore.spotsamples.trusted`
drops the samples of neighbours whose compensation is poor around a pixel, and
:func:`drop_moved` removes components that are found again in the neighbours (where the flow
put them, or displaced along a consistent linear motion).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vsrestore.kernels.warp import warp
from vsrestore.spotkernels import (
    k_finite,
    k_grow_level,
    k_mean,
    k_median8,
    k_members,
    k_moved,
    k_outliers,
    k_prep,
    k_support_all,
    k_tols,
    k_use_net,
    k_vote,
)

K_SEED = 6.0  # seed: spike above this many noise sigmas (and 2 tol) at strength 1
K_LOW = 3.0  # hysteresis (and 1 tol)
K_GROW = 2.5  # polarity growth after refinement
TOL_K = 4.0  # agreement tolerance: TOL_K sigma + half the local gradient
HF_K = 0.7  # ... + this much of the local high frequency for samples read between pixels
OUTLIER_K = 3.0  # clean samples farther than this many tol from their median are dropped
GROW_LIMIT = 2  # hysteresis grows at most this far (px) from a seed
MIN_SEED = 3  # samples a seed's cluster needs
LEVEL_STEPS = 6  # px a defect may grow over pixels that look like it
LEVEL_K = 3.0  # ... within this many standard deviations of its level (and 3 noise sigmas)
NEAR = 3  # px: a component found this close to where the flow put it exists in that frame
MOVE_RADIUS = 6  # px per frame of distance searched for a component that moved
MOVE_NEAREST = 4  # neighbours searched for a linear motion
NOCONS = False


@dataclass
class Vote:
    """A frame's vote: the first-pass result and what the second pass reuses."""

    mask: np.ndarray  # bool (H, W)
    core: np.ndarray  # bool (H, W): the spike candidates themselves (before growth)
    sharp: np.ndarray  # (K, H, W) sample sharpness
    weight: np.ndarray  # (K, H, W) sample reliability
    tols: np.ndarray  # (K, H, W) agreement tolerance per sample
    tol: np.ndarray  # (H, W) the tolerance without the interpolation term
    ref: np.ndarray  # (H, W) median of the samples
    sigma: float
    vals: np.ndarray  # (K, H, W) the samples, 0 where missing
    ok: np.ndarray  # (K, H, W) 1.0 where a sample exists
    spatial: np.ndarray | None = None  # spatial estimate of the frame around the candidates
    scale: np.ndarray | None = None  # how far from the spatial estimate a sample may lie
    value: np.ndarray | None = None  # the vote's repair estimate of the frame's luma


def _mad(d: np.ndarray) -> float:
    s = d.ravel()[:: max(1, d.size // 16384)]
    s = s[np.isfinite(s)]
    return float(1.4826 * np.median(np.abs(s - np.median(s)))) if s.size else 0.0


def nanmedian(x: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Median over axis 0 of the non-NaN values of a stack of up to 8; *fallback* where all are NaN."""
    assert x.shape[0] <= 8
    pad = np.empty((8, *x.shape[1:]), np.float32)
    cnt = np.empty(x.shape[1:], np.int32)
    k_finite(np.ascontiguousarray(x, dtype=np.float32), pad, cnt)
    out = np.empty(x.shape[1:], np.float32)
    k_median8(pad, cnt, np.ascontiguousarray(fallback, dtype=np.float32), out)
    return out


def _mean(vals: np.ndarray, members: np.ndarray, weights: np.ndarray) -> np.ndarray:
    out = np.empty(vals.shape[1:], np.float32)
    k_mean(np.ascontiguousarray(vals, dtype=np.float32), np.ascontiguousarray(members),
            np.ascontiguousarray(weights, dtype=np.float32), out)
    return out


def _members(vals: np.ndarray, use: np.ndarray, vote: Vote, spatial: np.ndarray, scale: np.ndarray,
             sup: np.ndarray | None = None) -> np.ndarray:
    """The repair vote among the usable samples (*vals*: finite, *use*: 1.0 where usable): the
    best (reliability-weighted) supported one (ties: nearer the spatial estimate, sharper) and
    the samples that agree with it. *sup*: the supports, if known."""
    if sup is None:
        sup = np.empty(vals.shape, np.float32)
        k_support_all(vals, vote.tols, use, vote.weight, sup)
    out = np.empty(vals.shape, np.float32)
    k_members(vals, use, vote.tols, sup, np.ascontiguousarray(spatial, dtype=np.float32),
               np.ascontiguousarray(scale, dtype=np.float32), vote.sharp, out)
    return out > 0.5


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


def _disk(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _dilate(m: np.ndarray, kernel: np.ndarray | None = None) -> np.ndarray:
    return cv2.dilate(m.astype(np.uint8),
                      np.ones((3, 3), np.uint8) if kernel is None else kernel).astype(bool)


def prepare(cur: np.ndarray, warped: np.ndarray, sharp: np.ndarray, weight: np.ndarray,
            sigma: float | None = None) -> Vote:
    """The vote's inputs: noise level (unless given), the samples' median and tolerances (no
    mask yet)."""
    cur = np.ascontiguousarray(cur, dtype=np.float32)
    warped = np.ascontiguousarray(warped, dtype=np.float32)
    k, h, w = warped.shape
    assert k <= 8
    if sigma is None:
        st = max(1, int((h * w / 16384) ** 0.5))
        diffs = cur[None, ::st, ::st] - warped[:, ::st, ::st]
        sigma = max(float(np.median([_mad(x) for x in diffs])), 1e-5)
    vals, ok = np.empty_like(warped), np.empty_like(warped)
    net, cnt = np.empty((8, h, w), np.float32), np.empty((h, w), np.int32)
    k_prep(warped, cur, vals, ok, net, cnt)
    ref = np.empty((h, w), np.float32)
    k_median8(net, cnt, cur, ref)
    grad = cv2.blur(np.hypot(cv2.Sobel(ref, cv2.CV_32F, 1, 0, ksize=3),
                             cv2.Sobel(ref, cv2.CV_32F, 0, 1, ksize=3)) / 8, (3, 3))
    tol = (TOL_K * sigma + 0.5 * grad).astype(np.float32)
    # interpolation softens sharp detail (a thin line, fine texture): a sample read between
    # pixels may differ from the frame there by up to its local high frequency
    hf = cv2.dilate(np.abs(ref - cv2.GaussianBlur(ref, (0, 0), 1.0)), np.ones((3, 3), np.uint8))
    sharp = np.ascontiguousarray(sharp, dtype=np.float32)
    tols = np.empty_like(warped)
    k_tols(tol, np.ascontiguousarray(hf, dtype=np.float32), sharp, np.float32(HF_K), tols)
    empty = np.zeros(cur.shape, bool)
    return Vote(empty, empty, sharp, np.ascontiguousarray(weight, dtype=np.float32), tols, tol, ref, sigma,
                vals, ok)


def spatial_scale(cur: np.ndarray, vote: Vote) -> None:
    """Fill in the spatial estimate around the vote's core and the local scale."""
    vote.spatial = _fill(cur, _dilate(vote.core))
    mu = cv2.blur(vote.ref, (9, 9))  # texture of the defect-free consensus, not of the dusty frame
    vote.scale = (2.0 * vote.tol + np.sqrt(np.maximum(cv2.blur(vote.ref * vote.ref, (9, 9)) - mu * mu, 0.0))
                  + 1e-6).astype(np.float32)


def detect(cur: np.ndarray, warped: np.ndarray, sharp: np.ndarray, weight: np.ndarray,
           strength: float = 1.0) -> Vote:
    """First pass: spike vote against the compensated neighbours (module docstring)."""
    cur = np.ascontiguousarray(cur, dtype=np.float32)
    warped = np.ascontiguousarray(warped, dtype=np.float32)
    vote = prepare(cur, warped, sharp, weight)
    sigma = vote.sigma
    shape = cur.shape
    size, agree, spike, tol_c = (np.empty(shape, np.float32) for _ in range(4))
    size_n = np.empty(shape, np.int32)
    vals, ok = vote.vals, vote.ok
    sup = np.empty(warped.shape, np.float32)
    k_vote(cur, vals, ok, vote.tols, vote.weight, size, size_n, agree, spike, tol_c, sup)
    ks = 1.0 / strength
    high = ((size_n >= MIN_SEED) & (size > agree + 1)
            & (spike > np.maximum(K_SEED * ks * sigma, 2 * ks * tol_c)))
    low = (size_n >= 2) & (size > agree) & (spike > np.maximum(K_LOW * ks * sigma, ks * tol_c))
    low &= _dilate(high, _disk(GROW_LIMIT))
    count, labels = cv2.connectedComponents(low.astype(np.uint8), connectivity=8)
    seeded = np.bincount(labels.ravel(), weights=high.ravel(), minlength=count) > 0
    seeded[0] = False
    vote.core = seeded[labels]
    spatial_scale(cur, vote)
    assert vote.spatial is not None and vote.scale is not None
    members = _members(vals, ok, vote, vote.spatial, vote.scale, sup)
    vote.value = _mean(vals, members, vote.sharp)
    d = cur - vote.value
    thr = K_GROW * ks * sigma
    mask = _grow(vote.core, labels, vote.core, d, thr)
    vote.mask = _grow_level(mask, cur, d, members.sum(0) >= 2, thr, sigma, LEVEL_STEPS)
    return vote


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
        m |= _dilate(m) & grow
    return m


def _grow_level(mask: np.ndarray, cur: np.ndarray, d: np.ndarray, have: np.ndarray, thr: float,
                sigma: float, steps: int) -> np.ndarray:
    """Grow *mask* by up to *steps* px into pixels that look like the defect they touch: within
    :data:`LEVEL_K` standard deviations (at least 3 noise sigmas) of the component's level (the
    mean of its clearly deviating pixels), and nearer to it than to the consensus; where no
    consensus exists (*have* False: no two agreeing samples, e.g. frame borders the motion
    uncovered), the level alone decides. Components with fewer than 3 such pixels keep still."""
    if steps <= 0 or not mask.any():
        return mask
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    lab: np.ndarray = labels.ravel()  # int32 labels (typed loosely by OpenCV's stubs)
    strong = (mask & have & (np.abs(d) > 2 * thr)).ravel()
    n = np.bincount(lab, weights=strong, minlength=count)
    s1 = np.bincount(lab, weights=np.where(strong, cur.ravel(), 0.0), minlength=count)
    s2 = np.bincount(lab, weights=np.where(strong, cur.ravel() ** 2, 0.0), minlength=count)
    level = s1 / np.maximum(n, 1)
    std = np.sqrt(np.maximum(s2 / np.maximum(n, 1) - level ** 2, 0.0))
    tol = np.maximum(LEVEL_K * std, 3.0 * sigma)
    tol[(n < 3) | (np.arange(count) == 0)] = -1.0
    out = k_grow_level(labels.astype(np.int32), np.ascontiguousarray(cur, dtype=np.float32),
                        np.ascontiguousarray(d, dtype=np.float32), np.ascontiguousarray(have),
                        level.astype(np.float64), tol.astype(np.float64), float(thr), int(steps), NOCONS)
    return out > 0


def neighbour_flags(masks: list[np.ndarray], flows: list[np.ndarray]) -> np.ndarray:
    """``(K, H, W)``: True where a sample reads (mostly) from its own frame's defect mask."""
    return np.stack([warp(m.astype(np.float32), f[0], f[1], interp="bilinear", border="clamp") > 0.5
                     for m, f in zip(masks, flows, strict=True)])


def refine(cur: np.ndarray, warped: np.ndarray, vote: Vote, flags: np.ndarray,
           strength: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Second pass with the neighbours' own defects known: ``(mask, members, clean members)``;
    the clean members never include a flagged sample (empty where every sample is flagged)."""
    cur = np.ascontiguousarray(cur, dtype=np.float32)
    warped = np.ascontiguousarray(warped, dtype=np.float32)
    if vote.spatial is None or vote.scale is None:
        spatial_scale(cur, vote)
    assert vote.spatial is not None and vote.scale is not None
    sigma, tols, vals = vote.sigma, vote.tols, vote.vals
    ks = 1.0 / strength
    valid = vote.ok > 0.5
    use = vote.ok * (~flags)
    k, h, w = vals.shape
    net, cnt, med = np.empty((8, h, w), np.float32), np.empty((h, w), np.int32), np.empty((h, w), np.float32)
    k_use_net(vals, use, net, cnt)
    k_median8(net, cnt, cur, med)
    k_outliers(vals, use, med, tols, np.float32(OUTLIER_K))  # far outliers: missed neighbour defects
    memb = _members(vals, use, vote, vote.spatial, vote.scale)
    have = memb.sum(0) >= 2
    value = _mean(vals, memb, vote.sharp)
    d = cur - value
    tol = _mean(tols, memb, vote.ok)
    count, labels = cv2.connectedComponents(vote.mask.astype(np.uint8), connectivity=8)
    lab = np.asarray(labels, np.intp).ravel()
    informative = (have & vote.mask).ravel()
    spiky = informative & (np.abs(d) > np.maximum(tol, K_SEED * ks * sigma)).ravel()
    drop = (np.bincount(lab, weights=informative, minlength=count) >= 3) & (
        np.bincount(lab, weights=spiky, minlength=count) == 0)
    drop[0] = False
    mask = vote.mask & ~drop[labels]
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    thr = K_GROW * ks * sigma
    mask = _grow(mask, labels, mask & have, d, thr, ok=have)
    mask = _grow_level(mask, cur, d, have, thr, sigma, LEVEL_STEPS)
    mask = _dilate(mask, _disk(1))
    members = memb.copy()
    value = value.copy()
    none = mask & ~memb.any(0)
    if none.any():
        # no clean sample: of the pixel and its (flagged) samples, the one nearest to the
        # picture around (clean repairs and untouched pixels, filled across) wins
        est = _fill(np.where(mask & ~none, value, cur), none)
        ys, xs = np.nonzero(none)
        wv, vv, tv = warped[:, ys, xs], valid[:, ys, xs], tols[:, ys, xs]
        dist = np.where(vv, np.abs(wv - est[ys, xs][None]), np.inf)
        ib = dist.argmin(0)[None]
        dmin = np.take_along_axis(dist, ib, 0)[0]
        pick = np.take_along_axis(np.nan_to_num(wv), ib, 0)[0]
        tp = np.take_along_axis(tv, ib, 0)[0]
        use = dmin < np.abs(cur[ys, xs] - est[ys, xs])
        fb = vv & (np.abs(wv - pick[None]) <= np.maximum(tv, tp[None]))
        members[:, ys[use], xs[use]] = fb[:, use]
        mask[ys[~use], xs[~use]] = False
        if use.any():
            sw, shp = np.nan_to_num(wv[:, use]), vote.sharp[:, ys[use], xs[use]] * fb[:, use]
            value[ys[use], xs[use]] = (sw * shp).sum(0) / np.maximum(shp.sum(0), 1e-6)
    # last guard: a repair value farther from the spatial estimate than the pixel itself (by
    # more than the local scale) is a neighbour's own defect that every vote missed
    spatial = _fill(cur, _dilate(mask))
    implausible = members.any(0) & ~vote.core & (np.abs(value - spatial) > np.abs(cur - spatial) + vote.scale)
    return mask & ~implausible, members, memb


def drop_moved(vote: Vote, cur: np.ndarray, nbs: list[np.ndarray], offs: list[int],
               flows: list[np.ndarray]) -> np.ndarray:
    """The vote's mask without the components that are picture the flow did not follow.

    Each component (with a 3-px ring of context) is searched (squared differences) in the
    neighbours: a one-frame defect exists in none, nothing there comes closer to it than a
    quarter of its own squared difference to the vote's repair value. Found within :data:`NEAR`
    px of where the flow put it in any neighbour, it is picture (say detail that aliases
    differently half-way between pixels): dropped. A fast object's edge is found in the
    :data:`MOVE_NEAREST` nearest neighbours within :data:`MOVE_RADIUS` px per frame (at most 40),
    displaced by ``d * v``: if at least 3 of them (all, when fewer) agree on such a linear motion
    within 1.5 px, it is dropped too.
    """
    mask = vote.mask
    if not mask.any() or len(nbs) < 2:
        return mask
    assert vote.value is not None
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    lab = np.asarray(labels, np.intp)
    spike = np.bincount(lab.ravel(), weights=((cur - vote.value) ** 2).ravel(), minlength=count)
    order = np.array(sorted(range(len(offs)), key=lambda i: (abs(offs[i]), offs[i])), np.int64)
    drop = k_moved(np.ascontiguousarray(cur, dtype=np.float32), ((cur - vote.value) ** 2).astype(np.float32),
                    labels.astype(np.int32),
                    np.stack([np.asarray(x, np.float32) for x in nbs]),
                    np.stack([f[0] for f in flows]).astype(np.float32),
                    np.stack([f[1] for f in flows]).astype(np.float32),
                    np.asarray(offs, np.int64), order, stats.astype(np.int64), spike.astype(np.float64),
                    NEAR, MOVE_RADIUS, MOVE_NEAREST)
    return mask & ~drop[labels]
