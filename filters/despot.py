"""Dust, dirt, hair and line-scratch repair for scanned film: ``vr.despot``."""

from __future__ import annotations

import cv2
import numpy as np
import vapoursynth as vs

from vsrestore import color, props, robustflow, spots
from vsrestore import scratches as lines_
from vsrestore.bridge import map_frames, new_frame, temporal_neighbours
from vsrestore.errors import VSRestoreError, check_clip

core = vs.core
NAME = "despot"
SEARCH = 4  # frames fetched on each side
USE = 4  # the nearest USE frames of the same shot are compared and repaired from
_OFFS = "despot_offsets"  # pass-1 frame prop: offsets of the neighbours used (first: their count)


def despot(clip: vs.VideoNode, *, strength: float = 1.0, output_mask: bool = False,
           scratches: bool = True) -> vs.VideoNode:
    """Remove one-frame defects of scanned film (dust, dirt, blotches, hairs) and line scratches.

    Every frame is compared with its four nearest frames of the same shot, motion-compensated
    by a flow that dense dust does not derail (:mod:`vsrestore.robustflow`). A pixel is a
    defect when it stands out from what the compensated neighbours agree on, in a vote that
    outlasts a neighbour carrying its own defect at the same place; a second pass repeats the
    vote with each neighbour's own defects left out, and repairs from the clean samples (real
    pixels of other frames: grain stays alive). Where no neighbour has a sample (frame edges
    the camera uncovers), the pixels are inpainted spatially and the frame gets the prop
    ``vsrestore_synthesized`` containing ``"despot"``. Pixels outside the mask stay
    bit-identical to the input.

    Line scratches (thin, mostly vertical, wandering, on many frames) are in the neighbours
    too, so they are found spatially (:mod:`vsrestore.scratches`: a narrow ridge or valley,
    nearly constant along y, that does not move with the picture) and repaired from the
    compensated neighbours where the camera moved the picture off the line, else by spatial
    interpolation across it (marked synthesized).

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
    if strength == 0 and not output_mask:
        return clip
    assert clip.format is not None
    h, w, total = clip.height, clip.width, clip.num_frames
    strength = float(strength) if strength > 0 else 1e-6
    find_lines = bool(scratches)
    luma = color.to_luma(clip)
    lumas = temporal_neighbours(luma, SEARCH)
    p1_tpl = core.std.BlankClip(luma, format=vs.GRAYH, height=h * (1 + 2 * USE), keep=True)

    def first(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        ys = [np.asarray(x[0]) for x in f]
        offs, flows = _neighbours(n, ys, total)
        fout = new_frame(p1_tpl, f[SEARCH])
        out = np.asarray(fout[0])
        out[:] = 0
        marks = np.zeros((h, w), np.float32)
        if offs:
            warped = spots.trusted(ys[SEARCH], spots.sample([ys[SEARCH + d] for d in offs], flows))
            vote = spots.detect(ys[SEARCH], warped, np.stack([spots.sharpness(fl) for fl in flows]), strength)
            marks += spots.drop_moved(vote, ys[SEARCH], [ys[SEARCH + d] for d in offs], offs, flows)
        if find_lines:  # candidates only: the neighbours' samples on them are not trusted
            marks += 2 * lines_.line_mask(lines_.candidates(ys[SEARCH]), (h, w))
        out[:h] = marks
        for i, fl in enumerate(flows):
            out[h * (1 + 2 * i):h * (3 + 2 * i)] = fl.reshape(2 * h, w)
        fout.props[_OFFS] = [len(offs), *offs]
        return fout

    pass1 = map_frames(p1_tpl, lumas, first)
    tpl = core.std.BlankClip(clip, format=vs.GRAY8, keep=True) if output_mask else clip
    clips = [*temporal_neighbours(clip, SEARCH), *lumas, *temporal_neighbours(pass1, SEARCH)]
    nb = 2 * SEARCH + 1
    peak = float((1 << clip.format.bits_per_sample) - 1) if clip.format.sample_type == vs.INTEGER else None

    def second(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        frames, ys = f[:nb], [np.asarray(x[0]) for x in f[nb:2 * nb]]
        p1 = [np.asarray(x[0]) for x in f[2 * nb:]]
        offs = [int(v) for v in list(f[2 * nb + SEARCH].props[_OFFS])[1:]]
        flows = [np.asarray(p1[SEARCH][h * (1 + 2 * i):h * (3 + 2 * i)], np.float32).reshape(2, h, w)
                 for i in range(len(offs))]
        cur = ys[SEARCH]
        mask = np.zeros((h, w), bool)
        members = sharp = np.zeros((0, h, w), bool)
        warped = np.zeros((0, h, w), np.float32)
        if offs:
            warped = spots.sample([ys[SEARCH + d] for d in offs], flows)
            sharp = np.stack([spots.sharpness(fl) for fl in flows])
            vote = spots.detect(cur, warped, sharp, strength)
            vote.mask = spots.drop_moved(vote, cur, [ys[SEARCH + d] for d in offs], offs, flows)
            flags = spots.neighbour_flags([p1[SEARCH + d][:h] > 0.5 for d in offs], flows)
            mask, members, clean = spots.refine(cur, warped, vote, flags, strength)
        lines: list[lines_.Line] = []
        on_line = np.zeros((h, w), bool)
        if find_lines:
            lines = lines_.verify(lines_.candidates(cur), cur, list(warped), flows)
            if lines:
                on_line = lines_.line_mask(lines, (h, w))
                mask = mask | on_line
                if offs:  # on a scratch only samples off every neighbour's own marks count
                    members = np.where(on_line[None], clean, members)
        if output_mask:
            fout = new_frame(tpl, frames[SEARCH])
            np.asarray(fout[0])[:] = mask.astype(np.uint8) * 255
            return fout
        return _repair(frames, offs, flows, mask, members, sharp, peak, lines, on_line)

    return map_frames(tpl, clips, second)


def _neighbours(n: int, ys: list[np.ndarray], total: int) -> tuple[list[int], list[np.ndarray]]:
    """The USE nearest frames of *n*'s shot (offsets, ascending) and their flows onto frame n."""
    cur = ys[SEARCH]
    found: dict[int, np.ndarray] = {}
    open_side = {-1: True, 1: True}
    for k in range(1, SEARCH + 1):
        for side in (-1, 1):
            d = side * k
            if len(found) >= USE or not open_side[side] or not 0 <= n + d < total:
                continue
            nbr = ys[SEARCH + d]
            flow = robustflow.robust_flow(cur, nbr).astype(np.float16).astype(np.float32)
            warped = spots.sample([nbr], [flow], interp="bilinear")[0]
            if robustflow.cut_score(cur, np.where(np.isnan(warped), cur, warped)) > robustflow.CUT:
                open_side[side] = False  # a cut: nothing beyond it on this side either
                continue
            found[d] = flow
    offs = sorted(found)
    return offs, [found[d] for d in offs]


def _repair(frames: list[vs.VideoFrame], offs: list[int], flows: list[np.ndarray], mask: np.ndarray,
            members: np.ndarray, sharp: np.ndarray, peak: float | None, lines: list[lines_.Line],
            on_line: np.ndarray) -> vs.VideoFrame:
    """Masked pixels <- weighted mean of the member samples; without any: scratch pixels are
    unblended (:func:`vsrestore.scratches.unblend`), the rest inpainted (synthesized)."""
    centre = frames[SEARCH]
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
        total = np.zeros((ph, pw), np.float32)
        acc = np.zeros((ph, pw), np.float32)
        if offs:
            vals = spots.sample([np.asarray(frames[SEARCH + d][p]) for d in offs], fl)
            good = ~np.isnan(vals) & (wts > 0)
            acc = np.where(good, vals * wts, 0.0).sum(0)
            total = np.where(good, wts, 0.0).sum(0)
        have = total > 1e-6
        plane = np.where(m & have, acc / np.maximum(total, 1e-6), plane)
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
