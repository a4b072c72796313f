"""Motion helpers shared by the temporal filters: dense optical flow, its confidence, scene cuts.

NumPy in, NumPy out; nothing here needs VapourSynth. Images are single-plane
float32 grey arrays in 0..1, ``(H, W)``. A flow field is a ``(2, H, W)`` float32
array ``(dx, dy)`` in pixels, defined on the grid of the frame it belongs to:
the *backward* flow of ``cur`` says where each of its pixels came from in
``prev``::

    cur(x, y) ~= prev(x + dx(x, y), y + dy(x, y))

Flow comes from OpenCV's DIS (dense inverse search) with settings tuned here
for accuracy; it is deterministic, and safe to call from several threads at once
(one DIS instance per thread).
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import cv2
import numpy as np

PRESETS = ("ultrafast", "fast", "medium", "slow")

# DIS settings per preset: (search factor, patch size, patch stride, gradient-descent iterations,
# variational refinement iterations). The finest level DIS searches is the input downscaled by the
# search factor (a power of two: DIS's own pyramid; 3: an area downscale here). Tuned on sub-pixel
# motion over real photos with noise and a second moving object (as in
# tests/test_optical_flow.py). ``benchmarks/bench_flow_epe.py`` (mean end-point error on three
# 224x160 scenes; time per pair at 640x360, one thread; one run): OpenCV's MEDIUM 0.163 / 0.255 /
# 0.432 px in 23 ms; our "medium" (12-px patches, half-patch stride, 10 refinement iterations)
# 0.145 / 0.175 / 0.328 px in 35 ms; "slow" 0.084 / 0.133 / 0.311 px in 135 ms. Pre-smoothing and
# gamma below: -10 % EPE. 8-px patches at stride 4 for "medium" (OpenCV's SIMD patch size; a
# throw-away trial) had as low an EPE and ran clearly faster, but a flow that flexible hid more
# cuts from the scene-cut score and more occlusions from the forward-backward check
# (tests/test_optical_flow.py failed on both); with the scene-cut score's own flow smoothing the
# cuts were found again, but deflicker then left clearly more flicker on dark, flat pictures
# (retina, rocket; benchmarks/bench_content.py), so 12 stays. "fast" is tuned for compensation on
# benchmarks/bench_flow.py's 640x360 pan (noise 2.5/255): a third-resolution search, stride 6, 4
# descent iterations, no variational refinement; there it is 0.5 dB (noisy and clean) behind
# "medium" at 6.5-7.8x its speed (two runs), and a half-resolution search with stride 7 was +0.28
# / +0.35 dB at 1.3x the time of the whole flow + warp pipeline. (6 iterations instead of 4: -0.02
# / -0.04 dB and a 6 % slower DIS. Stride 7, measured at 6 iterations: -0.06 / -0.16 dB; at 4
# iterations its DIS is 16 % faster.)
_DIS: dict[str, tuple[int, int, int, int, int]] = {
    "ultrafast": (4, 8, 4, 12, 0),  # = OpenCV's ULTRAFAST preset
    "fast": (3, 8, 6, 4, 0),  # third-resolution search, no refinement (benchmarks/bench_flow.py)
    "medium": (2, 12, 6, 12, 10),
    "slow": (1, 16, 8, 12, 10),  # full-resolution finest scale: ~4x the cost of medium
}
_SCENECUT_DIS = (2, 8, 7, 6, 0)  # scene_change's own flow on its ~160x120 frames
# "medium" on full-size frames under _SMALL_SIDE px (e.g. the 96x80 source of a per-frame x2
# upscale): a full-size search with 8-px patches at stride 4 instead of 12-px patches on the
# half-size frames. benchmarks/bench_content.py --stages temporal at the tests' 96x80 source:
# temporal_consistency's E_warp drop rose on 10 of 12 backgrounds (hubble_deep_field 80.6 ->
# 86.4 %, rocket 77.1 -> 79.7 %), fell on brick (87.1 -> 85.1 %) and retina (66.6 -> 63.9 %;
# its background shows no motion at all); at 192x160 the half-size search did better on rocket.
_DIS_SMALL = (1, 8, 4, 12, 10)
_SMALL_SIDE = 120

_PRESMOOTH = 0.8  # Gaussian sigma applied before DIS: less noise in its gradients
_VR_GAMMA = 5.0  # gradient-constancy weight of the variational refinement (OpenCV: 10)
_MIN_SIDE = 32  # smaller images are padded for DIS
_DIS_CACHE = 8  # DIS instances kept per thread (one per preset and frame size)
_local = threading.local()


def finest_factor(preset: str) -> int:
    """How many times smaller than its input the finest level DIS searches is for *preset*.

    1 for "slow", 2 for "medium", 3 for "fast", 4 for "ultrafast". A caller that can
    downscale each frame once by this factor (e.g. with zimg in the clip graph) passes the
    small frames to :func:`dense_flow` with ``reduced=finest_factor(preset)``: the same
    search without building and smoothing the full-size level for each pair, i.e. twice per
    frame.
    """
    if preset not in _DIS:
        raise ValueError(f"finest_factor: unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    return _DIS[preset][0]


def _dis(params: tuple[int, int, int, int, int], fs: int, shape: tuple[int, int]) -> cv2.DISOpticalFlow:
    """This thread's DIS instance for *params* searching down to pyramid level *fs*, frames of *shape*.

    DIS objects are not thread-safe, and one that has processed frames of another size
    gives different vectors afterwards (OpenCV 5.0, measured: up to 2.8 px after one
    call on 30x20 frames), so each thread keeps one per size: a frame's flow never
    depends on what the thread computed before.
    """
    cache: dict[tuple[tuple[int, ...], int, tuple[int, int]], cv2.DISOpticalFlow] | None = getattr(
        _local, "dis", None)
    if cache is None:
        cache = _local.dis = {}
    key = (params, fs, shape)
    inst = cache.pop(key, None)
    if inst is not None:
        cache[key] = inst  # most recently used last
    else:
        while len(cache) >= _DIS_CACHE:
            del cache[next(iter(cache))]
        _, patch, stride, gd, vr = params
        inst = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        inst.setFinestScale(fs)
        inst.setPatchSize(patch)
        inst.setPatchStride(stride)
        inst.setGradientDescentIterations(gd)
        inst.setVariationalRefinementIterations(vr)
        inst.setVariationalRefinementGamma(_VR_GAMMA)
        inst.setUseMeanNormalization(True)  # tolerate brightness changes (fades, flicker)
        inst.setUseSpatialPropagation(True)
        cache[key] = inst
    return inst


def _check_pair(prev: np.ndarray, cur: np.ndarray, what: str) -> None:
    if prev.ndim != 2 or prev.shape != cur.shape:
        raise ValueError(f"{what}: expected two (H, W) grey images of one shape, got "
                         f"{prev.shape} and {cur.shape}")


def _to_u8_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantise two float images to 8 bits with one shared stretch (DIS takes CV_8UC1).

    The shared min..max stretch keeps brightness constancy between the two and uses all
    256 codes on dark or low-contrast material.
    """
    lo = min(cv2.minMaxLoc(a)[0], cv2.minMaxLoc(b)[0])
    hi = max(cv2.minMaxLoc(a)[1], cv2.minMaxLoc(b)[1])
    k = 255.0 / max(hi - lo, 1e-6)
    # (x - lo) * k >= 0, so the absolute value is a no-op; rounded and saturated to 0..255
    return (cv2.convertScaleAbs(a, alpha=k, beta=-lo * k), cv2.convertScaleAbs(b, alpha=k, beta=-lo * k))


def _reduced_ok(factor: int, reduced: int) -> bool:
    """*reduced* is 1 or a factor of *factor* leaving a power of two (incl. *factor* itself)."""
    if not isinstance(reduced, int) or reduced < 1 or factor % reduced:
        return False
    q = factor // reduced
    return q & (q - 1) == 0 or reduced == 1


def dense_flow(prev: np.ndarray, cur: np.ndarray, *, preset: str = "medium",
               reduced: int = 1) -> np.ndarray:
    """Backward flow of *cur*: ``(2, H, W)`` float32 with ``cur(x, y) ~= prev(x+dx, y+dy)``.

    *prev*, *cur*: ``(H, W)`` grey images, float 0..1 (any real dtype). *preset*: one of
    :data:`PRESETS`, fastest to most accurate ("medium" is the default balance).
    *reduced*: 1, or :func:`finest_factor` (or, for the power-of-two factors, any power of
    two below it) saying the frames were already downscaled by it (antialiased): the
    search then skips those fine levels and the pre-smoothing, and the flow is at the
    given size, in its pixels. Full-size frames under :data:`_SMALL_SIDE` px on their short
    side search at full size with 8-px patches for "medium" and "slow" (:data:`_DIS_SMALL`):
    a half-size search, or 16-px patches, leave too few patches there to follow anything.
    """
    if preset not in _DIS:
        raise ValueError(f"dense_flow: unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    if not _reduced_ok(_DIS[preset][0], reduced):
        raise ValueError(f"dense_flow: reduced={reduced!r} must be 1 or {finest_factor(preset)} "
                         f"(or a power of two between) for preset {preset!r}")
    params = _DIS[preset]
    if preset in ("medium", "slow") and reduced == 1 and min(np.shape(cur)[-2:]) < _SMALL_SIDE:
        params = _DIS_SMALL  # "slow"'s 16-px patches are coarser still there
    return _flow(prev, cur, params, reduced, "dense_flow")


def _flow(prev: np.ndarray, cur: np.ndarray, params: tuple[int, int, int, int, int], reduced: int,
          what: str) -> np.ndarray:
    prev = np.asarray(prev, dtype=np.float32)
    cur = np.asarray(cur, dtype=np.float32)
    _check_pair(prev, cur, what)
    h, w = cur.shape
    q = params[0] // reduced  # what is left to reduce
    if q & (q - 1):  # not a power of two (factor 3 on full-size frames): area downscale here
        sw, sh = max(1, round(w / q)), max(1, round(h / q))
        small = _flow(cv2.resize(prev, (sw, sh), interpolation=cv2.INTER_AREA),
                      cv2.resize(cur, (sw, sh), interpolation=cv2.INTER_AREA), params, params[0], what)
        return np.stack([cv2.resize(small[0] * np.float32(w / sw), (w, h), interpolation=cv2.INTER_LINEAR),
                         cv2.resize(small[1] * np.float32(h / sh), (w, h), interpolation=cv2.INTER_LINEAR)])
    fs = q.bit_length() - 1
    if _PRESMOOTH and reduced == 1:  # a downscale has smoothed the reduced frames already
        prev = cv2.GaussianBlur(prev, (0, 0), _PRESMOOTH)
        cur = cv2.GaussianBlur(cur, (0, 0), _PRESMOOTH)
    p8, c8 = _to_u8_pair(prev, cur)
    side = max(_MIN_SIDE, params[1] << fs)
    if h < side or w < side:  # DIS needs (patch << finest scale) pixels, or it fails or crashes
        pad = (0, max(0, side - h), 0, max(0, side - w))
        p8 = cv2.copyMakeBorder(p8, *pad, cv2.BORDER_REPLICATE)
        c8 = cv2.copyMakeBorder(c8, *pad, cv2.BORDER_REPLICATE)
    # DIS.calc(I0, I1) finds f with I0(x) ~= I1(x + f): I0 = cur, I1 = prev. Passing None
    # (never a previous result) keeps it from using an initial guess: deterministic.
    flow = _dis(params, fs, c8.shape).calc(c8, p8, None)[:h, :w]  # type: ignore[call-overload]
    return np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32)


@functools.lru_cache(maxsize=16)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinate grids (x, y), read-only and shared."""
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    gx.flags.writeable = gy.flags.writeable = False
    return gx, gy


def warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample *img* at ``(x + dx, y + dy)`` with bilinear interpolation (edges clamp).

    With *flow* the backward flow of ``cur``, ``warp(prev, flow)`` is ``prev`` motion
    compensated onto ``cur``. *img* is ``(H, W)`` or ``(C, H, W)``.
    """
    h, w = flow.shape[1:]
    gx, gy = _grid(h, w)
    mx, my = gx + flow[0], gy + flow[1]
    src = np.asarray(img, dtype=np.float32)
    planes = src[None] if src.ndim == 2 else src
    out = np.stack([cv2.remap(p, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                    for p in planes])
    return out[0] if src.ndim == 2 else out


def invert_flow(back: np.ndarray, iterations: int = 3) -> np.ndarray:
    """The flow the other way round: from *back*, the backward flow of ``b`` from ``a``
    (``b(x) ~ a(x + back(x))``), the backward flow of ``a`` from ``b``, ``g`` with
    ``a(x) ~ b(x + g(x))``: the fixed point of ``g(x) = -back(x + g(x))``, *iterations*
    bilinear steps from ``-back`` (exact for a uniform flow; on smooth motion three steps
    settle it). Where ``a``'s content is not in ``b`` (occlusions) it is the flow of what
    covers it; callers weight such pixels by how well the warped frames match.
    """
    g = -np.asarray(back, dtype=np.float32)
    for _ in range(iterations):
        g = -warp(back, g)
    return np.ascontiguousarray(g, dtype=np.float32)


def flow_between(pairs: Any, a: int, img_a: np.ndarray, b: int, img_b: np.ndarray, *,
                 preset: str = "medium") -> np.ndarray:
    """Backward flow of frame *b* from frame *a* (``img_b(x) ~ img_a(x + flow)``), with one
    search per pair of frames: the later frame's backward flow from the earlier, kept in
    *pairs* (anything with ``get(key, compute)``, e.g. ``vsrestore.bridge.Shared``) under
    ``(earlier, later)``; the other direction is its :func:`invert_flow`. On
    ``benchmarks/bench_degrain.py``'s material that gave the same PSNR as a second search.
    """
    if a < b:
        return pairs.get((a, b), lambda: dense_flow(img_a, img_b, preset=preset))
    return invert_flow(pairs.get((b, a), lambda: dense_flow(img_b, img_a, preset=preset)))


def texture_weight(img: np.ndarray, *, floor: float, noise: float = 0.0) -> np.ndarray:
    """How far dense flow on *img* can be trusted for its texture: ``(H, W)`` float32 in 0..1.

    ``g2 / (g2 + floor^2 + 4 * 0.041 * noise^2)``, with ``g2`` the local gradient energy (per
    pixel, Gaussian window sigma 4 px; ``0.041 noise^2`` is its mean on white noise of sigma
    *noise*, so noise alone does not count as texture). For :func:`fill_textureless`.
    """
    sm = cv2.GaussianBlur(img, (0, 0), 1.0)
    grad2 = (cv2.Sobel(sm, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(sm, cv2.CV_32F, 0, 1) ** 2) / 64.0
    g2 = cv2.GaussianBlur(grad2, (0, 0), 4.0)
    return g2 / (g2 + floor**2 + 4 * 0.041 * noise**2)


def fill_textureless(flow: np.ndarray, weight: np.ndarray, *, textured_median: bool = False) -> np.ndarray:
    """*flow* blended into one median vector where its frame has no texture (*weight*, from
    :func:`texture_weight` of the frame the flow is defined on).

    On flat areas DIS returns made-up vectors: driven by noise, or by a brightness change that
    looks like motion along a shallow gradient (a sky). A flat area's exact motion hardly matters
    for its own pixels, but vectors that change from frame to frame do. The result is
    ``weight * flow + (1 - weight) * median``; the median is over all pixels, or with
    *textured_median* over those where the weight is over half (when there are 64 of them).
    """
    if float(weight.min()) > 0.99:
        return flow
    sel = weight > 0.5
    src = flow[:, sel] if textured_median and int(sel.sum()) >= 64 else flow.reshape(2, -1)
    med = np.median(src, axis=1).astype(np.float32)[:, None, None]
    return (weight * flow + (1 - weight) * med).astype(np.float32)


def flow_confidence(flow: np.ndarray, reverse: np.ndarray) -> np.ndarray:
    """Forward-backward consistency of *flow*, ``(H, W)`` float32 in 0..1 (1 = consistent).

    *flow* maps frame A into frame B (defined on A's grid); *reverse* maps B into A. A
    pixel whose round trip ``x -> x + flow(x) -> x + flow(x) + reverse(x + flow(x))`` does
    not come back is occluded in B, or the flow is wrong there. Tolerance follows Sundaram
    et al. (ECCV 2010): ``|flow + reverse'|^2`` against ``0.01 (|flow|^2 + |reverse'|^2) + 0.5``.
    Pixels whose match falls outside B get 0.
    """
    flow = np.asarray(flow, dtype=np.float32)
    reverse = np.asarray(reverse, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[0] != 2 or flow.shape != reverse.shape:
        raise ValueError(f"flow_confidence: expected two (2, H, W) flows, got {flow.shape} and "
                         f"{reverse.shape}")
    h, w = flow.shape[1:]
    gx, gy = _grid(h, w)
    mx, my = gx + flow[0], gy + flow[1]
    rx = cv2.remap(reverse[0], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    ry = cv2.remap(reverse[1], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err2 = (flow[0] + rx) ** 2 + (flow[1] + ry) ** 2
    mag2 = flow[0] ** 2 + flow[1] ** 2 + rx ** 2 + ry ** 2
    conf = np.exp(-err2 / (0.01 * mag2 + 0.5))
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return np.where(inside, conf, 0.0).astype(np.float32)


# Scene cuts: work at about 160x120 whatever the input size.
_SC_AREA = 160 * 120
_SC_SIGMA = 6.0  # local-normalisation window (pixels at the working size)
_SC_KSIZE = 37  # +-3 sigma (OpenCV's default for float images is +-4: 1.3x the work)
_SC_EPS = 0.05  # contrast floor: noise on flat areas stays small after normalisation
_SC_DETAIL = 0.02  # scene_change: local contrast (0..1 scale) below which a frame has no detail
_SC_BORDER = 8
CUT_THRESHOLD = 0.7  # see scene_change for the measured margins
_SC_FLOW_SIGMA = 5.0  # the full score smooths the flow by this Gaussian (working-size pixels)
_SC_SKIP = 0.3  # is_scene_cut: a coarse score below this clears the pair without the full one


def _local_norm(x: np.ndarray, half: bool = False) -> np.ndarray:
    """Local zero-mean, unit-contrast image: removes fades, flicker and local flashes' offsets.

    *half*: for frames at half the working size (the window shrinks with them).
    """
    z, sd = _local_contrast(x, half)
    return z / (sd + _SC_EPS)


def _local_contrast(x: np.ndarray, half: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """*x* minus its local mean, and its local standard deviation (Gaussian window
    :data:`_SC_SIGMA`, halved with *half*)."""
    k, sigma = (_SC_KSIZE // 2 | 1, _SC_SIGMA / 2) if half else (_SC_KSIZE, _SC_SIGMA)
    z = x - cv2.GaussianBlur(x, (k, k), sigma)
    return z, np.sqrt(cv2.GaussianBlur(z * z, (k, k), sigma))


def _working(prev: np.ndarray, cur: np.ndarray, flow: np.ndarray | None, what: str,
             half: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """*prev*, *cur* and the backward flow of *cur* at scene_change's ~160x120 working size.

    *half*: at half that size (each side halved, rounded down), by a 2x2 box from the
    working size (OpenCV's fast integer path; a direct area resize by a fractional factor
    cost 3x the whole full-size step).
    """
    if half:
        return _halved(*_working(prev, cur, flow, what))
    prev = np.asarray(prev, dtype=np.float32)
    cur = np.asarray(cur, dtype=np.float32)
    _check_pair(prev, cur, what)
    h, w = cur.shape
    if flow is not None and flow.shape != (2, h, w):
        raise ValueError(f"{what}: flow of shape {flow.shape} for frames of shape {(h, w)}")
    f = max(1, round((h * w / _SC_AREA) ** 0.5))  # an integer factor: OpenCV's fast area path
    if f > 1 and min(h // f, w // f) >= 2 * _SC_BORDER + 8:
        hc, wc = h // f * f, w // f * f
        sh, sw = hc // f, wc // f
        interp = cv2.INTER_AREA
    else:
        hc, wc = h, w
        k = (_SC_AREA / (h * w)) ** 0.5
        sh, sw = max(2 * _SC_BORDER + 8, round(h * k)), max(2 * _SC_BORDER + 8, round(w * k))
        # between 1/1.5 and 1.5x (f = 1): bilinear is alias-free enough and ~6x quicker than area
        interp = cv2.INTER_AREA if k < 0.5 else cv2.INTER_LINEAR

    def small_of(x: np.ndarray) -> np.ndarray:
        return cv2.resize(np.ascontiguousarray(x[:hc, :wc], np.float32), (sw, sh), interpolation=interp)
    a, b = small_of(prev), small_of(cur)
    if flow is None:
        small = _flow(a, b, _SCENECUT_DIS, 1, what)
    else:
        small = np.stack([small_of(flow[0]) * (sw / wc), small_of(flow[1]) * (sh / hc)])
    return a, b, small


def _score(a: np.ndarray, b: np.ndarray, flow: np.ndarray, half: bool = False) -> float:
    """scene_change's score of working-size frames *a*, *b* and *b*'s backward flow."""
    e = _SC_BORDER // 2 if half else _SC_BORDER
    both = _local_norm(np.dstack([warp(a, flow), b]), half)[e:-e, e:-e]  # two channels: one call each
    wn, bn = both[..., 0], both[..., 1]
    energy = float(np.vdot(both, both)) + 1e-6 * wn.size
    d = wn - bn
    return float(min(1.0, float(np.vdot(d, d)) / energy))


def _halve(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[-2:]
    return cv2.resize(np.ascontiguousarray(x[..., : h // 2 * 2, : w // 2 * 2]), (w // 2, h // 2),
                      interpolation=cv2.INTER_AREA)


def _halved(a: np.ndarray, b: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Working-size frames and flow at half that size."""
    return _halve(a), _halve(b), np.stack([_halve(flow[0]), _halve(flow[1])]) * np.float32(0.5)


def _full_score(a: np.ndarray, b: np.ndarray, flow: np.ndarray) -> float:
    # the flow smoothed first: a flexible flow (small patches, variational refinement) can
    # rearrange one picture into much of another, and a cut then scores like a shot
    flow = cv2.GaussianBlur(np.ascontiguousarray(flow.transpose(1, 2, 0)), (0, 0), _SC_FLOW_SIGMA)
    score = _score(a, b, np.ascontiguousarray(flow.transpose(2, 0, 1)))
    if score > 0.5 and _flat(a) and _flat(b):
        return 0.0  # two frames of noise alone: no detail that could tell two shots apart
    return score


def scene_change(prev: np.ndarray, cur: np.ndarray, *, flow: np.ndarray | None = None) -> float:
    """How much *cur* fails to be explained by motion from *prev*: 0 (same shot) .. 1 (cut).

    Both frames are brought to ~160x120 and locally contrast-normalised (so fades, flicker
    and smooth flashes count little); *prev* is motion-compensated onto *cur* with dense
    flow (*flow*: the backward flow of *cur*, same size as the frames; computed here with
    a half-resolution DIS search when None) and the residual energy is compared with the frames' own
    detail energy::

        score = sum (warped - cur)^2 / sum (warped^2 + cur^2)

    Uncorrelated frames score ~1, a well-compensated shot ~0. Measured on 16 skimage
    photos with noise (224x160): pans <= 0.38, fades <= 0.54, smooth flashes up to +0.6
    <= 0.66 (on dark, flat pictures; <= 0.3 on textured ones), cuts between any two of the
    photos >= 0.82; :data:`CUT_THRESHOLD` sits between (the +-3 sigma blur and bilinear
    working-size resize moved the extremes of a similar 15-photo set by <= 0.03). A
    hard-edged flash that saturates a quarter of a flat picture can still score like a cut.
    The flow is smoothed first (Gaussian, :data:`_SC_FLOW_SIGMA` working-size pixels): a flow
    as flexible as DIS "medium" maps one picture into much of another, and on
    ``benchmarks/calib_scenecut.py``'s 480x270 views five of 342 cuts scored 0.65-0.70 with it
    as given; smoothed, every cut there scores >= 0.705 (thin, but over the threshold) and the
    same-shot pairs stay <= 0.52. A normalised luma histogram difference was tried as a
    second cue and dropped: between two different photos it was as low as 0.06, below what
    flashes and fades gave, so it added no safe evidence. Two frames with no detail above
    their noise (:func:`_flat`: black leader, a flat wall or sky filling the frame;
    independent noise alone scores ~1) score 0: nothing in them could tell two shots apart.
    So a cut between two detail-free frames (two smooth gradients) is not seen; one frame
    with detail is enough.
    """
    return _full_score(*_working(prev, cur, flow, "scene_change"))


def _flat(x: np.ndarray) -> bool:
    """No detail above the noise: the local contrast of *x* smoothed (sigma 2 px) stays under
    :data:`_SC_DETAIL` on over 99 % of the frame (white noise of sigma s keeps ~s/7 there)."""
    _, sd = _local_contrast(cv2.GaussianBlur(x, (0, 0), 2.0))
    return float((sd > _SC_DETAIL).mean()) < 0.01


def scene_change_coarse(prev: np.ndarray, cur: np.ndarray, *, flow: np.ndarray | None = None) -> float:
    """:func:`scene_change`'s score at half its working size (~80x60): the cheap first stage
    of :func:`is_scene_cut`."""
    return _score(*_working(prev, cur, flow, "scene_change_coarse", half=True), half=True)


def is_scene_cut(prev: np.ndarray, cur: np.ndarray, *, flow: np.ndarray | None = None,
                 threshold: float = CUT_THRESHOLD) -> bool:
    """True when *prev* and *cur* lie on two sides of a cut (``scene_change > threshold``).

    Two stages: the score at half the working size (:func:`scene_change_coarse`, ~35 % of the
    cost, much of it fixed per-call overhead) clears a pair below :data:`_SC_SKIP` on its own;
    only the others get the full score. Measured by ``benchmarks/calib_scenecut.py`` (pairs of
    19 skimage pictures with noise at 224x160, 213x120 and 480x270: pans, fades to 60 %, a
    +0.5 smooth flash, and every pair of different pictures): where the full score was over
    0.7 the coarse one was at least 0.63, and the coarse stage cleared 86-96 % of the
    same-shot pairs (tests/test_optical_flow.py checks both on six photos). A threshold under
    ``_SC_SKIP + 0.3`` skips the coarse stage.
    """
    if threshold < _SC_SKIP + 0.3:  # the coarse stage's measured margin does not hold
        return scene_change(prev, cur, flow=flow) > threshold
    full = _working(prev, cur, flow, "is_scene_cut")  # shared by both stages (one flow search if none)
    return _score(*_halved(*full), half=True) >= _SC_SKIP and _full_score(*full) > threshold
