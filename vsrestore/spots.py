"""One-frame defect (dust, dirt, hair) detection and repair votes for ``vr.despot``.

NumPy/OpenCV, with the per-pixel votes as Numba kernels (serial, ``nogil``: VapourSynth runs
frames in parallel). ``cur`` is the frame's luma ``(H, W)`` float32 0..1; ``warped`` stacks
the K (<= 8) motion-compensated neighbours ``(K, H, W)``, NaN where a neighbour has no
sample.

Every sample has a tolerance (:func:`prepare`: noise, the local gradient, and for a sample read
between pixels the local high frequency that interpolation softens) and a weight, its
*reliability* (:func:`reliability`): how well its neighbour matches the frame around the pixel
compared with the best-matching neighbour. In fine texture a neighbour read half-way between
pixels aliases differently from the frame; all such neighbours agree with each other, not
with the frame, and would otherwise outvote the neighbours read on whole pixels.

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
samples only, weighted by reliability and :func:`sharpness` (a sample read from a whole-pixel
position is sharper than one interpolated half-way). A masked pixel without any clean sample
takes, of itself and its flagged samples, the value nearest to the picture around it (left
alone when that is itself). Pixels with no sample at all are left to the caller (spatial
inpainting).

Motion the flow did not follow must not pass for dust: :func:`trusted` drops the samples of
neighbours whose compensation is poor around a pixel, and :func:`drop_moved` removes
components that are found again in the neighbours (where the flow put them, or displaced
along a consistent linear motion).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit

from vsrestore.kernels.warp import warp

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
REL_C = 2.0  # reliability: match levels are compared plus this many typical best matches
REL_TRUNC = 16.0  # ... truncated at this many typical best matches (defects count no more)
POOR = 8.0  # local median difference (x the frame's) above which a neighbour is not trusted
POOR_MIN = 0.05  # ... and at least this (0..1 luma)
NEAR = 3  # px: a component found this close to where the flow put it exists in that frame
MOVE_RADIUS = 6  # px per frame of distance searched for a component that moved
MOVE_NEAREST = 4  # neighbours searched for a linear motion
NOCONS = False
MARGIN = 1.0  # a sample may lie this far (px) outside its frame (edge replicated)


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


# ---- Numba kernels: per pixel over the K samples -------------------------------------------

_FAST = {"cache": True, "nogil": True, "fastmath": True, "error_model": "numpy"}


@njit(**_FAST)
def _k_median8(x, cnt, fallback, out):  # pragma: no cover - compiled
    """Median of the first ``cnt`` of 8 values per pixel (missing ones +inf): a sorting network."""
    _, h, w = x.shape
    for y in range(h):
        for i in range(w):
            a0, a1, a2, a3 = x[0, y, i], x[1, y, i], x[2, y, i], x[3, y, i]
            a4, a5, a6, a7 = x[4, y, i], x[5, y, i], x[6, y, i], x[7, y, i]
            a0, a1 = min(a0, a1), max(a0, a1)
            a2, a3 = min(a2, a3), max(a2, a3)
            a4, a5 = min(a4, a5), max(a4, a5)
            a6, a7 = min(a6, a7), max(a6, a7)
            a0, a2 = min(a0, a2), max(a0, a2)
            a1, a3 = min(a1, a3), max(a1, a3)
            a4, a6 = min(a4, a6), max(a4, a6)
            a5, a7 = min(a5, a7), max(a5, a7)
            a1, a2 = min(a1, a2), max(a1, a2)
            a5, a6 = min(a5, a6), max(a5, a6)
            a0, a4 = min(a0, a4), max(a0, a4)
            a3, a7 = min(a3, a7), max(a3, a7)
            a1, a5 = min(a1, a5), max(a1, a5)
            a2, a6 = min(a2, a6), max(a2, a6)
            a1, a4 = min(a1, a4), max(a1, a4)
            a3, a6 = min(a3, a6), max(a3, a6)
            a2, a4 = min(a2, a4), max(a2, a4)
            a3, a5 = min(a3, a5), max(a3, a5)
            a3, a4 = min(a3, a4), max(a3, a4)
            n = cnt[y, i]
            lo, hi = (n - 1) // 2, n // 2
            vl = a0 if lo <= 0 else a1 if lo == 1 else a2 if lo == 2 else a3
            vh = a0 if hi == 0 else a1 if hi == 1 else a2 if hi == 2 else a3 if hi == 3 else a4
            out[y, i] = fallback[y, i] if n == 0 else 0.5 * (vl + vh)


@njit(cache=True, nogil=True)
def _k_prep(warped, cur, vals, ok, net, cnt):  # pragma: no cover - compiled
    """NaN-free copies of the samples (*vals*, 0 where missing; *ok* 1.0 where present) and
    the sorting-network input (8 planes, +inf where missing) with the count of samples."""
    k, h, w = warped.shape
    inf = np.float32(np.inf)
    for j in range(8):
        if j >= k:
            net[j] = inf
            continue
        for y in range(h):
            wr, vr, orow, nr = warped[j, y], vals[j, y], ok[j, y], net[j, y]
            for x in range(w):
                v = wr[x]
                good = v == v
                vr[x] = v if good else np.float32(0.0)
                orow[x] = np.float32(1.0) if good else np.float32(0.0)
                nr[x] = v if good else inf
    cnt[:] = 0
    for j in range(k):
        for y in range(h):
            orow, cr = ok[j, y], cnt[y]
            for x in range(w):
                cr[x] += np.int32(orow[x])


@njit(**_FAST)
def _k_use_net(vals, use, net, cnt):  # pragma: no cover - compiled
    """The sorting-network input of the usable samples only (+inf elsewhere) and their count."""
    k, h, w = vals.shape
    inf = np.float32(np.inf)
    cnt[:] = 0
    for j in range(8):
        if j >= k:
            net[j] = inf
            continue
        for y in range(h):
            vr, ur, nr, cr = vals[j, y], use[j, y], net[j, y], cnt[y]
            for x in range(w):
                nr[x] = vr[x] if ur[x] > np.float32(0.5) else inf
                cr[x] += np.int32(ur[x] > np.float32(0.5))


@njit(**_FAST)
def _k_outliers(vals, use, med, tols, kk):  # pragma: no cover - compiled
    k, h, w = vals.shape
    for j in range(k):
        for y in range(h):
            vr, ur, tr, mr = vals[j, y], use[j, y], tols[j, y], med[y]
            for x in range(w):
                ur[x] = ur[x] * np.float32(abs(vr[x] - mr[x]) <= kk * tr[x])


@njit(**_FAST)
def _k_tols(tol, hf, sharp, hfk, out):  # pragma: no cover - compiled
    k, h, w = sharp.shape
    for j in range(k):
        for y in range(h):
            sr, orow, tr, hr = sharp[j, y], out[j, y], tol[y], hf[y]
            for x in range(w):
                orow[x] = tr[x] + hfk * (np.float32(1.0) - sr[x]) * hr[x]


@njit(**_FAST)
def _k_pairs(vi, ti, oi, gi, vj, tj, oj, gj, si, ci, sj, cj):  # pragma: no cover - compiled
    """Support of samples i and j from each other (``|vi - vj| <= max(ti, tj)``), one row."""
    for x in range(vi.size):
        nr = np.float32(abs(vi[x] - vj[x]) <= max(ti[x], tj[x]))
        a, b = nr * oj[x], nr * oi[x]
        si[x] += gj[x] * a
        ci[x] += a
        sj[x] += gi[x] * b
        cj[x] += b


@njit(**_FAST)
def _k_support(vals, tols, ok, wgt, y, sup, cnt):  # pragma: no cover - compiled
    k = vals.shape[0]
    for i in range(k):
        sup[i, :] = wgt[i, y] * ok[i, y]
        cnt[i, :] = ok[i, y]
    for i in range(k):
        for j in range(i + 1, k):
            _k_pairs(vals[i, y], tols[i, y], ok[i, y], wgt[i, y], vals[j, y], tols[j, y], ok[j, y], wgt[j, y],
                     sup[i], cnt[i], sup[j], cnt[j])


@njit(**_FAST)
def _k_vote(cur, vals, ok, tols, wgt, size, size_n, agree, spike, tolc, sup_all):  # pragma: no cover
    """Per pixel: weight of the best supported cluster (and its member count), weight of the
    samples agreeing with the pixel, distance of the pixel from the cluster's mean and the
    cluster's mean tolerance; every sample's support into *sup_all*. Rows at a time, pixels
    innermost (SIMD)."""
    k, h, w = vals.shape
    cnt = np.empty((k, w), np.float32)
    bs, bf, bn = np.empty(w, np.float32), np.empty(w, np.float32), np.empty(w, np.float32)
    cv, tb = np.empty(w, np.float32), np.empty(w, np.float32)
    one, eps = np.float32(1.0), np.float32(1e-6)
    for y in range(h):
        c = cur[y]
        ag = agree[y]
        ag[:] = 0.0
        for i in range(k):
            vi, ti, oi, gi = vals[i, y], tols[i, y], ok[i, y], wgt[i, y]
            for x in range(w):
                ag[x] += gi[x] * oi[x] * np.float32(abs(c[x] - vi[x]) <= ti[x])
        sup = sup_all[:, y]
        _k_support(vals, tols, ok, wgt, y, sup, cnt)
        bs[:] = -1.0
        bf[:] = -1.0
        bn[:] = -1.0
        cv[:] = 0.0
        tb[:] = 0.0
        for i in range(k):
            vi, ti, oi, si, ci = vals[i, y], tols[i, y], ok[i, y], sup[i], cnt[i]
            for x in range(w):
                o = oi[x]
                s = si[x] * o - (one - o)
                f = abs(c[x] - vi[x]) * o - (one - o)
                better = (s > bs[x] + eps) | ((abs(s - bs[x]) <= eps) & (f > bf[x]))
                bs[x] = s if better else bs[x]
                bf[x] = f if better else bf[x]
                bn[x] = ci[x] if better else bn[x]
                cv[x] = vi[x] if better else cv[x]
                tb[x] = ti[x] if better else tb[x]
        size[y, :] = bs
        for x in range(w):
            size_n[y, x] = np.int32(bn[x])
        bs[:] = 0.0
        bf[:] = 0.0
        bn[:] = 0.0
        for i in range(k):
            vi, ti, oi = vals[i, y], tols[i, y], ok[i, y]
            for x in range(w):
                nr = np.float32(abs(vi[x] - cv[x]) <= max(ti[x], tb[x])) * oi[x]
                bf[x] += vi[x] * nr
                bs[x] += ti[x] * nr
                bn[x] += nr
        for x in range(w):
            m = max(bn[x], eps)
            spike[y, x] = abs(c[x] - bf[x] / m)
            tolc[y, x] = bs[x] / m


@njit(**_FAST)
def _k_support_all(vals, tols, use, wgt, sup_all):  # pragma: no cover - compiled
    k, h, w = vals.shape
    cnt = np.empty((k, w), np.float32)
    for y in range(h):
        _k_support(vals, tols, use, wgt, y, sup_all[:, y], cnt)


@njit(**_FAST)
def _k_members(vals, use, tols, sup_all, spatial, scale, sharp, out):  # pragma: no cover - compiled
    """Per pixel: the usable sample with the best support *sup_all* (ties: nearer *spatial*,
    sharper) and the usable samples that agree with it (``out`` 1.0)."""
    k, h, w = vals.shape
    bc, pk, tp = np.empty(w, np.float32), np.empty(w, np.float32), np.empty(w, np.float32)
    rs = np.empty(w, np.float32)
    big = np.float32(1e30)
    for y in range(h):
        bc[:] = big
        pk[:] = 0.0
        tp[:] = -1.0
        sp, sc = spatial[y], scale[y]
        for x in range(w):
            rs[x] = np.float32(1.0) / sc[x]
        for i in range(k):
            vi, ti, ui, hi, si = vals[i, y], tols[i, y], use[i, y], sharp[i, y], sup_all[i, y]
            for x in range(w):
                cost = -si[x] + abs(vi[x] - sp[x]) * rs[x] - np.float32(0.5) * hi[x] + (np.float32(1.0) - ui[x]) * big
                better = cost < bc[x]
                bc[x] = cost if better else bc[x]
                pk[x] = vi[x] if better else pk[x]
                tp[x] = ti[x] if better else tp[x]
        for i in range(k):
            vi, ti, ui, oi = vals[i, y], tols[i, y], use[i, y], out[i, y]
            for x in range(w):
                oi[x] = np.float32(abs(vi[x] - pk[x]) <= max(ti[x], tp[x])) * ui[x] * np.float32(tp[x] >= 0)


@njit(cache=True, nogil=True, error_model="numpy")
def _k_mean(vals, members, weights, out):  # pragma: no cover - compiled
    """``sum(members * weights * vals) / sum(members * weights)`` over axis 0 (vals finite where
    members)."""
    k, h, w = vals.shape
    tot = np.empty(w, np.float32)
    for y in range(h):
        o = out[y]
        o[:] = 0.0
        tot[:] = 0.0
        for i in range(k):
            vi, mi, wi = vals[i, y], members[i, y], weights[i, y]
            for x in range(w):
                a = wi[x] if mi[x] else np.float32(0.0)
                o[x] += a * vi[x] if mi[x] else np.float32(0.0)
                tot[x] += a
        for x in range(w):
            o[x] = o[x] / max(tot[x], np.float32(1e-6))


@njit(cache=True, nogil=True)
def _k_finite(x, out, cnt):  # pragma: no cover - compiled
    """*x* with NaN as +inf into ``out`` (8 planes, the missing ones +inf), the count of finite values."""
    k, h, w = x.shape
    inf = np.float32(np.inf)
    for y in range(h):
        for i in range(w):
            n = 0
            for j in range(8):
                v = x[j, y, i] if j < k else inf
                ok = v == v and j < k
                out[j, y, i] = v if ok else inf
                n += 1 if ok else 0
            cnt[y, i] = n


@njit(**_FAST)
def _k_sharpness(fx, fy, out):  # pragma: no cover - compiled
    h, w = fx.shape
    for y in range(h):
        for x in range(w):
            a = fx[y, x] - np.floor(fx[y, x])
            b = fy[y, x] - np.floor(fy[y, x])
            sa = np.float32(0.1) + np.float32(0.9) * (np.float32(1.0) - np.float32(2.0) * min(a, np.float32(1.0) - a))
            sb = np.float32(0.1) + np.float32(0.9) * (np.float32(1.0) - np.float32(2.0) * min(b, np.float32(1.0) - b))
            out[y, x] = sa * sb


@njit(cache=True, nogil=True)
def _k_grow_level(lab, cur, d, have, level, tol, thr, steps, nocons):  # pragma: no cover - compiled
    """Up to *steps* rounds: an unlabelled pixel touching (8-connected, first in scan order) a
    label with a level takes it when it lies within ``tol`` of the level and, where it has a
    consensus (*have*), deviates from it by more than *thr* and more than from the level.
    Only pixels next to a change are looked at again (a frontier)."""
    h, w = lab.shape
    out = lab.copy()
    stamp = np.zeros((h, w), np.int32)
    fy, fx = np.empty(h * w, np.int32), np.empty(h * w, np.int32)
    ay, ax, al = np.empty(h * w, np.int32), np.empty(h * w, np.int32), np.empty(h * w, np.int32)
    nf = 0
    for y in range(h):
        for x in range(w):
            if out[y, x] <= 0 or tol[out[y, x]] < 0:
                continue
            for yy in range(max(y - 1, 0), min(y + 2, h)):
                for xx in range(max(x - 1, 0), min(x + 2, w)):
                    if out[yy, xx] == 0 and stamp[yy, xx] != 1:
                        stamp[yy, xx] = 1
                        fy[nf], fx[nf] = yy, xx
                        nf += 1
    for step in range(steps):
        na = 0
        for q in range(nf):
            y, x = fy[q], fx[q]
            if out[y, x] != 0:
                continue
            best = 0
            for dy in range(-1, 2):
                yy = y + dy
                if yy < 0 or yy >= h or best:
                    continue
                for dx in range(-1, 2):
                    xx = x + dx
                    if 0 <= xx < w and out[yy, xx] > 0 and tol[out[yy, xx]] >= 0:
                        best = out[yy, xx]
                        break
            if best == 0:
                continue
            e = abs(cur[y, x] - level[best])
            if e <= tol[best] and ((not have[y, x] and nocons) or (have[y, x] and abs(d[y, x]) > thr and e < abs(d[y, x]))):
                ay[na], ax[na], al[na] = y, x, best
                na += 1
        if na == 0:
            break
        for q in range(na):
            out[ay[q], ax[q]] = al[q]
        nf = 0
        for q in range(na):
            y, x = ay[q], ax[q]
            for yy in range(max(y - 1, 0), min(y + 2, h)):
                for xx in range(max(x - 1, 0), min(x + 2, w)):
                    if out[yy, xx] == 0 and stamp[yy, xx] != step + 2:
                        stamp[yy, xx] = step + 2
                        fy[nf], fx[nf] = yy, xx
                        nf += 1
    return out


@njit(cache=True, nogil=True)
def _k_ssd(cur, nb, x0, y0, pj, pi, th, tw, px, py, r, limit):  # pragma: no cover - compiled
    """Best squared difference of the template ``cur[y0 + pj, x0 + pi]`` (its pixels in that
    order: the most deviant first, so a wrong position is given up after a few) against *nb*
    at offsets within *r* of ``(px, py)`` (the whole ``th x tw`` box inside *nb*), abandoning a
    position once it reaches *limit*: ``(best, x, y)``, best >= limit when none comes under it."""
    h, w = nb.shape
    best, bx, by = limit, -1, -1
    m = pj.size
    for sy in range(max(0, py - r), min(h - th, py + r) + 1):
        for sx in range(max(0, px - r), min(w - tw, px + r) + 1):
            acc = 0.0
            for q in range(m):
                e = cur[y0 + pj[q], x0 + pi[q]] - nb[sy + pj[q], sx + pi[q]]
                acc += e * e
                if acc >= best:
                    break
            if acc < best:
                best, bx, by = acc, sx, sy
    return best, bx, by


@njit(cache=True, nogil=True)
def _k_moved(cur, dev, labels, nbs, fx, fy, offs, order, stats, spike, near, radius, nearest):  # pragma: no cover
    """Per component: found in one of the *nearest* neighbours within *near* px of where the
    flow puts it (the component with a 3-px ring), or found (the component and a 1-px ring)
    in at least 3 of them (all, when fewer) displaced along one linear motion."""
    count = stats.shape[0]
    h, w = cur.shape
    drop = np.zeros(count, np.bool_)
    k = min(nearest, len(order))
    need = min(3, k)
    fd = np.empty(k, np.int64)
    fsx = np.empty(k, np.float64)
    fsy = np.empty(k, np.float64)
    for c in range(1, count):
        x, y, bw, bh = stats[c, 0], stats[c, 1], stats[c, 2], stats[c, 3]
        x0, y0 = max(0, x - 3), max(0, y - 3)
        x1, y1 = min(w, x + bw + 3), min(h, y + bh + 3)
        tw, th = x1 - x0, y1 - y0
        cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
        limit = 0.25 * spike[c]
        # the template's pixels: the component's own first (they differ from everything a
        # wrong position offers, so such a position is given up early), then its 1-px ring
        # (the tight template ends there), then the rest of the box
        nt = tw * th
        pj, pi = np.empty(nt, np.int64), np.empty(nt, np.int64)
        m, ring = 0, 0
        for phase in range(3):
            for j in range(th):
                for i in range(tw):
                    yy, xx = y0 + j, x0 + i
                    own = labels[yy, xx] == c
                    if phase == 0:
                        take = own
                    else:
                        near1 = False
                        if not own:
                            for v in range(max(yy - 1, 0), min(yy + 2, h)):
                                for u in range(max(xx - 1, 0), min(xx + 2, w)):
                                    near1 = near1 or labels[v, u] == c
                        take = (not own) and (near1 if phase == 1 else not near1)
                    if take:
                        pj[m], pi[m] = j, i
                        m += 1
            if phase == 1:
                ring = m
        tj, ti = pj[:ring], pi[:ring]
        nf, miss = 0, 0
        for q in range(k):
            i = order[q]
            d = offs[i]
            px = x0 + int(np.round(fx[i, cy, cx]))
            py = y0 + int(np.round(fy[i, cy, cx]))
            best, bx, by = _k_ssd(cur, nbs[i], x0, y0, pj, pi, th, tw, px, py, near, limit)
            if best < limit:
                drop[c] = True  # there, within NEAR px of where the flow put it
                break
            if k - miss < need:  # a linear motion is no longer possible
                continue
            best, bx, by = _k_ssd(cur, nbs[i], x0, y0, tj, ti, th, tw, px, py, min(40, radius * abs(d)), limit)
            if best < limit:
                fd[nf], fsx[nf], fsy[nf] = d, bx - x0, by - y0
                nf += 1
            else:
                miss += 1
        if drop[c] or nf < need:
            continue
        vx = np.median(fsx[:nf] / fd[:nf])
        vy = np.median(fsy[:nf] / fd[:nf])
        agree = 0
        for j in range(nf):
            if abs(fsx[j] - fd[j] * vx) <= 1.5 and abs(fsy[j] - fd[j] * vy) <= 1.5:
                agree += 1
        drop[c] = agree >= need
    return drop


@njit(cache=True, nogil=True)
def _k_blend_at(src, fx, fy, ys, xs, wts, acc, tot, margin):  # pragma: no cover - compiled
    """Add ``wts[q] * src(xs[q] + fx, ys[q] + fy)`` (bicubic, Catmull-Rom, edge replicated; no
    sample beyond *margin* px outside the plane) to ``acc[q]``, and the weight to ``tot[q]``."""
    h, w = src.shape
    for q in range(ys.size):
        wt = wts[q]
        if not wt > 0.0:
            continue
        y, x = ys[q], xs[q]
        gx, gy = x + fx[y, x], y + fy[y, x]
        if not (-margin <= gx <= w - 1 + margin and -margin <= gy <= h - 1 + margin):
            continue
        ix, iy = int(np.floor(gx)), int(np.floor(gy))
        tx, ty = gx - ix, gy - iy
        u = ((2.0 * tx * tx - tx * tx * tx - tx) * 0.5, (3.0 * tx * tx * tx - 5.0 * tx * tx + 2.0) * 0.5,
             (4.0 * tx * tx - 3.0 * tx * tx * tx + tx) * 0.5, (tx * tx * tx - tx * tx) * 0.5)
        v = ((2.0 * ty * ty - ty * ty * ty - ty) * 0.5, (3.0 * ty * ty * ty - 5.0 * ty * ty + 2.0) * 0.5,
             (4.0 * ty * ty - 3.0 * ty * ty * ty + ty) * 0.5, (ty * ty * ty - ty * ty) * 0.5)
        val = 0.0
        for j in range(4):
            r = min(max(iy - 1 + j, 0), h - 1)
            row = 0.0
            for i in range(4):
                c = min(max(ix - 1 + i, 0), w - 1)
                row += u[i] * src[r, c]
            val += v[j] * row
        acc[q] += wt * val
        tot[q] += wt


# ---- building blocks -----------------------------------------------------------------------

def blend_at(planes: list[np.ndarray], flows: list[np.ndarray], weights: np.ndarray,
             ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The weighted sum of the compensated neighbour *planes* at the pixels ``(ys, xs)`` and the
    sum of the weights that had a sample (``weights``: ``(K, N)`` at those pixels)."""
    acc = np.zeros(ys.size, np.float64)
    tot = np.zeros(ys.size, np.float64)
    for pl, f, wt in zip(planes, flows, weights, strict=True):
        _k_blend_at(pl, np.ascontiguousarray(f[0], dtype=np.float32), np.ascontiguousarray(f[1], dtype=np.float32),
                    ys, xs, np.ascontiguousarray(wt, dtype=np.float32), acc, tot, MARGIN)
    return acc, tot


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
    return np.stack(out).astype(np.float32) if out else np.zeros((0, *nbs[0].shape), np.float32)


def trusted(cur: np.ndarray, warped: np.ndarray, window: int = 15) -> np.ndarray:
    """*warped* with the samples of poorly compensated areas set to NaN.

    A neighbour's compensation is judged around every pixel by the *median* of ``|cur - sample|``
    over a *window* (more than half of the window beyond a threshold: one box filter): one-frame
    defects in either frame (up to a third of a window at 10 % coverage) leave it at the noise
    and texture level; an object the flow did not follow, or a region the motion uncovered,
    moves it. Above :data:`POOR` times the frame's typical difference (at least
    :data:`POOR_MIN`) the samples are not used, so such a region does not look like a defect.
    """
    out = warped.copy()
    d = np.abs(cur[None] - warped)
    s = d.ravel()[:: max(1, d.size // 65536)]
    thr = max(POOR_MIN, POOR * float(np.nanmedian(s))) if np.isfinite(s).any() else 1.0
    for k in range(warped.shape[0]):
        above = (np.nan_to_num(d[k], nan=0.0) > thr).astype(np.float32)
        out[k][cv2.blur(above, (window, window), borderType=cv2.BORDER_REPLICATE) > 0.5] = np.nan
    return out


def reliability(cur: np.ndarray, warped: np.ndarray, window: int = 7) -> np.ndarray:
    """``(K, H, W)`` weight of each neighbour around each pixel: how well it matches the frame
    there (mean ``|cur - sample|`` over a *window*, truncated at :data:`REL_TRUNC` typical
    matches so that defects count no more than that) against the best-matching neighbour,
    ``(best + c) / (own + c)`` with ``c`` :data:`REL_C` typical matches: 1 where a neighbour
    matches as well as any, small where it alone disagrees (fine texture read half-way
    between pixels aliases differently in every frame)."""
    k = warped.shape[0]
    d = np.abs(cur[None] - warped)
    best = np.fmin.reduce(d[:, ::4, ::4], axis=0)  # NaN only where no neighbour has a sample
    best = best[np.isfinite(best)]
    typ = max(float(np.median(best)) if best.size else 0.0, 1e-3)
    top = REL_TRUNC * typ
    e = np.empty_like(d)
    for i in range(k):
        e[i] = cv2.blur(np.fmin(d[i], np.float32(top)), (window, window), borderType=cv2.BORDER_REPLICATE)
    c = REL_C * typ
    return ((e.min(0) + c)[None] / (e + c)).astype(np.float32)


def sharpness(flow: np.ndarray) -> np.ndarray:
    """Weight of a sample by how far its position is from whole pixels: 1 on them, 0.01 half-way."""
    out = np.empty(flow.shape[1:], np.float32)
    _k_sharpness(np.ascontiguousarray(flow[0], dtype=np.float32), np.ascontiguousarray(flow[1], dtype=np.float32), out)
    return out


def _mad(d: np.ndarray) -> float:
    s = d.ravel()[:: max(1, d.size // 16384)]
    s = s[np.isfinite(s)]
    return float(1.4826 * np.median(np.abs(s - np.median(s)))) if s.size else 0.0


def nanmedian(x: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Median over axis 0 of the non-NaN values of a stack of up to 8; *fallback* where all are NaN."""
    assert x.shape[0] <= 8
    pad = np.empty((8, *x.shape[1:]), np.float32)
    cnt = np.empty(x.shape[1:], np.int32)
    _k_finite(np.ascontiguousarray(x, dtype=np.float32), pad, cnt)
    out = np.empty(x.shape[1:], np.float32)
    _k_median8(pad, cnt, np.ascontiguousarray(fallback, dtype=np.float32), out)
    return out


def _mean(vals: np.ndarray, members: np.ndarray, weights: np.ndarray) -> np.ndarray:
    out = np.empty(vals.shape[1:], np.float32)
    _k_mean(np.ascontiguousarray(vals, dtype=np.float32), np.ascontiguousarray(members),
            np.ascontiguousarray(weights, dtype=np.float32), out)
    return out


def _members(vals: np.ndarray, use: np.ndarray, vote: Vote, spatial: np.ndarray, scale: np.ndarray,
             sup: np.ndarray | None = None) -> np.ndarray:
    """The repair vote among the usable samples (*vals*: finite, *use*: 1.0 where usable): the
    best (reliability-weighted) supported one (ties: nearer the spatial estimate, sharper) and
    the samples that agree with it. *sup*: the supports, if known."""
    if sup is None:
        sup = np.empty(vals.shape, np.float32)
        _k_support_all(vals, vote.tols, use, vote.weight, sup)
    out = np.empty(vals.shape, np.float32)
    _k_members(vals, use, vote.tols, sup, np.ascontiguousarray(spatial, dtype=np.float32),
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
    return cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8) if kernel is None else kernel).astype(bool)


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
    _k_prep(warped, cur, vals, ok, net, cnt)
    ref = np.empty((h, w), np.float32)
    _k_median8(net, cnt, cur, ref)
    grad = cv2.blur(np.hypot(cv2.Sobel(ref, cv2.CV_32F, 1, 0, ksize=3),
                             cv2.Sobel(ref, cv2.CV_32F, 0, 1, ksize=3)) / 8, (3, 3))
    tol = (TOL_K * sigma + 0.5 * grad).astype(np.float32)
    # interpolation softens sharp detail (a thin line, fine texture): a sample read between
    # pixels may differ from the frame there by up to its local high frequency
    hf = cv2.dilate(np.abs(ref - cv2.GaussianBlur(ref, (0, 0), 1.0)), np.ones((3, 3), np.uint8))
    sharp = np.ascontiguousarray(sharp, dtype=np.float32)
    tols = np.empty_like(warped)
    _k_tols(tol, np.ascontiguousarray(hf, dtype=np.float32), sharp, np.float32(HF_K), tols)
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
    _k_vote(cur, vals, ok, vote.tols, vote.weight, size, size_n, agree, spike, tol_c, sup)
    ks = 1.0 / strength
    high = (size_n >= MIN_SEED) & (size > agree + 1) & (spike > np.maximum(K_SEED * ks * sigma, 2 * ks * tol_c))
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
    lab = labels.ravel()
    strong = (mask & have & (np.abs(d) > 2 * thr)).ravel()
    n = np.bincount(lab, weights=strong, minlength=count)
    s1 = np.bincount(lab, weights=np.where(strong, cur.ravel(), 0.0), minlength=count)
    s2 = np.bincount(lab, weights=np.where(strong, cur.ravel() ** 2, 0.0), minlength=count)
    level = s1 / np.maximum(n, 1)
    std = np.sqrt(np.maximum(s2 / np.maximum(n, 1) - level ** 2, 0.0))
    tol = np.maximum(LEVEL_K * std, 3.0 * sigma)
    tol[(n < 3) | (np.arange(count) == 0)] = -1.0
    out = _k_grow_level(labels.astype(np.int32), np.ascontiguousarray(cur, dtype=np.float32),
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
    _k_use_net(vals, use, net, cnt)
    _k_median8(net, cnt, cur, med)
    _k_outliers(vals, use, med, tols, np.float32(OUTLIER_K))  # far outliers: missed neighbour defects
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
    drop = _k_moved(np.ascontiguousarray(cur, dtype=np.float32), ((cur - vote.value) ** 2).astype(np.float32),
                    labels.astype(np.int32),
                    np.stack([np.asarray(x, np.float32) for x in nbs]),
                    np.stack([f[0] for f in flows]).astype(np.float32),
                    np.stack([f[1] for f in flows]).astype(np.float32),
                    np.asarray(offs, np.int64), order, stats.astype(np.int64), spike.astype(np.float64),
                    NEAR, MOVE_RADIUS, MOVE_NEAREST)
    return mask & ~drop[labels]
