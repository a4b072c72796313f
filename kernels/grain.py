"""Grain synthesis hot loop: seeded Gaussian white noise, shaped by a small 2-D FIR, scaled by
sigma(luma), added.

``out[y, x] = plane[y, x] + lut(luma[y, x]) * sum_ij kern[i, j] * noise[y + i, x + j]``

* ``noise`` is white noise over the plane padded by the kernel: shape ``(H + kh - 1, W + kw - 1)``,
  so the FIR is a "valid" correlation and needs no border rule. :func:`regrain_plane` takes it as
  an array; :func:`regrain_plane_seeded` draws it inside the kernel, a row at a time, from a key.
* The generator is counter-based, so any element can be drawn on its own (a GPU thread, a CPU row
  loop, a NumPy array expression give the same field): element ``(r, c)`` is one half of
  Box-Muller pair ``j = c // 2`` of row ``r``. ``z = mix64(key + ((r << 32) | j) * 0x9E3779B97F4A7C15)``
  (SplitMix64, mod 2**64); ``u1 = ((z >> 40) + 1) / 2**24`` in (0, 1], ``u2 = (z & 0xFFFFFF) / 2**24``;
  ``noise[r, 2j] = sqrt(-2 ln u1) cos(2 pi u2)``, ``noise[r, 2j + 1] = sqrt(-2 ln u1) sin(2 pi u2)``
  (tails end at 5.77 sigma, probability 8e-9). :func:`noise_key` makes the key from (seed, frame,
  channel). ln, sin and cos are float32 polynomials (Cephes) after exact integer range reduction:
  no branches, so the CPU row loop vectorises; within 2e-6 of float64 math.
* ``lut`` holds sigma at ``n`` luma knots at the bin centres ``(i + 0.5) / n`` of [0, 1]; between
  knots sigma is linear, outside the first/last centre it is held constant (``np.interp``).
* ``regrain_plane_seeded`` also does the caller's chores in the same pass: it reads integer
  (uint8/uint16) or float32 planes as they are, averages ``sub = (fy, fx)`` boxes of a full-size
  luma plane (times ``luma_scale``) for subsampled chroma, and with ``peak > 0`` rounds (half to
  even) and clamps to ``0..peak`` into an integer ``out``. Integer luma reads sigma from a table
  over codes (box sums), ``np.interp`` evaluated once per code and cached; float luma interpolates
  per pixel.
* A separable (rank-1) ``kern`` -- the Gaussian grain shapes are -- runs as two 1-D passes in
  float32; any other kernel as a 2-D FIR summed in float64. The rest is float32 math.

Variants: ``regrain_plane`` / ``regrain_plane_seeded`` / ``gaussian_noise`` (Numba CPU, serial,
``nogil``, compiled at import), ``*_cuda`` (``numba.cuda`` on device arrays, noise drawn on the
device; runs under ``NUMBA_ENABLE_CUDASIM=1``; imported on first use) and ``*_reference``
(vectorised NumPy, float64). The per-element math (generator, sigma, finish) is written once.
"""

from __future__ import annotations

import functools
import hashlib
import math
from typing import Any

import numpy as np
from numba import njit
from numba.extending import register_jitable

__all__ = ["noise_key", "gaussian_noise", "gaussian_noise_cuda", "gaussian_noise_reference",
           "regrain_plane", "regrain_plane_cuda", "regrain_plane_reference",
           "regrain_plane_seeded", "regrain_plane_seeded_cuda", "regrain_plane_seeded_reference"]

_U = np.uint64
_F = np.float32
_I = np.int32
_GOLDEN, _C1, _C2 = _U(0x9E3779B97F4A7C15), _U(0xBF58476D1CE4E5B9), _U(0x94D049BB133111EB)
_M64, _M24 = _U(0xFFFFFFFFFFFFFFFF), _U(0xFFFFFF)
_S27, _S30, _S31, _S32, _S40 = _U(27), _U(30), _U(31), _U(32), _U(40)
_LN2_HI, _LN2_LO = _F(0.693359375), _F(-2.12194440e-4)
_TWO_PI_24 = _F(2.0 * math.pi / (1 << 24))
_INT_OK = (np.uint8, np.uint16, np.float32)  # dtypes the CPU kernel reads and writes directly


def noise_key(seed: int, frame: int, channel: int) -> int:
    """64-bit generator key for one plane of one frame (BLAKE2b of the three numbers)."""
    if min(seed, frame, channel) < 0:
        raise ValueError(f"noise_key: seed, frame and channel must be >= 0, got {(seed, frame, channel)}")
    digest = hashlib.blake2b(f"vsrestore-grain:{seed}:{frame}:{channel}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


# ---- the per-element math, shared by the CPU, CUDA and simulator paths --------------------------

@register_jitable(inline="always")
def _pair_bits(key, r, j):
    """The two 24-bit uniforms of Box-Muller pair j of noise row r: (m, b), u1 = m / 2**24 with m in
    1 .. 2**24, u2 = b / 2**24 (see the module notes)."""
    z = (key + ((_U(r) << _S32) | _U(j)) * _GOLDEN) & _M64
    z = ((z ^ (z >> _S30)) * _C1) & _M64
    z = ((z ^ (z >> _S27)) * _C2) & _M64
    z = z ^ (z >> _S31)
    return _I(z >> _S40) + _I(1), _I(z & _M24)


@register_jitable(inline="always")
def _pair_normals(m, b):
    """Box-Muller: the two normals of the uniforms (m, b) of :func:`_pair_bits`."""
    # ln(u1): m = 2**e * f with f in [1, 2) (branch-free bit length), f centred on 1. No
    # conditional expressions here: selects are arithmetic (exact), so the row loop vectorises.
    e = _I(0)
    t = m
    s = _I(t >= _I(1 << 16)) * _I(16)
    t = t >> s
    e = e + s
    s = _I(t >= _I(1 << 8)) * _I(8)
    t = t >> s
    e = e + s
    s = _I(t >= _I(1 << 4)) * _I(4)
    t = t >> s
    e = e + s
    s = _I(t >= _I(1 << 2)) * _I(2)
    t = t >> s
    e = e + s
    e = e + _I(t >= _I(2))
    f = _F(m << (_I(23) - e)) * _F(1.0 / (1 << 23))
    big = _I(f > _F(1.41421356))
    f = f * (_F(1.0) - _F(0.5) * _F(big))
    x = f - _F(1.0)
    ee = _F(e + big - _I(24))
    x2 = x * x
    y = ((((((((_F(7.0376836292e-2) * x - _F(1.1514610310e-1)) * x + _F(1.1676998740e-1)) * x
               - _F(1.2420140846e-1)) * x + _F(1.4249322787e-1)) * x - _F(1.6668057665e-1)) * x
           + _F(2.0000714765e-1)) * x - _F(2.4999993993e-1)) * x + _F(3.3333331174e-1)) * x * x2
    y = y + ee * _LN2_LO - _F(0.5) * x2
    rad = math.sqrt(abs(_F(-2.0) * (x + y + ee * _LN2_HI)))  # ln(u1) <= 0 (-0.0 at u1 = 1)
    # cos/sin(2 pi u2): quadrant q and remainder in [-pi/4, pi/4) from the integer
    qf = (b + _I(1 << 21)) >> _I(22)
    q = qf & _I(3)
    th = _F(b - (qf << _I(22))) * _TWO_PI_24
    t2 = th * th
    sn = ((_F(-1.9515295891e-4) * t2 + _F(8.3321608736e-3)) * t2 - _F(1.6666654611e-1)) * t2 * th + th
    cs = (((_F(2.443315711809948e-5) * t2 - _F(1.388731625493765e-3)) * t2 + _F(4.166664568298827e-2))
          * t2 * t2 - _F(0.5) * t2 + _F(1.0))
    odd = _F(q & _I(1))
    c2 = (odd * sn + (_F(1.0) - odd) * cs) * _F(1 - 2 * ((q + _I(1)) >> _I(1) & _I(1)))  # -: q 1, 2
    s2 = (odd * cs + (_F(1.0) - odd) * sn) * _F(1 - 2 * (q >> _I(1)))  # -: q 2, 3
    return _F(rad * c2), _F(rad * s2)


@register_jitable(inline="always")
def _knot(n, v):
    """Sigma-curve position of luma *v* for an n-knot lut: (knot i, fraction f to knot i + 1)."""
    t = min(max(_F(0.0), v * _F(n) - _F(0.5)), _F(n - 1))  # NaN: 0
    i = np.int32(t)
    return i, t - _F(i)


@register_jitable(inline="always")
def _lerp(lut, i, f):
    return lut[i] * (_F(1.0) - f) + lut[min(i + np.int32(1), np.int32(lut.shape[0] - 1))] * f


@register_jitable(inline="always")
def _sigma(lut, v):
    i, f = _knot(lut.shape[0], v)
    return _lerp(lut, i, f)


@register_jitable(inline="always")
def _finish(p, sig, acc, peak):
    v = p + sig * acc
    if peak > _F(0.0):
        v = _F(round(min(max(_F(0.0), v), peak)))
    return v


# ---- CPU ----------------------------------------------------------------------------------------

@njit(nogil=True, cache=True)
def _noise_row_cpu(key, r, row, w, ms, bs):  # pragma: no cover
    """Noise row r into ``row[:w]``; *ms*, *bs*: int32 scratch of ``(w + 1) // 2``. Two loops (the
    64-bit hash, then the float32 math on 32-bit lanes) vectorise better than one."""
    n = (w + 1) // 2
    for j in range(n):
        m, b = _pair_bits(key, r, j)
        ms[j] = m
        bs[j] = b
    for j in range(w // 2):
        a, b = _pair_normals(ms[j], bs[j])
        row[2 * j] = a
        row[2 * j + 1] = b
    if w % 2:
        row[w - 1] = _pair_normals(ms[n - 1], bs[n - 1])[0]


@njit(nogil=True, cache=True)
def _noise_cpu(key, out):  # pragma: no cover
    w = out.shape[1]
    ms = np.empty((w + 1) // 2, np.int32)
    bs = np.empty((w + 1) // 2, np.int32)
    for r in range(out.shape[0]):
        _noise_row_cpu(key, r, out[r], w, ms, bs)


@njit(nogil=True, cache=True)
def _regrain_cpu(plane, luma, lscale, fy, fx, lut, stab, kern, ky, kx, noise, key, peak, w,
                 out):  # pragma: no cover
    """Rows of ``out[:, :w]``; noise from *noise* or, when it is empty, drawn from *key*."""
    h = plane.shape[0]
    kh, kw = kern.shape
    sep = ky.shape[0] > 0
    gen = noise.shape[0] == 0
    ww = w + kw - 1
    raw = np.empty((kh if gen else 1, ww + 1), np.float32)  # ring of drawn noise rows
    hrows = np.empty((kh if sep else 1, w), np.float32)  # ring of horizontally filtered rows
    acc = np.empty(w, np.float32)
    acc64 = np.empty(0 if sep else w, np.float64)
    lrow = np.empty(w, np.float32)
    srow = np.empty(w, np.float32)
    irow = np.empty(w, np.int32)
    ms = np.empty((ww + 1) // 2, np.int32)
    bs = np.empty((ww + 1) // 2, np.int32)
    box = lscale / _F(fy * fx)
    for r in range(h + kh - 1):
        slot = r % kh
        if gen:
            _noise_row_cpu(key, r, raw[slot], ww, ms, bs)
        if sep:
            src = raw[slot] if gen else noise[r]
            dst = hrows[slot]
            c = kx[0]
            for x in range(w):
                dst[x] = c * src[x]
            for j in range(1, kw):
                c = kx[j]
                for x in range(w):
                    dst[x] += c * src[x + j]
        if r < kh - 1:
            continue
        y = r - kh + 1
        if sep:
            c = ky[0]
            src = hrows[y % kh]
            for x in range(w):
                acc[x] = c * src[x]
            for i in range(1, kh):
                c = ky[i]
                src = hrows[(y + i) % kh]
                for x in range(w):
                    acc[x] += c * src[x]
        else:  # general 2-D FIR, summed in float64 (kernels up to 9x9 of any sign)
            acc64[:] = 0.0
            for i in range(kh):
                src = raw[(y + i) % kh] if gen else noise[y + i]
                for j in range(kw):
                    c64 = float(kern[i, j])
                    for x in range(w):
                        acc64[x] += c64 * src[x + j]
            for x in range(w):
                acc[x] = acc64[x]
        if stab.shape[0] > 0:  # integer luma: sigma by code (box sum), one table read
            if fy == 1 and fx == 1:
                lr = luma[y]
                for x in range(w):
                    srow[x] = stab[np.uint32(lr[x])]
            else:
                irow[:] = 0
                for dy in range(fy):
                    lr = luma[y * fy + dy]
                    for dx in range(fx):
                        for x in range(w):
                            irow[x] += np.int32(lr[x * fx + dx])
                for x in range(w):
                    srow[x] = stab[np.uint32(irow[x])]
        else:
            if fy == 1 and fx == 1:
                lr = luma[y]
                for x in range(w):
                    lrow[x] = _F(lr[x]) * lscale
            else:
                lrow[:] = 0.0
                for dy in range(fy):
                    lr = luma[y * fy + dy]
                    for dx in range(fx):
                        for x in range(w):
                            lrow[x] += _F(lr[x * fx + dx])
                for x in range(w):
                    lrow[x] *= box
            n = lut.shape[0]
            for x in range(w):  # vectorised; the table reads below are not
                irow[x], lrow[x] = _knot(n, lrow[x])
            for x in range(w):
                srow[x] = _lerp(lut, irow[x], lrow[x])
        prow = plane[y]
        orow = out[y]
        for x in range(w):
            orow[x] = _finish(_F(prow[x]), srow[x], acc[x], peak)


# ---- CUDA ---------------------------------------------------------------------------------------

cuda: Any = None


@functools.cache
def _cuda_kernels() -> tuple[Any, Any]:
    global cuda
    from numba import cuda

    @cuda.jit
    def noise_k(key, out):  # pragma: no cover
        j, r = cuda.grid(2)
        if r < out.shape[0] and 2 * j < out.shape[1]:
            m, b0 = _pair_bits(key, r, j)
            a, b = _pair_normals(m, b0)
            out[r, 2 * j] = a
            if 2 * j + 1 < out.shape[1]:
                out[r, 2 * j + 1] = b

    @cuda.jit
    def regrain_k(plane, luma, lscale, fy, fx, lut, kern, noise, peak, out):  # pragma: no cover
        x, y = cuda.grid(2)
        if y < out.shape[0] and x < out.shape[1]:
            acc = _F(0.0)
            for i in range(kern.shape[0]):
                for j in range(kern.shape[1]):
                    acc += kern[i, j] * noise[y + i, x + j]
            lv = _F(0.0)
            for dy in range(fy):
                for dx in range(fx):
                    lv += _F(luma[y * fy + dy, x * fx + dx])
            lv = lv * (lscale / _F(fy * fx))
            out[y, x] = _finish(_F(plane[y, x]), _sigma(lut, lv), acc, peak)

    return noise_k, regrain_k


def _grid(w: int, h: int) -> tuple[tuple[int, int], tuple[int, int]]:
    block = (16, 8)
    return ((w + block[0] - 1) // block[0], (h + block[1] - 1) // block[1]), block


def _dev(a: Any) -> Any:
    return a if hasattr(a, "copy_to_host") else cuda.as_cuda_array(a)


# ---- argument checks ----------------------------------------------------------------------------

def _check(fn: str, plane: Any, noise: Any, kern: Any, luma: Any, lut: Any) -> tuple[int, int]:
    for name, a in (("plane", plane), ("noise", noise), ("kern", kern), ("luma", luma), ("lut", lut)):
        want = 1 if name == "lut" else 2
        if len(a.shape) != want or np.dtype(a.dtype) != np.float32:
            raise ValueError(f"{fn}: {name} must be a {want}-D float32 array, got {len(a.shape)}-D "
                             f"{a.dtype}; convert with .astype(np.float32)")
    h, w = plane.shape
    kh, kw = kern.shape
    if tuple(luma.shape) != (h, w):
        raise ValueError(f"{fn}: luma has shape {tuple(luma.shape)}, not the plane's {(h, w)}; "
                         "resample luma to the plane's size")
    if tuple(noise.shape) != (h + kh - 1, w + kw - 1):
        raise ValueError(f"{fn}: noise has shape {tuple(noise.shape)}, expected "
                         f"{(h + kh - 1, w + kw - 1)}; pad it by the kernel size minus one")
    if lut.shape[0] < 1 or kh < 1 or kw < 1:
        raise ValueError(f"{fn}: lut and kern must not be empty; pass at least one value")
    return h, w


def _check_seeded(fn: str, plane: Any, luma: Any, lut: Any, kern: Any, out: Any, sub: tuple[int, int],
                  width: int | None, peak: float) -> tuple[int, int, int, int]:
    for name, a, want in (("plane", plane, 2), ("luma", luma, 2), ("kern", kern, 2), ("lut", lut, 1),
                          ("out", out, 2)):
        if a is None:
            continue
        ok = [np.dtype(t) for t in ((np.float32,) if name in ("kern", "lut") else _INT_OK)]
        if len(a.shape) != want or np.dtype(a.dtype) not in ok:
            raise ValueError(f"{fn}: {name} must be a {want}-D array of {'/'.join(t.name for t in ok)}, got "
                             f"{len(a.shape)}-D {a.dtype}; convert with .astype(np.float32)")
    fy, fx = (int(v) for v in sub)
    h = plane.shape[0]
    w = plane.shape[1] if width is None else int(width)
    if not 0 < w <= plane.shape[1] or fy < 1 or fx < 1:
        raise ValueError(f"{fn}: width={width} / sub={sub} do not fit the plane {tuple(plane.shape)}; "
                         "pass width <= the plane's columns and sub factors >= 1")
    if luma.shape[0] < h * fy or luma.shape[1] < w * fx:
        raise ValueError(f"{fn}: luma has shape {tuple(luma.shape)}, too small for a {h}x{w} plane "
                         f"subsampled by {(fy, fx)}; pass the full-size luma plane")
    if out is not None and (out.shape[0] != h or out.shape[1] < w):
        raise ValueError(f"{fn}: out has shape {tuple(out.shape)}, not the plane's {(h, w)}; "
                         "pass an array of the plane's shape or None")
    if lut.shape[0] < 1 or kern.shape[0] < 1 or kern.shape[1] < 1:
        raise ValueError(f"{fn}: lut and kern must not be empty; pass at least one value")
    if not 0 <= peak < math.inf:
        raise ValueError(f"{fn}: peak={peak} must be finite and >= 0 (0: float output, no rounding)")
    return h, w, fy, fx


@functools.lru_cache(maxsize=64)
def _factor_cached(shape: tuple[int, int], data: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    k = np.frombuffer(data, np.float32).reshape(shape).astype(np.float64)
    u, s, vt = np.linalg.svd(k)
    if s[0] == 0 or (len(s) > 1 and s[1] > 1e-6 * s[0]):
        return None
    ky, kx = u[:, 0] * math.sqrt(s[0]), vt[0] * math.sqrt(s[0])
    if np.abs(np.outer(ky, kx) - k).max() > 1e-6 * np.abs(k).max():
        return None
    return ky.astype(np.float32), kx.astype(np.float32)


def _separable(kern: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ky, kx) with ``outer(ky, kx) == kern`` to 1e-6 relative, or two empty arrays."""
    k = np.ascontiguousarray(kern, np.float32)
    f = _factor_cached(tuple(k.shape), k.tobytes())
    empty = np.zeros(0, np.float32)
    return f if f is not None else (empty, empty)


_NO_TABLE = np.zeros(0, np.float32)


@functools.lru_cache(maxsize=32)
def _sigma_table(lut: bytes, luma_scale: float, count: int, code_max: int) -> np.ndarray:
    """Sigma for every integer box sum ``k`` of *count* luma codes: ``interp(k * scale / count)``."""
    lv = np.frombuffer(lut, np.float32).astype(np.float64)
    knots = (np.arange(len(lv)) + 0.5) / len(lv)
    k = np.arange(count * code_max + 1, dtype=np.float64)
    return np.interp(k * (luma_scale / count), knots, lv).astype(np.float32)


def _rows(a: np.ndarray) -> tuple[np.ndarray, bool]:
    """*a* as a C-layout array whose rows run to the row stride (padded planes: the kernel only
    touches the first ``width`` columns), and False; or a contiguous copy and True."""
    item = a.itemsize
    if a.flags.c_contiguous:
        return a, False
    rs = a.strides[0]
    if a.ndim == 2 and a.strides[1] == item and rs % item == 0 and rs >= a.shape[1] * item:
        return np.lib.stride_tricks.as_strided(a, (a.shape[0], rs // item), (rs, item),
                                               writeable=a.flags.writeable), False
    return np.ascontiguousarray(a), True


# ---- public API ---------------------------------------------------------------------------------

def gaussian_noise(key: int, h: int, w: int, out: np.ndarray | None = None) -> np.ndarray:
    """CPU (Numba) white Gaussian noise field ``(h, w)`` float32 of *key* (see the module notes)."""
    if out is None:
        out = np.empty((h, w), np.float32)
    elif out.shape != (h, w) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError("gaussian_noise: out must be a C-contiguous float32 (h, w) array; pass None")
    _noise_cpu(_U(key), out)
    return out


def gaussian_noise_cuda(key: int, h: int, w: int, out: Any | None = None) -> Any:
    """:func:`gaussian_noise` drawn on the device (``numba.cuda`` array)."""
    noise_k, _ = _cuda_kernels()
    if out is None:
        out = cuda.device_array((h, w), np.float32)
    grid, block = _grid((w + 1) // 2, h)
    noise_k[grid, block](_U(key), _dev(out))  # simulator: NumPy warns about the (intended) uint64 wrap
    return out


def gaussian_noise_reference(key: int, h: int, w: int) -> np.ndarray:
    """:func:`gaussian_noise` in NumPy (float64 ln/cos/sin, float32 result)."""
    r = np.arange(h, dtype=np.uint64)[:, None]
    j = np.arange((w + 1) // 2, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        z = _U(key) + ((r << _S32) | j) * _GOLDEN
        z = (z ^ (z >> _S30)) * _C1
        z = (z ^ (z >> _S27)) * _C2
        z = z ^ (z >> _S31)
    rad = np.sqrt(-2.0 * np.log(((z >> _S40).astype(np.float64) + 1.0) / (1 << 24)))
    th = 2.0 * np.pi * (z & _M24).astype(np.float64) / (1 << 24)
    out = np.empty((h, 2 * j.shape[1]))
    out[:, 0::2], out[:, 1::2] = rad * np.cos(th), rad * np.sin(th)
    return out[:, :w].astype(np.float32)


def regrain_plane(plane: np.ndarray, noise: np.ndarray, kern: np.ndarray, luma: np.ndarray,
                  lut: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """CPU (Numba) grain synthesis of one float32 plane with the noise given; returns ``out``
    (new float32 array if None)."""
    h, w = _check("regrain_plane", plane, noise, kern, luma, lut)
    if out is None:
        out = np.empty((h, w), np.float32)
    elif out.shape != (h, w) or out.dtype != np.float32 or not out.flags.writeable:
        raise ValueError("regrain_plane: out must be a writable float32 array of the plane's shape; "
                         "pass out=None to allocate one")
    ky, kx = _separable(kern)
    o, copied = _rows(out)
    _regrain_cpu(_rows(plane)[0], _rows(luma)[0], _F(1.0), 1, 1, np.ascontiguousarray(lut), _NO_TABLE,
                 np.ascontiguousarray(kern), ky, kx, np.ascontiguousarray(noise), _U(0), _F(0.0), w, o)
    if copied:
        out[...] = o
    return out


def regrain_plane_seeded(plane: np.ndarray, luma: np.ndarray, lut: np.ndarray, kern: np.ndarray, key: int,
                         *, out: np.ndarray | None = None, peak: float = 0.0, luma_scale: float = 1.0,
                         sub: tuple[int, int] = (1, 1), width: int | None = None) -> np.ndarray:
    """CPU (Numba) grain synthesis of one plane, noise drawn from *key*; returns ``out``.

    *plane*, *luma* and *out* are uint8/uint16/float32, possibly row-padded views (then pass the
    real *width*); *luma* is full size, averaged over ``sub = (fy, fx)`` boxes and times
    *luma_scale* (``1 / (2**bits - 1)`` for integer luma); ``peak > 0`` rounds and clamps to
    ``0..peak``. ``out=None`` allocates a float32 ``(h, width)`` array.
    """
    h, w, fy, fx = _check_seeded("regrain_plane_seeded", plane, luma, lut, kern, out, sub, width, peak)
    if out is None:
        out = np.empty((h, w), np.float32)
    elif not out.flags.writeable:
        raise ValueError("regrain_plane_seeded: out is read-only; pass a writable array or None")
    ky, kx = _separable(kern)
    o, copied = _rows(out)
    lut = np.ascontiguousarray(lut, np.float32)
    stab = _NO_TABLE if luma.dtype == np.float32 else _sigma_table(lut.tobytes(), float(luma_scale), fy * fx,
                                                                   np.iinfo(luma.dtype).max)
    _regrain_cpu(_rows(plane)[0], _rows(luma)[0], _F(luma_scale), fy, fx, lut, stab,
                 np.ascontiguousarray(kern, np.float32), ky, kx, np.zeros((0, 0), np.float32), _U(key),
                 _F(peak), w, o)
    if copied:
        out[...] = o
    return out


def regrain_plane_cuda(plane: Any, noise: Any, kern: Any, luma: Any, lut: Any,
                       out: Any | None = None) -> Any:
    """``numba.cuda`` :func:`regrain_plane` on device arrays (CuPy/torch/Numba); returns ``out``."""
    _, regrain_k = _cuda_kernels()
    h, w = _check("regrain_plane_cuda", plane, noise, kern, luma, lut)
    if out is None:
        out = cuda.device_array((h, w), np.float32)
    grid, block = _grid(w, h)
    regrain_k[grid, block](_dev(plane), _dev(luma), _F(1.0), 1, 1, _dev(lut), _dev(kern), _dev(noise),
                           _F(0.0), _dev(out))
    return out


def regrain_plane_seeded_cuda(plane: Any, luma: Any, lut: Any, kern: Any, key: int, *, out: Any | None = None,
                              peak: float = 0.0, luma_scale: float = 1.0,
                              sub: tuple[int, int] = (1, 1)) -> Any:
    """``numba.cuda`` :func:`regrain_plane_seeded` on device arrays: the noise is drawn on the device
    (one ``(h + kh - 1, w + kw - 1)`` float32 scratch field); returns ``out`` (float32 if None)."""
    _, regrain_k = _cuda_kernels()
    h, w, fy, fx = _check_seeded("regrain_plane_seeded_cuda", plane, luma, lut, kern, out, sub, None, peak)
    if out is None:
        out = cuda.device_array((h, w), np.float32)
    kh, kw = kern.shape
    noise = gaussian_noise_cuda(key, h + kh - 1, w + kw - 1)
    grid, block = _grid(w, h)
    regrain_k[grid, block](_dev(plane), _dev(luma), _F(luma_scale), fy, fx, _dev(lut), _dev(kern), noise,
                           _F(peak), _dev(out))
    return out


def regrain_plane_reference(plane: np.ndarray, noise: np.ndarray, kern: np.ndarray, luma: np.ndarray,
                            lut: np.ndarray) -> np.ndarray:
    """:func:`regrain_plane` in vectorised NumPy (float64 math, float32 result)."""
    h, w = _check("regrain_plane_reference", plane, noise, kern, luma, lut)
    return _reference(plane, noise, kern, luma, lut).astype(np.float32)


def regrain_plane_seeded_reference(plane: np.ndarray, luma: np.ndarray, lut: np.ndarray, kern: np.ndarray,
                                   key: int, *, peak: float = 0.0, luma_scale: float = 1.0,
                                   sub: tuple[int, int] = (1, 1)) -> np.ndarray:
    """:func:`regrain_plane_seeded` in NumPy (float64 math; float32 result, rounded and clamped
    when ``peak > 0``)."""
    h, w, fy, fx = _check_seeded("regrain_plane_seeded_reference", plane, luma, lut, kern, None, sub, None,
                                 peak)
    kh, kw = kern.shape
    lum = luma[:h * fy, :w * fx].astype(np.float64).reshape(h, fy, w, fx).mean(axis=(1, 3)) * luma_scale
    v = _reference(plane, gaussian_noise_reference(key, h + kh - 1, w + kw - 1), kern, lum, lut)
    return (np.clip(np.rint(v), 0, peak) if peak > 0 else v).astype(np.float32)


def _reference(plane: np.ndarray, noise: np.ndarray, kern: np.ndarray, luma: np.ndarray,
               lut: np.ndarray) -> np.ndarray:
    h, w = plane.shape
    nz = noise.astype(np.float64)
    shaped = np.zeros((h, w))
    for i in range(kern.shape[0]):
        for j in range(kern.shape[1]):
            shaped += float(kern[i, j]) * nz[i:i + h, j:j + w]
    n = lut.shape[0]
    knots = (np.arange(n) + 0.5) / n
    sig = np.interp(luma.astype(np.float64), knots, lut.astype(np.float64))
    return plane.astype(np.float64) + sig * shaped


def _warm_up() -> None:
    lut, k = np.ones(2, np.float32), np.ones((3, 3), np.float32)
    gaussian_noise(1, 2, 3)
    for t in _INT_OK:
        z = np.zeros((2, 3), t)
        regrain_plane_seeded(z, z, lut, k, 1, out=z, peak=1.0 if t != np.float32 else 0.0)
    z = np.zeros((2, 3), np.float32)
    regrain_plane(z, np.zeros((4, 5), np.float32), k, z, lut)


_warm_up()
