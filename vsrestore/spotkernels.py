"""The Numba kernels of ``vr.despot``'s vote (:mod:`vsrestore.spots`).

Serial and ``nogil`` (VapourSynth runs frames in parallel), rows at a time with the pixels
innermost where it matters (SIMD). Per pixel over the K (<= 8) samples: their median (a
sorting network), tolerances, supports, the spike vote and the repair vote's members and
weighted mean; per defect: level growth (:func:`k_grow_level`) and the search for components
that are picture the flow did not follow (:func:`k_moved`). Their inputs and meaning are
described in :mod:`vsrestore.spots`, whose functions are the only callers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

FAST: dict[str, Any] = {"cache": True, "nogil": True, "fastmath": True, "error_model": "numpy"}


@njit(**FAST)
def k_median8(x, cnt, fallback, out):  # pragma: no cover - compiled
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
def k_prep(warped, cur, vals, ok, net, cnt):  # pragma: no cover - compiled
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


@njit(**FAST)
def k_use_net(vals, use, net, cnt):  # pragma: no cover - compiled
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


@njit(**FAST)
def k_outliers(vals, use, med, tols, kk):  # pragma: no cover - compiled
    k, h, w = vals.shape
    for j in range(k):
        for y in range(h):
            vr, ur, tr, mr = vals[j, y], use[j, y], tols[j, y], med[y]
            for x in range(w):
                ur[x] = ur[x] * np.float32(abs(vr[x] - mr[x]) <= kk * tr[x])


@njit(**FAST)
def k_tols(tol, hf, sharp, hfk, out):  # pragma: no cover - compiled
    k, h, w = sharp.shape
    for j in range(k):
        for y in range(h):
            sr, orow, tr, hr = sharp[j, y], out[j, y], tol[y], hf[y]
            for x in range(w):
                orow[x] = tr[x] + hfk * (np.float32(1.0) - sr[x]) * hr[x]


@njit(**FAST)
def _k_pairs(vi, ti, oi, gi, vj, tj, oj, gj, si, ci, sj, cj):  # pragma: no cover - compiled
    """Support of samples i and j from each other (``|vi - vj| <= max(ti, tj)``), one row."""
    for x in range(vi.size):
        nr = np.float32(abs(vi[x] - vj[x]) <= max(ti[x], tj[x]))
        a, b = nr * oj[x], nr * oi[x]
        si[x] += gj[x] * a
        ci[x] += a
        sj[x] += gi[x] * b
        cj[x] += b


@njit(**FAST)
def _k_support(vals, tols, ok, wgt, y, sup, cnt):  # pragma: no cover - compiled
    k = vals.shape[0]
    for i in range(k):
        sup[i, :] = wgt[i, y] * ok[i, y]
        cnt[i, :] = ok[i, y]
    for i in range(k):
        for j in range(i + 1, k):
            _k_pairs(vals[i, y], tols[i, y], ok[i, y], wgt[i, y], vals[j, y], tols[j, y], ok[j, y], wgt[j, y],
                     sup[i], cnt[i], sup[j], cnt[j])


@njit(**FAST)
def k_vote(cur, vals, ok, tols, wgt, size, size_n, agree, spike, tolc, sup_all):  # pragma: no cover
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


@njit(**FAST)
def k_support_all(vals, tols, use, wgt, sup_all):  # pragma: no cover - compiled
    k, h, w = vals.shape
    cnt = np.empty((k, w), np.float32)
    for y in range(h):
        _k_support(vals, tols, use, wgt, y, sup_all[:, y], cnt)


@njit(**FAST)
def k_members(vals, use, tols, sup_all, spatial, scale, sharp, out):  # pragma: no cover - compiled
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
                cost = (-si[x] + abs(vi[x] - sp[x]) * rs[x] - np.float32(0.5) * hi[x]
                        + (np.float32(1.0) - ui[x]) * big)
                better = cost < bc[x]
                bc[x] = cost if better else bc[x]
                pk[x] = vi[x] if better else pk[x]
                tp[x] = ti[x] if better else tp[x]
        for i in range(k):
            vi, ti, ui, oi = vals[i, y], tols[i, y], use[i, y], out[i, y]
            for x in range(w):
                oi[x] = np.float32(abs(vi[x] - pk[x]) <= max(ti[x], tp[x])) * ui[x] * np.float32(tp[x] >= 0)


@njit(cache=True, nogil=True, error_model="numpy")
def k_mean(vals, members, weights, out):  # pragma: no cover - compiled
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
def k_finite(x, out, cnt):  # pragma: no cover - compiled
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


@njit(cache=True, nogil=True)
def k_grow_level(lab, cur, d, have, level, tol, thr, steps, nocons):  # pragma: no cover - compiled
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
            if e <= tol[best] and ((not have[y, x] and nocons)
                                   or (have[y, x] and abs(d[y, x]) > thr and e < abs(d[y, x]))):
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
def k_moved(cur, dev, labels, nbs, fx, fy, offs, order, stats, spike, near, radius,
            nearest):  # pragma: no cover - compiled
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
            best, bx, by = _k_ssd(cur, nbs[i], x0, y0, tj, ti, th, tw, px, py, min(40, radius * abs(d)),
                                  limit)
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
