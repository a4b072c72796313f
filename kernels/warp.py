"""Backward warping of float planes by a dense flow field, and a forward-backward occlusion mask.

Warp: ``out[y, x] = src[y + flow_y[y, x], x + flow_x[y, x]]``, all arrays float32 of one shape (H, W).

* ``interp="bilinear"`` (2x2 taps) or ``"bicubic"`` (4x4 taps, Catmull-Rom: Keys with a = -0.5).
* The border mode applies to each tap: ``"clamp"`` replicates the edge (OpenCV BORDER_REPLICATE);
  ``"reflect"`` mirrors without repeating the edge pixel (-1 -> 1, W -> W-2; BORDER_REFLECT_101);
  ``"constant"`` reads ``fill`` (default 0) for taps outside the plane.
* Each flow component d is split exactly into floor(d) and d - floor(d) before the pixel position
  is added, so coordinates keep full precision anywhere; zero flow is a bit-exact copy and integer
  flows bit-exact shifts. Flows are clipped to +-2**22 px; NaN counts as -2**22 (the border decides).
  Results agree with the float64 reference to ~1e-6 (the CPU interpolates inside pixels in float32).

Occlusion mask (Sundaram et al. 2010, Ruder et al. 2016): with forward flow F (t -> t+1) and
backward flow B (t+1 -> t), B sampled bilinearly at p = x + F(x), pixel x of frame t is consistent
(1.0) where p lies inside the plane and |F(x) + B(p)|^2 <= alpha * (|F(x)|^2 + |B(p)|^2) + beta;
else occluded or unreliable (0.0); a pixel whose target leaves the frame has no counterpart: 0.0.
Computed in float64 everywhere; the CPU, CUDA-simulator and reference masks are identical.

Variants: ``warp`` / ``occlusion_mask`` are Numba CPU kernels, serial and ``nogil`` (parallelism
comes from VapourSynth frame threads), compiled at import. Planes may be row-padded views
(``np.asarray`` of a VapourSynth plane): kernels get a flat 1-D view plus the row stride, no copy.
``warp_cuda`` / ``occlusion_mask_cuda`` are ``numba.cuda`` kernels on device arrays (CuPy, torch,
Numba) through ``__cuda_array_interface__`` on the legacy default stream; they also run under
``NUMBA_ENABLE_CUDASIM=1``; ``numba.cuda`` is imported on first use. ``warp_reference`` /
``occlusion_mask_reference`` are vectorised NumPy in float64, for tests. The per-pixel math is
written once (``register_jitable``) and compiled for both targets.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal

import numpy as np
from llvmlite import ir as llvm_ir
from numba import config as _numba_config
from numba import njit
from numba.core import cgutils, types
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import FunctionPass, register_pass
from numba.core.untyped_passes import IRProcessing
from numba.extending import intrinsic, register_jitable
from numpy.lib.stride_tricks import as_strided

__all__ = ["warp", "warp_cuda", "warp_reference", "occlusion_mask", "occlusion_mask_cuda",
           "occlusion_mask_reference"]

Interp = Literal["bilinear", "bicubic"]
Border = Literal["clamp", "reflect", "constant"]
_INTERP = {"bilinear": 0, "bicubic": 1}
_BORDER = {"clamp": 0, "reflect": 1, "constant": 2}
_BIG = 4194304.0  # 2**22: flow clip, exact in float32
_B32 = np.float32(_BIG)
_AHEAD = 128  # pixels: how far the bilinear taps prefetch the lower row


# ---- per-pixel math, shared by the CPU and CUDA kernels ----------------------------------------

@register_jitable
def _bidx(i, n, border):
    """Map tap index ``i`` into [0, n) under the border mode; -1 means "read fill"."""
    if 0 <= i < n:
        return i
    if border == 0:
        return 0 if i < 0 else n - 1
    if border == 1:
        if n == 1:
            return 0
        p = 2 * (n - 1)
        i = i % p
        return p - i if i >= n else i
    return -1


@register_jitable
def _tap(src, rs, y, x, fill):
    return fill if x < 0 or y < 0 else float(src[y * rs + x])


@register_jitable
def _split(d):
    """Clip a flow component, return (floor, fraction in [0, 1)), both exact."""
    d = float(d)
    if not abs(d) <= _BIG:
        d = _BIG if d > 0.0 else -_BIG
    i = int(math.floor(d))  # CUDA's math.floor returns a float
    return i, d - i


@register_jitable
def _cubic(t):
    """Catmull-Rom weights of the taps at -1, 0, 1, 2 for fraction t (works on arrays too)."""
    t2 = t * t
    t3 = t2 * t
    return (0.5 * (2.0 * t2 - t3 - t), 0.5 * (3.0 * t3 - 5.0 * t2 + 2.0),
            0.5 * (4.0 * t2 - 3.0 * t3 + t), 0.5 * (t3 - t2))


@register_jitable
def _sample(src, rs, h, w, x, y, dx, dy, interp, border, fill):
    """float64 value of ``src`` (flat, row stride ``rs``) at (x + dx, y + dy), any border."""
    ix, tx = _split(dx)
    iy, ty = _split(dy)
    ix += x
    iy += y
    if interp == 0:
        x0, x1 = _bidx(ix, w, border), _bidx(ix + 1, w, border)
        y0, y1 = _bidx(iy, h, border), _bidx(iy + 1, h, border)
        a, b = _tap(src, rs, y0, x0, fill), _tap(src, rs, y0, x1, fill)
        c, d = _tap(src, rs, y1, x0, fill), _tap(src, rs, y1, x1, fill)
        return (a * (1.0 - tx) + b * tx) * (1.0 - ty) + (c * (1.0 - tx) + d * tx) * ty
    u0, u1, u2, u3 = _cubic(tx)
    v = _cubic(ty)
    x0, x1 = _bidx(ix - 1, w, border), _bidx(ix, w, border)
    x2, x3 = _bidx(ix + 1, w, border), _bidx(ix + 2, w, border)
    acc = 0.0
    for j in range(4):
        r = _bidx(iy - 1 + j, h, border)
        acc += v[j] * (u0 * _tap(src, rs, r, x0, fill) + u1 * _tap(src, rs, r, x1, fill)
                       + u2 * _tap(src, rs, r, x2, fill) + u3 * _tap(src, rs, r, x3, fill))
    return acc


@register_jitable
def _bilerp(arr, rs, x0, x1, y0, y1, tx, ty):
    r0, r1 = y0 * np.uint64(rs), y1 * np.uint64(rs)
    a, b = np.float64(arr[r0 + x0]), np.float64(arr[r0 + x1])
    c, d = np.float64(arr[r1 + x0]), np.float64(arr[r1 + x1])
    return (a * (1.0 - tx) + b * tx) * (1.0 - ty) + (c * (1.0 - tx) + d * tx) * ty


@register_jitable
def _consistent(fx, fy, bx_arr, bxrs, by_arr, byrs, h, w, x, y, alpha, beta):
    """1.0 where pixel (x, y) passes the forward-backward check, else 0.0; branch-free."""
    fx, fy = np.float64(fx), np.float64(fy)
    px, py = x + fx, y + fy
    inside = (px >= 0.0) & (px <= w - 1) & (py >= 0.0) & (py <= h - 1)
    px = px if inside else 0.0  # keeps the taps valid (NaN flows too)
    py = py if inside else 0.0
    x0, y0 = np.uint64(px), np.uint64(py)  # px, py >= 0: truncation is floor; unsigned: no wraparound
    tx, ty = px - np.float64(x0), py - np.float64(y0)
    x1 = x0 + np.uint64(x0 < np.uint64(w - 1))  # clamped second tap (CUDA has no unsigned min)
    y1 = y0 + np.uint64(y0 < np.uint64(h - 1))
    bx = _bilerp(bx_arr, bxrs, x0, x1, y0, y1, tx, ty)
    by = _bilerp(by_arr, byrs, x0, x1, y0, y1, tx, ty)
    ux, uy = fx + bx, fy + by
    rhs = alpha * ((fx * fx + fy * fy) + (bx * bx + by * by)) + beta
    return 1.0 if inside & (ux * ux + uy * uy <= rhs) else 0.0


# ---- CPU kernels -------------------------------------------------------------------------------
# Row by row, one vectorised loop splits the flow and flags the pixels whose taps all lie inside;
# bilinear and bicubic then read their taps by scalar loads (float32 math); the rest (borders except
# bilinear clamp, huge or NaN flows) go to ``_warp_rest_cpu``. The occlusion mask's loop gathers:
# LLVM vectorises a gather loop only if it knows that ``out`` aliases no input, which Numba's jit
# options cannot say: a one-pass pipeline sets the ``noalias`` flag Numba sets for its own parfors.
# The wrappers check that ``out`` overlaps no input.

@register_pass(mutates_CFG=False, analysis_only=True)
class _NoAliasArgs(FunctionPass):
    _name = "vsrestore_noalias_args"

    def __init__(self) -> None:
        FunctionPass.__init__(self)

    def run_pass(self, state: Any) -> bool:
        state.flags.noalias = True
        return False


class _NoAliasCompiler(CompilerBase):
    def define_pipelines(self) -> list[Any]:
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.add_pass_after(_NoAliasArgs, IRProcessing)
        pm.finalize()
        return [pm]


_jit: Any = njit(nogil=True, cache=True, pipeline_class=_NoAliasCompiler)


@register_jitable
def _base(dx, dy, x, y, rs, lo, xe, ye, clamp):
    """float32 flow at int32 (x, y) -> (int32 flat index of the first tap, tx, ty, taps inside).

    Taps are inside when lo <= ix < xe and lo <= iy < ye. ``clamp`` (bilinear) moves an outside
    pair onto the edge pair with t = 0 or 1: exactly per-tap edge replication. int32 math goes
    through NumPy ufuncs (Python operators widen to int64), so the loop vectorises twice as wide.
    """
    dx = dx if dx > -_B32 else -_B32  # NaN -> -2**22, as in _split
    dx = dx if dx < _B32 else _B32
    dy = dy if dy > -_B32 else -_B32
    dy = dy if dy < _B32 else _B32
    fdx, fdy = np.floor(dx), np.floor(dy)
    tx, ty = dx - fdx, dy - fdy
    ix, iy = np.add(np.int32(fdx), x), np.add(np.int32(fdy), y)
    if clamp:
        tx = np.float32(0.0) if ix < lo else (np.float32(1.0) if ix >= xe else tx)
        ty = np.float32(0.0) if iy < lo else (np.float32(1.0) if iy >= ye else ty)
        ix = np.minimum(np.maximum(ix, lo), np.subtract(xe, np.int32(1)))
        iy = np.minimum(np.maximum(iy, lo), np.subtract(ye, np.int32(1)))
    good = (ix >= lo) & (ix < xe) & (iy >= lo) & (iy < ye)
    k = np.add(np.multiply(np.subtract(iy, lo), rs), np.subtract(ix, lo)) if good else np.int32(0)
    return k, tx, ty, good


@njit(nogil=True, cache=True, fastmath={"contract"})  # FMA only
def _bilinear_index(fx, fy, x0, y, h, w, rs, clamp, kb, txb, tyb, ok):  # pragma: no cover
    """Vectorised: each pixel's first-tap index and fractions into the row buffers."""
    i32 = np.int32
    x0, y, rs, xe, ye = i32(x0), i32(y), i32(rs), i32(w - 1), i32(h - 1)
    for i in range(kb.size):
        k, tx, ty, good = _base(fx[i], fy[i], np.add(x0, i32(i)), y, rs, i32(0), xe, ye, clamp)
        kb[i], txb[i], tyb[i], ok[i] = k, tx, ty, good


@register_jitable
def _cubic32(t):
    """:func:`_cubic` in float32: exactly (0, 1, 0, 0) at t = 0, so zero and integer flows stay exact."""
    half, two, three = np.float32(0.5), np.float32(2.0), np.float32(3.0)
    t2 = t * t
    t3 = t2 * t
    return (half * (two * t2 - t3 - t), half * (three * t3 - np.float32(5.0) * t2 + two),
            half * (np.float32(4.0) * t2 - three * t3 + t), half * (t3 - t2))


@njit(nogil=True, cache=True, fastmath={"contract"})
def _bicubic_index(fx, fy, x0, y, h, w, rs, kb, wb, ok):  # pragma: no cover
    """Vectorised: each pixel's top-left tap index and its 4 + 4 Catmull-Rom weights (rows of *wb*)."""
    i32 = np.int32
    x0, y, rs, xe, ye = i32(x0), i32(y), i32(rs), i32(w - 2), i32(h - 2)
    for i in range(kb.size):
        k, tx, ty, good = _base(fx[i], fy[i], np.add(x0, i32(i)), y, rs, i32(1), xe, ye, False)
        u0, u1, u2, u3 = _cubic32(tx)
        v0, v1, v2, v3 = _cubic32(ty)
        kb[i], ok[i] = k, good
        wb[0, i], wb[1, i], wb[2, i], wb[3, i] = u0, u1, u2, u3
        wb[4, i], wb[5, i], wb[6, i], wb[7, i] = v0, v1, v2, v3


@intrinsic
def _prefetch(typingctx: Any, arr: Any, idx: Any) -> Any:
    """Hint the CPU to fetch ``arr[idx]`` into all cache levels (``llvm.prefetch``: never faults)."""
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        i8p, i32 = llvm_ir.IntType(8).as_pointer(), llvm_ir.IntType(32)
        fnty = llvm_ir.FunctionType(llvm_ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        ptr = builder.bitcast(builder.gep(data, [args[1]]), i8p)
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])  # read, high locality, data cache
        return context.get_dummy_value()
    return types.void(arr, idx), codegen


@njit(nogil=True, cache=True, fastmath={"contract"})  # the default pipeline: see the bilinear taps
def _warp_cpu(src, srs, fx, fxrs, fy, fyrs, out, ors, h, w, interp, clamp):  # pragma: no cover
    """Interpolate the pixels whose taps lie inside; return the others as (y << 32) | x."""
    ok = np.empty(w, np.bool_)
    kb = np.empty(w, np.int32)
    txb, tyb = np.empty(w, np.float32), np.empty(w, np.float32)
    wb = np.empty((8 if interp else 0, w), np.float32)
    us, one, two, three = np.uint64(srs), np.uint64(1), np.uint64(2), np.uint64(3)
    okn = ok.view(np.uint8)
    rest = np.empty(h * w, np.int64)  # only the pages written are touched
    nrest = 0
    for y in range(h):
        frow, grow = fx[y * fxrs:y * fxrs + w], fy[y * fyrs:y * fyrs + w]
        orow = out[y * ors:y * ors + w]
        if interp == 0:
            _bilinear_index(frow, grow, 0, y, h, w, srs, clamp, kb, txb, tyb, ok)
            # the taps: scalar loads, in this function compiled with Numba's default pipeline
            # (``out`` may alias ``src`` as far as LLVM knows), so the loop does not become
            # AVX-512 gathers, which measured 1.4x slower (AMD Zen 4, benchmarks/bench_warp.py).
            # The hardware prefetcher follows the upper tap row but not the lower one: prefetching
            # it _AHEAD pixels early halved the time of this loop there.
            n = w if h > 1 and w > 1 else 0  # 1 px high or wide: no pixel is inside, taps would overrun
            for i in range(min(_AHEAD, n)):
                _prefetch(src, np.uint64(kb[i]) + us)
            for i in range(n):
                k, tx, ty = np.uint64(kb[i]), txb[i], tyb[i]
                _prefetch(src, np.uint64(kb[min(i + _AHEAD, w - 1)]) + us)
                a, b = src[k], src[k + one]
                c, d = src[k + us], src[k + us + one]
                top, bot = (a - tx * a) + tx * b, (c - tx * c) + tx * d  # exact at t = 0 and t = 1
                orow[i] = (top - ty * top) + ty * bot
        elif h > 3 and w > 3:
            # the same scheme: weights in a vectorised pass, then 16 scalar tap loads a pixel
            # (2x faster than float64 gathers), the lower two tap rows prefetched
            _bicubic_index(frow, grow, 0, y, h, w, srs, kb, wb, ok)
            for i in range(w):
                k = np.uint64(kb[i])
                ahead = np.uint64(kb[min(i + _AHEAD, w - 1)]) + us + us
                _prefetch(src, ahead)
                _prefetch(src, ahead + us)
                u0, u1, u2, u3 = wb[0, i], wb[1, i], wb[2, i], wb[3, i]
                a0 = u0 * src[k] + u1 * src[k + one] + u2 * src[k + two] + u3 * src[k + three]
                k += us
                a1 = u0 * src[k] + u1 * src[k + one] + u2 * src[k + two] + u3 * src[k + three]
                k += us
                a2 = u0 * src[k] + u1 * src[k + one] + u2 * src[k + two] + u3 * src[k + three]
                k += us
                a3 = u0 * src[k] + u1 * src[k + one] + u2 * src[k + two] + u3 * src[k + three]
                orow[i] = wb[4, i] * a0 + wb[5, i] * a1 + wb[6, i] * a2 + wb[7, i] * a3
        else:  # under 4 px high or wide: no pixel is inside (the 4x4 taps would overrun)
            ok[:] = False
        inside = np.int32(0)
        for i in range(w):  # counted apart: a reduction in the loop above stops vectorisation
            inside += okn[i]
        if inside < w:
            for i in range(w):
                if not ok[i]:
                    rest[nrest] = (y << 32) | i
                    nrest += 1
    return rest[:nrest]


@njit(nogil=True, cache=True)
def _warp_rest_cpu(src, srs, fx, fxrs, fy, fyrs, out, ors, h, w, interp, border, fill,
                   rest):  # pragma: no cover
    """The pixels ``_warp_cpu`` left (a separate kernel: inlined there, this code slows its loops)."""
    for p in rest:
        y, x = p >> 32, p & 0xFFFFFFFF
        out[y * ors + x] = _sample(src, srs, h, w, x, y, fx[y * fxrs + x], fy[y * fyrs + x],
                                   interp, border, fill)


@_jit
def _mask_cpu(fx, fxrs, fy, fyrs, bx, bxrs, by, byrs, out, ors, h, w, alpha, beta):  # pragma: no cover
    for y in range(h):
        frow, grow, orow = fx[y * fxrs:y * fxrs + w], fy[y * fyrs:y * fyrs + w], out[y * ors:y * ors + w]
        for x in range(w):
            orow[x] = _consistent(frow[x], grow[x], bx, bxrs, by, byrs, h, w, x, y, alpha, beta)


# ---- CUDA kernels (numba.cuda imported on first use) -------------------------------------------

cuda: Any = None  # numba.cuda once bound; a module global, which the simulator can swap


@functools.cache
def _cuda_kernels() -> tuple[Any, Any]:
    global cuda
    from numba import cuda

    @cuda.jit
    def warp_k(src, srs, fx, fxrs, fy, fyrs, out, ors, h, w, interp, border, fill):  # pragma: no cover
        x, y = cuda.grid(2)
        if x < w and y < h:
            out[y * ors + x] = _sample(src, srs, h, w, x, y, fx[y * fxrs + x], fy[y * fyrs + x],
                                       interp, border, fill)

    @cuda.jit
    def mask_k(fx, fxrs, fy, fyrs, bx, bxrs, by, byrs, out, ors, h, w, alpha, beta):  # pragma: no cover
        x, y = cuda.grid(2)
        if x < w and y < h:
            out[y * ors + x] = _consistent(fx[y * fxrs + x], fy[y * fyrs + x], bx, bxrs, by, byrs,
                                           h, w, x, y, alpha, beta)

    return warp_k, mask_k


class _FlatCAI:
    """A 1-D float32 ``__cuda_array_interface__`` over a row-padded 2-D device array."""

    def __init__(self, base: Any, n: int) -> None:
        self.base = base  # keeps the memory alive
        ptr = base.__cuda_array_interface__["data"][0]
        self.__cuda_array_interface__ = {"shape": (n,), "strides": None, "typestr": "<f4",
                                         "data": (ptr, False), "version": 3}


# ---- validation and layout ---------------------------------------------------------------------

def _modes(fn: str, interp: str, border: str) -> tuple[int, int]:
    if interp not in _INTERP:
        raise ValueError(f"{fn}: interp={interp!r} is not one of {sorted(_INTERP)}")
    if border not in _BORDER:
        raise ValueError(f"{fn}: border={border!r} is not one of {sorted(_BORDER)}")
    return _INTERP[interp], _BORDER[border]


def _check(fn: str, named: dict[str, Any]) -> tuple[int, int]:
    """All arrays 2-D float32 of one shape; returns (h, w)."""
    shape, first = None, ""
    for name, a in named.items():
        if a.ndim != 2 or a.dtype != np.float32:
            raise ValueError(f"{fn}: {name} must be a 2-D float32 array, got {a.ndim}-D {a.dtype}; "
                             f"pass one plane, converted with .astype(np.float32)")
        if shape is None:
            shape, first = tuple(a.shape), name
        elif tuple(a.shape) != shape:
            raise ValueError(f"{fn}: {name} has shape {tuple(a.shape)} but {first} has {shape}; "
                             f"flows and out must have the plane's shape (resize and rescale the flow)")
    assert shape is not None
    return shape[0], shape[1]


def _rows_ok(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    h, w = shape
    return (w <= 1 or strides[1] == 4) and (h <= 1 or (strides[0] % 4 == 0 and strides[0] >= 4 * w))


def _host_flat(fn: str, name: str, a: np.ndarray, writable: bool = False) -> tuple[np.ndarray, int]:
    """Flat C-contiguous 1-D view of a row-padded plane and its row stride (copy only if needed)."""
    if not _rows_ok(a.shape, a.strides):
        if writable:
            raise ValueError(f"{fn}: {name} needs unit column stride and non-overlapping rows; "
                             f"pass np.empty_like(src) or a VapourSynth plane")
        a = np.ascontiguousarray(a)
    h, w = a.shape
    rs = a.strides[0] // 4 if h > 1 else w
    return as_strided(a, shape=((h - 1) * rs + w,), strides=(4,), writeable=writable), rs


def _out_host(fn: str, out: Any, shape: tuple[int, int], inputs: list[np.ndarray]) -> np.ndarray:
    if out is None:
        return np.empty(shape, np.float32)
    out = np.asarray(out)
    _check(fn, {"input": inputs[0], "out": out})
    if not out.flags.writeable:
        raise ValueError(f"{fn}: out is read-only; pass a writable array (e.g. a new frame's plane)")
    if any(np.may_share_memory(out, a) for a in inputs):
        raise ValueError(f"{fn}: out overlaps an input; pass a separate output array")
    return out


def _dev(fn: str, name: str, a: Any, writable: bool = False) -> tuple[Any, tuple[int, int], int]:
    """(flat 1-D device array, (h, w), row stride) of a 2-D float32 device array."""
    sim = getattr(_numba_config, "ENABLE_CUDASIM", 0)  # the simulator's arrays wrap NumPy arrays
    d = np.asarray(a) if sim else cuda.as_cuda_array(a)
    h, w = _check(fn, {name: d})
    if not (h and w):
        return d, (h, w), 0
    if sim:
        flat, rs = _host_flat(fn, name, d, writable)
        return (flat if writable else cuda.In(flat)), (h, w), rs  # In: no copy back
    if not _rows_ok(d.shape, d.strides):
        raise ValueError(f"{fn}: {name} needs unit column stride and non-overlapping rows; make it "
                         f"contiguous first (cupy.ascontiguousarray, tensor.contiguous())")
    rs = d.strides[0] // 4 if h > 1 else w
    return cuda.as_cuda_array(_FlatCAI(d, (h - 1) * rs + w)), (h, w), rs


def _launch(fn: str, kernel: Any, named: dict[str, Any], out: Any, *scalars: Any) -> Any:
    """Run ``kernel`` over the plane; ``out`` defaults to a new Numba device array, returned."""
    if out is None:
        out = cuda.device_array(tuple(next(iter(named.values())).shape), np.float32)
    devs = [_dev(fn, n, a) for n, a in named.items()] + [_dev(fn, "out", out, writable=True)]
    shapes = {n: s for n, (_, s, _) in zip([*named, "out"], devs, strict=True)}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"{fn}: shapes differ ({shapes}); flows and out must have the plane's shape")
    h, w = devs[0][1]
    if h and w:
        args = [x for d, _, rs in devs for x in (d, rs)]
        kernel[((w + 31) // 32, (h + 7) // 8), (32, 8)](*args, h, w, *scalars)
    return out


# ---- public API --------------------------------------------------------------------------------

def warp(src: np.ndarray, flow_x: np.ndarray, flow_y: np.ndarray, *, interp: Interp = "bilinear",
         border: Border = "clamp", fill: float = 0.0, out: np.ndarray | None = None) -> np.ndarray:
    """Backward-warp a float32 plane by a dense flow (Numba, CPU, releases the GIL).

    ``out[y, x] = src[y + flow_y[y, x], x + flow_x[y, x]]``; see the module docstring. Inputs may
    be row-padded views; ``out`` (optional, same shape, float32, may be padded) is returned.
    """
    src, flow_x, flow_y = np.asarray(src), np.asarray(flow_x), np.asarray(flow_y)
    h, w = _check("warp", {"src": src, "flow_x": flow_x, "flow_y": flow_y})
    ii, bb = _modes("warp", interp, border)
    res = _out_host("warp", out, (h, w), [src, flow_x, flow_y])
    if h and w:
        (s, srs), (fx, fxrs), (fy, fyrs) = (_host_flat("warp", n, a) for n, a in
                                            (("src", src), ("flow_x", flow_x), ("flow_y", flow_y)))
        o, ors = _host_flat("warp", "out", res, writable=True)
        if s.size >= 2**31:
            raise ValueError(f"warp: src spans {s.size} samples; the CPU kernel indexes with int32 (< 2**31)")
        args = (s, srs, fx, fxrs, fy, fyrs, o, ors, h, w, ii)
        rest = _warp_cpu(*args, ii == 0 and bb == 0 and h > 1 and w > 1)
        if rest.size:
            _warp_rest_cpu(*args, bb, float(fill), rest)
    return res


def occlusion_mask(fwd_x: np.ndarray, fwd_y: np.ndarray, bwd_x: np.ndarray, bwd_y: np.ndarray, *,
                   alpha: float = 0.01, beta: float = 0.5, out: np.ndarray | None = None) -> np.ndarray:
    """Forward-backward consistency mask of frame t: float32, 1.0 consistent, 0.0 occluded.

    ``fwd_*`` is the flow t -> t+1, ``bwd_*`` the flow t+1 -> t (Numba, CPU, releases the GIL).
    """
    arrs = {"fwd_x": np.asarray(fwd_x), "fwd_y": np.asarray(fwd_y),
            "bwd_x": np.asarray(bwd_x), "bwd_y": np.asarray(bwd_y)}
    h, w = _check("occlusion_mask", arrs)
    res = _out_host("occlusion_mask", out, (h, w), list(arrs.values()))
    if h and w:
        flat = [x for n, a in arrs.items() for x in _host_flat("occlusion_mask", n, a)]
        flat += _host_flat("occlusion_mask", "out", res, writable=True)
        _mask_cpu(*flat, h, w, float(alpha), float(beta))
    return res


def warp_cuda(src: Any, flow_x: Any, flow_y: Any, *, interp: Interp = "bilinear",
              border: Border = "clamp", fill: float = 0.0, out: Any = None) -> Any:
    """:func:`warp` on CUDA device arrays (CuPy, torch, Numba: any ``__cuda_array_interface__``).

    Returns ``out`` if given, else a new Numba device array (zero-copy: ``cupy.asarray(r)``,
    ``torch.as_tensor(r, device="cuda")``). Results match :func:`warp` to ~1e-6.
    """
    ii, bb = _modes("warp_cuda", interp, border)
    return _launch("warp_cuda", _cuda_kernels()[0], {"src": src, "flow_x": flow_x, "flow_y": flow_y},
                   out, ii, bb, float(fill))


def occlusion_mask_cuda(fwd_x: Any, fwd_y: Any, bwd_x: Any, bwd_y: Any, *, alpha: float = 0.01,
                        beta: float = 0.5, out: Any = None) -> Any:
    """:func:`occlusion_mask` on CUDA device arrays; returns ``out`` or a new Numba device array."""
    named = {"fwd_x": fwd_x, "fwd_y": fwd_y, "bwd_x": bwd_x, "bwd_y": bwd_y}
    return _launch("occlusion_mask_cuda", _cuda_kernels()[1], named, out, float(alpha), float(beta))


# ---- NumPy reference (float64) -----------------------------------------------------------------

def _bidx_ref(i: np.ndarray, n: int, border: int) -> np.ndarray:
    if border == 0:
        return np.clip(i, 0, n - 1)
    if border == 1:
        p = max(2 * (n - 1), 1)
        i = np.mod(i, p)
        return np.where(i >= n, p - i, i)
    return np.where((i >= 0) & (i < n), i, -1)


def warp_reference(src: np.ndarray, flow_x: np.ndarray, flow_y: np.ndarray, *, interp: Interp = "bilinear",
                   border: Border = "clamp", fill: float = 0.0, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`warp` in vectorised NumPy, float64 inside: the tests' ground truth."""
    src, flow_x, flow_y = np.asarray(src), np.asarray(flow_x), np.asarray(flow_y)
    h, w = _check("warp_reference", {"src": src, "flow_x": flow_x, "flow_y": flow_y})
    ii, bb = _modes("warp_reference", interp, border)
    res = _out_host("warp_reference", out, (h, w), [src, flow_x, flow_y])
    s = src.astype(np.float64)
    ys, xs = np.mgrid[0:h, 0:w]

    def split(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = d.astype(np.float64)
        d = np.where(np.abs(d) <= _BIG, d, np.where(d > 0, _BIG, -_BIG))
        return np.floor(d).astype(np.int64), d - np.floor(d)

    (ix, tx), (iy, ty) = split(flow_x), split(flow_y)
    ix, iy = ix + xs, iy + ys

    def tap(dy: int, dx: int) -> np.ndarray:
        yy, xx = _bidx_ref(iy + dy, h, bb), _bidx_ref(ix + dx, w, bb)
        return np.where((yy < 0) | (xx < 0), float(fill), s[np.maximum(yy, 0), np.maximum(xx, 0)])

    if ii == 0:
        a, b, c, d = tap(0, 0), tap(0, 1), tap(1, 0), tap(1, 1)
        res[...] = (a * (1.0 - tx) + b * tx) * (1.0 - ty) + (c * (1.0 - tx) + d * tx) * ty
    else:
        u, v = _cubic(tx), _cubic(ty)
        res[...] = sum(v[j] * sum(u[i] * tap(j - 1, i - 1) for i in range(4)) for j in range(4))
    return res


def occlusion_mask_reference(fwd_x: np.ndarray, fwd_y: np.ndarray, bwd_x: np.ndarray, bwd_y: np.ndarray,
                             *, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """:func:`occlusion_mask` in vectorised NumPy (float64, the kernels' operation order)."""
    fx, fy, bwx, bwy = (np.asarray(a) for a in (fwd_x, fwd_y, bwd_x, bwd_y))
    h, w = _check("occlusion_mask_reference", {"fwd_x": fx, "fwd_y": fy, "bwd_x": bwx, "bwd_y": bwy})
    ys, xs = np.mgrid[0:h, 0:w]
    fx, fy = fx.astype(np.float64), fy.astype(np.float64)
    px, py = xs + fx, ys + fy
    inside = (px >= 0.0) & (px <= w - 1) & (py >= 0.0) & (py <= h - 1)
    px, py = np.where(inside, px, 0.0), np.where(inside, py, 0.0)
    x0, y0 = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)
    tx, ty = px - x0, py - y0
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)

    def bilerp(b: np.ndarray) -> np.ndarray:
        b = b.astype(np.float64)
        a, bb, c, d = b[y0, x0], b[y0, x1], b[y1, x0], b[y1, x1]
        return (a * (1.0 - tx) + bb * tx) * (1.0 - ty) + (c * (1.0 - tx) + d * tx) * ty

    bx, by = bilerp(bwx), bilerp(bwy)
    ux, uy = fx + bx, fy + by
    rhs = float(alpha) * ((fx * fx + fy * fy) + (bx * bx + by * by)) + float(beta)
    return (inside & (ux * ux + uy * uy <= rhs)).astype(np.float32)


def _warm_up() -> None:
    """Compile (or load from Numba's cache) every CPU kernel now, so the first frame is not slow."""
    z = np.zeros((3, 4), np.float32)
    warp(z, z + 9.5, z, border="reflect")  # every pixel takes the rest path too
    warp(z, z + 9.5, z, interp="bicubic", border="reflect")
    occlusion_mask(z, z, z, z)


_warm_up()
