"""Dust, dirt, hair and line-scratch repair for scanned film: ``vr.despot``."""

from __future__ import annotations

import cv2
import numpy as np
import vapoursynth as vs

from vsrestore import color, props, robustflow, spots, spotsamples
from vsrestore import scratches as lines_
from vsrestore.bridge import map_frames, new_frame, temporal_neighbours
from vsrestore.errors import VSRestoreError, check_clip

core = vs.core
NAME = "despot"
SPAN = 8  # frames compared and repaired from: the SPAN nearest of the shot (SPAN / 2 a side inside it)
_SHOT = "despot_shot"  # stage-2 prop: first and last frame of the shot (within SPAN of the frame)
_OFFS = "despot_offsets"  # stage-2b/3 prop: offsets of the neighbours used
_SIGMA = "despot_sigma"  # stage-3 prop: the vote's noise level
_LINES = "despot_lines"  # stage-3 prop: the scratches found (:func:`_pack_lines`)
_CUT = "despot_cut"  # stage-1 prop: 1 where the next frame belongs to another shot
# stage-3 frame: planes stacked along y, each H rows: the marks, then per neighbour the
# compensated luma its vote used (NaN where untrusted)
_MARK_DUST, _MARK_LINE, _MARK_CORE = 1, 2, 4
_PLANES = 1 + SPAN


def despot(clip: vs.VideoNode, *, strength: float = 1.0, output_mask: bool = False,
           scratches: bool = True) -> vs.VideoNode:
    """Remove one-frame defects of scanned film (dust, dirt, blotches, hairs) and line scratches.

    Every frame is compared with its eight nearest frames of the same shot (four a side inside
    it), motion-compensated by a flow that dense dust does not derail
    (:mod:`vsrestore.robustflow`; each pair's flow is computed once, forward, and inverted for
    the other frame). A pixel is a defect when it stands out from what the compensated
    neighbours agree on, in a vote that outlasts neighbours carrying their own defects at the
    same place; a second pass repeats the vote with each neighbour's own defects left out,
    grows every defect over the pixels that look like it, and repairs from the clean samples
    (real pixels of other frames: grain stays alive). Where no neighbour has a sample (frame
    edges the camera uncovers), the pixels are inpainted spatially and the frame gets the prop
    ``vsrestore_synthesized`` containing ``"despot"``. Pixels outside the mask stay
    bit-identical to the input.

    Line scratches (thin, mostly vertical, wandering, on many frames) are in the neighbours
    too, so they are found spatially (:mod:`vsrestore.scratches`: a narrow ridge or valley,
    nearly constant along y, that does not move with the picture) and repaired from the
    compensated neighbours where the camera moved the picture off the line, else by a
    gain/offset correction across it (interpolated where nearly opaque, marked synthesized).

    Args:
        clip: any YUV/RGB/GRAY clip, 8-16-bit integer or 16/32-bit float, at least 3 frames.
        strength: detection sensitivity (thresholds scale with 1/strength; 2 finds fainter
            defects, 0.5 only strong ones); 0 returns *clip* unchanged.
        output_mask: return the repair mask (GRAY8, 255 = repaired) instead of the repair.
        scratches: also find and repair line scratches (False: one-frame defects only, e.g.
            for static shots full of thin vertical structures).

    Example (.vpy)::

        import vapoursynth as vs, vsrestore as vr
        src = vs.core.bs.VideoSource("scan.mkv")
        clip = vr.despot(src)
        clip.set_output()
    """
    check_clip(clip, NAME)
    color.check_supported(clip, NAME)
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 10:
        raise VSRestoreError(NAME, f"strength must be a number in 0..10, got {strength!r}",
                             "use e.g. strength=1.0 (higher finds fainter spots)")
    if clip.num_frames < 3:
        raise VSRestoreError(NAME, f"the clip has {clip.num_frames} frames; spike detection needs 3",
                             "pass a clip with at least 3 frames")
    if min(clip.width, clip.height) < 4:
        raise VSRestoreError(NAME, f"the clip is {clip.width}x{clip.height}; dust detection needs at least "
                             "4x4 pixels", "pass a larger clip (or leave such thumbnails untouched)")
    if strength == 0 and not output_mask:
        return clip
    assert clip.format is not None
    h, w, total = clip.height, clip.width, clip.num_frames
    strength = float(strength) if strength > 0 else 1e-6
    find_lines = bool(scratches)
    luma = color.to_luma(clip)
    ahead = temporal_neighbours(luma, SPAN)[SPAN:]  # frames n .. n + SPAN

    # stage 1: the flow to the next frame, and whether it starts a new shot
    s1_tpl = core.std.BlankClip(luma, format=vs.GRAY16, height=2 * h, keep=True)

    def stage1(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        fout = new_frame(s1_tpl, f[0])
        out = np.asarray(fout[0])
        cut = 1
        if n + 1 < total:
            cur, nxt = np.asarray(f[0][0]), np.asarray(f[1][0])
            flow = _quant(robustflow.robust_flow(cur, nxt))
            cut = int(robustflow.cut_score(cur, spotsamples.sample([nxt], [flow], interp="bilinear")[0])
                      > robustflow.CUT)
            out[:] = _enc_flow(flow).reshape(2 * h, w)
        else:
            out[:] = _FLOW_ZERO
        fout.props[_CUT] = cut
        return fout

    s1 = map_frames(s1_tpl, ahead[:2], stage1)
    s1_near = temporal_neighbours(s1, SPAN)

    # stage 2: the forward flows that frame n and its later neighbours need (shot-aware)
    s2_tpl = core.std.BlankClip(luma, format=vs.GRAY16, height=2 * h * SPAN, keep=True)

    def stage2(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        ys, near = f[:SPAN + 1], f[SPAN + 1:]
        first, last = _shot(n, [int(x.props[_CUT]) for x in near], total)
        fout = new_frame(s2_tpl, near[SPAN])
        out = np.asarray(fout[0])
        out[:] = _FLOW_ZERO
        cur = np.asarray(ys[0][0])
        one = _dec_flow(np.asarray(near[SPAN][0])).reshape(2, h, w)  # the flow to frame n + 1
        done = []
        for d in range(1, SPAN + 1):
            m = n + d
            if m > min(last, total - 1) or not (d in _window(n, first, last)
                                                or -d in _window(m, first, last)):
                continue
            if d == 1:
                flow = one
            else:  # the camera's motion to the next frame, d times, is where the search starts
                base = (int(round(d * float(np.median(one[0, ::4, ::4])))),
                        int(round(d * float(np.median(one[1, ::4, ::4])))))
                flow = robustflow.robust_flow(cur, np.asarray(ys[d][0]), predict=base)
            out[2 * h * (d - 1):2 * h * d] = _enc_flow(flow).reshape(2 * h, w)
            done.append(d)
        fout.props[_SHOT] = [first, last]
        fout.props[_OFFS] = [0, *done]
        return fout

    s2 = map_frames(s2_tpl, [*ahead, *s1_near], stage2)

    # stage 2b: frame n's flows to each of its neighbours (backward ones by inversion, once)
    def stage2b(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        first, last = (int(v) for v in f[SPAN].props[_SHOT])
        offs = _window(n, first, last)
        fout = new_frame(s2_tpl, f[SPAN])
        out = np.asarray(fout[0])
        out[:] = _FLOW_ZERO
        for i, d in enumerate(offs):
            out[2 * h * i:2 * h * (i + 1)] = _flow_to(f, n, d, h, w).reshape(2 * h, w)
        fout.props[_OFFS] = [0, *offs]
        return fout

    s2b = map_frames(s2_tpl, temporal_neighbours(s2, SPAN)[:SPAN + 1], stage2b)
    lumas = temporal_neighbours(luma, SPAN)
    nb = 2 * SPAN + 1
    s3_tpl = core.std.BlankClip(luma, format=vs.GRAY16, height=h * _PLANES, keep=True)

    # stage 3: the first vote (detection); its marks tell the neighbours' second votes which of
    # their samples to leave out
    def stage3(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        ys = [np.asarray(x[0]) for x in f[:nb]]
        offs, flows = _neighbours(f[nb], h, w)
        cur = ys[SPAN]
        fout = new_frame(s3_tpl, f[SPAN])
        out = np.asarray(fout[0])
        out[:] = 0
        marks = np.zeros((h, w), np.int32)
        warped = np.zeros((0, h, w), np.float32)
        if offs:
            nbs = [ys[SPAN + d] for d in offs]
            warped = spotsamples.trusted(cur, spotsamples.sample(nbs, flows))
            sharp = np.stack([spotsamples.sharpness(x) for x in flows])
            vote = spots.detect(cur, warped, sharp, spotsamples.reliability(cur, warped), strength)
            vote.mask = spots.drop_moved(vote, cur, nbs, offs, flows)
            marks += np.where(vote.mask, _MARK_DUST, 0) + np.where(vote.core, _MARK_CORE, 0)
            fout.props[_SIGMA] = vote.sigma
            for i in range(len(offs)):
                out[h * (1 + i):h * (2 + i)] = _enc_luma(warped[i])
        if find_lines:  # the neighbours' samples on a scratch are not trusted
            raw = [ys[SPAN + d] for d in (-1, 1) if d in offs]
            lines = lines_.verify(lines_.candidates(cur), cur, list(warped), flows, raw)
            marks += _MARK_LINE * lines_.line_mask(lines, (h, w))
            fout.props[_LINES] = _pack_lines(lines)
        out[:h] = marks
        fout.props[_OFFS] = [0, *offs]
        return fout

    s3 = map_frames(s3_tpl, [*lumas, s2b], stage3)
    marks = core.std.Crop(s3, bottom=h * (_PLANES - 1))
    tpl = core.std.BlankClip(clip, format=vs.GRAY8, keep=True) if output_mask else clip
    clips = [*temporal_neighbours(clip, SPAN), *temporal_neighbours(marks, SPAN), s3, luma, s2b]
    peak = float((1 << clip.format.bits_per_sample) - 1) if clip.format.sample_type == vs.INTEGER else None

    # stage 4: the second vote with every neighbour's own defects known, and the repair
    def stage4(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        frames, mk = f[:nb], [np.asarray(x[0]).astype(np.int32) for x in f[nb:2 * nb]]
        data = np.asarray(f[2 * nb][0])
        cur = np.asarray(f[2 * nb + 1][0])
        offs, flows = _neighbours(f[2 * nb + 2], h, w)
        k = len(offs)
        mask = np.zeros((h, w), bool)
        members = np.zeros((0, h, w), bool)
        sharp = np.zeros((0, h, w), np.float32)
        warped = np.zeros((0, h, w), np.float32)
        if offs:
            own = mk[SPAN]
            warped = np.stack([_dec_luma(np.asarray(data[h * (1 + i):h * (2 + i)])) for i in range(k)])
            sharp = np.stack([spotsamples.sharpness(x) for x in flows])
            vote = spots.prepare(cur, warped, sharp, spotsamples.reliability(cur, warped),
                                 float(f[2 * nb].props[_SIGMA]))
            vote.mask, vote.core = (own & _MARK_DUST) > 0, (own & _MARK_CORE) > 0
            flags = spots.neighbour_flags([(mk[SPAN + d] & (_MARK_DUST | _MARK_LINE)) > 0 for d in offs],
                                          flows)
            mask, members, clean = spots.refine(cur, warped, vote, flags, strength)
            sharp = sharp * vote.weight  # the repair's sample weights
        lines: list[lines_.Line] = []
        on_line = np.zeros((h, w), bool)
        if find_lines:
            lines = _unpack_lines(f[2 * nb].props[_LINES], h)
            if lines:
                on_line = lines_.line_mask(lines, (h, w))
                mask = mask | on_line
                if offs:  # on a scratch only samples off every neighbour's own marks count
                    members = np.where(on_line[None], clean, members)
        if output_mask:
            fout = new_frame(tpl, frames[SPAN])
            np.asarray(fout[0])[:] = mask.astype(np.uint8) * 255
            return fout
        return _repair(frames, offs, flows, mask, members, sharp, peak, lines, on_line)

    return map_frames(tpl, clips, stage4)


def _pack_lines(lines: list[lines_.Line]) -> list[float]:
    """Scratches as one float list for a frame prop: their count, then per line half-width,
    sign, strength, cover and its centre on every row (-1 where it is absent)."""
    out: list[float] = [float(len(lines))]
    for ln in lines:
        out += [ln.half, float(ln.sign), ln.strength, ln.cover, *np.nan_to_num(ln.centre, nan=-1.0).tolist()]
    return out


def _unpack_lines(v: object, h: int) -> list[lines_.Line]:
    a = np.asarray(v if isinstance(v, (list, tuple)) else [v], np.float64)
    lines, i = [], 1
    for _ in range(int(a[0])):
        centre = a[i + 4:i + 4 + h].copy()
        centre[centre < 0] = np.nan
        lines.append(lines_.Line(centre, float(a[i]), int(a[i + 1]), float(a[i + 2]), float(a[i + 3])))
        i += 4 + h
    return lines


def _offsets(fl: vs.VideoFrame) -> list[int]:
    """The neighbour offsets in a stage-2/2b/3 frame's props (after the leading 0). A frame
    with none (a one-frame shot) stores ``[0]``, which VapourSynth reads back as a plain int."""
    v = fl.props[_OFFS]
    return [int(x) for x in (v if isinstance(v, (list, tuple)) else [v])[1:]]


def _neighbours(fl: vs.VideoFrame, h: int, w: int) -> tuple[list[int], list[np.ndarray]]:
    """Offsets of a frame's neighbours and its flows to them, from its stage-2b frame."""
    offs = _offsets(fl)
    a = np.asarray(fl[0])
    return offs, [_dec_flow(np.asarray(a[2 * h * i:2 * h * (i + 1)])).reshape(2, h, w)
                  for i in range(len(offs))]


# between stages flows and samples travel as 16-bit integers (every consumer decodes the same
# values, and quickly): flows in 1/128 px around 32768, luma in 1/16384 around 16384 (-1..3),
# 65535 for a missing sample
_FLOW_ZERO = 32768
_NO_SAMPLE = 65535


def _enc_flow(flow: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(flow * 128.0) + _FLOW_ZERO, 0, 65535).astype(np.uint16)


def _dec_flow(a: np.ndarray) -> np.ndarray:
    return (a.astype(np.float32) - np.float32(_FLOW_ZERO)) * np.float32(1.0 / 128.0)


def _quant(flow: np.ndarray) -> np.ndarray:
    return _dec_flow(_enc_flow(flow))


def _enc_luma(v: np.ndarray) -> np.ndarray:
    q = np.clip(np.rint(np.nan_to_num(v, nan=0.0) * 16384.0) + 16384, 0, 65534).astype(np.uint16)
    q[np.isnan(v)] = _NO_SAMPLE
    return q


def _dec_luma(a: np.ndarray) -> np.ndarray:
    v = (a.astype(np.float32) - np.float32(16384)) * np.float32(1.0 / 16384.0)
    v[a == _NO_SAMPLE] = np.nan
    return v


def _shot(n: int, cuts: list[int], total: int) -> tuple[int, int]:
    """First and last frame of *n*'s shot as far as SPAN frames around it tell
    (``cuts[SPAN + d]``: a cut after frame n + d); a last frame of ``n + SPAN + 1`` means the
    shot goes on beyond them."""
    first, last = max(0, n - SPAN), min(total - 1, n + SPAN + 1)
    for d in range(1, SPAN + 1):
        if cuts[SPAN - d]:
            first = max(first, n - d + 1)
            break
    for d in range(0, SPAN + 1):
        if cuts[SPAN + d]:
            last = min(last, n + d)
            break
    return first, last


def _window(n: int, first: int, last: int) -> list[int]:
    """Offsets of the SPAN nearest frames of *n* in the shot ``first..last`` (SPAN / 2 a side
    where the shot allows, more on one side near its ends)."""
    lo = max(first, min(n - SPAN // 2, last - SPAN))
    hi = min(last, lo + SPAN)
    return [m - n for m in range(lo, hi + 1) if m != n]


def _flow_to(fl: list[vs.VideoFrame], n: int, d: int, h: int, w: int) -> np.ndarray:
    """Flow from frame n to n + d (encoded) out of the stage-2 frames ``fl`` (n - SPAN .. n):
    forward as stored, backward by inverting the earlier frame's forward flow."""
    if d > 0:
        return np.asarray(fl[SPAN][0])[2 * h * (d - 1):2 * h * d]
    src = fl[SPAN + d]
    if -d not in _offsets(src):
        raise RuntimeError(f"despot: frame {n}'s flow from frame {n + d} was not computed")
    a = np.asarray(src[0])
    return _enc_flow(robustflow.invert(_dec_flow(a[2 * h * (-d - 1):2 * h * -d]).reshape(2, h, w)))


def _repair(frames: list[vs.VideoFrame], offs: list[int], flows: list[np.ndarray], mask: np.ndarray,
            members: np.ndarray, sharp: np.ndarray, peak: float | None, lines: list[lines_.Line],
            on_line: np.ndarray) -> vs.VideoFrame:
    """Masked pixels <- weighted mean of the member samples; without any: scratch pixels are
    unblended (:func:`vsrestore.scratches.unblend`), the rest inpainted (synthesized)."""
    centre = frames[SPAN]
    fout = centre.copy()
    if not mask.any():
        return fout
    h, w = mask.shape
    weights = np.where(members, sharp, 0.0).astype(np.float32)
    synthesized = False
    for p in range(centre.format.num_planes):
        src = np.asarray(centre[p])
        ph, pw = src.shape
        if (ph, pw) == (h, w):
            m, wts, fl, ln = mask, weights, flows, on_line
        else:
            m = cv2.resize(mask.astype(np.float32), (pw, ph), interpolation=cv2.INTER_AREA) > 0
            ln = cv2.resize(on_line.astype(np.float32), (pw, ph), interpolation=cv2.INTER_AREA) > 0
            wts = np.stack([cv2.resize(x, (pw, ph), interpolation=cv2.INTER_AREA) for x in weights]) \
                if len(weights) else np.zeros((0, ph, pw), np.float32)
            fl = [_scale(f, (ph, pw)) for f in flows]
        if not m.any():
            continue
        plane = src.astype(np.float32)
        ys, xs = np.nonzero(m)
        have = np.zeros((ph, pw), bool)
        if offs:  # only the masked pixels are sampled
            acc, total = spotsamples.blend_at([np.asarray(frames[SPAN + d][p]) for d in offs], fl,
                                              wts[:, ys, xs], ys, xs)
            ok = total > 1e-6
            plane[ys[ok], xs[ok]] = (acc[ok] / total[ok]).astype(np.float32)
            have[ys[ok], xs[ok]] = True
        holes = m & ~have
        if (holes & ln).any():
            plane, flat = lines_.unblend(plane, lines, holes & ln, pw / w, ph / h)
            holes &= ~ln
            holes |= flat
            if flat.any():  # nearly opaque stretches: interpolated across
                synthesized = True
        if holes.any():
            plane = _inpaint(plane, holes, peak)
            synthesized = True
        res = plane[m]
        if peak is not None:
            res = np.clip(np.rint(res), 0, peak)
        np.asarray(fout[p])[m] = res
    if synthesized:
        props.mark_synthesized(fout, NAME)
    return fout


def _inpaint(plane: np.ndarray, holes: np.ndarray, peak: float | None) -> np.ndarray:
    """Telea inpainting through 16-bit integers (OpenCV's float path is unreliable)."""
    lo, hi = (0.0, peak) if peak is not None else (float(plane.min()), float(plane.max()))
    k = 65535.0 / max(hi - lo, 1e-6)
    u16 = np.clip(np.rint((plane - lo) * k), 0, 65535).astype(np.uint16)
    return cv2.inpaint(u16, holes.astype(np.uint8), 3, cv2.INPAINT_TELEA).astype(np.float32) / k + lo


def _scale(flow: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A flow resampled onto a subsampled plane (vectors scaled to match)."""
    h, w = flow.shape[1:]
    size = (shape[1], shape[0])
    return np.stack([cv2.resize(flow[0], size, interpolation=cv2.INTER_LINEAR) * (shape[1] / w),
                     cv2.resize(flow[1], size, interpolation=cv2.INTER_LINEAR) * (shape[0] / h)])
