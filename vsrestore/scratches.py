"""Persistent line scratches (thin, mostly vertical, fixed to the film) for ``vr.despot``.

NumPy/OpenCV only; ``y`` is a frame's luma ``(H, W)`` float32 0..1.

A scratch lives on the film, so every neighbour frame has it too and the temporal spike test
cannot see it: it is found spatially. :func:`candidates` smooths the frame along y (a scratch
is nearly constant along y, texture is not), takes a 1-D ridge/valley response across x
(the line against the *brighter* / *darker* of its two sides 2-3 px away, so a step edge
scores nothing), and reads it per horizontal band as the band's median: only a structure
present on most rows of the band survives. Band peaks are chained top to bottom (at most
:data:`STEP` px apart); a chain covering :data:`MIN_COVER` of the height is a candidate line,
with a centre per row (sub-pixel), a half-width and a polarity.

:func:`verify` then asks the motion: a scratch does not move with the picture. Where a
compensated neighbour has moved by at least :data:`MIN_SHIFT` px relative to the film at the
line, its compensated plane must *not* show the ridge there (a pole or a door frame would:
it travels with the image). The line must also be there in the
nearest frames as they are (a chain of one-frame dust that happens to line up is not). A line
no neighbour can test (a static camera) is kept only if it spans :data:`STATIC_COVER` of the
height; a full-height thin line in a static shot that never
moves cannot be told from a scratch. :func:`line_mask` rasterises accepted lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SMOOTH = 15  # rows of vertical smoothing
BANDS = 12  # horizontal bands the height is split into
STEP = 2.0  # px a line may move between adjacent band centres
MIN_COVER = 0.75  # fraction of the bands a candidate line must cover
STATIC_COVER = 0.9  # ... and where no neighbour has moved, to be taken for a scratch
K_RIDGE = 5.0  # band response (robust sigmas of the response) that seeds a line
K_FOLLOW = 2.5  # ... and that continues one
MAX_GAP = 3  # bands a line may cross without evidence
MIN_SHIFT = 2.0  # px of relative motion that lets a neighbour test a line
MAX_LINES = 8


@dataclass
class Line:
    """One candidate line: per-row centre (NaN where the line is absent), half-width, sign."""

    centre: np.ndarray  # (H,) float, px
    half: float  # half-width, px
    sign: int  # +1 brighter than its surroundings, -1 darker
    strength: float  # median band response (0..1 luma units)
    cover: float  # fraction of the height spanned


def ridge(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bright and dark thin-line responses across x of the vertically smoothed frame."""
    v = cv2.blur(np.ascontiguousarray(y, dtype=np.float32), (1, SMOOTH))
    pad = cv2.copyMakeBorder(v, 0, 0, 4, 4, cv2.BORDER_REPLICATE)
    w = v.shape[1]
    bright = np.full_like(v, -np.inf)
    dark = np.full_like(v, -np.inf)
    for o in (2, 3):
        left, right = pad[:, 4 - o:4 - o + w], pad[:, 4 + o:4 + o + w]
        bright = np.maximum(bright, v - np.maximum(left, right))
        dark = np.maximum(dark, np.minimum(left, right) - v)
    return bright, dark


def candidates(y: np.ndarray) -> list[Line]:
    """Candidate lines of one frame (spatial evidence only), strongest first."""
    h, w = y.shape
    if h < 2 * BANDS or w < 12:
        return []
    bright, dark = ridge(y)
    edges = np.linspace(0, h, BANDS + 1).astype(int)
    lines: list[Line] = []
    for sign, r in ((1, bright), (-1, dark)):
        band = np.stack([np.median(r[a:b], axis=0) for a, b in zip(edges[:-1], edges[1:], strict=True)])
        s = r[:, 4:-4].ravel()[:: max(1, r.size // 65536)]
        sigma = max(1.4826 * float(np.median(np.abs(s - np.median(s)))), 1e-4)
        z = band / sigma
        z[:, :3] = z[:, -3:] = 0  # the frame border is no evidence
        found = _chains(z, y.shape, sign)
        for ln in found:
            ln.strength *= sigma  # raw contrast: comparable across the two polarities
        lines += found
    lines.sort(key=lambda ln: -ln.strength)
    return [ln for ln in _dedupe(lines)][:MAX_LINES]


def _peaks(row: np.ndarray, thr: float) -> np.ndarray:
    """Sub-pixel positions of the local maxima of *row* above *thr*."""
    w = row.size
    ok = (row > thr) & (row >= np.roll(row, 1)) & (row >= np.roll(row, -1))
    xs = np.flatnonzero(ok[1:-1]) + 1
    den = row[xs - 1] - 2 * row[xs] + row[xs + 1]
    off = np.where(den < 0, 0.5 * (row[xs - 1] - row[xs + 1]) / np.where(den < 0, den, -1.0), 0.0)
    return (xs + np.clip(off, -0.5, 0.5)).astype(np.float64) if w > 2 else np.zeros(0)


def _chains(z: np.ndarray, shape: tuple[int, int], sign: int) -> list[Line]:
    """Lines through band peaks: seeded by a strong peak (> :data:`K_RIDGE`), followed up and
    down through weaker ones (> :data:`K_FOLLOW`) at most :data:`STEP` px per band apart and
    across up to :data:`MAX_GAP` bands without evidence (where the scratch's contrast against
    the picture vanishes); kept when it spans :data:`MIN_COVER` of the height with evidence
    on half of the bands."""
    nb = z.shape[0]
    strong = [_peaks(z[b], K_RIDGE) for b in range(nb)]
    weak = [_peaks(z[b], K_FOLLOW) for b in range(nb)]
    taken = [np.zeros(len(p), bool) for p in weak]
    out: list[Line] = []
    order = sorted(((z[b, int(round(x))], b, x) for b in range(nb) for x in strong[b]), reverse=True)
    for _, b0, x0 in order:
        j0 = int(np.abs(weak[b0] - x0).argmin())
        if taken[b0][j0]:
            continue
        track = {b0: float(weak[b0][j0])}
        taken[b0][j0] = True
        for direction in (1, -1):
            x, gap, b = track[b0], 0, b0 + direction
            while 0 <= b < nb and gap <= MAX_GAP:
                d = np.abs(weak[b] - x)
                j = int(d.argmin()) if d.size else -1
                if j >= 0 and d[j] <= STEP * (gap + 1) and not taken[b][j]:
                    track[b] = x = float(weak[b][j])
                    taken[b][j] = True
                    gap = 0
                else:
                    gap += 1
                b += direction
        span = max(track) - min(track) + 1
        if span >= MIN_COVER * nb and len(track) >= 0.5 * nb:
            out.append(_line(track, z, shape, sign))
    return out


def _line(track: dict[int, float], z: np.ndarray, shape: tuple[int, int], sign: int) -> Line:
    h, w = shape
    nb = z.shape[0]
    bc = (np.arange(nb) + 0.5) * h / nb
    bs = np.array(sorted(track))
    xs = np.array([track[b] for b in bs])
    rows = np.arange(h)
    centre = np.interp(rows, bc[bs], xs)
    first, last = bs.min(), bs.max()
    centre[(rows < first * h / nb) | (rows >= (last + 1) * h / nb)] = np.nan
    strength = float(np.percentile([z[b, int(round(track[b]))] for b in bs], 75))
    cover = (last - first + 1) / nb

    inner = [int(round(track[b])) for b in bs if 4 <= round(track[b]) < w - 4]
    prof = np.mean([z[b, x - 4:x + 5] for b, x in zip(bs, inner, strict=False)], axis=0) \
        if inner else np.ones(9)
    half = max(0.5, 0.5 * float((prof >= prof.max() / 3).sum()) - 0.5)
    return Line(centre, min(half, 2.0), sign, strength, cover)


def _dedupe(lines: list[Line]) -> list[Line]:
    """Drop lines within 4 px of a stronger one (the two polarities of one edge, echoes)."""
    kept: list[Line] = []
    for ln in lines:
        if all(np.nanmedian(np.abs(ln.centre - k.centre)) > 4 for k in kept):
            kept.append(ln)
    return kept


def line_mask(lines: list[Line], shape: tuple[int, int], margin: float = 1.0) -> np.ndarray:
    """Pixels within ``half + margin`` px of a line's centre, on the rows it covers."""
    h, w = shape
    m = np.zeros((h, w), bool)
    x = np.arange(w)[None, :]
    for ln in lines:
        c = ln.centre[:, None]
        m |= np.abs(x - c) <= ln.half + margin + 0.5  # NaN rows compare False
    return m


def response_at(y: np.ndarray, line: Line) -> float:
    """Median ridge response (signed by the line's polarity) of *y* along *line*'s centre."""
    bright, dark = ridge(y)
    r = bright if line.sign > 0 else dark
    rows = np.flatnonzero(~np.isnan(line.centre))
    xs = np.clip(np.rint(line.centre[rows]).astype(int), 0, y.shape[1] - 1)
    # the best of the centre column and its two neighbours, per row (sub-pixel centres)
    vals = np.max(np.stack([r[rows, np.clip(xs + k, 0, y.shape[1] - 1)] for k in (-1, 0, 1)]), axis=0)
    return float(np.median(vals)) if vals.size else 0.0


def verify(lines: list[Line], cur: np.ndarray, warped: list[np.ndarray],
           flows: list[np.ndarray], raw: list[np.ndarray] | None = None) -> list[Line]:
    """The lines that do not move with the picture (module docstring) and, given the nearest
    frames as they are (*raw*), are found in at least one of them at the same place: a scratch
    lives on many frames, a chain of one-frame dust that happens to line up (dense dust) on one."""
    kept = []
    for ln in lines:
        rows = np.flatnonzero(~np.isnan(ln.centre))
        if rows.size == 0:
            continue
        xs = np.clip(np.rint(ln.centre[rows]).astype(int), 0, cur.shape[1] - 1)
        r0 = response_at(cur, ln)
        if raw and not any(response_at(y, ln) > 0.5 * r0 for y in raw):
            continue
        tested, moves = 0, 0
        for wp, fl in zip(warped, flows, strict=True):
            shift = float(np.median(np.abs(fl[0][rows, xs])))
            if shift < MIN_SHIFT:
                continue
            tested += 1
            filled = np.where(np.isnan(wp), cur, wp)
            if response_at(filled, ln) > 0.5 * r0:
                moves += 1
        if (tested and moves * 2 < tested) or (not tested and ln.cover >= STATIC_COVER):
            kept.append(ln)
    return kept


MIN_GAIN = 0.3  # below this the line is nearly opaque: its pixels are interpolated instead


def unblend(plane: np.ndarray, lines: list[Line], todo: np.ndarray, sx: float = 1.0,
            sy: float = 1.0, margin: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Spatial repair of the line pixels *todo* of one plane: ``(plane, interpolated)``.

    A partly transparent scratch maps the picture through ``out = g * in + o``, ``g`` and ``o``
    depending on the distance to the line's centre (its profile). Per 1-px distance bin and
    block of rows, ``g`` is the ratio of the vertical detail (rows minus their 5-row mean) on the
    bin to that on the columns just outside the line, and ``o`` the mean of ``out - g * side``
    (``side``: the surroundings interpolated across the line); inverting brings the picture's
    own detail under the line back (a gain/offset correction; nothing is invented). Where the
    line is nearly opaque (``g`` < :data:`MIN_GAIN`) the interpolation itself is used: those
    pixels are returned in *interpolated*. *sx*, *sy* scale luma coordinates to the plane's.
    """
    out = plane.astype(np.float32, copy=True)
    interp = np.zeros(plane.shape, bool)
    ph, pw = plane.shape

    def detail(a: np.ndarray) -> np.ndarray:  # along rows (axis 0)
        return a - cv2.blur(a.astype(np.float32).reshape(-1, 1), (1, 5)).ravel()

    for ln in lines:
        known = np.flatnonzero(~np.isnan(ln.centre))
        if known.size == 0:
            continue
        rows = np.unique(np.clip(np.rint(known * sy).astype(int), 0, ph - 1))
        c = np.interp(rows / sy, known, ln.centre[known]) * sx
        reach = int(np.ceil((ln.half + margin + 0.5) * sx))
        ci = np.rint(c).astype(int)
        offs = np.arange(-reach, reach + 1)
        xs = np.clip(ci[:, None] + offs[None, :], 0, pw - 1)
        xl, xr = np.clip(ci - reach - 1, 0, pw - 1), np.clip(ci + reach + 1, 0, pw - 1)
        vals = plane[rows[:, None], xs].astype(np.float64)
        left, right = plane[rows, xl].astype(np.float64), plane[rows, xr].astype(np.float64)
        side = left[:, None] + (right - left)[:, None] * (offs + reach + 1)[None, :] / (2 * reach + 2)
        sel = todo[rows[:, None], xs]
        est, flat = vals.copy(), np.zeros(vals.shape, bool)
        block = max(24, rows.size // 6)
        starts = list(range(0, max(rows.size - block // 2, 1), block))
        for k, r0 in enumerate(starts):
            r1 = starts[k + 1] if k + 1 < len(starts) else rows.size
            ref = np.sqrt(0.5 * (np.var(detail(left[r0:r1])) + np.var(detail(right[r0:r1])))) + 1e-9
            for j in range(len(offs)):
                m = sel[r0:r1, j]
                if not m.any():
                    continue
                v = vals[r0:r1, j]
                g = min(1.2, float(np.std(detail(v))) / ref) if r1 - r0 >= 8 else 0.0
                if g >= MIN_GAIN:
                    o = float(np.mean(v - g * side[r0:r1, j]))
                    est[r0:r1, j] = np.where(m, (v - o) / g, v)
                else:
                    est[r0:r1, j] = np.where(m, side[r0:r1, j], v)
                    flat[r0:r1, j] = m
        r, q = np.nonzero(sel)
        out[rows[r], xs[r, q]] = est[r, q]
        r, q = np.nonzero(flat)
        interp[rows[r], xs[r, q]] = True
    return out, interp
