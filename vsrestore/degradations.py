"""NumPy-level synthetic degradations used by ``vr.degrade`` (blur PSFs, noise, JPEG, H.264/HEVC).

Images are float32 ``(H, W, C)`` arrays in 0..1 (C = 1 or 3). Every function is
pure: randomness comes only from the :class:`numpy.random.Generator` passed in,
so results depend on the caller's seed and never on global state or threads.
"""

from __future__ import annotations

import math
import subprocess
from typing import Any

import cv2
import numpy as np

MAX_RADIUS = 32  # PSF kernels are cut at this many pixels from the centre
LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def _grid(radius: int) -> tuple[np.ndarray, np.ndarray]:
    ax = np.arange(-radius, radius + 1, dtype=np.float64)
    return np.meshgrid(ax, ax)  # x (columns), y (rows)


def _normalised(k: np.ndarray) -> np.ndarray:
    return (k / k.sum()).astype(np.float32)


def gaussian_kernel(sigma_x: float, sigma_y: float | None = None, angle: float = 0.0) -> np.ndarray:
    """(Anisotropic) Gaussian PSF; *angle* in degrees rotates the x axis counter-clockwise."""
    sy = sigma_x if sigma_y is None else sigma_y
    r = min(MAX_RADIUS, max(1, math.ceil(3.0 * max(sigma_x, sy))))
    x, y = _grid(r)
    t = math.radians(angle)
    u = x * math.cos(t) - y * math.sin(t)  # rows grow downwards: -y is "up"
    v = x * math.sin(t) + y * math.cos(t)
    return _normalised(np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sy) ** 2)))


def disk_kernel(radius: float, supersample: int = 8) -> np.ndarray:
    """Defocus PSF: a uniform disk, anti-aliased by supersampling."""
    r = min(MAX_RADIUS, math.ceil(radius + 0.5))
    s = supersample
    off = (np.arange(s) + 0.5) / s - 0.5
    x, y = _grid(r)
    xs = x[..., None, None] + off[None, None, :, None]
    ys = y[..., None, None] + off[None, None, None, :]
    inside = (xs**2 + ys**2 <= radius**2).mean(axis=(2, 3))
    inside[r, r] = max(inside[r, r], 1e-6)
    return _normalised(inside)


def airy_kernel(radius: float) -> np.ndarray:
    """Lens-diffraction PSF ``(2 J1(x) / x)^2`` whose first dark ring lies at *radius* pixels."""
    from scipy.special import j1

    r = min(MAX_RADIUS, max(2, math.ceil(3.0 * radius)))
    x, y = _grid(r)
    q = np.hypot(x, y) * (3.8317059702 / radius)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(q < 1e-8, 1.0, (2.0 * j1(q) / q) ** 2)
    return _normalised(k)


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """Linear motion PSF: a line of *length* pixels at *angle* degrees, bilinearly splatted."""
    r = min(MAX_RADIUS, max(1, math.ceil(length / 2.0 + 1)))
    k = np.zeros((2 * r + 1, 2 * r + 1), dtype=np.float64)
    t = math.radians(angle)
    steps = max(2, int(math.ceil(length * 4)))
    for s in np.linspace(-length / 2.0, length / 2.0, steps):
        px, py = r + s * math.cos(t), r - s * math.sin(t)
        x0, y0 = int(math.floor(px)), int(math.floor(py))
        fx, fy = px - x0, py - y0
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                yy, xx = y0 + dy, x0 + dx
                if 0 <= yy <= 2 * r and 0 <= xx <= 2 * r:
                    k[yy, xx] += wx * wy
    return _normalised(k)


def convolve(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve every channel with *kernel* (mirror borders)."""
    out = cv2.filter2D(img, cv2.CV_32F, kernel[::-1, ::-1].copy(), borderType=cv2.BORDER_REFLECT_101)
    return out.reshape(img.shape)


def poisson_gaussian(img: np.ndarray, shot: float, read: float, luma_only: bool,
                     rng: np.random.Generator) -> np.ndarray:
    """Signal-dependent noise: variance ``shot * x + read**2`` (Poisson shot + Gaussian read noise).

    ``shot`` is the gain (1 / full-well photon count at x = 1). ``luma_only`` draws one
    noise field from the luma and adds it to every channel (grey noise).
    """
    x = img
    sig = x if not luma_only or x.shape[2] == 1 else (x @ LUMA)[..., None]
    sig = np.clip(sig, 0.0, None).astype(np.float64)
    noise = np.zeros(sig.shape, dtype=np.float64)
    if shot > 0:
        noise += shot * rng.poisson(sig / shot) - sig
    if read > 0:
        noise += rng.normal(0.0, read, size=sig.shape)
    return np.clip(x + noise.astype(np.float32), 0.0, 1.0)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip through OpenCV at *quality* on 8-bit RGB (or grey)."""
    u8 = to_uint8(img)
    src = u8[..., 0] if u8.shape[2] == 1 else cv2.cvtColor(u8, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", src, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("cv2.imencode failed")
    flag = cv2.IMREAD_GRAYSCALE if u8.shape[2] == 1 else cv2.IMREAD_COLOR
    dec = cv2.imdecode(buf, flag)
    if dec is None:
        raise RuntimeError("cv2.imdecode failed")
    dec = dec[..., None] if u8.shape[2] == 1 else cv2.cvtColor(dec, cv2.COLOR_BGR2RGB)
    return dec.astype(np.float32) / 255.0


def apply_stage(img: np.ndarray, prm: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Apply one per-frame stage (blur, noise or JPEG) with drawn parameters to ``(H, W, C)``."""
    stage = prm["stage"]
    if stage == "jpeg":
        return jpeg(img, prm["quality"])
    if stage == "noise":
        g = prm["gamma"]
        x = np.clip(img, 0.0, 1.0) ** g if g != 1.0 else img
        y = poisson_gaussian(x, prm["shot"], prm["read"], prm["luma_only"], rng)
        return y ** (1.0 / g) if g != 1.0 else y
    kind = prm["kind"]
    if kind == "GaussianBlur":
        k = gaussian_kernel(prm["sigma"])
    elif kind == "AnisotropicBlur":
        k = gaussian_kernel(prm["sigma_x"], prm["sigma_y"], prm["angle"])
    elif kind == "DefocusBlur":
        k = airy_kernel(prm["radius"]) if prm["airy"] else disk_kernel(prm["radius"])
    else:
        k = motion_kernel(prm["length"], prm["angle"])
    return convolve(img, k)


# --- video codec -----------------------------------------------------------------------------

ENCODERS = {"h264": ("libx264", "h264"), "hevc": ("libx265", "hevc")}


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def codec_roundtrip(frames: list[np.ndarray], codec: str, crf: float | None, bitrate: int | None,
                    preset: str, fps: float = 24.0) -> list[np.ndarray]:
    """Encode *frames* (one GOP) with libx264/libx265 through ffmpeg and decode them back.

    Frames are 8-bit quantised, padded to even size, encoded as yuv420p with one
    encoder thread (bit-exact repeatable) and decoded; the padding is cropped.
    Raises ``RuntimeError`` with ffmpeg's message on failure.
    """
    h, w, c = frames[0].shape
    ph, pw = h + h % 2, w + w % 2
    pix = "gray" if c == 1 else "rgb24"
    raw = b"".join(np.pad(to_uint8(f), ((0, ph - h), (0, pw - w), (0, 0)), mode="edge").tobytes()
                   for f in frames)
    lib, fmt = ENCODERS[codec]
    if (crf is None) == (bitrate is None):
        raise ValueError("codec_roundtrip: give exactly one of crf and bitrate")
    rate = ["-b:v", f"{int(bitrate)}k"] if bitrate is not None else ["-crf", f"{float(crf or 0):g}"]
    params = (["-x264-params", f"threads=1:sliced-threads=0:keyint={len(frames)}"] if lib == "libx264"
              else ["-x265-params", f"pools=none:frame-threads=1:log-level=error:keyint={len(frames)}"])
    exe = _ffmpeg()
    enc = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", pix,
           "-s", f"{pw}x{ph}", "-r", f"{fps:g}", "-i", "-", "-c:v", lib, "-preset", preset, *rate,
           *params, "-threads", "1", "-pix_fmt", "yuv420p", "-f", fmt, "-"]
    r = subprocess.run(enc, input=raw, capture_output=True, check=False)
    if r.returncode != 0 or not r.stdout:
        raise RuntimeError(f"ffmpeg {lib} encode failed: {r.stderr.decode(errors='replace')[-400:]}")
    dec = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1", "-f", fmt, "-i", "-",
           "-f", "rawvideo", "-pix_fmt", pix, "-"]
    d = subprocess.run(dec, input=r.stdout, capture_output=True, check=False)
    size = ph * pw * c
    if d.returncode != 0 or len(d.stdout) < size * len(frames):
        raise RuntimeError(f"ffmpeg decode failed: {d.stderr.decode(errors='replace')[-400:]}")
    out = np.frombuffer(d.stdout[: size * len(frames)], dtype=np.uint8).reshape(len(frames), ph, pw, c)
    return [out[i, :h, :w].astype(np.float32) / 255.0 for i in range(len(frames))]
