"""Quality metrics for evaluation: fidelity, perception, temporal stability, colour, VMAF.

NumPy arrays in, floats out. Images are RGB float ``(3, H, W)`` arrays in 0..1 (any real
dtype); sequences are lists of such arrays or ``vs.VideoNode`` clips (converted to RGBS
with :mod:`vsrestore.color`, honouring ``_Matrix``/``_Range``). Nothing here prints.

- :func:`psnr_y`, :func:`ssim_y`: on luma Y' = 16 + 219 (Kr R' + Kg G' + Kb B') (the
  16-235 scale of the SR literature; BT.601 weights by default, ``matrix="709"`` for HD),
  with a ``shave``-pixel border dropped. SSIM is Wang et al. 2004 (11x11 Gaussian window,
  sigma 1.5, K1 0.01, K2 0.03, L 255, "valid" window positions only).
- :func:`stlpips`: shift-tolerant LPIPS (Ghildyal & Liu 2022), ``stlpips-pytorch``'s
  bundled weights, loaded once per (net, device).
- :func:`e_warp`: temporal warping error (Lai et al. 2018); see its docstring.
- :func:`delta_e2000`, :func:`delta_e_itp`: colour differences (CIEDE2000; ITU-R BT.2124).
- :func:`vmaf`: ffmpeg's libvmaf with its built-in ``vmaf_v0.6.1`` model.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import types
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import vapoursynth as vs

type Frames = vs.VideoNode | Sequence[np.ndarray]
_KR_KB = {"601": (0.299, 0.114), "709": (0.2126, 0.0722)}


def _rgb(a: np.ndarray, fn: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 3 or a.shape[0] != 3:
        raise ValueError(f"{fn}: expected an RGB (3, H, W) array in 0..1, got shape {a.shape}")
    return a


def _pair(a: np.ndarray, b: np.ndarray, fn: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = _rgb(a, fn), _rgb(b, fn)
    if a.shape != b.shape:
        raise ValueError(f"{fn}: shapes differ: {a.shape} and {b.shape}")
    return a, b


def luma(rgb: np.ndarray, *, matrix: str = "601") -> np.ndarray:
    """Y' on the 16-235 scale (float64, ``(H, W)``) of an RGB 0..1 array (no rounding)."""
    if matrix not in _KR_KB:
        raise ValueError(f"luma: matrix={matrix!r}; use '601' or '709'")
    kr, kb = _KR_KB[matrix]
    r, g, b = _rgb(rgb, "luma")
    return 16.0 + 219.0 * (kr * r + (1.0 - kr - kb) * g + kb * b)


def _shaved(a: np.ndarray, b: np.ndarray, matrix: str, shave: int, fn: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = _pair(a, b, fn)
    ya, yb = luma(a, matrix=matrix), luma(b, matrix=matrix)
    if shave:
        ya, yb = ya[shave:-shave, shave:-shave], yb[shave:-shave, shave:-shave]
    if ya.size == 0:
        raise ValueError(f"{fn}: nothing left after shaving {shave} px from {a.shape[1:]}")
    return ya, yb


def psnr_y(a: np.ndarray, b: np.ndarray, *, matrix: str = "601", shave: int = 4,
           peak: float = 255.0) -> float:
    """PSNR in dB of Y' (16-235 scale, ``peak`` 255), ``shave`` px border dropped; inf when equal."""
    ya, yb = _shaved(a, b, matrix, shave, "psnr_y")
    mse = float(np.mean((ya - yb) ** 2))
    return float("inf") if mse == 0.0 else 10.0 * np.log10(peak * peak / mse)


def ssim_y(a: np.ndarray, b: np.ndarray, *, matrix: str = "601", shave: int = 4) -> float:
    """Mean SSIM (Wang et al. 2004) of Y' on the 0..255 scale; matches skimage's
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=255)`` on the shaved planes."""
    x, y = _shaved(a, b, matrix, shave, "ssim_y")
    if min(x.shape) < 11:
        raise ValueError(f"ssim_y: planes of {x.shape} after shaving are smaller than the 11x11 window")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s[5:-5, 5:-5].mean())  # window fully inside: Wang's "valid" positions


# ---- ST-LPIPS --------------------------------------------------------------------------------

_models: dict[tuple[str, str], Any] = {}
_model_lock = threading.Lock()


def _load_stlpips(net: str, device: str) -> Any:
    """stlpips-pytorch's shift-tolerant model; the wheel carries the weights (no download).

    The package imports ``torchsummary`` and ``IPython`` (undeclared, unused for inference):
    empty stand-ins are put in place while it is imported, when those are not installed.
    Its prints go to stderr.
    """
    with _model_lock:
        model = _models.get((net, device))
        if model is not None:
            return model
        stubs = []
        for name, attr in (("torchsummary", "summary"), ("IPython", "embed")):
            if name not in sys.modules and importlib.util.find_spec(name) is None:
                stub = types.ModuleType(name)
                setattr(stub, attr, lambda *a, **k: None)
                sys.modules[name] = stub
                stubs.append(name)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                from stlpips_pytorch import stlpips as st

                model = st.LPIPS(net=net, variant="shift_tolerant", verbose=False).to(device).eval()
        finally:  # others test `"IPython" in sys.modules` to detect notebooks
            for name in stubs:
                sys.modules.pop(name, None)
        _models[(net, device)] = model
        return model


def stlpips(a: np.ndarray, b: np.ndarray, *, net: str = "alex", device: str = "cpu") -> float:
    """ST-LPIPS distance (0 = same; larger = more different) of two RGB 0..1 images.

    ``net``: "alex" (default) or "vgg". ``device``: "cpu" or "cuda".
    """
    import torch

    if net not in ("alex", "vgg"):
        raise ValueError(f"stlpips: net={net!r}; use 'alex' or 'vgg'")
    a, b = _pair(a, b, "stlpips")
    model = _load_stlpips(net, device)
    ta, tb = (torch.from_numpy(np.ascontiguousarray(x * 2.0 - 1.0, dtype=np.float32))[None].to(device)
              for x in (a, b))
    with torch.inference_mode():
        return float(model(ta, tb).item())


# ---- temporal warping error ------------------------------------------------------------------

def _arrays(x: Frames) -> list[np.ndarray]:
    if isinstance(x, vs.VideoNode):
        from .bridge import clip_to_arrays
        from .color import check_supported, describe, to_rgbs

        check_supported(x, "vsrestore.metrics")
        assert x.format is not None
        rgb = x if x.format.id == vs.RGBS else to_rgbs(x, describe(x))
        return clip_to_arrays(rgb)
    return [np.asarray(f) for f in x]


def _grey(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float32)
    if f.ndim == 2:
        return f
    if f.shape[0] == 1:
        return f[0]
    return 0.2126 * f[0] + 0.7152 * f[1] + 0.0722 * f[2]  # BT.709 luma, as color.to_luma


def e_warp(frames: Frames, flows: Sequence[np.ndarray] | None = None, *, source: Frames | None = None,
           masks: Sequence[np.ndarray] | None = None) -> float:
    """Temporal warping error of Lai et al. (ECCV 2018) of the output *frames*.

    For each t >= 1: ``W = warp(O[t-1], F[t])`` with ``F[t]`` the backward flow of the *input*
    frame t (``I[t](x) ~= I[t-1](x + F[t](x))``, bilinear, clamped edges), and::

        E[t] = sum_x,c M[t](x) (O[t](x, c) - W(x, c))^2 / (C * sum_x M[t](x))
        e_warp = mean over t of E[t]

    ``F[t]``: ``flows[t-1]`` (``(2, H, W)``) when given, else ``motion.dense_flow`` on the
    luma of ``source[t-1] -> source[t]``. ``M[t]`` is 1 where the pixel is valid: with a
    *source*, the forward-backward check of ``kernels.warp.occlusion_mask`` (Sundaram's
    tolerance; also 0 where ``x + F`` leaves the frame) on ``F[t]`` and the flow of
    ``source[t] -> source[t-1]``; times ``masks[t-1] > 0.5`` when *masks* are given. With
    neither *source* nor *masks*, all pixels count. Lai et al. sum over channels; here the
    channel mean is taken, so independent noise of variance s^2 per frame adds ~2 s^2.
    Frames: ``(C, H, W)`` or ``(H, W)`` arrays in 0..1, or clips (RGB after conversion).
    """
    from .kernels.warp import occlusion_mask, warp
    from .motion import dense_flow

    out = [np.asarray(f, np.float32) for f in _arrays(frames)]
    out = [f[None] if f.ndim == 2 else f for f in out]
    src = None if source is None else [_grey(f) for f in _arrays(source)]
    n = len(out)
    if n < 2:
        raise ValueError(f"e_warp: needs at least 2 frames, got {n}")
    if flows is None and src is None:
        raise ValueError("e_warp: pass the input clip as source= (flow is computed on it) or flows=")
    for name, seq in (("source", src), ("flows", flows), ("masks", masks)):
        want = n if name == "source" else n - 1
        if seq is not None and len(seq) != want:
            raise ValueError(f"e_warp: {name} has {len(seq)} entries; {want} expected for {n} frames")
    errs = []
    for t in range(1, n):
        h, w = out[t].shape[1:]
        bwd = (np.asarray(flows[t - 1], np.float32) if flows is not None
               else dense_flow(src[t - 1], src[t]))  # type: ignore[index]
        if bwd.shape != (2, h, w):
            raise ValueError(f"e_warp: flow of shape {bwd.shape} for frames of {(h, w)}")
        valid = np.ones((h, w), np.float32)
        if src is not None:
            fwd = dense_flow(src[t], src[t - 1])  # on frame t-1's grid, pointing into t
            valid *= occlusion_mask(np.ascontiguousarray(bwd[0]), np.ascontiguousarray(bwd[1]),
                                    fwd[0], fwd[1]) > 0.5
        if masks is not None:
            valid *= np.asarray(masks[t - 1]) > 0.5
        fx, fy = np.ascontiguousarray(bwd[0]), np.ascontiguousarray(bwd[1])
        warped = np.stack([warp(np.ascontiguousarray(p), fx, fy) for p in out[t - 1]])
        d2 = ((out[t].astype(np.float64) - warped) ** 2).sum(axis=0)
        cnt = float(valid.sum()) * out[t].shape[0]
        errs.append(float((d2 * valid).sum()) / cnt if cnt else 0.0)
    return float(np.mean(errs))


# ---- colour differences ----------------------------------------------------------------------

def delta_e2000_lab(lab_a: np.ndarray, lab_b: np.ndarray) -> np.ndarray:
    """Per-pixel CIEDE2000 between CIELAB arrays (``(..., 3)``, L in 0..100)."""
    from skimage.color import deltaE_ciede2000

    return np.asarray(deltaE_ciede2000(np.asarray(lab_a, np.float64), np.asarray(lab_b, np.float64)))


def delta_e2000(a: np.ndarray, b: np.ndarray) -> float:
    """Mean CIEDE2000 of two sRGB 0..1 images (D65, 2-degree observer, skimage's rgb2lab)."""
    from skimage.color import rgb2lab

    a, b = _pair(a, b, "delta_e2000")
    la, lb = (rgb2lab(np.clip(x, 0, 1).transpose(1, 2, 0)) for x in (a, b))
    return float(delta_e2000_lab(la, lb).mean())


_M1, _M2 = 2610 / 16384, 2523 / 4096 * 128
_C1, _C2, _C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
_BT709_TO_2020 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])
_RGB_TO_LMS = np.array([[1688, 2146, 262], [683, 2951, 462], [99, 309, 3688]]) / 4096
_LMS_TO_ICTCP = np.array([[2048, 2048, 0], [6610, -13613, 7003], [17933, -17390, -543]]) / 4096


def pq_eotf(e: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084: PQ signal 0..1 -> luminance in cd/m^2 (0..10000)."""
    p = np.power(np.clip(e, 0, 1), 1 / _M2)
    return 10000.0 * np.power(np.maximum(p - _C1, 0) / (_C2 - _C3 * p), 1 / _M1)


def pq_inverse_eotf(y: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084: luminance in cd/m^2 -> PQ signal 0..1."""
    p = np.power(np.clip(np.asarray(y, np.float64) / 10000.0, 0, 1), _M1)
    return np.power((_C1 + _C2 * p) / (1 + _C3 * p), _M2)


def ictcp(rgb2020_linear: np.ndarray) -> np.ndarray:
    """BT.2100 ICtCp (PQ) of linear BT.2020 RGB in cd/m^2, ``(3, H, W)`` -> ``(3, H, W)``."""
    lms = np.einsum("ij,jhw->ihw", _RGB_TO_LMS, rgb2020_linear)
    return np.einsum("ij,jhw->ihw", _LMS_TO_ICTCP, pq_inverse_eotf(lms))


def _linear_2020(x: np.ndarray, transfer: str, eotf: str, white: float) -> np.ndarray:
    if transfer == "pq":
        return pq_eotf(x)  # already BT.2020 primaries, absolute luminance
    if transfer != "sdr":
        raise ValueError(f"delta_e_itp: transfer={transfer!r}; use 'pq' or 'sdr'")
    x = np.clip(x, 0, 1)
    if eotf == "bt1886":
        lin = np.power(x, 2.4)  # BT.1886 with a zero black level
    elif eotf == "srgb":
        lin = np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4))
    else:
        raise ValueError(f"delta_e_itp: eotf={eotf!r}; use 'bt1886' or 'srgb'")
    return np.einsum("ij,jhw->ihw", _BT709_TO_2020, lin * white)


def delta_e_itp(a: np.ndarray, b: np.ndarray, *, transfer: str = "pq", eotf: str = "bt1886",
                white: float = 203.0) -> float:
    """Mean ΔE_ITP (ITU-R BT.2124) = 720 sqrt(ΔI^2 + (0.5 ΔCt)^2 + ΔCp^2) of two images.

    ``transfer="pq"``: inputs are BT.2100 PQ-coded BT.2020 R'G'B' 0..1. ``"sdr"``: BT.709/sRGB
    R'G'B' 0..1, linearised with ``eotf`` ("bt1886": gamma 2.4, black 0; or "srgb") so that
    1.0 is ``white`` cd/m^2 (203 as in BT.2408, or 100), then converted to BT.2020 primaries
    (BT.2087 matrix). 1 unit is about one just-noticeable difference.
    """
    a, b = _pair(a, b, "delta_e_itp")
    ia, ib = (ictcp(_linear_2020(x, transfer, eotf, white)) for x in (a, b))
    d = ia - ib
    return float(np.mean(720.0 * np.sqrt(d[0] ** 2 + (0.5 * d[1]) ** 2 + d[2] ** 2)))


# ---- VMAF ------------------------------------------------------------------------------------

def _yuv444_8bit(frames: list[np.ndarray], matrix: str) -> bytes:
    kr, kb = _KR_KB[matrix]
    chunks = []
    for f in frames:
        r, g, b = np.clip(_rgb(f, "vmaf"), 0, 1)
        y = kr * r + (1 - kr - kb) * g + kb * b
        cb, cr = (b - y) / (2 * (1 - kb)), (r - y) / (2 * (1 - kr))
        yuv = np.stack([16 + 219 * y, 128 + 224 * cb, 128 + 224 * cr])
        chunks.append(np.clip(np.rint(yuv), 0, 255).astype(np.uint8).tobytes())
    return b"".join(chunks)


def vmaf(reference: Frames, distorted: Frames, *, matrix: str = "709", model: str = "vmaf_v0.6.1",
         threads: int = 0) -> float:
    """Pooled (arithmetic mean) VMAF of *distorted* against *reference* with ffmpeg's libvmaf.

    Frames go to ffmpeg as 8-bit limited-range YUV 4:4:4 (``matrix`` weights); the model is
    one built into libvmaf (``vmaf_v0.6.1`` by default; nothing is downloaded).
    """
    import imageio_ffmpeg

    ref, dis = _arrays(reference), _arrays(distorted)
    if not ref or len(ref) != len(dis) or len({np.shape(f) for f in ref + dis}) != 1:
        raise ValueError("vmaf: reference and distorted need the same (non-zero) number of frames, "
                         "all of one size")
    if matrix not in _KR_KB:
        raise ValueError(f"vmaf: matrix={matrix!r}; use '601' or '709'")
    h, w = np.shape(ref[0])[1:]
    with tempfile.TemporaryDirectory(prefix="vsrestore-vmaf-") as tmp:
        for name, fr in (("dis.yuv", dis), ("ref.yuv", ref)):
            with open(os.path.join(tmp, name), "wb") as fh:
                fh.write(_yuv444_8bit(fr, matrix))
        raw = ["-f", "rawvideo", "-pix_fmt", "yuv444p", "-s", f"{w}x{h}", "-r", "24"]
        lavfi = f"[0:v][1:v]libvmaf=model=version={model}:log_fmt=json:log_path=vmaf.json:n_threads={threads}"
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error",
               *raw, "-i", "dis.yuv", *raw, "-i", "ref.yuv", "-lavfi", lavfi, "-f", "null", "-"]
        res = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"vmaf: ffmpeg failed ({res.returncode}): {res.stderr.strip()[-500:]}")
        with open(os.path.join(tmp, "vmaf.json")) as fh:
            log = json.load(fh)
    return float(log["pooled_metrics"]["vmaf"]["mean"])


# ---- clips -----------------------------------------------------------------------------------

def per_frame(metric: Callable[..., float], a: Frames, b: Frames, **kwargs: Any) -> list[float]:
    """``metric(a[n], b[n], **kwargs)`` for every frame of two clips (or frame lists).

    Example: ``np.mean(per_frame(psnr_y, restored, reference, matrix="709"))``.
    """
    fa, fb = _arrays(a), _arrays(b)
    if len(fa) != len(fb):
        raise ValueError(f"per_frame: {len(fa)} frames against {len(fb)}")
    return [metric(x, y, **kwargs) for x, y in zip(fa, fb, strict=True)]
