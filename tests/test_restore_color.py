"""vr.restore_color: faded-dye restoration measured against the unfaded photo (CIEDE2000)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import vapoursynth as vs
from skimage.color import rgb2lab
from vsrestore.filters.restore_color import restore_color

from vsrestore.bridge import clip_from_arrays, clip_to_arrays
from vsrestore.metrics import delta_e2000

from .conftest import photo

core = vs.core
W, H = 256, 184

# Print fading in density D = -log10(T) of linear transmittance: D' = k * D + fog. Cyan
# (red channel) and yellow (blue) dyes lose 20-50 %, magenta (green) less: the pink/red
# shift of faded Eastmancolor; fog is a base/stain density per channel.
FADES = {
    "pink": ((0.6, 0.9, 0.7), (0.03, 0.05, 0.08)),
    "red-yellow-stain": ((0.5, 0.85, 0.65), (0.06, 0.03, 0.10)),
}
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def srgb_to_lin(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0, 1)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def lin_to_srgb(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0, 1)
    return np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)


def fade(frame: np.ndarray, k: tuple[float, ...], fog: tuple[float, ...]) -> np.ndarray:
    """Fade a ``(3, H, W)`` sRGB frame in density space."""
    d = -np.log10(np.maximum(srgb_to_lin(frame), 1e-3))  # D-max 3, as on a print
    d = d * np.asarray(k)[:, None, None] + np.asarray(fog)[:, None, None]
    return lin_to_srgb(10.0 ** -d).astype(np.float32)


def pan(name: str, n: int = 12, step: int = 2, noise: float = 0.004, seed: int = 0) -> list[np.ndarray]:
    """A slow pan across a photo: ``n`` frames ``(3, H, W)`` with a little grain."""
    img = photo(name).transpose(1, 2, 0)
    img = cv2.resize(img, (280, round(280 * img.shape[0] / img.shape[1])), interpolation=cv2.INTER_AREA)
    y0 = (img.shape[0] - H) // 2
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        fr = img[y0:y0 + H, step * i: step * i + W].transpose(2, 0, 1)
        frames.append(np.clip(fr + rng.normal(0, noise, fr.shape), 0, 1).astype(np.float32))
    return frames


delta_e = delta_e2000  # vsrestore.metrics: mean CIEDE2000 of sRGB frames (D65)


def gray_world(frame: np.ndarray) -> np.ndarray:
    """Peer: scale each channel (in linear light) so its mean equals the mean grey."""
    lin = srgb_to_lin(frame)
    m = lin.reshape(3, -1).mean(axis=1)
    return lin_to_srgb(lin * (m.mean() / m)[:, None, None])


def mean_de(outs: list[np.ndarray], refs: list[np.ndarray], every: int = 3) -> float:
    return float(np.mean([delta_e(o, r) for o, r in list(zip(outs, refs, strict=True))[::every]]))


def run(frames: list[np.ndarray], **kw: object) -> list[np.ndarray]:
    return clip_to_arrays(restore_color(clip_from_arrays(frames, vs.RGBS), **kw))  # type: ignore[arg-type]


def test_beats_gray_world_on_faded_photos() -> None:
    ratios, lines = [], []
    for name in PHOTOS:
        ref = pan(name)
        for fname, (k, fog) in FADES.items():
            faded = [fade(f, k, fog) for f in ref]
            ours = mean_de(run(faded), ref)
            gw = mean_de([gray_world(f) for f in faded], ref)
            base = mean_de(faded, ref)
            ratios.append(ours / gw)
            lines.append(f"{name}/{fname}: faded {base:.2f} ours {ours:.2f} gray-world {gw:.2f} "
                         f"ratio {ours / gw:.2f}")
    report = "; ".join(lines)
    assert max(ratios) <= 0.55, report
    assert float(np.mean(ratios)) <= 0.45, report


def test_static_shot_does_not_flicker() -> None:
    clean = fade(pan("chelsea", n=1, noise=0)[0], *FADES["pink"])
    rng = np.random.default_rng(3)
    frames = [np.clip(clean + rng.normal(0, 0.01, clean.shape), 0, 1).astype(np.float32) for _ in range(16)]

    def flicker(outs: list[np.ndarray]) -> float:
        # 16x16 box means: the grain itself averages out, a colour change of the frame does not.
        small = [cv2.resize(o.transpose(1, 2, 0), (W // 16, H // 16), interpolation=cv2.INTER_AREA)
                 .transpose(2, 0, 1) for o in outs]
        return max(delta_e(a, b) for a, b in zip(small, small[1:], strict=False))

    smooth, per_frame = flicker(run(frames)), flicker(run(frames, radius=0))
    assert smooth < 0.5, f"frame-to-frame dE2000 {smooth:.3f} (per-frame estimate: {per_frame:.3f})"
    assert smooth < 0.5 * per_frame, f"smoothing: {smooth:.3f}, per-frame: {per_frame:.3f}"


def test_cut_resets_the_estimate() -> None:
    shot_a = [fade(f, *FADES["pink"]) for f in pan("astronaut", n=10, seed=1)]
    ref_b = pan("coffee", n=10, seed=2)
    shot_b = [fade(f, *FADES["red-yellow-stain"]) for f in ref_b]
    joined = run(shot_a + shot_b)[10:]
    alone = run(shot_b)
    drift = max(delta_e(a, b) for a, b in zip(joined, alone, strict=True))
    de_joined, de_alone = mean_de(joined, ref_b), mean_de(alone, ref_b)
    assert drift < 0.1, f"second shot differs from the shot on its own by dE {drift:.3f}"
    assert de_joined <= de_alone + 0.05, f"after the cut {de_joined:.2f}, alone {de_alone:.2f}"


def sepia(frame: np.ndarray) -> np.ndarray:
    """A toned print: grey density scaled per channel (brown), a little stain."""
    y = np.tensordot([0.2126, 0.7152, 0.0722], srgb_to_lin(frame), axes=1)
    d = np.minimum(-np.log10(np.maximum(y, 1e-4)), 2.2)
    d = d[None] * np.array([0.85, 1.0, 1.25])[:, None, None] + np.array([0.0, 0.03, 0.08])[:, None, None]
    return lin_to_srgb(10.0 ** -d).astype(np.float32)


def mean_hue_chroma(frames: list[np.ndarray]) -> tuple[float, float]:
    lab = np.mean([rgb2lab(np.clip(f, 0, 1).transpose(1, 2, 0)).reshape(-1, 3).mean(0) for f in frames], 0)
    return float(np.degrees(np.arctan2(lab[2], lab[1]))), float(np.hypot(lab[1], lab[2]))


def test_keep_tint_keeps_a_sepia_tone() -> None:
    frames = [sepia(f) for f in pan("coffee", n=6)]
    hue_in, chroma_in = mean_hue_chroma(frames)
    hue_keep, chroma_keep = mean_hue_chroma(run(frames, keep_tint=1.0))
    _, chroma_neutral = mean_hue_chroma(run(frames))
    _, chroma_half = mean_hue_chroma(run(frames, keep_tint=0.5))
    msg = (f"hue in {hue_in:.1f} kept {hue_keep:.1f}; chroma in {chroma_in:.1f}, "
           f"keep_tint=1 {chroma_keep:.1f}, 0.5 {chroma_half:.1f}, 0 {chroma_neutral:.1f}")
    assert abs(hue_keep - hue_in) < 3.0, msg
    assert chroma_keep > 0.75 * chroma_in, msg
    assert chroma_neutral < 0.25 * chroma_in, msg
    assert chroma_neutral < chroma_half < chroma_keep, msg


def test_strength_zero_is_the_same_node_and_strength_interpolates() -> None:
    ref = pan("rocket", n=4)
    faded = [fade(f, *FADES["pink"]) for f in ref]
    clip = clip_from_arrays(faded, vs.RGBS)
    assert restore_color(clip, strength=0) is clip
    full, half = mean_de(run(faded), ref, 1), mean_de(run(faded, strength=0.5), ref, 1)
    assert full < half < mean_de(faded, ref, 1)


def test_deterministic() -> None:
    faded = [fade(f, *FADES["pink"]) for f in pan("chelsea", n=4)]
    a, b = run(faded), run(faded)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("fmt", [vs.YUV420P8, vs.RGBS, vs.RGB48])
def test_formats_keep_shape_props_and_restore(fmt: int) -> None:
    ref = pan("astronaut", n=4)
    faded = clip_from_arrays([fade(f, *FADES["pink"]) for f in ref], vs.RGBS)
    kw: dict[str, object] = {"format": fmt}
    if fmt == vs.YUV420P8:
        kw.update(matrix_s="709", range_s="limited")
    src = core.std.SetFrameProps(core.resize.Spline36(faded, **kw), Note="reel 3")  # type: ignore[arg-type]
    out = restore_color(src)
    assert out.format.id == fmt and (out.width, out.height, out.num_frames) == (W, H, 4)
    assert out.get_frame(0).props["Note"] in ("reel 3", b"reel 3")

    def as_rgb(c: vs.VideoNode) -> list[np.ndarray]:
        return clip_to_arrays(core.resize.Spline36(c, format=vs.RGBS, range=1))

    before, after = mean_de(as_rgb(src), ref, 1), mean_de(as_rgb(out), ref, 1)
    assert after < 0.4 * before, f"{vs.PresetVideoFormat(fmt).name}: dE {before:.2f} -> {after:.2f}"


def test_errors_name_the_problem() -> None:
    clip = clip_from_arrays([fade(f, *FADES["pink"]) for f in pan("coffee", n=2)], vs.RGBS)
    bad: list[dict[str, object]] = [{"strength": 1.5}, {"strength": -0.1}, {"strength": "1"},
                                    {"strength": True}, {"keep_tint": 2}, {"radius": -1}, {"radius": 1.5}]
    for kw in bad:
        key = next(iter(kw))
        with pytest.raises(vs.Error, match=f"restore_color: {key} must be .*Fix: use e.g."):
            restore_color(clip, **kw)  # type: ignore[arg-type]
    with pytest.raises(vs.Error, match="restore_color: a GRAY clip has no colour"):
        restore_color(core.std.BlankClip(format=vs.GRAY8, width=64, height=48))
    with pytest.raises(vs.Error, match="restore_color: expected a vs.VideoNode"):
        restore_color("clip.mkv")  # type: ignore[arg-type]
    with pytest.raises(vs.Error, match="restore_color: HDR transfer"):
        restore_color(core.std.SetFrameProps(clip, _Transfer=16))


def test_black_and_flat_frames_pass_through() -> None:
    faded = [fade(f, *FADES["pink"]) for f in pan("rocket", n=4)]
    black, flat = np.zeros_like(faded[0]), np.full_like(faded[0], 0.5)
    out = run([black, flat, *faded], radius=0)
    assert np.array_equal(out[0], black) and np.array_equal(out[1], flat)
    assert mean_de(out[2:], pan("rocket", n=4), 1) < 0.6 * mean_de(faded, pan("rocket", n=4), 1)
