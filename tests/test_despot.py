"""vr.despot: one-frame dust at 10 % coverage and persistent line scratches on panning real photos
(issue 5, "Archival film", item 2)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import vapoursynth as vs
from vsrestore.filters.despot import despot

from tests.conftest import photo
from vsrestore import filmdamage as fd
from vsrestore.bridge import clip_from_arrays, clip_to_arrays
from vsrestore.errors import VSRestoreError
from vsrestore.props import synthesized_stages

core = vs.core
W, H, N = 256, 160, 10
PAN = (3, 1)  # source px a frame: 1.5 px right, 0.5 px down


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _render(frames: list[np.ndarray], **kw) -> tuple[list[np.ndarray], list[np.ndarray], list[list[str]]]:
    clip = clip_from_arrays(frames, vs.RGB24)
    masks = [a[0] > 127 for a in clip_to_arrays(despot(clip, output_mask=True, **kw))]
    out_clip = despot(clip, **kw)
    out = [np.asarray(a) for a in clip_to_arrays(out_clip, np.float32)]
    marks = [synthesized_stages(f.props) for f in out_clip.frames(close=True)]
    return masks, out, marks


def _f1(masks: list[np.ndarray], objects: list[list[np.ndarray]]) -> tuple[float, int, int, int]:
    """Object F1: a defect is found when the mask covers half of it; a false positive is a mask
    component that touches no defect."""
    tp = fn = fp = 0
    for mask, objs in zip(masks, objects, strict=True):
        for o in objs:
            tp, fn = (tp + 1, fn) if mask[o].mean() >= 0.5 else (tp, fn + 1)
        union = np.any(objs, axis=0) if objs else np.zeros(mask.shape, bool)
        count, labels = cv2.connectedComponents(mask.astype(np.uint8))
        fp += sum(1 for i in range(1, count) if not union[labels == i].any())
    return 2 * tp / max(2 * tp + fp + fn, 1), tp, fp, fn


def _outside(out: list[np.ndarray], src: list[np.ndarray],
             objects: list[list[np.ndarray]]) -> tuple[float, float]:
    """PSNR of the output vs the input beyond 2 px of every defect: whole clip, worst frame."""
    se = n = 0.0
    worst = 99.0
    for o, s, objs in zip(out, src, objects, strict=True):
        union = np.any(objs, axis=0) if objs else np.zeros(o.shape[1:], bool)
        far = cv2.dilate(union.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
        se += float(((o[:, far] - s[:, far]) ** 2).sum())
        n += o[:, far].size
        worst = min(worst, _psnr(o[:, far], s[:, far]))
    return (99.0 if se == 0 else 10 * np.log10(255.0 ** 2 / (se / n))), worst


@pytest.fixture(scope="module")
def dust():
    """The issue's measure: blobs, hairs and short lines of random polarity living one frame,
    added until 10 % of each frame is covered, on a slowly panning real photo."""
    rng = np.random.default_rng(1)
    clean = fd.pan(photo("coffee"), N, W, H, step=PAN, rng=rng)
    damaged, objects = fd.add_dust(clean, rng, coverage=0.10)
    return clean, damaged, objects, _render(damaged)


def test_dust_scene_covers_ten_percent(dust):
    _, _, objects, _ = dust
    cover = [np.any(o, axis=0).mean() for o in objects]
    assert min(cover) >= 0.10 and max(cover) < 0.11
    assert min(len(o) for o in objects) > 100  # ~140 defects a frame


def test_dust_detection_f1(dust):
    _, _, objects, (masks, _, _) = dust
    f1, tp, fp, fn = _f1(masks, objects)
    assert f1 >= 0.9, (tp, fp, fn, f1)  # measured 0.991 (1417 found, no false positive, 25 missed)


def test_dust_repair_quality(dust):
    clean, _, objects, (_, out, _) = dust
    db = [_psnr(o[:, m], c[:, m]) for o, c, objs in zip(out, clean, objects, strict=True) for m in objs]
    good = np.mean(np.asarray(db) >= 30)
    assert good >= 0.92, good  # measured 0.922 (1330 of 1442)


def test_dust_clean_pixels_left_alone(dust):
    _, damaged, objects, (_, out, _) = dust
    clip_db, worst = _outside(out, damaged, objects)
    assert clip_db >= 45, clip_db  # measured 50.1 dB over the clip
    assert worst >= 45, worst  # measured 45.6 dB on the worst frame


def test_panning_clean_clip_left_alone():
    """A faster pan (2 px right, 1 px down a frame) of another photo, no defects."""
    frames = fd.pan(photo("astronaut"), 8, W, H, step=(4, 2), rng=np.random.default_rng(4))
    masks, out, _ = _render(frames)
    assert min(_psnr(o, f) for o, f in zip(out, frames, strict=True)) >= 45
    assert max(m.mean() for m in masks) < 0.002


def test_moving_object_mostly_left_alone():
    """The pan plus a pasted 48 px object moving against it (1 px down, 2 px left a frame while
    the picture moves 1 up, 2 left: 2 px a frame relative) with hard occlusion edges. Measured
    32.4-36.2 dB per frame (the first untouched) with at most 1.6 % of the pixels masked, at the
    object's edges: short of the 45 dB that pans keep (known gap; an object 7 px a frame faster
    than the background measured 23.1-39.9 dB, up to 5 % masked)."""
    rng = np.random.default_rng(4)
    frames = fd.pan(photo("astronaut"), 8, W, H, step=(4, 2), rng=rng)
    patch = fd.pan(photo("coffee"), 8, 48, 48, step=(0, 0), rng=rng)
    for t, f in enumerate(frames):
        y, x = 40 + t, 150 - 2 * t
        f[:, y:y + 48, x:x + 48] = patch[t]
    masks, out, _ = _render(frames)
    assert min(_psnr(o, f) for o, f in zip(out, frames, strict=True)) >= 30
    assert max(m.mean() for m in masks) < 0.02


def test_static_clean_clip_bit_identical():
    rng = np.random.default_rng(3)
    base = photo("astronaut")[:, 100:100 + H, 150:150 + W]
    frames = [np.clip(np.rint((base + rng.normal(0, 1 / 255, base.shape)) * 255), 0, 255) for _ in range(5)]
    out = clip_to_arrays(despot(clip_from_arrays(frames, vs.RGB24)), np.float32)
    for a, b in zip(out, frames, strict=True):
        assert np.array_equal(a, b)


@pytest.fixture(scope="module")
def scratched_pan():
    rng = np.random.default_rng(1)
    clean = fd.pan(photo("coffee"), N, W, H, step=PAN, rng=rng)
    damaged, _, objects = fd.add_scratches(clean, rng, count=2)
    return clean, damaged, objects, _render(damaged)


def test_scratches_in_a_pan(scratched_pan):
    clean, damaged, objects, (masks, out, _) = scratched_pan
    f1, tp, fp, fn = _f1(masks, objects)
    assert f1 >= 0.9, (tp, fp, fn)  # measured 20 of 20, no false positive
    db = [_psnr(o[:, m], c[:, m]) for o, c, objs in zip(out, clean, objects, strict=True) for m in objs]
    assert np.mean(np.asarray(db) >= 30) >= 0.9, db  # measured 19 of 20 (median 39.8 dB)
    assert _outside(out, damaged, objects)[0] >= 45


def test_static_scratches_repaired_spatially():
    """No motion: the scratch is in every frame at the same place; partly transparent, it is
    unblended (the picture's detail comes back), opaque, interpolated and marked synthesized."""
    rng = np.random.default_rng(2)
    clean = fd.pan(photo("coffee"), 6, W, H, step=(0, 0), rng=rng)
    light, _, objs_l = fd.add_scratches(clean, rng, count=1, alpha=0.5, width=2.0)
    masks, out, marks = _render(light)
    for m, o, c, d, objs in zip(masks, out, clean, light, objs_l, strict=True):
        assert m[objs[0]].mean() >= 0.5
        assert _psnr(o[:, objs[0]], c[:, objs[0]]) > _psnr(d[:, objs[0]], c[:, objs[0]]) + 6
    opaque, _, objs_o = fd.add_scratches(clean, rng, count=1, alpha=1.0, width=2.0)
    masks, out, marks = _render(opaque)
    assert all("despot" in m for m in marks)
    assert all(m[objs[0]].mean() >= 0.5 for m, objs in zip(masks, objs_o, strict=True))
    masks, _, _ = _render(opaque, scratches=False)  # only where the wandering line looks like dust
    assert np.mean([m[objs[0]].mean() for m, objs in zip(masks, objs_o, strict=True)]) < 0.25


def test_thin_pole_moving_with_the_picture_is_kept():
    """A thin dark vertical line painted on the picture pans with it: not a scratch."""
    img = photo("coffee").copy()
    x = img.shape[2] // 2 + 7
    img[:, :, x:x + 2] *= 0.3
    frames = fd.pan(img, 8, W, H, step=PAN, rng=np.random.default_rng(5))
    masks, out, _ = _render(frames)
    assert max(m.mean() for m in masks) < 0.002
    assert min(_psnr(o, f) for o, f in zip(out, frames, strict=True)) >= 45


def test_strength_zero_is_input(dust):
    clip = clip_from_arrays(dust[1][:3], vs.RGB24)
    assert despot(clip, strength=0) is clip


def test_output_mask_format(dust):
    clip = clip_from_arrays(dust[1][:4], vs.RGB24)
    m = despot(clip, output_mask=True)
    assert m.format is not None and m.format.id == vs.GRAY8
    assert (m.width, m.height, m.num_frames) == (W, H, 4)
    assert set(np.unique(clip_to_arrays(m[2])[0]).tolist()) <= {0.0, 255.0}


@pytest.mark.parametrize("fmt", [vs.YUV420P10, vs.GRAYS])
def test_formats_and_props_kept(dust, fmt):
    clip = core.resize.Bicubic(clip_from_arrays(dust[1][:5], vs.RGB24), format=fmt, matrix_s="709")
    clip = core.std.SetFrameProps(clip, Marker=7)
    out = despot(clip)
    assert out.format is not None and out.format.id == fmt
    f = out.get_frame(2)
    assert f.props["Marker"] == 7
    src, res = np.asarray(clip.get_frame(2)[0]), np.asarray(f[0])
    assert 0.05 < np.mean(res != src) < 0.3  # the 10 % of defects repaired, the rest untouched


def test_errors(dust):
    clip = clip_from_arrays(dust[1][:3], vs.RGB24)
    with pytest.raises(VSRestoreError, match="despot: strength"):
        despot(clip, strength=-1)
    with pytest.raises(VSRestoreError, match="needs 3"):
        despot(clip[:2])
    with pytest.raises(VSRestoreError, match="despot: the clip is 3x2; .* at least 4x4"):
        despot(core.std.BlankClip(format=vs.GRAY8, width=3, height=2, length=4))
    tiny = core.std.BlankClip(format=vs.GRAY8, width=4, height=4, length=4, color=60)
    assert np.asarray(despot(tiny).get_frame(2)[0]).tolist() == [[60] * 4] * 4  # the smallest size renders
    with pytest.raises(vs.Error, match="despot"):
        despot("clip")  # type: ignore[arg-type]


def test_one_frame_shot_between_cuts():
    """A frame with no neighbour in its shot (a flash frame between two cuts) has nothing to vote
    with: it renders, unchanged, and so do the shots around it (this used to raise TypeError: a
    one-element prop list reads back as a plain int)."""
    rng = np.random.default_rng(5)
    a = fd.pan(photo("astronaut"), 4, W, H, step=(4, 2), rng=rng)
    b = fd.pan(photo("coffee"), 1, W, H, step=(0, 0), rng=rng)
    c = fd.pan(photo("chelsea"), 4, W, H, step=(2, 2), rng=rng)
    frames = a + b + c
    masks, out, _ = _render(frames)
    assert np.array_equal(out[4], frames[4]) and not masks[4].any()
    assert min(_psnr(o, f) for o, f in zip(out, frames, strict=True)) >= 45
